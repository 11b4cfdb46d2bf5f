"""The map: geometry by URL when the drill level changes, colours by `hideout` on every change and refresh.

Both leave in one response, so new boundaries are styled with their own colours the moment they load
(two callbacks would race and briefly paint the new level as "no data").

The map comes first on the screen. Its first state (the scope's root: boundaries, colours, bounds, legend,
title) is part of the layout each page load receives (`first_map`), boundaries included, so the polygons are
drawn as soon as the page renders, after no request and no round of callbacks; `show_map` takes over from the
first change or refresh, and from then on boundaries travel by URL only.
Everything else waits for the polygons to be painted (see callbacks/loading.py).

Alert badges (each child's open alerts, in the labels layer's `hideout`) are no part of the first map: they are
first read once the polygons have painted (`show_first_badges`), then travel with every change and refresh in
`show_map`'s one response — on a drill-down with the new labels' URL, so the labels are drawn with their own
badges (dash-leaflet ignores a `hideout` arriving while it is still fetching the points).
"""

from __future__ import annotations

import json
import logging

from dash import Input, Output, State, callback, no_update

from callbacks.context import Request, View, resolve_view, viewer_request
from cityops.alerts.queries import alert_counts
from cityops.geography import bounds_of, children_geojson, children_labels_geojson
from cityops.hierarchy import Level
from cityops.readings import children_readings
from layouts.alert_badges import tally_of
from layouts.ids import AlertIds, MapIds, PageIds
from layouts.map_panel import MapState, geometry_url, labels_hideout, labels_url, legend, map_hideout
from layouts.text import level_name, t

log = logging.getLogger(__name__)


def badges_state(request: Request, view: View) -> dict:
    """The labels' hideout for the children on the map: the language and each child's open-alert badge."""
    children = request.tree.children(view.map_parent_id)
    counts = alert_counts(request.session, request.scope, request.tree, children.index, request.now)
    tallies = {str(code): tally_of(counts, unit_id) for unit_id, code in children["code"].items()}
    return labels_hideout(tallies, request.language)


def map_state(request: Request, selection: dict | None, current_url: str | None,
              inline_geometry: bool = False, current_labels: dict | None = None, badges: bool = True) -> MapState:
    """The map for a selection. Geometry is named by URL, and only when the level shown changes (then any
    inline geometry is cleared so that the URL is fetched); with `inline_geometry` it is also sent itself.
    The labels' hideout (alert badges; not read without `badges`) is sent when it differs from `current_labels`
    or the level changes: a refresh that changed no count redraws no label."""
    view = resolve_view(request, selection)
    indicator = request.catalog[view.indicator_key]
    parent = request.tree.frame.loc[view.map_parent_id]
    url = geometry_url(str(parent["code"]))
    data = labels_data = None
    if url == current_url:
        # Same level (a refresh or another indicator): keep the geometry and the viewer's pan and zoom.
        url_out, labels, viewport = no_update, no_update, no_update
        data = labels_data = no_update
    else:
        url_out, labels = url, labels_url(str(parent["code"]))
        if inline_geometry:
            data = json.loads(children_geojson(request.session, request.scope, view.map_parent_id))
            labels_data = json.loads(children_labels_geojson(request.session, request.scope, view.map_parent_id))
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
    badge_hideout = None
    if badges:
        badge_hideout = badges_state(request, view)
        if url == current_url and badge_hideout == current_labels:
            badge_hideout = no_update
    return MapState(url_out, labels, data, labels_data, viewport, hideout, badge_hideout,
                    legend(indicator, child_level, request.language), title)


def first_map() -> MapState | None:
    """The map of the page's first selection (the viewer's whole scope), to be sent with the layout; None if it
    cannot be read now: the page then still loads, and the first refresh draws the map. Without alert badges:
    they come once the polygons have painted (show_first_badges)."""
    try:
        with viewer_request() as request:
            return map_state(request, None, None, inline_geometry=True, badges=False)
    except Exception:  # noqa: BLE001 - a page without its first map beats no page at all
        log.exception("could not prepare the first map; the first refresh will draw it")
        return None


@callback(
    Output(MapIds.UNITS, "url"),
    Output(MapIds.LABELS, "url"),
    Output(MapIds.UNITS, "data"),
    Output(MapIds.LABELS, "data"),
    Output(MapIds.MAP, "viewport"),
    Output(MapIds.UNITS, "hideout"),
    Output(MapIds.LABELS, "hideout"),
    Output(MapIds.LEGEND, "children"),
    Output(MapIds.TITLE, "children"),
    Input(PageIds.SELECTION, "data"),
    Input(PageIds.REFRESH, "n_intervals"),
    State(MapIds.UNITS, "url"),
    State(MapIds.LABELS, "hideout"),
    prevent_initial_call=True,  # the layout arrives with the first map (first_map)
)
def show_map(selection, _tick, current_url, current_labels=None):
    with viewer_request() as request:
        return tuple(map_state(request, selection, current_url, current_labels=current_labels))


@callback(
    Output(MapIds.LABELS, "hideout", allow_duplicate=True),
    Input(PageIds.MAP_PAINTED, "data"),
    Input(AlertIds.CHANGED, "data"),
    State(PageIds.SELECTION, "data"),
    prevent_initial_call=True,  # MAP_PAINTED is set by the browser once the polygons are on screen
)
def show_first_badges(_map_painted, _alert_changed, selection):
    """The first alert badges, read once the first polygons have painted (the first map carries none); and
    again at once when someone acts on an alert (rather than at the next refresh)."""
    with viewer_request() as request:
        return badges_state(request, resolve_view(request, selection))
