"""The one screen, assembled from the panel builders. Pure: no data is read here."""

from __future__ import annotations

import dash_leaflet as dl
from dash import dcc, html

from cityops.catalog import Catalog
from cityops.settings import Settings
from layouts.alert_drawer import alert_drawer, alert_trend_graph, drawer_content
from layouts.header import build_header, mounted_selector
from layouts.ids import AlertIds, KpiIds, MapIds, PageIds, RankingIds, TrendIds
from layouts.map_panel import (HOVER_STYLE, ON_EACH_FEATURE, POINT_TO_LABEL, STYLE, MapState, empty_hideout,
                               incident_layer, incident_toggle)
from layouts.navigation import url_state
from layouts.comparison import comparison_view
from layouts.exports import export_outputs, export_slot, with_report_menu
from layouts.sources import sources_panel
from layouts.text import t
from layouts.trend import range_control, trend_graph
from layouts.wall import wall_components

DEFAULT_INDICATOR = "hotline_complaints"


def default_indicator(catalog: Catalog) -> str:
    return DEFAULT_INDICATOR if DEFAULT_INDICATOR in catalog else catalog.keys[0]


def initial_selection(indicator: str) -> dict:
    """The one piece of state every panel reads (see ../shared/SCREEN.md "Selection is one state"):
    unit (None: the viewer's whole scope), indicator, the trends' time range ("24h", "7d", "30d" or "custom"
    with start/end dates in the city's zone, YYYY-MM-DD) and whether trends compare with the previous week."""
    return {"unit": None, "indicator": indicator, "range": "7d", "start": None, "end": None, "compare": False}


def placeholder(language: str, text: str = "loading") -> html.Div:
    """What a panel shows until its content arrives (just after the map has painted): calm, not blank."""
    return html.Div(className="panel-placeholder", children=html.Span(t(text, language)))


def build_page(settings: Settings, catalog: Catalog, first_map: MapState | None = None,
               language: str | None = None) -> html.Div:
    """The screen, in `language` (the viewer's; default the deployment's). With `first_map` (the first
    selection's map, read for the viewer by the caller) the map's boundaries, colours and bounds arrive with
    the layout, so the polygons need no request to appear."""
    language = language or settings.language
    city_name = settings.city_name_zh if language == "zh" else settings.city_name_en
    indicator = default_indicator(catalog)
    tiles = [dl.TileLayer(url=settings.tile_url, attribution=settings.tile_attribution, opacity=0.35)] \
        if settings.tile_url else []
    first_units, first_labels, first_view = {"hideout": empty_hideout(language)}, {}, {"center": [31.2, 121.45], "zoom": 9}
    if first_map is not None:
        first_units = {"url": first_map.url, "data": first_map.data, "hideout": first_map.hideout}
        first_labels = {"url": first_map.labels_url, "data": first_map.labels_data}
        # Bounds only: dash-leaflet re-applies `center` and `zoom` props after creating the map, over the fit.
        first_view = {"bounds": first_map.viewport["bounds"], "boundsOptions": first_map.viewport["options"]}
    screen = html.Div(className="screen", lang=language, children=[
        dcc.Store(id=PageIds.SELECTION, data=initial_selection(indicator)),
        *url_state(initial_selection(indicator)),  # the selection in the URL (deep links, back/forward)
        dcc.Interval(id=PageIds.REFRESH, interval=settings.refresh_seconds * 1000),
        dcc.Interval(id=PageIds.CLOCK_TICK, interval=1000),
        dcc.Store(id=PageIds.TIMEZONE, data=settings.timezone),
        dcc.Store(id=PageIds.DISPLAY),
        dcc.Store(id=PageIds.MAP_PAINTED),
        dcc.Store(id=PageIds.CHARTS_READY),
        *wall_components(),  # inert unless the page is a wall (/wall, ?mode=wall)
        with_report_menu(build_header(city_name, catalog, indicator, language), language),
        html.Section(className="panel kpi-panel", children=[
            html.H2(id=KpiIds.HEADING, className="panel-title"),
            export_slot("kpi"),
            html.Div(placeholder(language), id=KpiIds.PANEL, className="kpi-grid"),
            dcc.Store(id=KpiIds.DIGEST),
        ]),
        html.Section(className="panel map-panel", children=[
            html.H2(first_map.title if first_map else None, id=MapIds.TITLE, className="panel-title"),
            export_slot("map"),
            # trackViewport off: nothing reads the map's centre, zoom or bounds back, so a pan need not be
            # reported to Dash (and with bounds but no centre given, dash-leaflet's tracking would fail).
            dl.MapContainer(id=MapIds.MAP, className="map", zoomSnap=0.25, attributionControl=bool(settings.tile_url),
                            trackViewport=False, **first_view, children=[
                *tiles,
                dl.GeoJSON(id=MapIds.UNITS, style=STYLE, hoverStyle=HOVER_STYLE, onEachFeature=ON_EACH_FEATURE,
                           **first_units),
                dl.GeoJSON(id=MapIds.LABELS, pointToLayer=POINT_TO_LABEL, interactive=False,
                           hideout={"language": language}, **first_labels),
                incident_layer(language),
            ]),
            html.Div(first_map.legend if first_map else None, id=MapIds.LEGEND, className="legend"),
            incident_toggle(language),
        ]),
        # Alerts in the unit being viewed (threshold breaches are alerts now: this is where the over-threshold
        # list was). A row opens the alert drawer below.
        html.Section(className="panel alert-panel", children=[
            html.H2(id=AlertIds.TITLE, className="panel-title"),
            export_slot("alerts"),
            html.Div(placeholder(language), id=AlertIds.LIST, className="alert-list"),
            dcc.Store(id=AlertIds.LIST_DIGEST),
        ]),
        html.Section(className="panel trend-panel", children=[
            html.Div(className="panel-title-row", children=[html.H2(id=TrendIds.TITLE, className="panel-title"),
                                                            range_control(language), export_slot("trend")]),
            html.Div(placeholder(language, "chart_loading"), id=TrendIds.BODY, className="chart-body"),
            dcc.Store(id=TrendIds.MOUNTED_WITH),
        ]),
        html.Section(className="panel children-panel", children=[
            html.H2(id=RankingIds.CHILDREN_TITLE, className="panel-title"),
            export_slot("ranking"),
            html.Div(placeholder(language, "chart_loading"), id=RankingIds.CHILDREN_BODY, className="chart-body"),
        ]),
        sources_panel(language),
        alert_drawer(language),
        export_outputs(language),
    ])
    return screen


def validation_layout(page, catalog: Catalog, language: str) -> html.Div:
    """The page plus the components that callbacks add later (the indicator selector, the graphs), for Dash's
    callback validation."""
    return html.Div([page, *mounted_selector(catalog, default_indicator(catalog), language), trend_graph(),
                     comparison_view(language), alert_trend_graph(None), *drawer_content(language)])
