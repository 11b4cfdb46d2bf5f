"""KPI cards for the selected unit, refreshed in place (old values stay until new ones arrive)."""

from __future__ import annotations

from dash import Input, Output, callback

from callbacks.context import resolve_view, viewer_request
from cityops.hierarchy import Level
from cityops.readings import sparklines, unit_readings
from layouts.ids import KpiIds, PageIds
from layouts.kpi import kpi_card
from layouts.text import t

SPARKLINE_HOURS = 24


@callback(
    Output(KpiIds.PANEL, "children"),
    Output(KpiIds.HEADING, "children"),
    Input(PageIds.SELECTION, "data"),
    Input(PageIds.REFRESH, "n_intervals"),
    Input(PageIds.MAP_PAINTED, "data"),
    prevent_initial_call=True,  # first drawn once the map has painted (see callbacks/loading.py)
)
def show_kpis(selection, _tick, _map_painted=None):
    with viewer_request() as request:
        view = resolve_view(request, selection)
        readings = unit_readings(request.session, request.scope, request.catalog, request.ids, view.unit_id,
                                 request.now)
        spark = sparklines(request.session, request.scope, request.catalog, request.ids, view.unit_id,
                           request.now - SPARKLINE_HOURS * 3600)
        unit = request.tree.frame.loc[view.unit_id]
        level = Level(int(unit["level"]))
        cards = [kpi_card(indicator, readings[indicator.key], spark[indicator.key], level, request.language,
                          request.settings.timezone, request.now, indicator.key == view.indicator_key)
                 for indicator in request.catalog]
        name = unit["name_zh"] if request.language == "zh" else unit["name_en"]
        return cards, t("kpis_of", request.language, name=name)
