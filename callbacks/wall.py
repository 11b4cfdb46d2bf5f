"""The wall display: its playlist drives the one selection store, and a new alert in the viewer's scope holds it.

How the parts meet (see cityops/playlist.py for the rules, layouts/wall.py for the parts of the page):
- assets/wall.js marks a page a wall before it renders; once the map has painted, `wall.start` (in the browser)
  sets WallIds.MODE. A page that is not a wall never sets it, and nothing below ever runs there.
- `start_wall` answers with the plan (the dwell, the server's time) and the watermark: the newest alert event,
  so what fired before the wall started does not pause it.
- assets/wall.js works out, every second and in the browser (no request), what the wall should show: the alert
  holding it, or the playlist's slot of the server's clock, floor(now / dwell). Only when that changes does it
  set WallIds.CUE, and `show_cue` write the selection on the server: a wall costs one request per dwell, and every
  wall asks the same question at the same moment (one cached answer serves them all).
- at each refresh of the page, `watch_alerts` looks for alert events after the watermark, in the viewer's scope,
  and schedules the holds.
Everything the page sends back (the cue, the watermark, the holds) is checked here as untrusted.
"""

from __future__ import annotations

import logging
from pathlib import Path

from dash import Input, Output, State, callback, clientside_callback, no_update

from callbacks.cached_callbacks import current_data_version
from callbacks.context import Request, current_language, screen_context, viewer_request
from cityops.alerts.queries import alert_subject
from cityops.catalog import Catalog
from cityops.request_basics import VersionMemo
from cityops.playlist import (PlaylistEntry, WallConfig, WallConfigError, entry_at, latest_event,
                              load_wall_config, new_alerts, open_firing, read_watch, schedule_holds, slot_at,
                              watch_data)
from layouts.ids import PageIds, WallIds
from layouts.page import default_indicator, initial_selection
from layouts.wall import alert_hold_status, config_error_status, playlist_status

log = logging.getLogger(__name__)

# The wall file as last read, by (path, modification time, size): read again only when it changes, so an edited
# playlist reaches the walls at their next poll, and a broken one is reported once, not on every request.
_loaded: dict[tuple, WallConfig | None] = {}
_UNREAD = object()
# How often a wall's clock is set again from the server's (it counts the playlist's slots).
CLOCK_CHECK = 600
# What walls ask about alert events, kept per data version (cityops/request_basics.py).
_alert_reads = VersionMemo()


def wall_config(path: Path, catalog: Catalog) -> WallConfig | None:
    """The wall file, or None (logged once per version of the file) when it cannot be used."""
    try:
        stat = Path(path).stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size)
    except OSError:
        key = (str(path), None, None)
    known = _loaded.get(key, _UNREAD)
    if known is not _UNREAD:
        return known
    try:
        config = load_wall_config(path, catalog)
    except WallConfigError as error:
        log.error("the wall display's playlist is off: %s", error)
        config = None
    # Only the current version is kept. (Two requests meeting a new version may both read it: harmless.)
    _loaded.clear()
    _loaded[key] = config
    return config


def entry_selection(request: Request, entry: PlaylistEntry, selection) -> dict:
    """The selection showing one playlist entry (a unit the viewer may not see shows their whole scope)."""
    unit_id = request.tree.id_by_code.get(entry.unit) if entry.unit else None
    unit = entry.unit if unit_id is not None and request.scope.contains(request.tree, unit_id) else None
    indicator = entry.indicator if entry.indicator in request.catalog else default_indicator(request.catalog)
    base = selection if isinstance(selection, dict) else initial_selection(indicator)
    return {**base, "unit": unit, "indicator": indicator}


def unchanged(selection, wanted: dict) -> bool:
    return isinstance(selection, dict) and all(selection.get(key) == wanted[key] for key in ("unit", "indicator"))


# ------------------------------------------------------------------------------------------------
# Starting
# ------------------------------------------------------------------------------------------------

clientside_callback(
    "function(_painted) { return window.onescreen.wall.start(); }",
    Output(WallIds.MODE, "data"),
    Input(PageIds.MAP_PAINTED, "data"),
    prevent_initial_call=True,  # after the first paint: the wall's first switch never delays it
)

# The page's refresh, passed on to the alert watch on walls only (a browser's refresh costs no request here).
clientside_callback(
    "function(n, mode) { return mode === true ? n : window.dash_clientside.no_update; }",
    Output(WallIds.POLL, "data"),
    Input(PageIds.REFRESH, "n_intervals"),
    State(WallIds.MODE, "data"),
    prevent_initial_call=True,
)


def plan_data(config: WallConfig, now: int) -> dict:
    return {"dwell": config.dwell_seconds, "now": now}


