"""Incidents: cases from other systems (service requests, grid events), the evidence layer behind incident counts.

- Masking: a requester's personal data is never stored in clear (cityops.incident_masking).
- Placement: `CommunityLocator` finds the community whose boundary holds a point (an STRtree over the community
  boundaries, built once per unit table); a point in the city but on no community (a gap between boundaries)
  goes to the nearest community within `PLACEMENT_TOLERANCE_METRES`; anything else is not placed, with the reason.
- Storage: `incident_rows` turns validated incidents into rows (a page of them at once: their points placed
  together), `incident_row` one; `upsert_incidents` stores rows by (source, external_id), a newer `updated_at`
  winning and an older one never overwriting it.
- Counts: `count_open` gives, per community, the open incidents and those open longer than their limit.

Nothing here knows connectors: the runner (connectors/runner.py) calls these in its transactions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson
import pandas as pd
import shapely
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from cityops.hierarchy import Level
from cityops.models import Incident, Unit
from cityops.storage import UpsertResult

# ------------------------------------------------------------------------------------------------
# Placement
# ------------------------------------------------------------------------------------------------

# A point on no community (a gap or sliver between boundaries) still belongs to one this close (GPS jitter,
# boundaries digitised at different scales); farther away it is quarantined rather than guessed.
PLACEMENT_TOLERANCE_METRES = 50.0
METRES_PER_DEGREE = 111_320.0


class Unplaced(ValueError):
    """A point that no community holds; the message says why."""


_NOT_PLACED = np.iinfo(np.int64).max


class CommunityLocator:
    """Which community holds a point (lon/lat, the units' coordinates)."""

    def __init__(self, unit_ids: Iterable[int], geometries: Iterable, city, tolerance_metres: float =
                 PLACEMENT_TOLERANCE_METRES):
        self.unit_ids = np.asarray(list(unit_ids), dtype=np.int64)
        self.geometries = np.asarray(list(geometries), dtype=object)
        self.tree = shapely.STRtree(self.geometries)
        self.city = city
        if city is not None:
            shapely.prepare(city)
        self.tolerance = tolerance_metres

    def place(self, lon: float, lat: float) -> int:
        """The id of the community holding the point; `Unplaced` when none does."""
        point = shapely.Point(lon, lat)
        # A point on a shared border touches both neighbours: the lower id wins, so placement is repeatable.
        found = self.tree.query(point, predicate="intersects")
        if len(found):
            return int(self.unit_ids[found].min())
        if self.city is None or not self.city.covers(point):
            hint = ""
            if self.city is not None and self.city.covers(shapely.Point(lat, lon)):
                hint = "; lat and long look swapped"
            raise Unplaced(f"point ({lon:g}, {lat:g}) is outside the city{hint}")
        nearest = self._nearest_within_tolerance(lon, lat)
        if nearest is None:
            raise Unplaced(f"point ({lon:g}, {lat:g}) is inside the city but outside every community (none within "
                           f"{self.tolerance:g} m): check the community boundaries")
        return nearest

    def place_many(self, lons: np.ndarray, lats: np.ndarray) -> list[int | Unplaced]:
        """`place` for many points at once: the id of the community holding each, or the `Unplaced` saying why
        none does. The points inside a community (nearly all) are placed in one query of the tree."""
        lons, lats = np.asarray(lons, dtype=float), np.asarray(lats, dtype=float)
        if not len(lons):
            return []
        points, holders = self.tree.query(shapely.points(lons, lats), predicate="intersects")
        lowest = np.full(len(lons), _NOT_PLACED, dtype=np.int64)
        np.minimum.at(lowest, points, self.unit_ids[holders])  # on a border, the lower id (as `place`)
        placed: list[int | Unplaced] = lowest.tolist()
        for position in np.flatnonzero(lowest == _NOT_PLACED).tolist():
            try:
                placed[position] = self.place(float(lons[position]), float(lats[position]))
            except Unplaced as reason:
                placed[position] = reason
        return placed

    def _nearest_within_tolerance(self, lon: float, lat: float) -> int | None:
        """The closest community no farther than the tolerance, measured in metres (degrees of longitude
        shrink with latitude)."""
        x_scale = METRES_PER_DEGREE * max(math.cos(math.radians(lat)), 1e-6)
        y_scale = METRES_PER_DEGREE
        reach = shapely.box(lon - self.tolerance / x_scale, lat - self.tolerance / y_scale,
                            lon + self.tolerance / x_scale, lat + self.tolerance / y_scale)
        candidates = self.tree.query(reach)
        if not len(candidates):
            return None
        scale = np.array([x_scale, y_scale])
        origin = np.array([lon, lat])
        shapes = shapely.transform(self.geometries[candidates], lambda xy: (xy - origin) * scale)
        distances = shapely.distance(shapes, shapely.Point(0, 0))
        best = int(np.argmin(distances))
        return int(self.unit_ids[candidates[best]]) if distances[best] <= self.tolerance else None


_locators: dict[tuple, CommunityLocator] = {}


def community_locator(session: Session) -> CommunityLocator:
    """The locator of the stored communities, rebuilt only when the units table changed (6,000 boundaries
    take a moment to parse; a run asks once)."""
    count, last, rgt, extent = session.execute(select(
        func.count(Unit.id), func.max(Unit.id), func.sum(Unit.rgt),
        func.sum(Unit.min_lon + Unit.min_lat + Unit.max_lon + Unit.max_lat))).one()
    # The extent catches boundaries redrawn under unchanged codes; rounded, as float sums vary in the last bits.
    key = (str(session.get_bind().url), count, last, rgt, round(float(extent or 0), 6))
    locator = _locators.get(key)
    if locator is None:
        rows = session.execute(select(Unit.id, Unit.geometry).where(Unit.level == int(Level.COMMUNITY))).all()
        city = session.scalar(select(Unit.geometry).where(Unit.parent_id.is_(None)))
        geometries = shapely.from_geojson([geometry for _, geometry in rows]) if rows else []
        locator = CommunityLocator([ident for ident, _ in rows], geometries,
                                   shapely.from_geojson(city) if city else None)
        _locators.clear()
        _locators[key] = locator
    return locator


# ------------------------------------------------------------------------------------------------
# Storage
# ------------------------------------------------------------------------------------------------

STATUSES = ("open", "closed")
COLUMNS = ("source", "external_id", "category", "status", "source_status", "opened_at", "updated_at", "closed_at",
           "lon", "lat", "unit_id", "address", "description", "contact_masked", "raw", "run_id", "first_seen_at",
           "last_seen_at")
_LENGTHS = {column: Incident.__table__.c[column].type.length
            for column in ("external_id", "category", "source_status")}


class InvalidIncident(ValueError):
    """An incident that cannot be stored as it is; the message is the quarantine reason."""


def incident_row(locator: CommunityLocator, *, source: str, run_id: int | None, now: int, **fields) -> dict:
    """A row for `upsert_incidents` from one incident's fields (as `incident_rows` takes them), or
    `InvalidIncident` with the reason."""
    row = incident_rows(locator, [fields], source=source, run_id=run_id, now=now)[0]
    if isinstance(row, InvalidIncident):
        raise row
    return row


def incident_rows(locator: CommunityLocator, incidents: list[dict], *, source: str, run_id: int | None,
                  now: int) -> list[dict | InvalidIncident]:
    """For each incident's fields (external_id, category, status, source_status, opened_at, updated_at, closed_at,
    lon, lat, address, description, contact_masked, raw; times already epoch seconds, personal data already
    masked), a row for `upsert_incidents` or the `InvalidIncident` saying why it cannot be one. The points are
    placed together (`CommunityLocator.place_many`)."""
    rows: list[dict | InvalidIncident] = []
    points: list[tuple[float, float]] = []
    for fields in incidents:
        try:
            ident = _checked_id(fields["external_id"])
            if fields["status"] not in STATUSES:
                raise InvalidIncident(f"status {fields['status']!r} is neither open nor closed")
            point = _coordinates(fields["lon"], fields["lat"])
        except InvalidIncident as reason:
            rows.append(reason)
            continue
        rows.append(_row(source, ident, fields, point, run_id, now))
        points.append(point)
    placed = iter(locator.place_many(*np.array(points, dtype=float).reshape(-1, 2).T))
    for position, row in enumerate(rows):
        if isinstance(row, dict):
            unit = next(placed)
            if isinstance(unit, Unplaced):
                rows[position] = InvalidIncident(str(unit))
            else:
                row["unit_id"] = unit
    return rows


def _checked_id(external_id: Any) -> str:
    ident = "" if external_id is None else str(external_id).strip()
    if not ident:
        raise InvalidIncident("no id")
    if len(ident) > _LENGTHS["external_id"]:
        raise InvalidIncident(f"id {ident[:40]!r}… is longer than {_LENGTHS['external_id']} characters")
    return ident


def _row(source: str, ident: str, fields: dict, point: tuple[float, float], run_id: int | None, now: int) -> dict:
    status, updated_at, closed_at = fields["status"], fields["updated_at"], fields["closed_at"]
    contact, raw = fields["contact_masked"], fields["raw"]
    return {
        "source": source, "external_id": ident, "category": _clipped(fields["category"], "category"),
        "status": status, "source_status": _clipped(fields["source_status"], "source_status"),
        "opened_at": fields["opened_at"], "updated_at": updated_at,
        # A closed case without its own closing time closed when it was last updated; a reopened one is open.
        "closed_at": (closed_at if closed_at is not None else updated_at) if status == "closed" else None,
        "lon": point[0], "lat": point[1], "unit_id": None, "address": _text(fields["address"]),
        "description": _text(fields["description"]),
        "contact_masked": json.dumps(contact, ensure_ascii=False, sort_keys=True) if contact else None,
        "raw": None if raw is None else _json_text(raw),
        "run_id": run_id, "first_seen_at": now, "last_seen_at": now,
    }


def _json_text(value: Any) -> str:
    """JSON text of a source row: orjson (a page's rows are many), the standard library for what orjson refuses
    (keys that are not text, integers beyond 64 bits)."""
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(value, ensure_ascii=False, default=str)


def _coordinates(lon: Any, lat: Any) -> tuple[float, float]:
    try:
        point = (float(lon), float(lat))
    except (TypeError, ValueError):
        raise InvalidIncident(f"no readable location (long {lon!r}, lat {lat!r})") from None
    if not all(math.isfinite(value) for value in point):
        raise InvalidIncident(f"no readable location (long {lon!r}, lat {lat!r})")
    return point


def _text(value: Any) -> str | None:
    """Free text as text, whatever a source sent (a number, a structure): a text column takes nothing else."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str) if isinstance(value, (dict, list)) else str(value)


def _clipped(value: Any, column: str) -> str | None:
    if value is None or not str(value).strip():
        return None
    return str(value).strip()[: _LENGTHS[column]]


_UPSERT = (
    f"INSERT INTO incidents ({', '.join(COLUMNS)}) VALUES ({{placeholders}}) "
    "ON CONFLICT (source, external_id) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in COLUMNS
                if column not in ("source", "external_id", "first_seen_at", "contact_masked"))
    # A later delivery without contact fields (some servers show them only once) keeps the masked ones stored.
    + ", contact_masked = COALESCE(excluded.contact_masked, incidents.contact_masked) "
    # Only a newer state replaces the stored one: a late, older update or a replay changes nothing.
    "WHERE incidents.updated_at < excluded.updated_at"
)
_SEEN = "UPDATE incidents SET last_seen_at = {p} WHERE source = {p} AND external_id = {p} AND last_seen_at < {p}"
_STORED = "SELECT external_id, updated_at, last_seen_at FROM incidents WHERE source = {p} AND external_id IN ({ids})"
_IDS_PER_QUERY = 500


def upsert_incidents(session: Session, rows: list[dict]) -> UpsertResult:
    """Store rows from `incident_row` in the caller's transaction: new ones inserted, newer states replacing older
    ones; every delivered incident's `last_seen_at` moves to its row's. Returns written and unchanged counts."""
    if not rows:
        return UpsertResult(0, 0)
    latest: dict[tuple[str, str], dict] = {}
    for row in rows:  # one statement may not touch a key twice: the newest delivery per key, the last on a tie
        key = (row["source"], row["external_id"])
        if key not in latest or latest[key]["updated_at"] <= row["updated_at"]:
            latest[key] = row
    placeholder = "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"
    connection = session.connection()
    # Read first which are stored and not older: only those need last_seen_at moved on their own (the upsert
    # moves it for every row it writes), so a page of new incidents costs one statement, not two.
    stored = _stored_states(connection, placeholder, list(latest))
    values = [tuple(row[column] for column in COLUMNS) for row in latest.values()]
    written = connection.exec_driver_sql(_UPSERT.format(placeholders=", ".join([placeholder] * len(COLUMNS))),
                                         values).rowcount
    unwritten = [(row["last_seen_at"], *key, row["last_seen_at"]) for key, row in latest.items()
                 if key in stored and stored[key][0] >= row["updated_at"] and stored[key][1] < row["last_seen_at"]]
    if unwritten:
        connection.exec_driver_sql(_SEEN.format(p=placeholder), unwritten)
    return UpsertResult(written, len(rows) - written)


def _stored_states(connection, placeholder: str, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple]:
    """(updated_at, last_seen_at) of each of the (source, external_id) keys that is stored."""
    by_source: dict[str, list[str]] = {}
    for source, ident in keys:
        by_source.setdefault(source, []).append(ident)
    states = {}
    for source, idents in by_source.items():
        for start in range(0, len(idents), _IDS_PER_QUERY):
            chunk = idents[start:start + _IDS_PER_QUERY]
            query = _STORED.format(p=placeholder, ids=", ".join([placeholder] * len(chunk)))
            for ident, updated_at, last_seen_at in connection.exec_driver_sql(query, (source, *chunk)):
                states[source, ident] = (updated_at, last_seen_at)
    return states


def open_external_ids(session: Session, source: str) -> tuple[str, ...]:
    """The external ids of a source's incidents stored as open."""
    return tuple(session.scalars(select(Incident.external_id).where(Incident.source == source,
                                                                    Incident.status == "open")))


# ------------------------------------------------------------------------------------------------
# Counts
# ------------------------------------------------------------------------------------------------


def count_open(session: Session, source: str, community_ids: Iterable[int], now: int, overdue_after: int,
               overdue_by_category: dict[str, int] | None = None) -> pd.DataFrame:
    """Per community (index: every id in `community_ids`, 0 where none): `open` incidents of `source` and, of
    those, `overdue` ones, open longer than `overdue_after` seconds or their category's own limit."""
    limits = overdue_by_category or {}
    cutoff = (case(*((Incident.category == category, now - seconds) for category, seconds in limits.items()),
                   else_=now - overdue_after) if limits else now - overdue_after)
    rows = session.execute(
        select(Incident.unit_id, func.count(), func.sum(case((Incident.opened_at < cutoff, 1), else_=0)))
        .where(Incident.source == source, Incident.status == "open").group_by(Incident.unit_id)).all()
    counts = pd.DataFrame(rows, columns=["unit_id", "open", "overdue"]).set_index("unit_id")
    index = pd.Index(np.asarray(list(community_ids), dtype=np.int64), name="unit_id")
    return counts.reindex(index).fillna(0).astype("int64")
