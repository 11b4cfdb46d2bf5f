"""The alert panel and the alert drawer: the open alerts of the unit being viewed, and one alert's drill-down with
the actions people take on it (acknowledge, assign, comment, close).

Everything the page sends is checked here: an alert id is looked up within the viewer's scope (the domain raises
OutOfScope otherwise), and who acts is decided by `current_actor` — a trusted proxy's header, or the typed name
recorded as unverified — never taken from the page as it stands. Clicking a row also drills the map to the
alert's unit, through the one selection store.
"""

from __future__ import annotations

import time

from dash import ALL, Input, Output, State, callback, clientside_callback, ctx, html, no_update

from callbacks.context import Request, current_actor, current_language, resolve_view, screen_context, viewer_request
from callbacks.redraw import digest_of
from callbacks.selection import with_unit
from cityops.alerts.lifecycle import AlertActionError, acknowledge, assign, close, comment, history
from cityops.alerts.queries import alert_counts, alert_list, alert_subject, evidence
from cityops.hierarchy import Level
from cityops.readings import trend, without_filling_bucket
from cityops.scope import OutOfScope
from layouts.alert_drawer import (alert_head, alert_trend_figure, alert_trend_graph, audit_trail, drawer_content,
                                  evidence_sections, trend_window)
from layouts.alerts import MAX_ROWS, alert_rows, alert_title
from layouts.ids import AlertIds, PageIds, alert_row_id
from layouts.text import format_time, t

# The records shown in the drawer: the largest values of the latest breach come first.
EVIDENCE_RECORDS = 30

ACTIONS = {AlertIds.ACKNOWLEDGE: "acknowledge", AlertIds.ASSIGN: "assign", AlertIds.COMMENT: "comment",
           AlertIds.CLOSE_ALERT: "close"}


LARGEST_ID = 2**31 - 1  # alerts.id is an INTEGER column: a larger number names no alert (and no driver error)


def as_alert_id(value) -> int | None:
    """The alert id the page sent, if it is one at all (a positive integer); anything else is no alert."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 < value <= LARGEST_ID else None


# ------------------------------------------------------------------------------------------------
# The panel
# ------------------------------------------------------------------------------------------------


def alert_panel(request: Request, selection: dict | None) -> tuple[list, list]:
    """The rows and the title for the unit being viewed: its subtree's open alerts, most urgent first."""
    view = resolve_view(request, selection)
    alerts = alert_list(request.session, request.scope, request.tree, view.unit_id, request.now, limit=MAX_ROWS)
    counts = alert_counts(request.session, request.scope, request.tree, [view.unit_id], request.now)
    unit = request.tree.frame.loc[view.unit_id]
    name = unit["name_zh"] if request.language == "zh" else unit["name_en"]
    open_count, overdue_count = int(counts.at[view.unit_id, "open"]), int(counts.at[view.unit_id, "overdue"])
    rules = screen_context().alert_rules
    rows = alert_rows(alerts, rules, request.catalog, name, open_count, request.language, request.settings.timezone,
                      request.now)
    return rows, alert_title(name, open_count, overdue_count, request.language)


@callback(
    Output(AlertIds.LIST, "children"),
    Output(AlertIds.TITLE, "children"),
    Output(AlertIds.LIST_DIGEST, "data"),
    Input(PageIds.SELECTION, "data"),
    Input(PageIds.REFRESH, "n_intervals"),
    Input(PageIds.MAP_PAINTED, "data"),
    Input(AlertIds.CHANGED, "data"),
    State(AlertIds.LIST_DIGEST, "data"),
    prevent_initial_call=True,  # first drawn once the map has painted (see callbacks/loading.py)
)
def show_alerts(selection, _tick, _map_painted=None, _changed=None, shown=None):
    # The rows stay on screen until new ones arrive (a refresh never blanks the panel), and are redrawn only when
    # something in them changed: rows recreated on every refresh would slip from under a click being made.
    with viewer_request() as request:
        rows, title = alert_panel(request, selection)
    digest = digest_of([rows, title])
    if digest == shown:
        return no_update, no_update, no_update
    return rows, title, digest


