"""Incidents: cases from other systems (service requests, grid events), the evidence layer behind incident counts.

- Masking: a requester's personal data is never stored in clear (cityops.incident_masking).
- Placement: `CommunityLocator` finds the community whose boundary holds a point (an STRtree over the community
  boundaries, and their boxes on a grid for a page of points, built once per unit table); a point in the city
  but on no community (a gap between boundaries) goes to the nearest community within
  `PLACEMENT_TOLERANCE_METRES`; anything else is not placed, with the reason.
- Storage: `incident_rows_from_columns` turns a page of validated incidents, given as columns, into rows with a
  few passes over each column (their points placed together), `incident_rows` a list of them, `incident_row`
  one; `upsert_incidents` stores rows by (source, external_id), a newer `updated_at` winning and an older one
  never overwriting it.
- Counts: `count_open` gives, per community, the open incidents and those open longer than their limit.

Nothing here knows connectors: the runner (connectors/runner.py) calls these in its transactions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
import pandas as pd
import shapely
from sqlalchemy import case, func, literal_column, select
from sqlalchemy.orm import Session

from cityops.hierarchy import Level
from cityops.box_grid import BoxGrid
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
        shapely.prepare(self.geometries)  # a page's points are tested against them (`place_many`)
        self.city = city
        if city is not None:
            shapely.prepare(city)
        self.tolerance = tolerance_metres
        self._grid = BoxGrid(shapely.bounds(self.geometries).reshape(-1, 4))

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
        none does. The points inside a community (nearly all) are placed together: their candidates from the grid
        of boundary boxes, then one test of the prepared boundaries."""
        lons, lats = np.asarray(lons, dtype=float), np.asarray(lats, dtype=float)
        if not len(lons):
            return []
        # The boxes holding each point (from the grid: no point geometries), then the prepared boundaries among
        # them that hold it (`intersects`, as `place` asks the tree, so a point on a border is held by both).
        points, holders = self._grid.candidates(lons, lats)
        holding = shapely.intersects_xy(self.geometries[holders], lons[points], lats[points])
        points, holders = points[holding], holders[holding]
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



def place_incidents_again(session: Session) -> tuple[int, int]:
    """After the boundaries changed (an import): every stored incident placed again in the community that now
    holds its point, in the caller's transaction. Returns (moved, unplaced): an incident whose point no
    community holds any more keeps its unit id, and is counted, so the import can say so."""
    stored = session.execute(select(Incident.id, Incident.lon, Incident.lat, Incident.unit_id)).all()
    if not stored:
        return 0, 0
    placed = community_locator(session).place_many(np.array([row.lon for row in stored], dtype=float),
                                                   np.array([row.lat for row in stored], dtype=float))
    moves = [(unit, row.id) for row, unit in zip(stored, placed)
             if not isinstance(unit, Unplaced) and unit != row.unit_id]
    if moves:
        placeholder = "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"
        session.connection().exec_driver_sql(
            f"UPDATE incidents SET unit_id = {placeholder} WHERE id = {placeholder}", moves)
    return len(moves), sum(isinstance(unit, Unplaced) for unit in placed)

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
_IN_COLUMNS = itemgetter(*COLUMNS)  # a row's values in COLUMNS' order
_KEY = itemgetter(0, 1)  # a row's (source, external_id)
_UNIT, _UPDATED, _LAST_SEEN = (COLUMNS.index(column) for column in ("unit_id", "updated_at", "last_seen_at"))
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
    masked), a row for `upsert_incidents` or the `InvalidIncident` saying why it cannot be one."""
    columns = {name: [fields[name] for fields in incidents] for name in FIELDS}
    return [outcome if isinstance(outcome, InvalidIncident) else dict(zip(COLUMNS, outcome))
            for outcome in incident_rows_from_columns(locator, columns, source=source, run_id=run_id, now=now)]


# The fields of an incident as `incident_rows` takes them.
FIELDS = ("external_id", "category", "status", "source_status", "opened_at", "updated_at", "closed_at", "lon", "lat",
          "address", "description", "contact_masked", "raw")


def incident_rows_from_columns(locator: CommunityLocator, columns: dict[str, list], *, source: str,
                               run_id: int | None, now: int) -> list[tuple | InvalidIncident]:
    """`incident_rows` of incidents given as columns (one list per field of FIELDS), each row as its values in
    COLUMNS' order (which `upsert_incidents` takes as it takes dicts): each check is one pass over its column, the
    few incidents failing one are judged alone (for the reason `incident_row` gives), and the points are placed
    together (`CommunityLocator.place_many`)."""
    count = len(columns["external_id"])
    idents = ["" if value is None else str(value).strip() for value in columns["external_id"]]
    longest = _LENGTHS["external_id"]
    lons, lats, readable = _points(columns["lon"], columns["lat"])
    failing = [position for position, (ident, status, point_ok) in
               enumerate(zip(idents, columns["status"], readable.tolist()))
               if not ident or len(ident) > longest or status not in STATUSES or not point_ok]
    if not failing:  # the usual page: every incident is a row (or an unplaced one's reason), in order
        return _rows(columns, idents, lons.tolist(), lats.tolist(), locator.place_many(lons, lats), source,
                     run_id, now)
    outcomes: list[tuple | InvalidIncident | None] = [None] * count
    for position in failing:
        outcomes[position] = _invalid(columns, position)
    kept = [position for position, outcome in enumerate(outcomes) if outcome is None]
    columns = {name: [values[position] for position in kept] for name, values in columns.items()}
    idents = [idents[position] for position in kept]
    lons, lats = lons[kept], lats[kept]
    placed = locator.place_many(lons, lats)
    rows = iter(_rows(columns, idents, lons.tolist(), lats.tolist(), placed, source, run_id, now))
    return [next(rows) if outcome is None else outcome for outcome in outcomes]


def _points(lons: list, lats: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(longitudes, latitudes, whether each point is readable: both numbers, finite) as `_coordinates` reads them."""
    try:
        x = np.fromiter(map(float, lons), dtype=float, count=len(lons))
        y = np.fromiter(map(float, lats), dtype=float, count=len(lats))
    except (TypeError, ValueError, OverflowError):
        points = [_point_or_nan(lon, lat) for lon, lat in zip(lons, lats)]
        x = np.array([lon for lon, _ in points], dtype=float)
        y = np.array([lat for _, lat in points], dtype=float)
    return x, y, np.isfinite(x) & np.isfinite(y)


