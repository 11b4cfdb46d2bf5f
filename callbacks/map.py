"""The map: geometry by URL when the drill level changes, colours by `hideout` on every change and refresh.

Both leave in one response, so new boundaries are styled with their own colours the moment they load
(two callbacks would race and briefly paint the new level as "no data").
"""

from __future__ import annotations

from dash import Input, Output, State, callback, no_update

from callbacks.context import resolve_view, viewer_request
from cityops.geography import bounds_of
from cityops.hierarchy import Level
from cityops.readings import children_readings
from layouts.ids import MapIds, PageIds
from layouts.map_panel import geometry_url, labels_url, legend, map_hideout
from layouts.text import level_name, t


@callback(
    Output(MapIds.UNITS, "url"),
    Output(MapIds.LABELS, "url"),
    Output(MapIds.MAP, "viewport"),
    Output(MapIds.UNITS, "hideout"),
    Output(MapIds.LEGEND, "children"),
    Output(MapIds.TITLE, "children"),
    Input(PageIds.SELECTION, "data"),
    Input(PageIds.REFRESH, "n_intervals"),
    State(MapIds.UNITS, "url"),
)
def show_map(selection, _tick, current_url):
    with viewer_request() as request:
        view = resolve_view(request, selection)
        indicator = request.catalog[view.indicator_key]
        parent = request.tree.frame.loc[view.map_parent_id]
        url = geometry_url(str(parent["code"]))
        if url == current_url:
            # Same level (a refresh or another indicator): keep the geometry and the viewer's pan and zoom.
            url_out, labels, viewport = no_update, no_update, no_update
        else:
            url_out, labels = url, labels_url(str(parent["code"]))
            viewport = {"bounds": bounds_of(request.session, request.scope, view.map_parent_id),
                        "options": {"padding": [16, 16]}}
        children = children_readings(request.session, request.scope, request.catalog, request.ids,
                                     view.map_parent_id, view.indicator_key, request.now)
        child_level = Level(int(parent["level"]) + 1) if int(parent["level"]) < Level.COMMUNITY else None
        selected = view.unit_code if view.unit_id != view.map_parent_id else None
        hideout = map_hideout(children, indicator, selected, request.language)
        name = parent["name_zh"] if request.language == "zh" else parent["name_en"]
        title = t("map_of", request.language, indicator=indicator.name(request.language), unit=name,
                  level=level_name(child_level, request.language, plural=True) if child_level else "")
        return url_out, labels, viewport, hideout, legend(indicator, child_level, request.language), title