# ------------------------------------------------------------------------------------------------
# Opening and closing the drawer
# ------------------------------------------------------------------------------------------------


def clicked_alert(triggered: list[dict], prop_ids: dict) -> int | None:
    """The alert a row click asked for. Rows are redrawn with n_clicks 0 on every refresh, which fires the
    callback too: only a trigger with clicks is a click (looked for among all of them, as in callbacks/selection.py)."""
    for trigger in triggered:
        component = prop_ids.get(trigger["prop_id"])
        if isinstance(component, dict) and component.get("type") == "alert-row" and trigger.get("value"):
            return as_alert_id(component.get("alert"))
    return None


@callback(
    Output(AlertIds.SELECTED, "data"),
    Output(PageIds.SELECTION, "data", allow_duplicate=True),
    Input(alert_row_id(ALL), "n_clicks"),
    Input(AlertIds.CLOSE, "n_clicks"),
    State(PageIds.SELECTION, "data"),
    prevent_initial_call=True,
)
def open_alert(_rows, _close, selection):
    if ctx.triggered_id == AlertIds.CLOSE:
        return None, no_update
    alert_id = clicked_alert(ctx.triggered, ctx.triggered_prop_ids)
    if alert_id is None:
        return no_update, no_update
    with viewer_request() as request:
        subject = alert_subject(request.session, request.scope, request.tree, request.ids, alert_id)
    if subject is None:
        return no_update, no_update  # an alert the viewer may not see is never opened
    # The map drills to the alert's unit (a community shows within its street, highlighted) and shows the
    # alert's indicator, so map, cards and trend tell the same story as the drawer.
    code, indicator = subject
    chosen = with_unit(selection, code)
    return alert_id, {**chosen, "indicator": indicator} if indicator else chosen


@callback(
    Output(AlertIds.CONTENT, "children"),
    Input(AlertIds.SELECTED, "data"),
    State(AlertIds.CONTENT, "children"),
    prevent_initial_call=True,
)
def mount_drawer_content(selected, content):
    """The drawer's body and actions, mounted when the first alert is opened and kept from then on (what the
    operator typed survives closing and reopening). The callbacks filling them also wait on this one."""
    if content or as_alert_id(selected) is None:
        return no_update
    return drawer_content(current_language(), screen_context().settings.refresh_seconds)


clientside_callback(
    "function(selected) { return selected === null || selected === undefined; }",
    Output(AlertIds.DRAWER, "hidden"),
    Input(AlertIds.SELECTED, "data"),
    prevent_initial_call=True,
)


# ------------------------------------------------------------------------------------------------
# The drawer's content
# ------------------------------------------------------------------------------------------------


def drawer_parts(request: Request, alert_id: int) -> tuple[list, list, list, bool]:
    """(head, evidence, audit trail, closed) of one alert, or a message saying why it cannot be shown."""
    language, zone = request.language, request.settings.timezone
    try:
        found = evidence(request.session, request.scope, request.tree, request.catalog, request.ids, alert_id,
                         limit=EVIDENCE_RECORDS)
    except OutOfScope:
        return [html.P(t("alert_out_of_scope", language), className="alert-refused")], [], [], True
    if found is None:
        return [html.P(t("alert_not_found", language), className="alert-refused")], [], [], True
    alert = found.alert
    indicator = request.catalog[alert["indicator"]] if alert["indicator"] in request.catalog else None
    rule = screen_context().alert_rules.get(alert["rule"])
    unit = request.tree.frame.loc[alert["unit_id"]]
    events = history(request.session, request.scope, request.tree, alert_id)
    return (alert_head(alert, rule, indicator, unit, language, zone, request.now),
            evidence_sections(found, indicator, request.catalog, language, zone, request.now),
            audit_trail(events, language, zone, request.now),
            alert["closed_at"] is not None)


