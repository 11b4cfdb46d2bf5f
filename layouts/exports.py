"""The export controls: a small menu in each panel's title row (CSV, XLSX, and for charts PNG, SVG), the Report
menu in the header (PDF or PNG, of this view or of the whole scope), and what hands the files over.

Menus are <details> elements: they open and close without a callback (assets/exports.js closes them after a
choice, on a click elsewhere and on Escape). Every control carries `screen-control`, which the wall hides.
"""

from __future__ import annotations

from dash import dcc, html

from cityops.exports import CHART_PANELS
from layouts.ids import ExportIds
from layouts.text import t

FORMAT_WORDS = {"csv": "export_csv", "xlsx": "export_xlsx", "png": "export_png", "svg": "export_svg"}


def _item(label: str, component_id: dict, hint: str) -> html.Button:
    return html.Button([html.Span(label.split(" ", 1)[0], className="export-format"),
                        html.Span(label.split(" ", 1)[-1], className="export-what")],
                       id=component_id, n_clicks=0, className="export-item", role="menuitem", title=hint)


def export_menu(panel: str, language: str) -> html.Details:
    """The export menu of one panel: its data as CSV and XLSX, and for a chart its image as PNG and SVG."""
    formats = ["csv", "xlsx"] + (["png", "svg"] if panel in CHART_PANELS else [])
    what = t(f"export_panel_{panel}", language)
    items = [_item(t(FORMAT_WORDS[fmt], language), ExportIds.item(panel, fmt), f"{what} · {fmt.upper()}")
             for fmt in formats]
    return html.Details(className=f"export-menu screen-control export-menu-{panel}", children=[
        html.Summary(className="export-button", title=t("export_menu", language),
                     **{"aria-label": f"{t('export', language)} · {what}", "data-panel": panel}),
        html.Div(className="export-items", role="menu", children=[
            html.Div(f"{t('export', language)} · {what}", className="export-items-title"), *items]),
    ])


def report_menu(language: str) -> html.Details:
    """The header's Report menu: the view being looked at, or the viewer's whole scope, as PDF or PNG."""
    groups = []
    for subject in ("view", "scope"):
        groups.append(html.Div(t(f"report_{subject}", language), className="export-items-title"))
        groups += [_item(t(f"report_{fmt}", language), ExportIds.report(subject, fmt),
                         f"{t('report', language)} · {t(f'report_{subject}', language)} · {fmt.upper()}")
                   for fmt in ("pdf", "png")]
    return html.Details(className="report-menu export-menu screen-control", children=[
        html.Summary([html.Span(className="report-icon"), t("report", language)], className="report-button",
                     title=t("report_menu", language)),
        html.Div(groups, className="export-items", role="menu"),
    ])


def export_slot(panel: str) -> html.Div:
    """An empty place for a panel's export menu ("report": the header's Report menu). The menus are mounted
    together once the charts may load (callbacks/exports.py mount_export_menus): the first screen's polygons
    would otherwise wait while ~80 of their components are rendered."""
    return html.Div(id=ExportIds.slot(panel), className="export-slot")


def export_controls(panel: str, language: str) -> html.Details:
    return report_menu(language) if panel == "report" else export_menu(panel, language)


def with_report_menu(header: html.Header, language: str) -> html.Header:
    """The header with the Report menu's place at its end (layouts/header.py builds the rest)."""
    header.children = [*header.children, export_slot("report")]
    return header


def export_outputs(language: str) -> html.Div:
    """What hands files over and says how it went: one download for every export, the chart drawing request,
    a quiet status line, and a note while a report is being drawn."""
    return html.Div(className="export-outputs screen-control", children=[
        dcc.Download(id=ExportIds.DOWNLOAD),
        dcc.Store(id=ExportIds.CHART_REQUEST),
        html.Div(t("export_busy", language), id=ExportIds.BUSY, className="export-busy", hidden=True,
                 role="status"),
        html.Div(id=ExportIds.STATUS, className="export-status", role="status", **{"aria-live": "polite"}),
    ])
