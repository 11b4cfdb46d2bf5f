"""The children of the unit on the map, ranked by value (the units over threshold are alerts now: see
callbacks/alerts.py).

Like every panel but the map, its title is first drawn once the map has painted, and its graph is mounted last,
like the trend's (see callbacks/loading.py and callbacks/trend.py).
"""

from __future__ import annotations

from dash import Input, Output, State, callback

from callbacks.context import resolve_view, viewer_request
from cityops.hierarchy import Level
from cityops.readings import children_readings
from layouts.ids import PageIds, RankingIds
from layouts.ranking import children_bar_figure, children_graph, children_title
from layouts.theme import display_scale


def children_ranking_for(selection, display):
    """The bar figure of the map's units, for this viewer."""
    with viewer_request() as request:
        view = resolve_view(request, selection)
        indicator = request.catalog[view.indicator_key]
        children = children_readings(request.session, request.scope, request.catalog, request.ids,
                                     view.map_parent_id, view.indicator_key, request.now)
        return children_bar_figure(children, indicator, request.language, display_scale(display))


@callback(
    Output(RankingIds.CHILDREN_BODY, "children"),
    Input(PageIds.CHARTS_READY, "data"),
    State(PageIds.SELECTION, "data"),
    State(PageIds.DISPLAY, "data"),
    prevent_initial_call=True,
)
def mount_children_ranking(_ready, selection, display):
    return children_graph(children_ranking_for(selection, display))


@callback(
    Output(RankingIds.CHILDREN, "figure"),
    Input(PageIds.SELECTION, "data"),
    Input(PageIds.REFRESH, "n_intervals"),
    Input(PageIds.DISPLAY, "data"),
)
def show_children_ranking(selection, _tick, display):
    # Also runs once when the graph appears: a selection changed while it was being mounted is not lost.
    return children_ranking_for(selection, display)


@callback(
    Output(RankingIds.CHILDREN_TITLE, "children"),
    Input(PageIds.SELECTION, "data"),
    Input(PageIds.MAP_PAINTED, "data"),
    prevent_initial_call=True,  # first drawn once the map has painted (see callbacks/loading.py)
)
def show_children_title(selection, _map_painted=None):
    with viewer_request() as request:
        view = resolve_view(request, selection)
        indicator = request.catalog[view.indicator_key]
        level = int(request.tree.frame.at[view.map_parent_id, "level"])
        child_level = Level(level + 1) if level < Level.COMMUNITY else None
        count = sum(request.scope.contains(request.tree, int(unit_id))
                    for unit_id in request.tree.children(view.map_parent_id).index)
        return children_title(indicator, child_level, count, request.language)
