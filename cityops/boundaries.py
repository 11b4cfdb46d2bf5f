"""Storing the unit hierarchy with its boundaries, all or nothing."""

from __future__ import annotations

import logging

from collections import defaultdict

import numpy as np
import shapely
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from cityops.hierarchy import Level, UnitRecord
from cityops.incidents import place_incidents_again
from cityops.models import Unit

# Coordinates on the map need ~1 m, not the source's full precision: 5 decimals of a degree.
MAP_DECIMALS = 5

log = logging.getLogger(__name__)


class HierarchyError(ValueError):
    """The units do not form one well-nested tree; the message names the unit and the problem."""


def check_tree(records: list[UnitRecord]) -> None:
    """One root (the city), unique codes, every parent known and exactly one level up."""
    codes: dict[str, UnitRecord] = {}
    for record in records:
        if record.code in codes:
            raise HierarchyError(f"unit {record.code} ({record.name_en}): duplicate code")
        codes[record.code] = record
    roots = [r for r in records if r.parent_code is None]
    if len(roots) != 1 or roots[0].level != Level.CITY:
        raise HierarchyError(f"expected exactly one city (a unit with no parent), found {len(roots)}")
    for record in records:
        if record.parent_code is None:
            continue
        parent = codes.get(record.parent_code)
        if parent is None:
            raise HierarchyError(f"unit {record.code} ({record.name_en}): unknown parent {record.parent_code}")
        if parent.level != record.level - 1:
            raise HierarchyError(
                f"unit {record.code} ({record.name_en}) is a {record.level.name.lower()} but its parent "
                f"{parent.code} is a {parent.level.name.lower()}")


def replace_units(session: Session, records: list[UnitRecord]) -> int:
    """Replace the hierarchy in the caller's transaction; returns the number of units stored.

    A unit keeps its id across imports when its code is unchanged, so history stored by id stays attached.
    """
    check_tree(records)
    children: dict[str | None, list[UnitRecord]] = defaultdict(list)
    for record in records:
        children[record.parent_code].append(record)
    for siblings in children.values():
        siblings.sort(key=lambda r: r.code)

    existing = dict(session.execute(select(Unit.code, Unit.id)).all())
    next_id = max(existing.values(), default=0) + 1
    ids: dict[str, int] = {}
    for record in _depth_first(children):
        if record.code in existing:
            ids[record.code] = existing[record.code]
        else:
            ids[record.code], next_id = next_id, next_id + 1
    bounds = _nested_set(children)
    ordered = sorted(records, key=lambda r: (int(r.level), r.code))  # parents first, for the foreign key
    geometries = np.array([r.geometry for r in ordered], dtype=object)
    full = shapely.to_geojson(geometries)
    for_map = shapely.set_precision(_simplified_for_map(ordered, geometries), 10 ** -MAP_DECIMALS)
    simplified = shapely.to_geojson(for_map)
    centres = shapely.point_on_surface(geometries)
    box = shapely.bounds(geometries)
    rows = []
    for position, record in enumerate(ordered):
        lft, rgt = bounds[record.code]
        rows.append({
            "id": ids[record.code], "code": record.code, "name_zh": record.name_zh, "name_en": record.name_en,
            "level": int(record.level), "parent_id": ids[record.parent_code] if record.parent_code else None,
            "population": int(record.population), "lft": lft, "rgt": rgt,
            "center_lon": float(shapely.get_x(centres[position])),
            "center_lat": float(shapely.get_y(centres[position])),
            "min_lon": float(box[position][0]), "min_lat": float(box[position][1]),
            "max_lon": float(box[position][2]), "max_lat": float(box[position][3]),
            "geometry": str(full[position]), "geometry_simplified": str(simplified[position]),
        })
    session.execute(delete(Unit))
    session.execute(insert(Unit), rows)
    # Incidents belong to the community holding their point: with boundaries redrawn, that may be another one.
    moved, unplaced = place_incidents_again(session)
    if moved or unplaced:
        log.info("boundaries replaced: %d incident(s) moved to another community, %d no longer inside any (they "
                 "keep their community)", moved, unplaced)
    return len(rows)


# Map tolerance per level, in degrees (1e-5° ≈ 1 m): a district outline needs less detail than a community.
SIMPLIFY_TOLERANCE = {Level.CITY: 0.003, Level.DISTRICT: 0.0015, Level.STREET: 0.0008, Level.COMMUNITY: 0.0003}


def _simplified_for_map(ordered: list[UnitRecord], geometries: np.ndarray) -> np.ndarray:
    """Simplify each level as one coverage, so neighbours keep sharing their simplified border (no slivers).

    Imported boundaries are not always a clean coverage; those fall back to simplifying unit by unit.
    """
    result = geometries.copy()
    levels = np.array([int(r.level) for r in ordered])
    for level, tolerance in SIMPLIFY_TOLERANCE.items():
        mask = levels == int(level)
        if not mask.any():
            continue
        group = geometries[mask]
        try:
            covered = bool(shapely.coverage_is_valid(group))
        except shapely.errors.GEOSException:
            covered = False
        simplified = (shapely.coverage_simplify(group, tolerance) if covered
                      else shapely.simplify(group, tolerance, preserve_topology=True))
        valid = shapely.is_valid(simplified) & ~shapely.is_empty(simplified)
        result[mask] = np.where(valid, simplified, group)
    return result


def has_units(session: Session) -> bool:
    return bool(session.scalar(select(func.count(Unit.id))))


def _depth_first(children: dict[str | None, list[UnitRecord]]):
    stack = list(reversed(children[None]))
    while stack:
        record = stack.pop()
        yield record
        stack.extend(reversed(children.get(record.code, [])))


def _nested_set(children: dict[str | None, list[UnitRecord]]) -> dict[str, tuple[int, int]]:
    """Depth-first numbering: a unit's descendants are exactly those with lft inside its (lft, rgt)."""
    bounds: dict[str, tuple[int, int]] = {}
    counter = 0
    stack: list[tuple[UnitRecord, bool]] = [(r, False) for r in reversed(children[None])]
    left: dict[str, int] = {}
    while stack:
        record, finished = stack.pop()
        counter += 1
        if finished:
            bounds[record.code] = (left[record.code], counter)
            continue
        left[record.code] = counter
        stack.append((record, True))
        stack.extend((child, False) for child in reversed(children.get(record.code, [])))
    return bounds
