"""What the screen asks about alerts, always within the viewer's scope: the list for the unit being viewed, the
open and overdue counts per unit (badges), and one alert's evidence for the drill-down.

An alert is *open* from firing until it is closed (by a person, or automatically once it recovered untouched);
it is *overdue* when it is open past its handling deadline, or not yet acknowledged or assigned past its dispatch
deadline. An alert in a community counts in its street, its district and the city: counts are by subtree (the
units' nested-set bounds), so every level's badge is one binary search over the open alerts.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import Sequence

import pandas as pd
from sqlalchemy import and_, case, or_, select
from sqlalchemy.orm import Session

from cityops.buckets import bucket_start
from cityops.catalog import Catalog
from cityops.hierarchy import Level
from cityops.models import Alert, ConnectorRun, Incident, Indicator, Observation, RollupHistory, Unit
from cityops.readings import source_of
from cityops.scope import Scope
from cityops.tree import UnitTree

LIST_COLUMNS = ["id", "rule", "unit_id", "code", "name_zh", "name_en", "level", "indicator", "source", "severity",
                "phase",
                "value", "line", "started_at", "fired_at", "resolved_at", "last_breach_at", "acknowledged_by",
                "assignee", "closed_at", "dispatch_due", "handle_due", "overdue"]


def overdue_clause(now: int):
    """Open past its handling deadline, or neither acknowledged nor assigned past its dispatch deadline."""
    return and_(Alert.closed_at.is_(None), or_(
        Alert.handle_due < now,
        and_(Alert.dispatch_due < now, Alert.acknowledged_at.is_(None), Alert.assignee.is_(None))))


def deadlines_passed(alert: dict, now: int) -> tuple[bool, bool]:
    """(dispatch passed, handling passed) of one alert row: the two ways `overdue_clause` counts an open alert
    overdue, for a row already in hand."""
    if alert.get("closed_at") is not None:
        return False, False
    untouched = alert.get("acknowledged_at") is None and alert.get("assignee") is None
    dispatch, handle = alert.get("dispatch_due"), alert.get("handle_due")
    return (dispatch is not None and dispatch < now and untouched), (handle is not None and handle < now)


def _in_subtree(tree: UnitTree, scope: Scope, unit_id: int) -> tuple[int, int]:
    """The nested-set bounds of `unit_id`'s subtree, after checking the viewer may see it."""
    scope.require(tree, unit_id)
    row = tree.frame.loc[unit_id]
    return int(row["lft"]), int(row["rgt"])


def alert_list(session: Session, scope: Scope, tree: UnitTree, unit_id: int, now: int, *, limit: int = 200,
               include_closed: bool = False) -> pd.DataFrame:
    """Alerts in the subtree of `unit_id` — open ones (or all, with `include_closed`) — most urgent first:
    overdue, then critical, then still firing, then newest."""
    lft, rgt = _in_subtree(tree, scope, unit_id)
    frame = tree.frame
    inside = frame.index[(frame["lft"] >= lft) & (frame["lft"] <= rgt)].to_numpy()
    overdue = overdue_clause(now)
    statement = (select(Alert.id, Alert.rule, Alert.unit_id, Indicator.key, Alert.source, Alert.severity, Alert.phase,
                        Alert.value,
                        Alert.line, Alert.started_at, Alert.fired_at, Alert.resolved_at, Alert.last_breach_at,
                        Alert.acknowledged_by, Alert.assignee, Alert.closed_at, Alert.dispatch_due, Alert.handle_due,
                        case((overdue, True), else_=False))
                 .outerjoin(Indicator, Indicator.id == Alert.indicator_id)
                 .where(Alert.phase != "pending"))
    if not include_closed:
        statement = statement.where(Alert.closed_at.is_(None))
    if len(inside) < len(frame):  # the whole city needs no filter
        statement = statement.where(Alert.unit_id.in_([int(unit) for unit in inside]))
    statement = statement.order_by(case((overdue, 0), else_=1), case((Alert.severity == "critical", 0), else_=1),
                                   case((Alert.phase == "firing", 0), else_=1), Alert.fired_at.desc(),
                                   Alert.id.desc()).limit(limit)
    rows = session.execute(statement).all()
    columns = [c for c in LIST_COLUMNS if c not in ("code", "name_zh", "name_en", "level")]
    listed = pd.DataFrame(rows, columns=columns)
    names = frame[["code", "name_zh", "name_en", "level"]]
    listed = listed.join(names, on="unit_id")
    listed["overdue"] = listed["overdue"].astype(bool)
    return listed[LIST_COLUMNS]