@callback(
    Output(AlertIds.HEAD, "children"),
    Output(AlertIds.EVIDENCE, "children"),
    Output(AlertIds.HISTORY, "children"),
    Output(AlertIds.ACKNOWLEDGE, "disabled"),
    Output(AlertIds.ASSIGN, "disabled"),
    Output(AlertIds.CLOSE_ALERT, "disabled"),
    Output(AlertIds.DRAWER_DIGEST, "data"),
    Output(AlertIds.MESSAGE, "children", allow_duplicate=True),
    Input(AlertIds.SELECTED, "data"),
    Input(AlertIds.REFRESH, "n_intervals"),
    Input(AlertIds.CHANGED, "data"),
    Input(AlertIds.CONTENT, "children"),
    State(AlertIds.DRAWER_DIGEST, "data"),
    prevent_initial_call=True,
)
def show_alert_drawer(selected, _tick, _changed, _content=None, shown=None):
    alert_id = as_alert_id(selected)
    opened = {AlertIds.SELECTED, AlertIds.CONTENT} & {trigger["prop_id"].split(".")[0] for trigger in ctx.triggered}
    if alert_id is None:
        if opened:
            # Closed: emptied, so the next alert never shows this one's for a moment.
            return [], [], [], False, False, False, None, ""
        return (no_update,) * 8  # nobody is looking: no queries
    with viewer_request() as request:
        head, found, trail, closed = drawer_parts(request, alert_id)
    digest = digest_of([alert_id, head, found, trail, closed])
    # Another alert opened: the last one's "done" message goes (a refresh leaves it).
    message = "" if opened else no_update
    if digest == shown:
        return (*(no_update,) * 7, message)  # a refresh that changed nothing redraws nothing
    # A closed alert can still take comments (what was found later belongs with it), nothing else.
    return head, found, trail, closed, closed, closed, digest, message


def alert_trend(request: Request, alert_id: int):
    """The figure of the alert's unit and indicator over its breach, or the words saying why there is none."""
    try:
        found = evidence(request.session, request.scope, request.tree, request.catalog, request.ids, alert_id,
                         limit=1)
    except OutOfScope:
        return t("alert_out_of_scope", request.language)
    if found is None:
        return t("alert_not_found", request.language)
    alert = found.alert
    if alert["indicator"] not in request.catalog:
        return t("no_trend_source" if alert.get("source") else "no_trend", request.language)
    indicator = request.catalog[alert["indicator"]]
    level = Level(int(request.tree.frame.at[alert["unit_id"], "level"]))
    series = trend(request.session, request.scope, request.catalog, request.ids, alert["unit_id"], indicator.key,
                   *trend_window(alert, request.now), tree=request.tree)
    # A sum's hour still filling read as the breach ending in a fall to nothing (a street's overdue incidents
    # 44 → 7 at 07:11, a few of its communities in), as on the trend panel: not drawn until all are in or it is over.
    series = without_filling_bucket(series, indicator, request.now, indicator.interval_seconds)
    return alert_trend_figure(series, indicator, indicator.thresholds_at(level), alert, request.settings.timezone,
                              request.language, request.now)


@callback(
    Output(AlertIds.TREND_BODY, "children"),
    Input(AlertIds.SELECTED, "data"),
    Input(AlertIds.CONTENT, "children"),
    prevent_initial_call=True,
)
def show_alert_trend(selected, _content=None):
    # Mounted once per alert opened and removed when the drawer closes; refreshes leave it alone (remounting
    # would redraw it from scratch, see callbacks/trend.py).
    alert_id = as_alert_id(selected)
    if alert_id is None:
        return []
    with viewer_request() as request:
        figure = alert_trend(request, alert_id)
    return html.P(figure, className="muted") if isinstance(figure, str) else alert_trend_graph(figure)


# ------------------------------------------------------------------------------------------------
# Actions
# ------------------------------------------------------------------------------------------------


