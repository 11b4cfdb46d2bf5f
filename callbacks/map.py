"""The map: geometry by URL when the drill level changes, colours by `hideout` on every change and refresh.

Both leave in one response, so new boundaries are styled with their own colours the moment they load
(two callbacks would race and briefly paint the new level as "no data").

The map comes first on the screen. Its first state (the scope's root: boundaries, colours, bounds, legend,
title) is part of the layout each page load receives (`first_map`), boundaries included, so the polygons are
drawn as soon as the page renders, after no request and no round of callbacks; `show_map` takes over from the
first change or refresh, and from then on boundaries travel by URL only, as geobuf (callbacks/geometry.py).
Everything else waits for the polygons to be painted (see callbacks/loading.py).

Alert badges (each child's open alerts, in the labels layer's `hideout`) are no part of the first map: they are
first read once the polygons have painted (`show_first_badges`), then travel with every change and refresh in
`show_map`'s one response — on a drill-down with the new labels' URL, so the labels are drawn with their own
badges (dash-leaflet ignores a `hideout` arriving while it is still fetching the points).

Open incidents (`show_incidents`) are a layer of their own: the points in the unit on the map, sent as geobuf in
the layer's `data`, and sent again only when they changed (a digest), so a refresh redraws nothing that is
unchanged and a changed layer is swapped in one go, never blanked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os

import orjson
from dash import Input, Output, State, callback, clientside_callback, no_update

from callbacks.context import Request, View, resolve_view, screen_context, viewer_request
from cityops.alerts.queries import OpenAlerts, open_alerts
from cityops.geography import children_geojson, children_labels_geojson
from cityops.hierarchy import Level
from cityops.incident_layer import OverdueLimits, incident_geobuf, open_incident_points
from cityops.latest_readings import (ChildrenLatest, LatestReadings, children_in_scope, children_latest,
                                     latest_readings)
from cityops.readings import source_of
from cityops.request_basics import VersionMemo
from cityops.status import is_stale
from layouts.alert_badges import AlertTally
from layouts.ids import AlertIds, IncidentIds, MapIds, PageIds
from layouts.freshness import as_of_mark
from layouts.map_panel import (GEOMETRY_FORMAT, MapState, as_sent, geometry_url, heading_text_as_sent,
                               labels_hideout, labels_url, legend_as_sent, map_hideout)
from layouts.text import level_name, t

log = logging.getLogger(__name__)


# What every drill-down and refresh of the map reads, kept per data version and viewer's scope
# (cityops/request_basics.py): the snapshot of the indicator shown and the open alerts, each for the whole scope,
# so answering a drill is array look-ups and building its small answer. Statuses and overdue counts depend on
# the clock too: they are worked out per answer, never kept.
_map_reads = VersionMemo()


def latest_for(request: Request, indicator_key: str, level: Level, unit_ids) -> LatestReadings | None:
    """The snapshot units of `level` read for an indicator (None: it is not measured there): the whole scope's,
    kept per data version; without a data version (the response cache is off, so nothing says when the data
    changed) only `unit_ids`', read now."""
    source = source_of(request.catalog[indicator_key], level)
    if source is None:
        return None
    indicator_id = request.ids[indicator_key]
    version = request.version
    if version is None:
        return latest_readings(request.session, request.scope, indicator_id, source, unit_ids)
    return _map_reads.get(version, ("latest", version.url, request.scope, indicator_id, source),
                          lambda: latest_readings(request.session, request.scope, indicator_id, source))


def open_alerts_for(request: Request) -> OpenAlerts:
    """The open alerts of the viewer's scope, kept per data version (an alert action writes: a new version)."""
    version = request.version
    return _map_reads.get(version, ("alerts", version.url if version else None, request.scope),
                          lambda: open_alerts(request.session, request.scope))


def children_on_map(request: Request, view: View) -> ChildrenLatest:
    """The children of the unit on the map, in the viewer's scope, with their readings at `request.now`."""
    child_ids = request.tree.child_ids(view.map_parent_id)
    level = Level(request.tree.row(child_ids[0]).level) if child_ids else None
    latest = latest_for(request, view.indicator_key, level, child_ids) if level is not None else None
    return children_latest(request.tree, request.scope, request.catalog[view.indicator_key], latest,
                           view.map_parent_id, request.now)


def badges_state(request: Request, view: View) -> dict:
    """The labels' hideout for the children on the map: the language and each child's open-alert badge."""
    return badges_of(request, children_in_scope(request.tree, request.scope, view.map_parent_id))


def badges_of(request: Request, children) -> dict:
    """The labels' hideout for `children` (units of the viewer's scope with code, lft and rgt)."""
    counts = open_alerts_for(request).counts([(child.lft, child.rgt) for child in children], request.now)
    # Only children with something open get a badge (layouts/alert_badges.py map_badges).
    tallies = {child.code: AlertTally(*count) for child, count in zip(children, counts) if count[0]}
    return labels_hideout(tallies, request.language)