@dataclass(frozen=True)
class OpenAlerts:
    """The open alerts of one viewer's scope, by their unit's nested-set position: the count under any unit of the
    scope is two binary searches. Read once, counted for any moment: whether an alert is overdue depends on the
    clock, so each keeps the moment it becomes overdue and `counts` compares that with `now` when asked (the map
    keeps one per data version, callbacks/map.py)."""

    scope: Scope
    positions: array          # 'q': the `lft` of each open alert's unit, ascending
    critical: array           # 'q': how many of the first i alerts are critical (one longer, from 0)
    overdue_from: array       # 'd': the moment each becomes overdue (as overdue_clause); inf: never

    def counts(self, bounds: Sequence[tuple[int, int]], now: int) -> list[tuple[int, int, int]]:
        """(open, overdue, critical) per subtree, one for each (lft, rgt) of `bounds` (units of this scope)."""
        if not bounds:
            return []
        positions = self.positions
        # Where none lies under any of the units (most of a calm city), no unit needs a search of its own.
        first = bisect_left(positions, min(lft for lft, _ in bounds))
        last = bisect_right(positions, max(rgt for _, rgt in bounds), first)
        if first == last:
            return [(0, 0, 0)] * len(bounds)
        counts = []
        for lft, rgt in bounds:
            low = bisect_left(positions, lft, first, last)
            high = bisect_right(positions, rgt, low, last)
            overdue = sum(1 for moment in self.overdue_from[low:high] if moment < now)
            counts.append((high - low, overdue, self.critical[high] - self.critical[low]))
        return counts


def open_alerts(session: Session, scope: Scope) -> OpenAlerts:
    """The open (fired, not closed) alerts in `scope`, in one query."""
    rows = session.execute(
        select(Unit.lft, Alert.severity, Alert.handle_due, Alert.dispatch_due, Alert.acknowledged_at, Alert.assignee)
        .join(Unit, Unit.id == Alert.unit_id)
        .where(Alert.closed_at.is_(None), Alert.phase != "pending", scope.clause())).all()
    rows.sort(key=lambda row: row[0])
    return OpenAlerts(scope, array("q", [row[0] for row in rows]),
                      array("q", [0, *accumulate(severity == "critical" for _, severity, *_ in rows)]),
                      array("d", [_overdue_from(*row[2:]) for row in rows]))


def _overdue_from(handle_due, dispatch_due, acknowledged_at, assignee) -> float:
    """When an open alert becomes overdue (overdue_clause, for a row in hand): at its handling deadline, or at its
    dispatch deadline while neither acknowledged nor assigned; inf: never."""
    deadlines = [handle_due] if handle_due is not None else []
    if dispatch_due is not None and acknowledged_at is None and assignee is None:
        deadlines.append(dispatch_due)
    return float(min(deadlines)) if deadlines else float("inf")


def alert_counts(session: Session, scope: Scope, tree: UnitTree, unit_ids, now: int) -> pd.DataFrame:
    """Per unit in `unit_ids` (each within scope): open, overdue and critical open alerts in its subtree.
    Index: unit_id."""
    unit_ids = [int(unit) for unit in unit_ids if scope.contains(tree, int(unit))]
    result = pd.DataFrame(0, index=pd.Index(unit_ids, name="unit_id"), columns=["open", "overdue", "critical"])
    if not unit_ids:
        return result
    bounds = tree.frame.loc[unit_ids, ["lft", "rgt"]].itertuples(index=False, name=None)
    result[["open", "overdue", "critical"]] = open_alerts(session, scope).counts(list(bounds), now)
    return result


def alert_subject(session: Session, scope: Scope, tree: UnitTree, ids: dict[str, int],
                  alert_id: int) -> tuple[str, str | None] | None:
    """(unit code, indicator key or None for a source) of an alert the viewer may see; None otherwise."""
    row = session.execute(select(Alert.unit_id, Alert.indicator_id).where(Alert.id == int(alert_id))).first()
    if row is None or not scope.contains(tree, row.unit_id):
        return None
    key = next((k for k, ident in ids.items() if ident == row.indicator_id), None)
    return str(tree.frame.at[row.unit_id, "code"]), key


@dataclass(frozen=True)
class Evidence:
    """What an alert rests on: the alert row, the records behind its latest breach, the runs that brought them,
    and — when those runs' sources keep incidents — the incidents open in the unit during the breach."""

    alert: dict
    records: pd.DataFrame    # unit_id, code, name_zh, name_en, at, value, run_id
    runs: pd.DataFrame       # id, connector, started_at, finished_at, status, fetched, accepted, rejected, archive
    incidents: pd.DataFrame  # id, source, external_id, category, status, opened_at, closed_at, address, unit_id


