"""The sources panel: opened from the header's source summary, refreshed while open, with a drill-in per source.

Like every callback, these decide on the server what the viewer may see: the source named by the page must be a
configured one, and raw quarantined records are shown only to viewers whose scope is the whole city.
"""

from __future__ import annotations

from dash import ALL, Input, Output, State, callback, clientside_callback, ctx, no_update

from callbacks.context import screen_context, viewer_request
from cityops.sources import last_failure, open_quarantine, source_statuses
from layouts.ids import HeaderIds, PageIds, SourceIds, source_row_id
from layouts.sources import source_detail, source_table
from layouts.text import t

QUARANTINE_SHOWN = 20

clientside_callback(
    """function(_open, _close) {
        return window.dash_clientside.callback_context.triggered_id === "%s";  // hidden only by Close
    }""" % SourceIds.CLOSE,
    Output(SourceIds.PANEL, "hidden"),
    Input(HeaderIds.SOURCES, "n_clicks"),
    Input(SourceIds.CLOSE, "n_clicks"),
    prevent_initial_call=True,
)


@callback(
    Output(SourceIds.SELECTED, "data"),
    Input(source_row_id(ALL), "n_clicks"),
    State(SourceIds.SELECTED, "data"),
    prevent_initial_call=True,
)
def select_source(clicks, current):
    # Rows are redrawn on every refresh with n_clicks=0, which triggers this too: only a real click selects.
    if not ctx.triggered_id or not any(clicks or []) or not ctx.triggered[0].get("value"):
        return no_update
    name = ctx.triggered_id["name"]
    return None if name == current else name  # a second click closes the details


@callback(
    Output(SourceIds.BODY, "children"),
    Input(SourceIds.PANEL, "hidden"),
    Input(PageIds.REFRESH, "n_intervals"),
    Input(SourceIds.SELECTED, "data"),
    prevent_initial_call=True,
)
def show_sources(hidden, _tick, selected):
    if hidden:
        return no_update  # nobody is looking: no queries
    return sources_body(selected)


def sources_body(selected: str | None) -> list:
    sources = list(screen_context().sources)
    with viewer_request() as request:
        language, zone = request.language, request.settings.timezone
        statuses = source_statuses(request.session, sources, request.now)
        chosen = next((s for s in statuses if s.config.name == selected), None)  # only configured names
        body = [source_table(statuses, chosen.config.name if chosen else None, language, zone, request.now)]
        if chosen is None:
            body.append(t("select_source", language))
            return body
        city_wide = request.scope.root_id == request.tree.root_id
        records = open_quarantine(request.session, chosen.config.name, QUARANTINE_SHOWN) if city_wide else None
        body.append(source_detail(chosen, last_failure(request.session, chosen.config.name), records, language,
                                  zone, request.now))
        return body
