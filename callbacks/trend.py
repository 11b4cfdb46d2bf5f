"""The trend of the selected unit and indicator, with its thresholds.

The graph is not in the first layout (mounting a dcc.Graph loads plotly.js): `mount_trend` puts it in the panel
once the rest of the screen has painted (see callbacks/loading.py), already holding its figure; from then on
`show_trend` updates that figure in place.
(Returning a new dcc.Graph as the panel's children on every refresh would remount it: Dash re-creates the
children of a changed `children` prop, so plotly would redraw from scratch and flicker.)
"""

from __future__ import annotations

from dash import Input, Output, State, callback

from callbacks.context import resolve_view, viewer_request
from cityops.hierarchy import Level
from cityops.readings import trend
from layouts.ids import PageIds, TrendIds
from layouts.text import t
from layouts.theme import display_scale
from layouts.trend import trend_figure, trend_graph

TREND_DAYS = 7


def trend_for(selection, display):
    """The trend figure of the selection, for this viewer."""
    with viewer_request() as request:
        view = resolve_view(request, selection)
        indicator = request.catalog[view.indicator_key]
        window = (request.now - TREND_DAYS * 86400, request.now)
        series = trend(request.session, request.scope, request.catalog, request.ids, view.unit_id,
                       view.indicator_key, *window)
        unit = request.tree.frame.loc[view.unit_id]
        thresholds = indicator.thresholds_at(Level(int(unit["level"])))
        return trend_figure(series, indicator, thresholds, request.settings.timezone, request.language, window,
                            display_scale(display))


@callback(
    Output(TrendIds.BODY, "children"),
    Input(PageIds.CHARTS_READY, "data"),
    State(PageIds.SELECTION, "data"),
    State(PageIds.DISPLAY, "data"),
    prevent_initial_call=True,
)
def mount_trend(_ready, selection, display):
    return trend_graph(trend_for(selection, display))


@callback(
    Output(TrendIds.GRAPH, "figure"),
    Input(PageIds.SELECTION, "data"),
    Input(PageIds.REFRESH, "n_intervals"),
    Input(PageIds.DISPLAY, "data"),
)
def show_trend(selection, _tick, display):
    # Also runs once when the graph appears: a selection changed while it was being mounted is not lost.
    return trend_for(selection, display)


@callback(
    Output(TrendIds.TITLE, "children"),
    Input(PageIds.SELECTION, "data"),
    Input(PageIds.MAP_PAINTED, "data"),
    prevent_initial_call=True,  # first drawn once the map has painted (see callbacks/loading.py)
)
def show_trend_title(selection, _map_painted=None):
    with viewer_request() as request:
        view = resolve_view(request, selection)
        indicator = request.catalog[view.indicator_key]
        unit = request.tree.frame.loc[view.unit_id]
        name = unit["name_zh"] if request.language == "zh" else unit["name_en"]
        return t("trend_of", request.language, indicator=indicator.name(request.language), unit=name)
