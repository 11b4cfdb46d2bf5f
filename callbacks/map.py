"""The map: geometry by URL when the drill level changes; colours by hideout on every refresh."""

from __future__ import annotations

from dash import Input, Output, State, callback, no_update

from callbacks.context import resolve_view, viewer_request
from cityops.geography import bounds_of
from cityops.hierarchy import Level
from cityops.readings import children_readings
from layouts.ids import MapIds, PageIds
from layouts.map_panel import geometry_url, legend, map_hideout
from layouts.text import level_name, t


@callback(
    Output(MapIds.UNITS, "url"),
    Output(MapIds.MAP, "viewport"),
    Input(PageIds.SELECTION, "data"),
    State(MapIds.UNITS, "url"),
)
def show_level(selection, current_url):
    with viewer_request() as request:
        view = resolve_view(request, selection)
        code = str(request.tree.frame.at[view.map_parent_id, "code"])
        url = geometry_url(code)
        if url == current_url:
            return no_update, no_update  # same level, new indicator: keep geometry and the viewer's zoom
        bounds = bounds_of(request.session, request.scope, view.map_parent_id)
        return url, {"bounds": bounds, "options": {"padding": [16, 16]}}


@callback(
    Output(MapIds.UNITS, "hideout"),
    Output(MapIds.LEGEND, "children"),
    Output(MapIds.TITLE, "children"),
    Input(PageIds.SELECTION, "data"),
    Input(PageIds.REFRESH, "n_intervals"),
)
def colour_units(selection, _tick):
    with viewer_request() as request:
        view = resolve_view(request, selection)
        indicator = request.catalog[view.indicator_key]
        children = children_readings(request.session, request.scope, request.catalog, request.ids,
                                     view.map_parent_id, view.indicator_key, request.now)
        parent = request.tree.frame.loc[view.map_parent_id]
        child_level = Level(int(parent["level"]) + 1) if int(parent["level"]) < Level.COMMUNITY else None
        selected = view.unit_code if view.unit_id != view.map_parent_id else None
        hideout = map_hideout(children, indicator, selected, request.language)
        name = parent["name_zh"] if request.language == "zh" else parent["name_en"]
        title = t("map_of", request.language, indicator=indicator.name(request.language), unit=name,
                  level=level_name(child_level, request.language, plural=True) if child_level else "")
        return hideout, legend(indicator, child_level, request.language), title
