"""The one screen, assembled from the panel builders. Pure: no data is read here."""

from __future__ import annotations

import dash_leaflet as dl
import dash_mantine_components as dmc
from dash import dcc, html

from cityops.catalog import Catalog
from cityops.settings import Settings
from layouts.header import build_header
from layouts.ids import KpiIds, MapIds, PageIds, RankingIds, TrendIds
from layouts.map_panel import HOVER_STYLE, ON_EACH_FEATURE, POINT_TO_LABEL, STYLE, empty_hideout
from layouts.trend import GRAPH_CONFIG

DEFAULT_INDICATOR = "hotline_complaints"


def default_indicator(catalog: Catalog) -> str:
    return DEFAULT_INDICATOR if DEFAULT_INDICATOR in catalog else catalog.keys[0]


def build_page(settings: Settings, catalog: Catalog) -> dmc.MantineProvider:
    language = settings.language
    city_name = settings.city_name_zh if language == "zh" else settings.city_name_en
    indicator = default_indicator(catalog)
    tiles = [dl.TileLayer(url=settings.tile_url, attribution=settings.tile_attribution, opacity=0.35)] \
        if settings.tile_url else []
    screen = html.Div(className="screen", lang=language, children=[
        dcc.Store(id=PageIds.SELECTION, data={"unit": None, "indicator": indicator}),
        dcc.Interval(id=PageIds.REFRESH, interval=settings.refresh_seconds * 1000),
        dcc.Interval(id=PageIds.CLOCK_TICK, interval=1000),
        dcc.Store(id=PageIds.TIMEZONE, data=settings.timezone),
        dcc.Store(id=PageIds.DISPLAY),
        build_header(city_name, catalog, indicator, language),
        html.Section(className="panel kpi-panel", children=[
            html.H2(id=KpiIds.HEADING, className="panel-title"),
            html.Div(id=KpiIds.PANEL, className="kpi-grid"),
        ]),
        html.Section(className="panel map-panel", children=[
            html.H2(id=MapIds.TITLE, className="panel-title"),
            dl.MapContainer(id=MapIds.MAP, className="map", center=[31.2, 121.45], zoom=9, zoomSnap=0.25,
                            attributionControl=bool(settings.tile_url), children=[
                *tiles,
                dl.GeoJSON(id=MapIds.UNITS, style=STYLE, hoverStyle=HOVER_STYLE, onEachFeature=ON_EACH_FEATURE,
                           hideout=empty_hideout()),
                dl.GeoJSON(id=MapIds.LABELS, pointToLayer=POINT_TO_LABEL, interactive=False,
                           hideout={"language": language}),
            ]),
            html.Div(id=MapIds.LEGEND, className="legend"),
        ]),
        html.Section(className="panel over-panel", children=[
            html.H2(id=RankingIds.OVER_TITLE, className="panel-title"),
            html.Div(id=RankingIds.OVER_THRESHOLD, className="rank-list"),
        ]),
        html.Section(className="panel trend-panel", children=[
            html.H2(id=TrendIds.TITLE, className="panel-title"),
            dcc.Graph(id=TrendIds.GRAPH, className="trend-graph", config=GRAPH_CONFIG,
                      style={"height": "100%"}),
        ]),
        html.Section(className="panel children-panel", children=[
            html.H2(id=RankingIds.CHILDREN_TITLE, className="panel-title"),
            dcc.Graph(id=RankingIds.CHILDREN, className="children-graph",
                      config={**GRAPH_CONFIG, "toImageButtonOptions": {"format": "png", "scale": 2,
                                                                        "filename": "onescreen-ranking"}},
                      style={"height": "100%"}),
        ]),
    ])
    return dmc.MantineProvider(screen, forceColorScheme="dark", theme={"primaryColor": "blue"})
