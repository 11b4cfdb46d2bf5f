"""The wall display's playlist (data/wall.yaml) and what a new alert does to it.

    dwell: 60s              # how long each entry stays on the wall
    alert_hold: 2m          # how long a new alert holds the wall before the playlist resumes
    playlist:               # shown in turn; each entry names an indicator, a unit (by code), or both
      - indicator: hotline_complaints           # the viewer's whole scope, this indicator
      - unit: "990101"                          # this district, with the screen's default indicator
        indicator: grid_overdue_rate

**Where the playlist is** is a pure function of the clock: slot = floor(epoch / dwell), entry = slot mod n. Every
wall shows the same entry at the same moment (and one cached answer serves them all), a wall restarted mid-way
picks up where the others are, and no wall keeps a position that could drift.

**A new alert holds the wall.** A wall watches the alert events after the last one it has seen (a single integer:
the watermark): an alert firing, or escalating, in the viewer's scope, focuses its unit and indicator for
`alert_hold`, then the playlist resumes where the clock says. Several at once are shown in turn, the most severe
first (a critical one also cuts short a warning being held); at most MAX_HELD are queued, so a storm of alerts
pauses the wall for a bounded time (the alert list shows them all). The holds are kept as (alert, severity,
until) with consecutive `until`s, so which one shows at a moment is again a pure function of the clock.

Pure, except `new_alerts`, the one query (alert events by primary key after the watermark).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import yaml
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from cityops.catalog import Catalog, parse_duration
from cityops.config_files import yaml_entries
from cityops.models import Alert, AlertEvent, Unit
from cityops.scope import Scope

DEFAULT_DWELL = 60
DEFAULT_HOLD = 120
# Shorter than this and a wall never settles (the panels take a second or two to redraw after a switch).
MIN_SECONDS = 5
# Alerts queued to hold the wall in turn: beyond this a storm would pause the playlist for hours.
MAX_HELD = 5
# The changes of an alert that pull a wall's focus: it fired, or it got worse.
FOCUS_ACTIONS = ("firing", "escalated")
SEVERITY_RANK = {"warning": 1, "critical": 2}


class WallConfigError(ValueError):
    """The wall file cannot be used; the message names the file, the entry and what to change."""


@dataclass(frozen=True)
class PlaylistEntry:
    unit: str | None        # a unit code; None: the viewer's whole scope
    indicator: str | None   # a catalog key; None: the screen's default indicator


@dataclass(frozen=True)
class WallConfig:
    dwell_seconds: int = DEFAULT_DWELL
    hold_seconds: int = DEFAULT_HOLD
    playlist: tuple[PlaylistEntry, ...] = (PlaylistEntry(None, None),)


@dataclass(frozen=True)
class Hold:
    """A new alert holding the wall until `until` (epoch seconds)."""

    alert: int
    severity: str
    until: int


@dataclass(frozen=True)
class NewAlert:
    """An alert that fired (or escalated) after the wall's watermark: `event` is that change's event id."""

    alert: int
    severity: str
    event: int


# ------------------------------------------------------------------------------------------------
# The file
# ------------------------------------------------------------------------------------------------


def load_wall_config(path: str | Path, catalog: Catalog) -> WallConfig:
    """data/wall.yaml, validated: one error names the file, the entry and the fix; nothing half-loads."""
    path = Path(path)
    entries = yaml_entries(path, "playlist", WallConfigError, "set ONESCREEN_WALL or restore data/wall.yaml")
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    unknown = sorted(set(document) - {"dwell", "alert_hold", "playlist"})
    if unknown:
        raise WallConfigError(f"{path}: unknown top-level entry {', '.join(map(str, unknown))}; the file takes dwell, "
                              f"alert_hold and playlist")
    dwell = _seconds(document.get("dwell", DEFAULT_DWELL), f"{path}: dwell")
    hold = _seconds(document.get("alert_hold", DEFAULT_HOLD), f"{path}: alert_hold")
    if not entries:
        raise WallConfigError(f"{path}: playlist is empty; give at least one entry, e.g. - indicator: "
                              f"{catalog.keys[0]}")
    playlist = tuple(_entry(entry, f"{path}: playlist entry #{position}", catalog)
                     for position, entry in enumerate(entries, start=1))
    return WallConfig(dwell, hold, playlist)


def _seconds(value, where: str) -> int:
    try:
        seconds = parse_duration(value)
    except ValueError as error:
        raise WallConfigError(f"{where}: {error}") from None
    if seconds < MIN_SECONDS:
        raise WallConfigError(f"{where}: {value!r} is too short for a wall to settle; use {MIN_SECONDS}s or more")
    return seconds


def _entry(entry: object, where: str, catalog: Catalog) -> PlaylistEntry:
    if not isinstance(entry, dict) or not entry:
        raise WallConfigError(f"{where}: expected a mapping with indicator: and/or unit:, e.g. "
                              f"{{indicator: {catalog.keys[0]}}}")
    unknown = sorted(set(entry) - {"indicator", "unit"})
    if unknown:
        raise WallConfigError(f"{where}: unknown field(s) {', '.join(map(str, unknown))}; an entry takes "
                              f"indicator and unit")
    indicator, unit = entry.get("indicator"), entry.get("unit")
    if indicator is not None and (not isinstance(indicator, str) or indicator not in catalog):
        raise WallConfigError(f"{where}: indicator {indicator!r} is not in the catalog ({catalog.source}); use one "
                              f"of: {', '.join(catalog.keys)}")
    if unit is not None:
        if isinstance(unit, bool) or not isinstance(unit, (str, int)) or not str(unit).strip():
            raise WallConfigError(f"{where}: unit {unit!r} must be a unit code, quoted: unit: \"990101\"")
        unit = str(unit).strip()
    if indicator is None and unit is None:
        raise WallConfigError(f"{where}: give indicator: and/or unit:")
    return PlaylistEntry(unit, indicator)


# ------------------------------------------------------------------------------------------------
# The clock
# ------------------------------------------------------------------------------------------------


def slot_at(epoch: float, dwell_seconds: int) -> int:
    """The playlist's slot at `epoch`: the same number on every wall at the same moment."""
    return math.floor(epoch / dwell_seconds)