def map_state(request: Request, selection: dict | None, current_url: str | None,
              inline_geometry: bool = False, current_labels: dict | None = None, badges: bool = True) -> MapState:
    """The map for a selection. Geometry is named by URL, and only when the level shown changes (then any
    inline geometry is cleared so that the URL is fetched); with `inline_geometry` it is also sent itself.
    The labels' hideout (alert badges; not read without `badges`) is sent when it differs from `current_labels`
    or the level changes: a refresh that changed no count redraws no label."""
    view = resolve_view(request, selection)
    language = request.language
    indicator = request.catalog[view.indicator_key]
    parent = request.tree.row(view.map_parent_id)
    children = children_on_map(request, view)  # refuses a unit outside the viewer's scope
    url = geometry_url(parent.code)
    data = labels_data = None
    if url == current_url:
        # Same level (a refresh or another indicator): keep the geometry and the viewer's pan and zoom.
        url_out, labels, viewport, geometry_format = no_update, no_update, no_update, no_update
        data = labels_data = no_update
    else:
        url_out, labels, geometry_format = url, labels_url(parent.code), GEOMETRY_FORMAT
        if inline_geometry:
            data = json.loads(children_geojson(request.session, request.scope, view.map_parent_id))
            labels_data = json.loads(children_labels_geojson(request.session, request.scope, view.map_parent_id))
            geometry_format = "geojson"
        # Not animated: Leaflet drops a fit asked for while a zoom animation runs (250 ms), so a second level
        # change that soon (a deep link, then a wall's playlist step) left the map at the first one's zoom.
        viewport = {"bounds": parent.bounds, "options": {"padding": [16, 16], "animate": False}}
    child_level = Level(parent.level + 1) if parent.level < Level.COMMUNITY else None
    selected = view.unit_code if view.unit_id != view.map_parent_id else None
    hideout = map_hideout(children, indicator, selected, language)
    title = heading_text_as_sent(t("map_of", language, indicator=indicator.name(language),
                                   unit=parent.name_zh if language == "zh" else parent.name_en,
                                   level=level_name(child_level, language, plural=True) if child_level else ""))
    newest = children.newest_observed()
    if newest is not None:
        # The newest value on the map, marked stale when even that is older than the indicator allows.
        title = [title, " ", as_of_sent(newest, is_stale(newest, request.now, indicator.interval_seconds),
                                        request.settings.timezone, request.now, language)]
    badge_hideout = None
    if badges:
        badge_hideout = badges_of(request, children.children)
        if url == current_url and badge_hideout == current_labels:
            badge_hideout = no_update
    return MapState(url_out, labels, data, labels_data, viewport, hideout, badge_hideout,
                    legend_as_sent(indicator, child_level, language), title, geometry_format)


_as_of_marks: dict[tuple, bytes] = {}