@callback(
    Output(WallIds.PLAN, "data"),
    Output(WallIds.WATCH, "data"),
    Output(WallIds.STATUS, "children"),
    Input(WallIds.MODE, "data"),
    prevent_initial_call=True,
)
def start_wall(mode):
    if mode is not True:
        return no_update, no_update, no_update
    context = screen_context()
    config = wall_config(context.settings.wall_path, context.catalog)
    with viewer_request() as request:
        watch = watch_data(latest_event(request.session), [], request.now)
        # Without a usable playlist the wall stays on the viewer's scope (and still shows new alerts).
        return plan_data(config or WallConfig(), request.now), watch, \
            no_update if config else config_error_status(request.language)


# ------------------------------------------------------------------------------------------------
# Alerts the wall has not seen
# ------------------------------------------------------------------------------------------------


@callback(
    Output(WallIds.WATCH, "data", allow_duplicate=True),
    Output(WallIds.PLAN, "data", allow_duplicate=True),
    Input(WallIds.POLL, "data"),
    State(WallIds.WATCH, "data"),
    State(WallIds.PLAN, "data"),
    prevent_initial_call=True,
)
def watch_alerts(_poll, watch, plan):
    context = screen_context()
    config = wall_config(context.settings.wall_path, context.catalog) or WallConfig()
    version = current_data_version()
    with viewer_request() as request:
        seen, holds = read_watch(watch, request.now, config.hold_seconds)
        # Walls that have seen the same events ask the same question: answered once per data version (which
        # moves with every alert event), so N walls cost one query, not N.
        scope = (request.scope.lft, request.scope.rgt)
        if seen is None:
            found, latest = [], _alert_reads.get(version, ("latest",), lambda: latest_event(request.session))
        else:
            found, latest = _alert_reads.get(version, ("after", scope, seen),
                                             lambda: new_alerts(request.session, request.scope, seen))
        waiting = tuple(hold.alert for hold in holds[1:])
        still_open = _alert_reads.get(version, ("open", waiting),
                                      lambda: open_firing(request.session, list(waiting))) if waiting else set()
        scheduled = schedule_holds(holds, found, request.now, config.hold_seconds, still_open)
        now = request.now
    # The plan follows the file: a dwell changed in wall.yaml reaches the wall at this poll.
    plan_out = plan_data(config, now) if not isinstance(plan, dict) or plan.get("dwell") != config.dwell_seconds \
        else no_update
    clock_checked = isinstance(watch, dict) and isinstance(watch.get("now"), int) and now - watch["now"] < CLOCK_CHECK
    if latest == seen and scheduled == [hold for hold in holds if hold.until > now] and plan_out is no_update \
            and clock_checked:
        return no_update, no_update  # nothing new: nothing is redrawn
    return watch_data(latest, scheduled, now), plan_out


# ------------------------------------------------------------------------------------------------
# What the wall shows
# ------------------------------------------------------------------------------------------------

# The plan and the watch handed to assets/wall.js, which keeps the cue from then on (see the module docstring).
clientside_callback(
    "function(plan, watch) { return window.onescreen.wall.follow(plan, watch); }",
    Output(WallIds.CUE, "data"),
    Input(WallIds.PLAN, "data"),
    Input(WallIds.WATCH, "data"),
    prevent_initial_call=True,
)


@callback(
    Output(PageIds.SELECTION, "data", allow_duplicate=True),
    Output(WallIds.STATUS, "children", allow_duplicate=True),
    Input(WallIds.CUE, "data"),
    State(PageIds.SELECTION, "data"),
    State(WallIds.WATCH, "data"),
    prevent_initial_call=True,
)
def show_cue(cue, selection, watch):
    context = screen_context()
    config = wall_config(context.settings.wall_path, context.catalog)
    cue = cue if isinstance(cue, dict) else {}
    with viewer_request() as request:
        language = current_language(context.settings)
        alert = cue.get("alert")
        held = read_watch(watch, request.now, (config or WallConfig()).hold_seconds)[1]
        hold = next((hold for hold in held if hold.alert == alert), None)
        # Only an alert the wall itself holds, and one the viewer may see, ever moves the wall.
        subject = alert_subject(request.session, request.scope, request.tree, request.ids, hold.alert) \
            if hold is not None else None
        if subject is not None:
            code, indicator = subject
            wanted = {**(selection if isinstance(selection, dict) else initial_selection(
                default_indicator(request.catalog))), "unit": code}
            if indicator:
                wanted["indicator"] = indicator
            status = alert_hold_status(hold.alert, hold.severity, hold.until, request.settings.timezone, language)
            return (no_update if unchanged(selection, wanted) else wanted), status
        slot = cue.get("slot")
        if not isinstance(slot, int) or isinstance(slot, bool):
            slot = slot_at(request.now, (config or WallConfig()).dwell_seconds)
        # Without a usable wall file: the viewer's scope and the default indicator, and a line saying why.
        wanted = entry_selection(request, entry_at(config or WallConfig(), slot), selection)
        status = playlist_status(config, slot, language) if config else config_error_status(language)
        return (no_update if unchanged(selection, wanted) else wanted), status
