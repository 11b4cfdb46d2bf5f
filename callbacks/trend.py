"""The trend of the selected unit and indicator, with its thresholds."""

from __future__ import annotations

from dash import Input, Output, callback

from callbacks.context import resolve_view, viewer_request
from cityops.hierarchy import Level
from cityops.readings import trend
from layouts.ids import PageIds, TrendIds
from layouts.text import t
from layouts.theme import display_scale
from layouts.trend import trend_figure

TREND_DAYS = 7


@callback(
    Output(TrendIds.GRAPH, "figure"),
    Output(TrendIds.TITLE, "children"),
    Input(PageIds.SELECTION, "data"),
    Input(PageIds.REFRESH, "n_intervals"),
    Input(PageIds.DISPLAY, "data"),
)
def show_trend(selection, _tick, display):
    with viewer_request() as request:
        view = resolve_view(request, selection)
        indicator = request.catalog[view.indicator_key]
        window = (request.now - TREND_DAYS * 86400, request.now)
        series = trend(request.session, request.scope, request.catalog, request.ids, view.unit_id,
                       view.indicator_key, *window)
        unit = request.tree.frame.loc[view.unit_id]
        thresholds = indicator.thresholds_at(Level(int(unit["level"])))
        figure = trend_figure(series, indicator, thresholds, request.settings.timezone, request.language, window,
                              display_scale(display))
        name = unit["name_zh"] if request.language == "zh" else unit["name_en"]
        return figure, t("trend_of", request.language, indicator=indicator.name(request.language), unit=name)
