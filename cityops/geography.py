"""Boundaries for the map: a unit's children as one FeatureCollection (GeoJSON text or geobuf), within the
viewer's scope.

Simplification happens in two steps, both per level. At import (cityops/boundaries.py SIMPLIFY_TOLERANCE) each
level is simplified as one coverage, so neighbours keep sharing their simplified border. Here, when a view is
served as geobuf, its coordinates are rounded to what the view can show (`map_decimals`: a grid step of at most
half a pixel of a 4K wall showing the unit whole): 4 decimals (~10 m) for the city's districts, 5 (~1 m) for a
street's communities. Rounding is the same for every copy of a shared vertex, so borders still meet; a view whose
rounded boundaries would not stay valid keeps the stored precision.
"""

from __future__ import annotations

import json
import math

import geobuf
import numpy as np
import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.boundaries import MAP_DECIMALS
from cityops.models import Unit
from cityops.scope import Scope
from cityops.tree import load_tree

# A grid step no larger than the unit's extent over this many pixels: half a pixel on a 3840-px wall showing it.
VIEW_PIXELS = 7680
FEWEST_DECIMALS = 3


def _children(session: Session, scope: Scope, unit_id: int, *columns):
    """The in-scope children of a unit (which must itself be in scope): code, names, then `columns`."""
    scope.require(load_tree(session), unit_id)
    return session.execute(
        select(Unit.code, Unit.name_zh, Unit.name_en, *columns)
        .where(Unit.parent_id == unit_id, scope.clause()).order_by(Unit.code)).all()


def children_geojson(session: Session, scope: Scope, unit_id: int) -> str:
    """The children of a unit as GeoJSON text.

    Properties carry only identity (code, names, level); values travel separately in the layer's
    `hideout`, so recolouring never resends geometry. Geometry is stored as GeoJSON text and spliced in
    as it is, rather than parsed and re-serialised on every request.
    """
    features = [
        '{"type":"Feature","id":%s,"properties":%s,"geometry":%s}' % (
            json.dumps(code), json.dumps({"code": code, "name_zh": zh, "name_en": en, "level": level},
                                         ensure_ascii=False), geometry)
        for code, zh, en, level, geometry in _children(session, scope, unit_id, Unit.level,
                                                        Unit.geometry_simplified)
    ]
    return '{"type":"FeatureCollection","features":[' + ",".join(features) + "]}"


def children_labels_geojson(session: Session, scope: Scope, unit_id: int) -> str:
    """One point per child, inside its polygon, where the map writes the child's name."""
    features = [
        {"type": "Feature", "id": code, "properties": {"code": code, "name_zh": zh, "name_en": en},
         "geometry": {"type": "Point", "coordinates": [round(lon, 5), round(lat, 5)]}}
        for code, zh, en, lon, lat in _children(session, scope, unit_id, Unit.center_lon, Unit.center_lat)
    ]
    return json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False,
                      separators=(",", ":"))


def map_decimals(extent_degrees: float) -> int:
    """Decimals of a degree a view of this extent needs: its grid step at most extent / VIEW_PIXELS, between
    FEWEST_DECIMALS and the stored MAP_DECIMALS."""
    if not extent_degrees or not math.isfinite(extent_degrees) or extent_degrees <= 0:
        return MAP_DECIMALS
    return max(FEWEST_DECIMALS, min(MAP_DECIMALS, math.ceil(-math.log10(extent_degrees / VIEW_PIXELS))))


def _rounded_geometries(geometries: np.ndarray, decimals: int) -> tuple[np.ndarray, int]:
    """The boundaries on a grid of `decimals`, if every one stays a valid, non-empty polygon and the set stays a
    coverage where it was one (borders shared exactly, no overlaps); else the boundaries as stored."""
    if decimals >= MAP_DECIMALS or not len(geometries):
        return geometries, MAP_DECIMALS
    rounded = shapely.set_precision(geometries, 10 ** -decimals)
    if not (shapely.is_valid(rounded).all() and not shapely.is_empty(rounded).any()):
        return geometries, MAP_DECIMALS
    try:
        was_coverage = bool(shapely.coverage_is_valid(geometries))
        if was_coverage and not bool(shapely.coverage_is_valid(rounded)):
            return geometries, MAP_DECIMALS
    except shapely.errors.GEOSException:
        return geometries, MAP_DECIMALS
    return rounded, decimals


def children_feature_collection(session: Session, scope: Scope, unit_id: int) -> tuple[dict, int]:
    """The children of a unit as a GeoJSON FeatureCollection (parsed) with their coordinates rounded for the view
    (see map_decimals), and the decimals kept."""
    tree = load_tree(session)
    rows = _children(session, scope, unit_id, Unit.level, Unit.geometry_simplified)
    parent = tree.frame.loc[unit_id]
    extent = max(float(parent["max_lon"]) - float(parent["min_lon"]), float(parent["max_lat"]) - float(parent["min_lat"]))
    geometries = shapely.from_geojson([row[4] for row in rows]) if rows else np.array([], dtype=object)
    rounded, decimals = _rounded_geometries(geometries, map_decimals(extent))
    texts = shapely.to_geojson(rounded) if len(rounded) else []
    features = [
        {"type": "Feature", "id": code,
         "properties": {"code": code, "name_zh": zh, "name_en": en, "level": int(level)},
         "geometry": json.loads(str(text))}
        for (code, zh, en, level, _), text in zip(rows, texts)
    ]
    return {"type": "FeatureCollection", "features": features}, decimals


def children_geobuf(session: Session, scope: Scope, unit_id: int) -> bytes:
    """The children of a unit as geobuf (what the map fetches): the view's FeatureCollection in a compact binary
    form, coordinates as integers on the view's grid, delta-encoded (about half the bytes of GeoJSON, gzipped)."""
    collection, decimals = children_feature_collection(session, scope, unit_id)
    return geobuf.encode(collection, decimals)
