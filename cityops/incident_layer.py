"""The incident point layer: open incidents inside the unit the map shows, within the viewer's scope.

Each point carries what its tooltip says and nothing else: category, whether it is overdue, when it was opened (in
the city's zone) and the address; the words around them are the screen's (assets/map.js, layouts/text.py). Never the requester's (masked) contact, the description (free text a requester wrote) or the raw row.

Overdue means what it means in the counts (cityops.incidents.count_open): open longer than the source's
`overdue_after`, or its category's own limit (`OverdueLimits`, from the connectors' configuration).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import geobuf
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.models import Incident, Unit
from cityops.scope import Scope
from cityops.tree import UnitTree

DEFAULT_OVERDUE_SECONDS = 72 * 3600  # the open311 connector's default `overdue_after`
# A map of the whole city shows at most this many points (the most recently opened); the layer says how many
# it left out rather than making every screen decode tens of thousands.
MOST_POINTS = 20_000
POINT_DECIMALS = 5  # ~1 m


@dataclass(frozen=True)
class OverdueLimits:
    """How long an incident may stay open, per source (connector name), with categories' own limits."""

    by_source: dict[str, tuple[int, dict[str, int]]] = field(default_factory=dict)
    default_seconds: int = DEFAULT_OVERDUE_SECONDS
    # The configured connectors that deliver incidents (None: not known, the connectors file could not be read).
    incident_sources: frozenset[str] | None = None

    def limit(self, source: str, category: str | None) -> int:
        seconds, by_category = self.by_source.get(source, (self.default_seconds, {}))
        return by_category.get(category or "", seconds)


@dataclass(frozen=True)
class IncidentPoints:
    collection: dict  # GeoJSON FeatureCollection of points
    shown: int
    overdue: int
    left_out: int     # open incidents in the unit beyond MOST_POINTS


def open_incident_points(session: Session, scope: Scope, tree: UnitTree, unit_id: int, now: int,
                         limits: OverdueLimits, timezone: str) -> IncidentPoints:
    """The open incidents placed in communities under `unit_id` (which must be in the viewer's scope) as points
    whose properties are what the tooltip shows: `category`, `overdue` (1/0), `opened` (local time, text),
    `address`."""
    scope.require(tree, unit_id)
    unit = tree.frame.loc[unit_id]
    # The unit's subtree is inside the scope (the unit is), so its nested-set range alone bounds the query.
    query = (select(Incident.source, Incident.category, Incident.opened_at, Incident.address, Incident.lon,
                    Incident.lat, Incident.external_id)
             .join(Unit, Unit.id == Incident.unit_id)
             .where(Incident.status == "open", Unit.lft.between(int(unit["lft"]), int(unit["rgt"])), scope.clause())
             .order_by(Incident.opened_at.desc(), Incident.id.desc()))
    rows = session.execute(query.limit(MOST_POINTS + 1)).all()
    left_out = 0
    if len(rows) > MOST_POINTS:
        rows = rows[:MOST_POINTS]
        left_out = _count_open(session, scope, unit) - MOST_POINTS
    zone = ZoneInfo(timezone)
    features = []
    overdue_count = 0
    for source, category, opened_at, address, lon, lat, external_id in rows:
        overdue = now - int(opened_at) > limits.limit(source, category)
        overdue_count += overdue
        features.append({
            "type": "Feature", "id": f"{source}/{external_id}",
            "properties": {
                "category": category or "", "overdue": int(overdue),
                "opened": datetime.fromtimestamp(int(opened_at), zone).strftime("%Y-%m-%d %H:%M"),
                "address": address or "",
            },
            "geometry": {"type": "Point", "coordinates": [round(float(lon), POINT_DECIMALS),
                                                           round(float(lat), POINT_DECIMALS)]},
        })
    return IncidentPoints({"type": "FeatureCollection", "features": features}, len(features), overdue_count,
                          max(0, left_out))


def _count_open(session: Session, scope: Scope, unit) -> int:
    return int(session.scalar(
        select(func.count()).select_from(Incident).join(Unit, Unit.id == Incident.unit_id)
        .where(Incident.status == "open", Unit.lft.between(int(unit["lft"]), int(unit["rgt"])), scope.clause())))


def incident_geobuf(points: IncidentPoints) -> bytes:
    """The points as geobuf (about a third of their GeoJSON)."""
    return geobuf.encode(points.collection, POINT_DECIMALS)
