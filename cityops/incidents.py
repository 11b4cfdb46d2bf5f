"""Incidents: cases from other systems (service requests, grid events), the evidence layer behind incident counts.

- Masking: a requester's personal data is never stored in clear. `mask_contact` keeps a masked form of each
  contact field (phone 138****5678, e-mail z***@example.com, name 张*, ids ****7f3a); `mask_text` masks the clear
  contact values, mobile numbers and e-mail addresses wherever they appear in free text, and `scrub` does so
  through a whole source row, dropping its personal keys. Masks are idempotent (masking a mask changes nothing),
  so a payload archived masked replays into exactly what was stored.
- Placement: `CommunityLocator` finds the community whose boundary holds a point (an STRtree over the community
  boundaries, built once per unit table); a point in the city but on no community (a gap between boundaries)
  goes to the nearest community within `PLACEMENT_TOLERANCE_METRES`; anything else is not placed, with the reason.
- Storage: `incident_row` turns one validated incident into a row; `upsert_incidents` stores rows by (source,
  external_id), a newer `updated_at` winning and an older one never overwriting it.
- Counts: `count_open` gives, per community, the open incidents and those open longer than their limit.

Nothing here knows connectors: the runner (connectors/runner.py) calls these in its transactions.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from cityops.hierarchy import Level
from cityops.models import Incident, Unit
from cityops.storage import UpsertResult

# ------------------------------------------------------------------------------------------------
# Masking
# ------------------------------------------------------------------------------------------------

MASK = "*"
# Chinese mobile numbers (optionally +86, spaced or dashed as 138 1234 5678) and e-mail addresses in free text.
_MOBILE = re.compile(r"(?<![\d*])(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?![\d*])")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_COUNTRY_CODE = re.compile(r"\s*(?:\+|00)\d{1,3}[ -]")
# A clear value shorter than this is not searched for in free text: one character would mask half the text.
_SHORTEST_SEARCHED = 2


def mask_phone(text: str) -> str:
    """Digits masked but the first 3 and last 4 (13812345678 → 138****5678); short numbers keep their last 2.
    A country code (+86) and separators stay, and masked positions count as digits, so a mask masked again is
    unchanged."""
    country = _COUNTRY_CODE.match(text)
    start = country.end() if country else 0
    positions = [i for i, char in enumerate(text) if i >= start and (char.isdigit() or char == MASK)]
    keep = set(positions[:3] + positions[-4:]) if len(positions) >= 8 else set(positions[-2:])
    hidden = set(positions) - keep
    return "".join(MASK if i in hidden else char for i, char in enumerate(text))


def mask_email(text: str) -> str:
    """The first character of the mailbox and the domain (zhang.san@example.com → z***@example.com)."""
    local, _, domain = text.partition("@")
    return f"{local[:1]}{MASK * 3}@{domain}"


def mask_name(text: str) -> str:
    """The first character (张三丰 → 张**): enough to address someone, not to identify them."""
    return text[:1] + MASK * (len(text) - 1)


def mask_other(text: str) -> str:
    """An identifier (device, account): its last 4 characters behind ****, or **** when it is short."""
    return MASK * 4 + text[-4:] if len(text) >= 8 else MASK * 4


def mask_value(key: str, value: Any) -> str:
    """A personal value masked by what it is, judged by its field name and, failing that, its form."""
    text = str(value).strip()
    name = key.lower()
    if "mail" in name or ("@" in text and _EMAIL.fullmatch(text.replace(MASK, "x"))):
        return mask_email(text) if "@" in text else mask_other(text)
    if any(word in name for word in ("phone", "mobile", "tel")) or re.fullmatch(r"[+\d][\d *()-]{6,}", text):
        return mask_phone(text)
    if "name" in name:
        return mask_name(text)
    return mask_other(text)


def mask_contact(contact: dict | None) -> dict[str, str]:
    """Each non-empty contact field masked; nothing else of `contact` is kept."""
    return {str(key): mask_value(str(key), value) for key, value in (contact or {}).items()
            if value is not None and str(value).strip()}


def mask_text(text: str, clear: Iterable[tuple[str, str]] = ()) -> str:
    """Free text with the given (clear value, mask) pairs, mobile numbers and e-mail addresses masked."""
    for value, masked in sorted(clear, key=lambda pair: -len(pair[0])):  # longest first: a name inside an e-mail
        if len(value) < _SHORTEST_SEARCHED:
            continue
        if value.isascii():
            # Latin text has word boundaries: the surname Li is masked, "Lingling Road" is not.
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", lambda _: masked, text)
        else:
            text = text.replace(value, masked)
    text = _EMAIL.sub(lambda found: mask_email(found.group(0)), text)
    return _MOBILE.sub(lambda found: mask_phone(found.group(0)), text)


def _clear_pairs(contact: dict | None) -> list[tuple[str, str]]:
    return [(str(value).strip(), mask_value(str(key), value)) for key, value in (contact or {}).items()
            if value is not None and str(value).strip()]


def scrub(value: Any, contact: dict | None = None, drop_keys: Iterable[str] = ()) -> Any:
    """A source row (any JSON-like value) safe to store: keys in `drop_keys` (any case, at any depth) removed, and
    every text masked as `mask_text` does, with `contact`'s clear values among those masked."""
    return _scrub(value, _clear_pairs(contact), {key.lower() for key in drop_keys})