def evidence(session: Session, scope: Scope, tree: UnitTree, catalog: Catalog, ids: dict[str, int],
             alert_id: int, offset: int = 0, limit: int = 50) -> Evidence | None:
    """The drill-down's evidence for one alert (None: no such alert). OutOfScope when its unit is not the
    viewer's to see."""
    row = session.get(Alert, int(alert_id))
    if row is None:
        return None
    scope.require(tree, row.unit_id)
    alert = {column.name: getattr(row, column.name) for column in Alert.__table__.columns}
    key = next((k for k, ident in ids.items() if ident == row.indicator_id), None)
    alert["indicator"] = key
    records = _records(session, tree, catalog, ids, row, key, offset, limit)
    run_ids = sorted({int(r) for r in records["run_id"].dropna()} | ({row.run_id} if row.run_id else set()))
    columns = [ConnectorRun.id, ConnectorRun.connector, ConnectorRun.started_at, ConnectorRun.finished_at,
               ConnectorRun.status, ConnectorRun.fetched, ConnectorRun.accepted, ConnectorRun.rejected,
               ConnectorRun.archive]
    if row.source:  # a silent source: its latest runs (failed ones say why)
        statement = select(*columns).where(ConnectorRun.connector == row.source)
    else:
        statement = select(*columns).where(ConnectorRun.id.in_(run_ids))
    runs = pd.DataFrame(session.execute(statement.order_by(ConnectorRun.id.desc()).limit(10)).all(),
                        columns=["id", "connector", "started_at", "finished_at", "status", "fetched", "accepted",
                                 "rejected", "archive"])
    incidents = _incidents(session, tree, row, list(runs["connector"].unique()), limit)
    return Evidence(alert, records, runs, incidents)


def _records(session, tree: UnitTree, catalog: Catalog, ids, row: Alert, key: str | None, offset: int,
             limit: int) -> pd.DataFrame:
    """The values behind the alert's latest breach: the unit's own report, or its leaves' reports in that bucket."""
    columns = ["unit_id", "at", "value", "run_id"]
    if key is None or key not in catalog:
        return pd.DataFrame(columns=["unit_id", "code", "name_zh", "name_en", "at", "value", "run_id"])
    indicator = catalog[key]
    level = Level(int(tree.frame.at[row.unit_id, "level"]))
    at = row.last_breach_at
    if source_of(indicator, level) == "reported":
        start, end = at - indicator.interval_seconds, at + 1
        units = [row.unit_id]
    else:
        start = bucket_start(at, indicator.interval_seconds, offset)
        end = start + indicator.interval_seconds
        lft, rgt = int(tree.frame.at[row.unit_id, "lft"]), int(tree.frame.at[row.unit_id, "rgt"])
        frame = tree.frame
        leaves = frame[(frame["lft"] >= lft) & (frame["lft"] <= rgt) & (frame["level"] == int(indicator.level))]
        units = [int(unit) for unit in leaves.index]
    sources = [indicator.numerator, indicator.denominator] if indicator.is_derived else [indicator.key]
    found = session.execute(select(Observation.unit_id, Observation.observed_at, Observation.value,
                                   Observation.run_id).where(
        Observation.unit_id.in_(units), Observation.indicator_id.in_([ids[s] for s in sources]),
        Observation.observed_at >= start, Observation.observed_at < end)
        .order_by(Observation.value.desc()).limit(limit)).all()
    records = pd.DataFrame(found, columns=columns)
    if records.empty and source_of(indicator, level) == "rollup":
        found = session.execute(select(RollupHistory.unit_id, RollupHistory.bucket_start, RollupHistory.value).where(
            RollupHistory.unit_id == row.unit_id, RollupHistory.indicator_id == row.indicator_id,
            RollupHistory.bucket_start == start)).all()
        records = pd.DataFrame(found, columns=columns[:3]).assign(run_id=None)
    records = records.join(tree.frame[["code", "name_zh", "name_en"]], on="unit_id")
    return records[["unit_id", "code", "name_zh", "name_en", "at", "value", "run_id"]]


def _incidents(session, tree: UnitTree, row: Alert, connectors: list[str], limit: int) -> pd.DataFrame:
    columns = ["id", "source", "external_id", "category", "status", "opened_at", "closed_at", "address", "unit_id"]
    if not connectors:
        return pd.DataFrame(columns=columns)
    lft, rgt = int(tree.frame.at[row.unit_id, "lft"]), int(tree.frame.at[row.unit_id, "rgt"])
    frame = tree.frame
    units = [int(u) for u in frame.index[(frame["lft"] >= lft) & (frame["lft"] <= rgt)]]
    until = row.resolved_at or row.last_breach_at
    found = session.execute(select(Incident.id, Incident.source, Incident.external_id, Incident.category,
                                   Incident.status, Incident.opened_at, Incident.closed_at, Incident.address,
                                   Incident.unit_id).where(
        Incident.source.in_(connectors), Incident.unit_id.in_(units), Incident.opened_at <= until,
        or_(Incident.closed_at.is_(None), Incident.closed_at >= row.started_at))
        .order_by(Incident.opened_at.desc()).limit(limit)).all()
    return pd.DataFrame(found, columns=columns)