def entry_at(config: WallConfig, slot: int) -> PlaylistEntry:
    return config.playlist[slot % len(config.playlist)]


def current_hold(holds: list[Hold], now: float) -> Hold | None:
    """The alert holding the wall at `now` (the holds run back to back, so the first not yet over), if any."""
    return next((hold for hold in holds if hold.until > now), None)


def _rank(severity: str) -> int:
    return SEVERITY_RANK.get(severity, 0)


def schedule_holds(holds: list[Hold], new: list[NewAlert], now: int, hold_seconds: int,
                   still_open: set[int] | None = None, max_held: int = MAX_HELD) -> list[Hold]:
    """The holds after new alerts arrived at `now`: the one being shown keeps its time unless a more severe one
    arrived; the rest (those waiting and still open, then the new ones) follow most severe first, in the order
    they fired, `hold_seconds` each, at most `max_held` in all. Holds already over are dropped, so the list never
    grows."""
    live = [hold for hold in holds if hold.until > now]
    shown = live[0] if live else None
    queue = [[hold.alert, hold.severity] for hold in live[1:] if still_open is None or hold.alert in still_open]
    for alert in sorted(new, key=lambda item: item.event):
        if shown is not None and alert.alert == shown.alert:
            if _rank(alert.severity) > _rank(shown.severity):  # escalated while shown: it stays, now critical
                shown = Hold(shown.alert, alert.severity, shown.until)
            continue
        known = next((item for item in queue if item[0] == alert.alert), None)
        if known is None:
            queue.append([alert.alert, alert.severity])
        elif _rank(alert.severity) > _rank(known[1]):
            known[1] = alert.severity
    if shown is not None and any(_rank(severity) > _rank(shown.severity) for _, severity in queue):
        # A more severe alert cuts short the one shown, which waits for a full hold of its own.
        queue.insert(0, [shown.alert, shown.severity])
        shown = None
    queue.sort(key=lambda item: -_rank(item[1]))  # stable: alerts of one severity keep the order they fired
    result = [shown] if shown is not None else []
    start = shown.until if shown is not None else now
    for alert, severity in queue[:max(0, max_held - len(result))]:
        start += hold_seconds
        result.append(Hold(alert, severity, start))
    return result


