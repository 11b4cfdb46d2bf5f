"""The children panel's title: which units are ranked, for what, over which range, and how many (the rows are the
comparison view's: callbacks/comparison.py). Like every panel but the map, first drawn once the map has painted
(see callbacks/loading.py)."""

from __future__ import annotations

from dash import Input, Output, callback

from callbacks.context import resolve_view, viewer_request
from cityops.hierarchy import Level
from cityops.time_range import resolve_range, today_in
from layouts.ids import PageIds, RankingIds
from layouts.ranking import children_title


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
        zone = request.settings.timezone
        return children_title(indicator, child_level, count, resolve_range(selection, request.now, zone),
                              request.language, today_in(zone, request.now))
