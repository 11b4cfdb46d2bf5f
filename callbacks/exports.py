"""Exports: a panel's data (CSV, XLSX), a chart's image (PNG, SVG) and reports (PDF, PNG), each recorded.

Every export is a public endpoint: the unit, indicator and time range come from the page's selection, checked
here against the viewer's scope (`resolve_view` replaces a unit outside it by the scope's root), and who exports
is decided by `current_actor` (a trusted proxy's header, else the name typed for alert actions, marked
unverified, else anonymous). Data files and reports are made and recorded on the server; a chart image is
recorded and named on the server, then drawn by the browser from the figure it shows (assets/exports.js), in a
print style, so it is exactly what the analyst sees — except the ranking's, whose panel shows rows rather than a
chart: its bars are drawn on the server.
"""

from __future__ import annotations

import logging
import time

from dash import ALL, ClientsideFunction, Input, Output, State, callback, clientside_callback, ctx, dcc, html, no_update

from callbacks.context import Request, current_actor, current_language, resolve_view, screen_context, viewer_request
from cityops.exports import (CHART_FORMATS, CHART_PANELS, DATA_FORMATS, DATA_PANELS, DRAWN_BY_BROWSER, REPORT_FORMATS,
                             REPORT_SUBJECTS)
from cityops.exports.exporting import chart_file, chart_request, panel_file, report_file
from cityops.exports.files import ExportFile
from cityops.exports.panel_data import ExportContext, ExportView
from cityops.exports.records import record_export
from cityops.exports.render import RenderError
from cityops.time_range import resolve_range
from layouts.exports import export_controls
from layouts.ids import AlertIds, ExportIds, PageIds, TrendIds
from layouts.text import t

log = logging.getLogger(__name__)

# The graph a chart panel draws in, for the charts whose image the browser draws.
CHART_GRAPHS = {"trend": TrendIds.GRAPH}


@callback(
    Output(ExportIds.slot(ALL), "children"),
    Input(PageIds.CHARTS_READY, "data"),
    prevent_initial_call=True,  # CHARTS_READY is set once the panels have painted (callbacks/loading.py)
)
def mount_export_menus(_ready):
    """Every export menu and the Report menu, into their places (layouts/exports.py export_slot)."""
    language = current_language()
    return [export_controls(output["id"]["panel"], language) for output in ctx.outputs_list]


def export_context(request: Request) -> ExportContext:
    return ExportContext(request.session, request.scope, request.catalog, request.ids, request.tree, request.now,
                         request.settings.timezone, request.language)


def export_view(request: Request, selection: dict | None, subject: str = "view") -> ExportView:
    """The selection checked against the viewer's scope; for subject "scope", the scope's root instead of the
    unit viewed (same indicator and time range)."""
    view = resolve_view(request, selection)
    time_range = resolve_range(selection, request.now, request.settings.timezone)
    if subject == "scope":
        root = request.scope.root_id
        return ExportView(root, root, view.indicator_key, time_range)
    return ExportView(view.unit_id, view.map_parent_id, view.indicator_key, time_range)


def exporter(typed_name, language: str) -> str:
    """Who the export is recorded and stamped as."""
    return current_actor(typed_name, language) or t("export_anonymous", language)


def clicked_item(triggered: list[dict], prop_ids: dict, kind: str) -> dict | None:
    """The menu entry clicked (an id dict of type `kind`), or None: menus are in the layout from the start, so
    only a trigger with clicks is a click."""
    for trigger in triggered or []:
        component = prop_ids.get(trigger["prop_id"])
        if isinstance(component, dict) and component.get("type") == kind and trigger.get("value"):
            return component
    return None


def download_of(exported: ExportFile) -> dict:
    return dcc.send_bytes(exported.content, exported.filename, type=exported.mime)


def done_message(exported_name: str, rows: int | None, language: str) -> str:
    if rows is None:
        return t("export_done", language, file=exported_name)
    return t("export_done_rows", language, file=exported_name, rows=f"{rows:,}")


def status_line(message: str, failed: bool = False) -> html.Span:
    """The status line's message: a new element each time (a new key), so its fade-out starts afresh."""
    return html.Span(message, key=str(time.time_ns()), className="export-status-line",
                     **{"data-outcome": "failed" if failed else "done"})