def _scrub(value: Any, clear: list[tuple[str, str]], drop: set[str]) -> Any:
    if isinstance(value, str):
        return mask_text(value, clear)
    if isinstance(value, dict):
        return {key: _scrub(item, clear, drop) for key, item in value.items() if str(key).lower() not in drop}
    if isinstance(value, (list, tuple)):
        return [_scrub(item, clear, drop) for item in value]
    return value


def mask_personal(row: Any, fields: Iterable[str]) -> Any:
    """A source row with its personal `fields` (any case, top level) replaced by their masks and every text
    scrubbed of their clear values: what a connector archives, so nothing personal reaches the disk in clear."""
    if not isinstance(row, dict):
        return scrub(row)
    wanted = {name.lower() for name in fields}
    personal = {key: value for key, value in row.items() if str(key).lower() in wanted}
    clear = _clear_pairs({key: value for key, value in personal.items() if _is_scalar(value)})
    return {key: _masked_field(key, value) if key in personal else _scrub(value, clear, set())
            for key, value in row.items()}


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _masked_field(key: Any, value: Any) -> Any:
    """A personal field's value as it may be kept: masked; empty stays empty; a structure is not kept at all."""
    if value is None or isinstance(value, bool) or (_is_scalar(value) and not str(value).strip()):
        return value
    return mask_value(str(key), value) if _is_scalar(value) else MASK * 4


@dataclass(frozen=True)
class MaskedIncident:
    """An incident's personal data made safe to store: `contact` masked, the rest scrubbed of it."""

    contact: dict[str, str]
    raw: Any
    address: str | None
    description: str | None


def mask_incident(contact: dict | None, raw: Any, address: str | None, description: str | None) -> MaskedIncident:
    """Everything of an incident that may hold personal data, masked; `raw` also loses `contact`'s keys."""
    clear = _clear_pairs(contact)
    drop = {str(key).lower() for key in (contact or {})}
    return MaskedIncident(mask_contact(contact), _scrub(raw, clear, drop),
                          mask_text(address, clear) if isinstance(address, str) else address,
                          mask_text(description, clear) if isinstance(description, str) else description)


# ------------------------------------------------------------------------------------------------
# Placement
# ------------------------------------------------------------------------------------------------

# A point on no community (a gap or sliver between boundaries) still belongs to one this close (GPS jitter,
# boundaries digitised at different scales); farther away it is quarantined rather than guessed.
PLACEMENT_TOLERANCE_METRES = 50.0
METRES_PER_DEGREE = 111_320.0


class Unplaced(ValueError):
    """A point that no community holds; the message says why."""


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


def incident_row(locator: CommunityLocator, *, source: str, external_id: Any, category: Any, status: str,
                 source_status: Any, opened_at: int, updated_at: int, closed_at: int | None, lon: Any, lat: Any,
                 address: str | None, description: str | None, contact_masked: dict[str, str], raw: Any,
                 run_id: int | None, now: int) -> dict:
    """A row for `upsert_incidents` (times already epoch seconds, personal data already masked), or
    `InvalidIncident` with the reason."""
    ident = "" if external_id is None else str(external_id).strip()
    if not ident:
        raise InvalidIncident("no id")
    if len(ident) > _LENGTHS["external_id"]:
        raise InvalidIncident(f"id {ident[:40]!r}… is longer than {_LENGTHS['external_id']} characters")
    if status not in STATUSES:
        raise InvalidIncident(f"status {status!r} is neither open nor closed")
    point = _coordinates(lon, lat)
    try:
        unit_id = locator.place(*point)
    except Unplaced as reason:
        raise InvalidIncident(str(reason)) from None
    return {
        "source": source, "external_id": ident, "category": _clipped(category, "category"), "status": status,
        "source_status": _clipped(source_status, "source_status"), "opened_at": opened_at, "updated_at": updated_at,
        # A closed case without its own closing time closed when it was last updated; a reopened one is open.
        "closed_at": (closed_at if closed_at is not None else updated_at) if status == "closed" else None,
        "lon": point[0], "lat": point[1], "unit_id": unit_id, "address": _text(address),
        "description": _text(description),
        "contact_masked": json.dumps(contact_masked, ensure_ascii=False, sort_keys=True) if contact_masked else None,
        "raw": None if raw is None else json.dumps(raw, ensure_ascii=False, default=str),
        "run_id": run_id, "first_seen_at": now, "last_seen_at": now,
    }


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
    values = [tuple(row[column] for column in COLUMNS) for row in latest.values()]
    written = connection.exec_driver_sql(_UPSERT.format(placeholders=", ".join([placeholder] * len(COLUMNS))),
                                         values).rowcount
    connection.exec_driver_sql(_SEEN.format(p=placeholder), [
        (row["last_seen_at"], row["source"], row["external_id"], row["last_seen_at"]) for row in latest.values()])
    return UpsertResult(written, len(rows) - written)


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
