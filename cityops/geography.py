"""Boundaries for the map: a unit's children as one GeoJSON FeatureCollection, within the viewer's scope."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.models import Unit
from cityops.scope import Scope
from cityops.tree import load_tree


def children_geojson(session: Session, scope: Scope, unit_id: int) -> str:
    """The children of a unit (or the unit itself when it has none) as GeoJSON text.

    Properties carry only identity (code, names, level); values travel separately in the layer's
    `hideout`, so recolouring never resends geometry.
    """
    tree = load_tree(session)
    scope.require(tree, unit_id)
    rows = session.execute(
        select(Unit.code, Unit.name_zh, Unit.name_en, Unit.level, Unit.geometry_simplified)
        .where(Unit.parent_id == unit_id, scope.clause()).order_by(Unit.code)).all()
    features = [
        f'{{"type":"Feature","id":{json.dumps(code)},"properties":{json.dumps({"code": code, "name_zh": zh, "name_en": en, "level": level}, ensure_ascii=False)},"geometry":{geometry}}}'
        for code, zh, en, level, geometry in rows
    ]
    return '{"type":"FeatureCollection","features":[' + ",".join(features) + "]}"


def children_labels_geojson(session: Session, scope: Scope, unit_id: int) -> str:
    """One point per child, inside its polygon, where the map writes the child's name."""
    tree = load_tree(session)
    scope.require(tree, unit_id)
    rows = session.execute(
        select(Unit.code, Unit.name_zh, Unit.name_en, Unit.center_lon, Unit.center_lat)
        .where(Unit.parent_id == unit_id, scope.clause()).order_by(Unit.code)).all()
    features = [
        {"type": "Feature", "id": code, "properties": {"code": code, "name_zh": zh, "name_en": en},
         "geometry": {"type": "Point", "coordinates": [round(lon, 5), round(lat, 5)]}}
        for code, zh, en, lon, lat in rows
    ]
    return json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False,
                      separators=(",", ":"))


def geometry_etag(session: Session, unit_id: int) -> str:
    """Changes whenever the unit tree changes (an import), so browsers may cache boundaries until then."""
    tree = load_tree(session)
    fingerprint = f"{len(tree.frame)}:{int(tree.frame['rgt'].sum())}:{unit_id}"
    return hashlib.sha1(fingerprint.encode()).hexdigest()[:16]


def bounds_of(session: Session, scope: Scope, unit_id: int) -> list[list[float]]:
    """[[south, west], [north, east]] of a unit, for fitting the map."""
    tree = load_tree(session)
    scope.require(tree, unit_id)
    row = tree.frame.loc[unit_id]
    return [[float(row["min_lat"]), float(row["min_lon"])], [float(row["max_lat"]), float(row["max_lon"])]]
