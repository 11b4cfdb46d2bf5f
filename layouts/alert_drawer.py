"""The alert drawer: one alert from end to end — what fired and why, its trend with the breach shaded, the records
and connector runs behind it, the audit trail, and the actions (acknowledge, assign, comment, close).

The shell is part of the page and keeps its inputs while it is open: a refresh redraws the head, the evidence and
the trail, never what the operator is typing. Pure builders: the data comes from cityops.alerts.queries and
lifecycle, the rules from the alerts file.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html

from cityops.alerts.queries import Evidence, deadlines_passed
from cityops.alerts.rules import Rule
from cityops.catalog import Catalog, Indicator, Thresholds
from cityops.hierarchy import Level
from cityops.status import Status
from layouts.alerts import judged_value, rule_type_text, state_chips
from layouts.ids import AlertIds
from layouts.text import alert_action_text, format_time, format_value, level_name, run_status_text, status_text, t
from layouts.theme import STATUS_COLOURS
from layouts.trend import GRAPH_CONFIG, trend_figure

ALERT_GRAPH_CONFIG = {**GRAPH_CONFIG, "toImageButtonOptions": {"format": "png", "scale": 2,
                                                               "filename": "onescreen-alert"}}
DAY = 86400
# The trend shows a day before the breach began (what normal looked like) and at most two weeks in all.
TREND_BEFORE = DAY
TREND_LONGEST = 14 * DAY
TREND_ROOM = 0.03  # of the window, after its end


def alert_drawer(language: str) -> html.Aside:
    """The drawer's shell; hidden until an alert row is clicked. Its content (`drawer_content`) is mounted then,
    the first time: a third of the screen's components, which the first screen need not render."""
    return html.Aside(id=AlertIds.DRAWER, className="alert-drawer", hidden=True,
                      **{"aria-label": t("alert_detail", language)}, children=[
        dcc.Store(id=AlertIds.SELECTED),
        dcc.Store(id=AlertIds.CHANGED),
        dcc.Store(id=AlertIds.DRAWER_DIGEST),
        dcc.Store(id=AlertIds.ACTOR_STORE, storage_type="local"),
        html.Div(className="alert-drawer-head", children=[
            html.H2(t("alert_detail", language), className="panel-title"),
            html.Button("×", id=AlertIds.CLOSE, className="drawer-close", title=t("close", language),
                        **{"aria-label": t("close", language)}),
        ]),
        html.Div(id=AlertIds.CONTENT, className="alert-drawer-content"),
    ])


def drawer_content(language: str, refresh_seconds: int = 30) -> list:
    """The drawer's body (head, trend, evidence, trail: filled by callbacks/alerts.py), its actions, and the timer
    that refreshes it (here rather than the page's: a callback whose outputs are not on the page yet must not fire).
    """
    def labelled(label: str, field, button) -> html.Div:
        return html.Div(className="alert-action", children=[html.Label(label, className="alert-action-label"),
                                                            field, button])

    return [
        dcc.Interval(id=AlertIds.REFRESH, interval=refresh_seconds * 1000),
        html.Div(className="alert-drawer-body", children=[
            html.Div(id=AlertIds.HEAD, className="alert-head"),
            html.Div(id=AlertIds.TREND_BODY, className="alert-trend"),
            html.Div(id=AlertIds.EVIDENCE, className="alert-evidence"),
            html.Div(id=AlertIds.HISTORY, className="alert-history"),
        ]),
        html.Div(className="alert-actions", children=[
            labelled(t("your_name", language),
                     dcc.Input(id=AlertIds.ACTOR, type="text", debounce=True, maxLength=60, autoComplete="name",
                               className="alert-input"),
                     html.Button(t("acknowledge", language), id=AlertIds.ACKNOWLEDGE, n_clicks=0,
                                 className="alert-button")),
            html.Div(id=AlertIds.ACTOR_NOTE, className="alert-actor-note"),
            labelled(t("assignee_hint", language),
                     dcc.Input(id=AlertIds.ASSIGNEE, type="text", maxLength=120, className="alert-input"),
                     html.Button(t("assign", language), id=AlertIds.ASSIGN, n_clicks=0, className="alert-button")),
            labelled(t("comment_hint", language),
                     dcc.Textarea(id=AlertIds.COMMENT_TEXT, maxLength=2000, rows=2, className="alert-input"),
                     html.Button(t("comment", language), id=AlertIds.COMMENT, n_clicks=0, className="alert-button")),
            labelled(t("resolution_hint", language),
                     dcc.Textarea(id=AlertIds.RESOLUTION, maxLength=2000, rows=2, className="alert-input"),
                     html.Button(t("close_alert", language), id=AlertIds.CLOSE_ALERT, n_clicks=0,
                                 className="alert-button alert-button-close")),
            html.Div(id=AlertIds.MESSAGE, className="alert-message", role="status", **{"aria-live": "polite"}),
        ]),
    ]