def take_panel_export(request: Request, selection: dict | None, panel: str, fmt: str,
                      actor: str) -> tuple[dict | None, dict | None, str]:
    """(download, chart drawing request, message) for one panel menu entry; the export is recorded."""
    language = request.language
    if panel not in DATA_PANELS or fmt not in DATA_FORMATS + CHART_FORMATS or (
            fmt in CHART_FORMATS and panel not in CHART_PANELS):
        return None, None, t("export_failed", language, reason=f"{str(panel)[:40]} · {str(fmt)[:10]}")
    context, view = export_context(request), export_view(request, selection)
    city_name = _city_name(request.settings, language)
    if fmt in CHART_FORMATS and panel in DRAWN_BY_BROWSER:
        drawing, entry = chart_request(context, view, panel, fmt, actor=actor, city_name=city_name)
        record_id = record_export(request.session, entry, request.now)
        return None, {**drawing.as_dict(), "graph": CHART_GRAPHS[panel], "record": record_id,
                      "unavailable": t("export_chart_unavailable", language)}, \
            done_message(drawing.filename, None, language)
    if fmt in CHART_FORMATS:
        try:
            exported, entry = chart_file(context, view, panel, fmt, actor=actor, city_name=city_name)
        except RenderError as error:
            log.error("chart not drawn: %s", error)
            return None, None, t("export_failed", language, reason=str(error))
    else:
        exported, entry = panel_file(context, view, panel, fmt, actor=actor,
                                     connector_intervals=screen_context().connector_intervals)
    record_export(request.session, entry, request.now)
    return download_of(exported), None, done_message(exported.filename, exported.rows, language)


def take_report(request: Request, selection: dict | None, subject: str, fmt: str,
                actor: str) -> tuple[dict | None, str]:
    """(download, message) for one Report menu entry; the report is recorded."""
    language = request.language
    if subject not in REPORT_SUBJECTS or fmt not in REPORT_FORMATS:
        return None, t("export_failed", language, reason=f"{str(subject)[:40]} · {str(fmt)[:10]}")
    try:
        exported, entry = report_file(export_context(request), export_view(request, selection, subject), fmt,
                                      actor=actor, city_name=_city_name(request.settings, language),
                                      connector_intervals=screen_context().connector_intervals)
    except RenderError as error:
        log.error("report not drawn: %s", error)
        return None, t("export_failed", language, reason=str(error))
    record_export(request.session, entry, request.now)
    return download_of(exported), done_message(exported.filename, None, language)


def _city_name(settings, language: str) -> str:
    return settings.city_name_zh if language == "zh" else settings.city_name_en


@callback(
    Output(ExportIds.DOWNLOAD, "data"),
    Output(ExportIds.CHART_REQUEST, "data"),
    Output(ExportIds.STATUS, "children"),
    Input(ExportIds.item(ALL, ALL), "n_clicks"),
    State(PageIds.SELECTION, "data"),
    State(AlertIds.ACTOR_STORE, "data"),
    running=[(Output(ExportIds.BUSY, "hidden"), False, True)],  # the ranking's image takes a few seconds
    prevent_initial_call=True,
)
def export_panel(_clicks, selection, typed_name):
    item = clicked_item(ctx.triggered, ctx.triggered_prop_ids, "export-item")
    if item is None:
        return no_update, no_update, no_update
    actor = exporter(typed_name, current_language())
    with viewer_request() as request:
        download, drawing, message = take_panel_export(request, selection, item.get("panel"), item.get("format"),
                                                       actor)
    failed = download is None and drawing is None
    return download or no_update, drawing or no_update, status_line(message, failed)


@callback(
    Output(ExportIds.DOWNLOAD, "data", allow_duplicate=True),
    Output(ExportIds.STATUS, "children", allow_duplicate=True),
    Input(ExportIds.report(ALL, ALL), "n_clicks"),
    State(PageIds.SELECTION, "data"),
    State(AlertIds.ACTOR_STORE, "data"),
    running=[(Output(ExportIds.BUSY, "hidden"), False, True)],
    prevent_initial_call=True,
)
def export_report(_clicks, selection, typed_name):
    item = clicked_item(ctx.triggered, ctx.triggered_prop_ids, "report-item")
    if item is None:
        return no_update, no_update
    actor = exporter(typed_name, current_language())
    with viewer_request() as request:
        download, message = take_report(request, selection, item.get("subject"), item.get("format"), actor)
    return download or no_update, status_line(message, failed=download is None)


# The browser draws the chart the server named (assets/exports.js): the figure on the screen, restyled for
# paper, with its title and stamp line, handed over through the same download.
clientside_callback(
    ClientsideFunction(namespace="onescreen_exports", function_name="draw_chart"),
    Output(ExportIds.DOWNLOAD, "data", allow_duplicate=True),
    Output(ExportIds.STATUS, "children", allow_duplicate=True),
    Input(ExportIds.CHART_REQUEST, "data"),
    prevent_initial_call=True,
)
