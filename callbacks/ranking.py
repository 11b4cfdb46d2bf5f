"""Units over threshold (worst first, any level below the selection) and the children ranked by value."""

from __future__ import annotations

from dash import Input, Output, callback

from callbacks.context import resolve_view, viewer_request
from cityops.hierarchy import Level
from cityops.readings import children_readings, units_over_threshold
from layouts.ids import PageIds, RankingIds
from layouts.ranking import children_bar_figure, children_title, over_threshold_rows
from layouts.text import t
from layouts.theme import display_scale


@callback(
    Output(RankingIds.OVER_THRESHOLD, "children"),
    Output(RankingIds.OVER_TITLE, "children"),
    Input(PageIds.SELECTION, "data"),
    Input(PageIds.REFRESH, "n_intervals"),
)
def show_over_threshold(selection, _tick):
    with viewer_request() as request:
        view = resolve_view(request, selection)
        indicator = request.catalog[view.indicator_key]
        ranked = units_over_threshold(request.session, request.scope, request.catalog, request.ids,
                                      view.map_parent_id, view.indicator_key, request.now)
        rows = over_threshold_rows(ranked, indicator, request.language, request.settings.timezone, request.now)
        return rows, t("over_threshold", request.language, indicator=indicator.name(request.language))


@callback(
    Output(RankingIds.CHILDREN, "figure"),
    Output(RankingIds.CHILDREN_TITLE, "children"),
    Input(PageIds.SELECTION, "data"),
    Input(PageIds.REFRESH, "n_intervals"),
    Input(PageIds.DISPLAY, "data"),
)
def show_children_ranking(selection, _tick, display):
    with viewer_request() as request:
        view = resolve_view(request, selection)
        indicator = request.catalog[view.indicator_key]
        children = children_readings(request.session, request.scope, request.catalog, request.ids,
                                     view.map_parent_id, view.indicator_key, request.now)
        level = int(request.tree.frame.at[view.map_parent_id, "level"])
        child_level = Level(level + 1) if level < Level.COMMUNITY else None
        return (children_bar_figure(children, indicator, request.language, display_scale(display)),
                children_title(indicator, child_level, len(children), request.language))