def alert_head(alert: dict, rule: Rule | None, indicator: Indicator | None, unit: pd.Series, language: str,
               zone: str, now: int) -> list:
    """Severity, unit, indicator, the rule and what it means, the breach's times and the deadlines."""
    severity = str(alert["severity"])
    unit_name = unit["name_zh"] if language == "zh" else unit["name_en"]
    dispatch_passed, handle_passed = deadlines_passed(alert, now)

    def when(label: str, epoch: int | None, passed: bool = False, missing: str = "—") -> html.Div:
        text = format_time(epoch, zone, now) if epoch is not None else missing
        return html.Div(className="alert-time" + (" passed" if passed else ""), children=[
            html.Span(label, className="meta"), html.Span(text),
            *([html.Span(t("deadline_passed", language), className="chip chip-overdue")] if passed else [])])

    description = rule.described(language) if rule is not None else ""
    head = [
        html.Div(className="alert-head-title", children=[
            html.Span(status_text(severity, language), className=f"badge badge-{severity}"),
            html.Span(unit_name, className="alert-head-unit"),
            html.Span(level_name(Level(int(unit["level"])), language), className="alert-level"),
            html.Span(indicator.name(language) if indicator is not None else
                      t("source_named", language, name=alert["source"]) if alert.get("source") else "",
                      className="alert-head-indicator"),
        ]),
        html.Div(judged_value(rule, indicator, alert.get("value"), alert.get("line"), language),
                 className=f"alert-value alert-head-value severity-{severity}"),
        html.Div(className="alert-rule", children=[
            html.Code(alert["rule"]),
            html.Span(rule_type_text(rule, language), className="meta"),
            *([html.Span(description, className="alert-rule-description")] if description else []),
        ]),
        html.Div(className="alert-times", children=[
            when(t("alert_started", language), alert.get("started_at")),
            when(t("alert_fired", language), alert.get("fired_at")),
            when(t("alert_resolved", language), alert.get("resolved_at"), missing=t("alert_ongoing", language)),
            when(t("dispatch_due", language), alert.get("dispatch_due"), dispatch_passed),
            when(t("handle_due", language), alert.get("handle_due"), handle_passed),
        ]),
        html.Div(state_chips(str(alert["phase"]), alert.get("acknowledged_by"), alert.get("assignee"),
                             dispatch_passed or handle_passed, language, alert.get("closed_by")),
                 className="alert-chips"),
    ]
    if alert.get("resolution"):
        head.append(html.Blockquote(alert["resolution"], className="alert-resolution"))
    return head


def trend_window(alert: dict, now: int) -> tuple[int, int]:
    """From a day before the breach began to now (or its recovery, if that is later): at most two weeks."""
    end = max(now, int(alert.get("resolved_at") or 0))
    start = max(int(alert["started_at"]) - TREND_BEFORE, end - TREND_LONGEST)
    return start, end


def alert_trend_figure(series: pd.DataFrame, indicator: Indicator, thresholds: Thresholds | None, alert: dict,
                       zone: str, language: str, now: int) -> go.Figure:
    """The unit's trend as the trend panel draws it (threshold lines and bands), with the breach shaded from when
    it began to its recovery (or now) in its severity's colour."""
    window = trend_window(alert, now)
    figure = trend_figure(series, indicator, thresholds, zone, language, window)
    tz = ZoneInfo(zone)
    colour = STATUS_COLOURS[Status(str(alert["severity"]))]
    began = datetime.fromtimestamp(int(alert["started_at"]), tz)
    # A breach of minutes is a sliver on a day's axis: the dotted line where it began marks it all the same.
    figure.add_vline(x=began, line=dict(color=colour, width=1.2, dash="dot"))
    figure.add_vrect(x0=began, x1=datetime.fromtimestamp(int(alert.get("resolved_at") or now), tz),
                     fillcolor=colour, opacity=0.16, line_width=0, layer="below",
                     annotation_text=t("breach_window", language), annotation_position="top right",
                     annotation_font=dict(color=colour, size=11))
    # A little room after the last reading, so the newest value (often the breach itself) is not on the edge.
    room = (window[1] - window[0]) * TREND_ROOM
    figure.update_layout(margin=dict(l=48, r=12, t=18, b=32), uirevision=f"alert-{alert['id']}",
                         xaxis_range=[datetime.fromtimestamp(window[0], tz),
                                      datetime.fromtimestamp(window[1] + room, tz)])
    return figure


