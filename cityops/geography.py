"""Boundaries for the map: a unit's children as one GeoJSON FeatureCollection, within the viewer's scope."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.models import Unit
from cityops.scope import Scope
from cityops.tree import load_tree


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


def bounds_of(session: Session, scope: Scope, unit_id: int) -> list[list[float]]:
    """[[south, west], [north, east]] of a unit, for fitting the map."""
    tree = load_tree(session)
    scope.require(tree, unit_id)
    row = tree.frame.loc[unit_id]
    return [[float(row["min_lat"]), float(row["min_lon"])], [float(row["max_lat"]), float(row["max_lon"])]]