def _whole(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_watch(data, now: int, hold_seconds: int) -> tuple[int | None, list[Hold]]:
    """(watermark, holds) from what a wall's page sent back (untrusted: anything malformed is dropped; at most
    MAX_HELD holds, none ending later than MAX_HELD holds from now). A watermark of None: the wall starts
    watching now."""
    if not isinstance(data, dict):
        return None, []
    seen = _whole(data.get("seen"))
    holds: list[Hold] = []
    latest = now + MAX_HELD * hold_seconds
    items = data.get("holds") if isinstance(data.get("holds"), list) else []
    for item in items[:MAX_HELD]:
        if not isinstance(item, dict):
            continue
        alert, until, severity = _whole(item.get("alert")), _whole(item.get("until")), item.get("severity")
        if alert is not None and alert > 0 and until is not None and severity in SEVERITY_RANK:
            holds.append(Hold(alert, severity, min(until, latest)))
    return (seen if seen is not None and seen >= 0 else None), holds


def watch_data(seen: int, holds: list[Hold], now: int) -> dict:
    """What the wall's page keeps: the watermark, the holds and the server's time (the browser's clock is set by
    it). Its size is bounded whatever happens: one integer and at most MAX_HELD holds."""
    return {"seen": seen, "holds": [{"alert": h.alert, "severity": h.severity, "until": h.until} for h in holds],
            "now": now}


# ------------------------------------------------------------------------------------------------
# What the wall has not seen
# ------------------------------------------------------------------------------------------------


def latest_event(session: Session) -> int:
    """The newest alert event's id: a wall starting now has seen everything up to it."""
    return int(session.scalar(select(func.max(AlertEvent.id))) or 0)


def new_alerts(session: Session, scope: Scope, after: int, limit: int = 4 * MAX_HELD) -> tuple[list[NewAlert], int]:
    """Alerts in `scope` that fired or escalated after event `after` and are still open and firing, most severe
    first (then in the order they fired); and the new watermark (the newest event now). One range scan of the
    events' primary key, whatever the history holds."""
    latest = latest_event(session)
    if latest <= after:
        return [], latest
    rows = session.execute(
        select(AlertEvent.alert_id, Alert.severity, func.min(AlertEvent.id))
        .join(Alert, Alert.id == AlertEvent.alert_id)
        .join(Unit, Unit.id == Alert.unit_id)
        .where(AlertEvent.id > after, AlertEvent.id <= latest, AlertEvent.action.in_(FOCUS_ACTIONS),
               Alert.closed_at.is_(None), Alert.phase == "firing", scope.clause())
        .group_by(AlertEvent.alert_id, Alert.severity)
        .order_by(case((Alert.severity == "critical", 0), else_=1), func.min(AlertEvent.id))
        .limit(limit)).all()
    return [NewAlert(int(alert), str(severity), int(event)) for alert, severity, event in rows], latest


def open_firing(session: Session, alert_ids: list[int]) -> set[int]:
    """Which of these alerts are still open and firing (a hold waiting for an alert closed meanwhile is dropped)."""
    if not alert_ids:
        return set()
    return set(session.scalars(select(Alert.id).where(Alert.id.in_(alert_ids), Alert.closed_at.is_(None),
                                                      Alert.phase == "firing")).all())