def alert_trend_graph(figure: go.Figure | None) -> dcc.Graph:
    extra = {} if figure is None else {"figure": figure}
    return dcc.Graph(id=AlertIds.TREND, className="alert-trend-graph", config=ALERT_GRAPH_CONFIG, **extra)


def _table(headers: list[str], rows: list[list], class_name: str) -> html.Table:
    return html.Table(className=f"alert-table {class_name}", children=[
        html.Thead(html.Tr([html.Th(header) for header in headers])),
        html.Tbody([html.Tr([html.Td(cell) for cell in row]) for row in rows]),
    ])


def _records_section(found: Evidence, indicator: Indicator | None, catalog: Catalog, language: str, zone: str,
                     now: int) -> list:
    name_column = "name_zh" if language == "zh" else "name_en"
    section = [html.H4(t("records_behind", language))]
    if indicator is not None and indicator.is_derived:
        section.append(html.P(t("records_of_ratio", language, numerator=catalog[indicator.numerator].name(language),
                                denominator=catalog[indicator.denominator].name(language)), className="meta"))
    if found.records.empty:
        return [*section, html.P(t("no_records", language), className="muted")]
    unit_of_measure = indicator.measure(language) if indicator is not None and not indicator.is_derived else ""
    decimals = indicator.decimals if indicator is not None else 2
    return [*section, _table(
        [t("column_unit", language), t("column_time", language), t("column_value", language),
         t("column_run", language)],
        [[record[name_column], format_time(int(record["at"]), zone, now),
          f"{format_value(float(record['value']), decimals)} {unit_of_measure}".strip(),
          f"#{int(record['run_id'])}" if pd.notna(record["run_id"]) else "—"]
         for _, record in found.records.iterrows()], "alert-records")]


def evidence_sections(found: Evidence, indicator: Indicator | None, catalog: Catalog, language: str, zone: str,
                      now: int) -> list:
    """The records behind the latest breach, the connector runs that brought them (with the raw payload's
    archive), and the incidents open in the unit meanwhile. A silent source has no records: its latest runs are
    the evidence."""
    sections = [] if found.alert.get("source") else _records_section(found, indicator, catalog, language, zone, now)
    sections.append(html.H4(t("connector_runs", language)))
    if found.runs.empty:
        sections.append(html.P(t("no_runs", language), className="muted"))
    else:
        sections.append(_table(
            [t("column_run", language), t("column_time", language), t("source", language), t("column_status", language),
             t("column_counts", language), t("column_archive", language)],
            [[f"#{int(run['id'])}", format_time(int(run["started_at"]), zone, now), run["connector"],
              html.Span(run_status_text(str(run["status"]), language), className=f"run-status run-{run['status']}"),
              f"{format_value(run['accepted'], 0)} / {format_value(run['rejected'], 0)}",
              html.Code(run["archive"]) if run["archive"] else "—"]
             for _, run in found.runs.iterrows()], "alert-runs"))
    if not found.incidents.empty:
        sections.append(html.H4(t("incidents", language)))
        sections.append(html.Ul(className="alert-incidents", children=[
            html.Li([html.Code(incident["external_id"]), f" {incident['category'] or ''} · {incident['status']} · "
                     f"{format_time(int(incident['opened_at']), zone, now)}",
                     html.Span(f" {incident['address']}" if incident["address"] else "", className="meta")])
            for _, incident in found.incidents.iterrows()]))
    return sections


def _event_detail(event: dict, language: str) -> str:
    detail = event.get("detail") or {}
    for key in ("assignee", "text", "resolution"):
        if detail.get(key):
            return str(detail[key])
    if detail.get("severity"):
        return status_text(detail["severity"], language)
    return ""


def audit_trail(events: list[dict], language: str, zone: str, now: int) -> list:
    """Every change and every person's action, oldest first, with who and when."""
    trail = [html.H4(t("audit_trail", language))]
    if not events:
        return [*trail, html.P(t("no_events", language), className="muted")]
    return [*trail, html.Ol(className="alert-events", children=[
        html.Li(className=f"alert-event event-{event['action']}", **{"data-action": event["action"],
                                                                      "data-actor": event["actor"]}, children=[
            html.Span(format_time(int(event["at"]), zone, now), className="alert-event-time"),
            html.Span(alert_action_text(event["action"], language), className="alert-event-action"),
            html.Span(event["actor"], className="alert-event-actor"),
            html.Span(_event_detail(event, language), className="alert-event-detail"),
        ]) for event in events])]