def take_action(request: Request, action: str, alert_id: int, actor: str, text: str = "") -> tuple[bool, str]:
    """Acknowledge, assign, comment on or close one alert as `actor`; (done, what to tell the operator).

    Refusals come back as words, never as an exception: the drawer says why, and what was typed stays."""
    language = request.language
    text = (text or "").strip() if isinstance(text, str) else ""
    needed = {"assign": "need_assignee", "comment": "need_comment", "close": "need_resolution"}
    if action in needed and not text:
        return False, t(needed[action], language)
    where = (request.session, request.scope, request.tree, alert_id)
    try:
        if action == "acknowledge":
            acknowledge(*where, actor, request.now)
            done = t("done_acknowledged", language)
        elif action == "assign":
            assign(*where, text, actor, request.now)
            done = t("done_assigned", language, name=text)
        elif action == "comment":
            comment(*where, text, actor, request.now)
            done = t("done_commented", language)
        elif action == "close":
            close(*where, text, actor, request.now)
            done = t("done_closed", language)
        else:
            return False, t("action_refused", language, reason=action)
    except OutOfScope:
        return False, t("alert_out_of_scope", language)
    except AlertActionError as error:
        return False, t("action_refused", language, reason=str(error))
    return True, f"{done} · {format_time(request.now, request.settings.timezone, request.now)} · {actor}"


def action_message(done: bool, text: str) -> html.Span:
    return html.Span(text, className="alert-message-done" if done else "alert-message-refused",
                     **{"data-outcome": "done" if done else "refused"})


@callback(
    Output(AlertIds.MESSAGE, "children"),
    Output(AlertIds.CHANGED, "data"),
    Output(AlertIds.COMMENT_TEXT, "value"),
    Output(AlertIds.RESOLUTION, "value"),
    Input(AlertIds.ACKNOWLEDGE, "n_clicks"),
    Input(AlertIds.ASSIGN, "n_clicks"),
    Input(AlertIds.COMMENT, "n_clicks"),
    Input(AlertIds.CLOSE_ALERT, "n_clicks"),
    State(AlertIds.SELECTED, "data"),
    State(AlertIds.ACTOR, "value"),
    State(AlertIds.ASSIGNEE, "value"),
    State(AlertIds.COMMENT_TEXT, "value"),
    State(AlertIds.RESOLUTION, "value"),
    prevent_initial_call=True,
)
def act_on_alert(_acknowledge, _assign, _comment, _close, selected, typed_name, assignee, comment_text, resolution):
    action = ACTIONS.get(ctx.triggered_id)
    alert_id = as_alert_id(selected)
    if action is None or alert_id is None or not (ctx.triggered and ctx.triggered[0].get("value")):
        return no_update, no_update, no_update, no_update
    language = current_language()
    actor = current_actor(typed_name, language)
    if actor is None:
        return action_message(False, t("need_name", language)), no_update, no_update, no_update
    text = {"assign": assignee, "comment": comment_text, "close": resolution}.get(action, "")
    with viewer_request() as request:
        done, message = take_action(request, action, alert_id, actor, text)
    if not done:
        return action_message(False, message), no_update, no_update, no_update  # what was typed stays
    # A new value every time, so the list and the drawer redraw after every action.
    changed = f"{alert_id}:{action}:{time.time_ns()}"
    return (action_message(True, message), changed, "" if action == "comment" else no_update,
            "" if action == "close" else no_update)


# The typed name is kept in the browser (AlertIds.ACTOR_STORE, local storage): typed once, it is filled in again
# whenever a drawer opens, on this screen and after a reload.
clientside_callback(
    """function(typed, _selected, _content, stored) {
        const clientside = window.dash_clientside;
        if (clientside.callback_context.triggered_id === "%s") {
            return [clientside.no_update, typed || null];
        }
        return [typed || !stored ? clientside.no_update : stored, clientside.no_update];
    }""" % AlertIds.ACTOR,
    Output(AlertIds.ACTOR, "value"),
    Output(AlertIds.ACTOR_STORE, "data"),
    Input(AlertIds.ACTOR, "value"),
    Input(AlertIds.SELECTED, "data"),
    Input(AlertIds.CONTENT, "children"),
    State(AlertIds.ACTOR_STORE, "data"),
    prevent_initial_call=True,
)


@callback(
    Output(AlertIds.ACTOR_NOTE, "children"),
    Input(AlertIds.ACTOR, "value"),
    Input(AlertIds.SELECTED, "data"),
    Input(AlertIds.CONTENT, "children"),
    prevent_initial_call=True,
)
def show_actor(typed_name, _selected, _content=None):
    language = current_language()
    actor = current_actor(typed_name, language)
    if actor is None:
        return html.Span(t("need_name", language), className="alert-actor-missing")
    return t("recorded_as", language, name=actor)