def as_of_sent(observed_at: int, stale: bool, zone: str, now: int, language: str) -> orjson.Fragment:
    """The title's as-of mark (layouts/freshness.py as_of_mark) as the JSON Dash sends (an orjson Fragment, as
    layouts/map_panel.py legend_as_sent), encoded once for each time observed, staleness, zone, language and
    minute of `now`: building the component and turning it into JSON cost every drill-down ~13 µs, and even the
    time's text (format_time) ~8 µs. `now` counts only through its date in the zone (today's times show no date),
    which never changes within a minute."""
    key = (observed_at, stale, zone, language, now // 60)
    sent = _as_of_marks.get(key)
    if sent is None:
        if len(_as_of_marks) >= 512:  # a wall running for days must not keep them all
            _as_of_marks.clear()
        sent = _as_of_marks[key] = orjson.dumps(as_sent(as_of_mark(observed_at, stale, zone, now, language)))
    return orjson.Fragment(sent)


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
    Output(MapIds.UNITS, "format"),
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


# ------------------------------------------------------------------------------------------------
# Incidents
# ------------------------------------------------------------------------------------------------

_limits: dict[tuple, OverdueLimits] = {}


def overdue_limits() -> OverdueLimits:
    """How long each incident source's incidents may stay open (connectors.yaml: `overdue_after`,
    `overdue_by_category`), read again when the file changes. A file that cannot be read gives the default limit
    (the scheduler reports the file's error)."""
    settings = screen_context().settings
    path = settings.connectors_path
    try:
        stat = os.stat(path)
        key = (str(path), stat.st_mtime_ns, stat.st_size)
    except OSError:
        return OverdueLimits()
    if key not in _limits:
        from connectors.config import ConnectorConfigError, duration_seconds, load_connectors

        from connectors import REGISTRY

        by_source, sources = {}, None
        try:
            instances = load_connectors(path, None, settings.timezone)
            sources = frozenset(instance.name for instance in instances if instance.enabled
                                and getattr(REGISTRY.get(instance.type), "yields_incidents", False))
            for instance in instances:
                config = instance.config or {}
                if "overdue_after" in config:
                    by_source[instance.name] = (
                        duration_seconds(config["overdue_after"], "overdue_after"),
                        {str(category): duration_seconds(limit, f"overdue_by_category {category}")
                         for category, limit in (config.get("overdue_by_category") or {}).items()})
        except (ConnectorConfigError, ValueError, OSError):
            log.exception("could not read the incident sources' overdue limits; using the default")
        _limits.clear()
        _limits[key] = OverdueLimits(by_source, incident_sources=sources)
    return _limits[key]


def incident_state(request: Request, selection: dict | None, shown, current_digest: str | None) -> tuple:
    """(the layer's data, its digest, the toggle's counts) for a selection; the data only when it changed."""
    if shown is False:
        return (None, None, t("incidents_off", request.language)) if current_digest is not None \
            else (no_update, no_update, t("incidents_off", request.language))
    view = resolve_view(request, selection)
    limits = overdue_limits()
    points = open_incident_points(request.session, request.scope, request.tree, view.map_parent_id, request.now,
                                  limits, request.settings.timezone)
    encoded = incident_geobuf(points)
    digest = hashlib.sha1(encoded).hexdigest()[:16]
    counts = t("incidents_count", request.language, shown=f"{points.shown:,}", overdue=f"{points.overdue:,}")
    if not points.shown and limits.incident_sources == frozenset():
        # "0 open" beside a KPI card of thousands of open grid incidents read as a contradiction: the layer shows
        # incident records (Open311 and the like), and no configured source delivers any.
        counts = t("incidents_no_source", request.language)
    if points.left_out:
        counts += t("incidents_more", request.language, count=f"{points.left_out:,}")
    if digest == current_digest:
        return no_update, no_update, counts
    # No point: no data at all (a geobuf of an empty collection decodes to nothing dash-leaflet can read).
    data = base64.b64encode(encoded).decode("ascii") if points.shown else None
    return data, digest, counts


@callback(
    Output(IncidentIds.LAYER, "data"),
    Output(IncidentIds.DIGEST, "data"),
    Output(IncidentIds.COUNT, "children"),
    Input(PageIds.SELECTION, "data"),
    Input(PageIds.REFRESH, "n_intervals"),
    Input(PageIds.MAP_PAINTED, "data"),
    Input(IncidentIds.SHOWN, "data"),
    State(IncidentIds.DIGEST, "data"),
    prevent_initial_call=True,  # after the map has painted (MAP_PAINTED), as every panel
)
def show_incidents(selection, _tick, _map_painted, shown, current_digest):
    """Read after the map has painted (MAP_PAINTED), then on every change and refresh."""
    with viewer_request() as request:
        return incident_state(request, selection, shown, current_digest)


clientside_callback(
    "function (clicks, shown) { return shown === false; }",
    Output(IncidentIds.SHOWN, "data"),
    Input(IncidentIds.TOGGLE, "n_clicks"),
    State(IncidentIds.SHOWN, "data"),
    prevent_initial_call=True,
)

clientside_callback(
    # After the first paint (the layout's button says "on"; a viewer who turned the layer off sees it say so a
    # moment later): nothing runs before the polygons have painted (callbacks/loading.py).
    "function (shown, _painted) { return 'map-layer-toggle ' + (shown === false ? 'layer-off' : 'layer-on'); }",
    Output(IncidentIds.TOGGLE, "className"),
    Input(IncidentIds.SHOWN, "data"),
    Input(PageIds.MAP_PAINTED, "data"),
    prevent_initial_call=True,
)

# The boundary and label URLs and hideouts the map's layers were last given, for assets/map.js: dash-leaflet's
# GeoJSON layer ignores a new `url` or `hideout` that arrives while it is still loading the last URL (two level
# changes in quick succession: a deep link, then a wall's first playlist step; a drill-down and straight back; an
# indicator chosen during a drill-down), and would keep drawing the first level, or the first indicator's colours,
# under the second's title; map.js hands it the URL or hideout again once it has finished.
clientside_callback(
    "function (units, labels, unitsHideout, labelsHideout) {"
    " window.onescreen.map.asked(units, labels, unitsHideout, labelsHideout); }",
    Input(MapIds.UNITS, "url"),
    Input(MapIds.LABELS, "url"),
    Input(MapIds.UNITS, "hideout"),
    Input(MapIds.LABELS, "hideout"),
    prevent_initial_call=True,
)