def _point_or_nan(lon: Any, lat: Any) -> tuple[float, float]:
    try:
        return float(lon), float(lat)
    except (TypeError, ValueError, OverflowError):
        return math.nan, math.nan


def _invalid(columns: dict[str, list], position: int) -> InvalidIncident:
    """Why the incident at `position` cannot be stored, judged in `incident_row`'s order (id, status, point)."""
    try:
        _checked_id(columns["external_id"][position])
        status = columns["status"][position]
        if status not in STATUSES:
            raise InvalidIncident(f"status {status!r} is neither open nor closed")
        _coordinates(columns["lon"][position], columns["lat"][position])
    except InvalidIncident as reason:
        return reason
    raise AssertionError(f"incident {position} passes every check it failed in its column")


def _rows(columns: dict[str, list], idents: list[str], lons: list, lats: list, placed: list, source: str,
          run_id: int | None, now: int) -> list[tuple | InvalidIncident]:
    """The rows of incidents whose id, status and point are good (the unplaced ones: their InvalidIncident)."""
    statuses, updated = columns["status"], columns["updated_at"]
    # A closed case without its own closing time closed when it was last updated; a reopened one is open.
    closed = [(closed_at if closed_at is not None else updated_at) if status == "closed" else None
              for status, updated_at, closed_at in zip(statuses, updated, columns["closed_at"])]
    values = zip(repeat(source), idents, _clipped_column(columns["category"], "category"), statuses,
                 _clipped_column(columns["source_status"], "source_status"), columns["opened_at"], updated, closed,
                 lons, lats, placed, _text_column(columns["address"]), _text_column(columns["description"]),
                 _contact_column(columns["contact_masked"]), _json_column(columns["raw"]), repeat(run_id),
                 repeat(now), repeat(now))
    if set(map(type, placed)) == {int}:
        return list(values)
    return [InvalidIncident(str(row[_UNIT])) if isinstance(row[_UNIT], Unplaced) else row for row in values]


def _clipped_column(values: list, column: str) -> list[str | None]:
    """Each value as text without surrounding blanks, cut to the column's length; None when it is blank."""
    longest = _LENGTHS[column]
    if set(map(type, values)) <= TEXT_TYPES:
        # A page holds a few categories and statuses, each cut once (only texts: 1, 1.0 and True are one key).
        clipped = {value: None if value is None else value.strip()[:longest] or None for value in set(values)}
        return list(map(clipped.__getitem__, values))
    return [None if value is None else str(value).strip()[:longest] or None for value in values]


def _text_column(values: list) -> list[str | None]:
    """`_text` of each value."""
    if set(map(type, values)) <= TEXT_TYPES:
        return values
    return [value if value is None or isinstance(value, str) else _text(value) for value in values]


def _contact_column(contacts: list) -> list[str | None] | Iterable[None]:
    """Each masked contact as JSON text (None when it is empty)."""
    if not any(contacts):
        return repeat(None)
    return [json.dumps(contact, ensure_ascii=False, sort_keys=True) if contact else None for contact in contacts]


TEXT_TYPES = frozenset({str, type(None)})  # a column of these needs no conversion to text


def _json_column(values: list) -> list[str | None]:
    """`_json_text` of each value (None stays None)."""
    try:
        return [None if value is None else orjson.dumps(value, default=str).decode() for value in values]
    except TypeError:  # orjson.JSONEncodeError is one
        return [None if value is None else _json_text(value) for value in values]


def _checked_id(external_id: Any) -> str:
    ident = "" if external_id is None else str(external_id).strip()
    if not ident:
        raise InvalidIncident("no id")
    if len(ident) > _LENGTHS["external_id"]:
        raise InvalidIncident(f"id {ident[:40]!r}… is longer than {_LENGTHS['external_id']} characters")
    return ident


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
    except (TypeError, ValueError, OverflowError):  # overflow: an integer beyond any float
        raise InvalidIncident(f"no readable location (long {lon!r}, lat {lat!r})") from None
    if not all(math.isfinite(value) for value in point):
        raise InvalidIncident(f"no readable location (long {lon!r}, lat {lat!r})")
    return point


def _text(value: Any) -> str | None:
    """Free text as text, whatever a source sent (a number, a structure): a text column takes nothing else."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str) if isinstance(value, (dict, list)) else str(value)


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


def upsert_incidents(session: Session, rows: list[dict | tuple]) -> UpsertResult:
    """Store rows from `incident_row` (or their values in COLUMNS' order, as `incident_rows_from_columns` gives
    them) in the caller's transaction: new ones inserted, newer states replacing older ones; every delivered
    incident's `last_seen_at` moves to its row's. Returns written and unchanged counts."""
    if not rows:
        return UpsertResult(0, 0)
    values = rows if set(map(type, rows)) == {tuple} else \
        [row if type(row) is tuple else _IN_COLUMNS(row) for row in rows]
    # One statement may not touch a key twice: the newest delivery per key, the last on a tie.
    latest = dict(zip(map(_KEY, values), values))
    if len(latest) < len(values):
        latest = {}
        for row in values:
            key = (row[0], row[1])
            if key not in latest or latest[key][_UPDATED] <= row[_UPDATED]:
                latest[key] = row
    placeholder = "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"
    connection = session.connection()
    written = connection.exec_driver_sql(_UPSERT.format(placeholders=", ".join([placeholder] * len(COLUMNS))),
                                         values if len(latest) == len(values) else list(latest.values())).rowcount
    if written < len(latest):
        # Some were stored already and not older: only their last_seen_at moves (the upsert moved it for every row
        # it wrote, which the condition then leaves alone). A page of new incidents needs no second statement.
        connection.exec_driver_sql(_SEEN.format(p=placeholder),
                                   [(row[_LAST_SEEN], *key, row[_LAST_SEEN]) for key, row in latest.items()])
    return UpsertResult(written, len(rows) - written)


# As the partial index ix_incidents_open_by_source says it, so that every plan may use it (PostgreSQL's generic plans
# do not look into a bound 'open').
_IS_OPEN = Incident.status == literal_column("'open'")


def open_external_ids(session: Session, source: str) -> tuple[str, ...]:
    """The external ids of a source's incidents stored as open."""
    return tuple(session.scalars(select(Incident.external_id).where(Incident.source == source, _IS_OPEN)))


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
        .where(Incident.source == source, _IS_OPEN).group_by(Incident.unit_id)).all()
    counts = pd.DataFrame(rows, columns=["unit_id", "open", "overdue"]).set_index("unit_id")
    index = pd.Index(np.asarray(list(community_ids), dtype=np.int64), name="unit_id")
    return counts.reindex(index).fillna(0).astype("int64")
