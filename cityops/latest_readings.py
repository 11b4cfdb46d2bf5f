"""The latest reading of every unit of a viewer's scope for one indicator, held as arrays: what a drill-down slices.

A drill into a unit colours its children. Reading their snapshot rows per drill costs a query and pandas shaping
(~7 ms); reading the whole scope's snapshot of the indicator once per data version (callbacks/map.py keeps it in a
cityops/request_basics.py VersionMemo) makes every drill a few array look-ups. Only what changes with the data is
held: a status depends on the clock too (a value goes stale as time passes), so it is decided when asked
(`children_latest`), never when the snapshot is read.

The rows come from the same statement as readings.current_frame (`snapshot_statement`), so the map and every other
panel agree on what "current" means.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from dataclasses import dataclass
from typing import NamedTuple, Sequence

from sqlalchemy import Select, case, literal_column, select
from sqlalchemy.orm import Session

from cityops.catalog import Indicator
from cityops.hierarchy import Level
from cityops.models import CurrentRollup, CurrentValue, Unit
from cityops.scope import OutOfScope, Scope
from cityops.status import Status, status_of
from cityops.tree import UnitRow, UnitTree


def snapshot_statement(scope: Scope, indicator_id: int, source: str, unit_ids: Sequence[int] | None = None) -> Select:
    """unit_id, value, observed_at, reported, expected of one indicator's snapshot for units of the scope (only
    `unit_ids`, when given): the reported snapshot for 'reported', the live roll-up for 'rollup' (readings.source_of
    says which a level reads). A roll-up is as fresh as the newest value in it, and has a value only while
    someone reported in its interval; a unit's own figure counts as 1 of 1 reported."""
    if source == "reported":
        columns = (CurrentValue.unit_id, CurrentValue.value, CurrentValue.observed_at, literal_column("1"),
                   literal_column("1"))
        table = CurrentValue
    else:
        columns = (CurrentRollup.unit_id, case((CurrentRollup.reported == 0, None), else_=CurrentRollup.value),
                   CurrentRollup.latest_observed_at, CurrentRollup.reported, CurrentRollup.expected)
        table = CurrentRollup
    statement = (select(*columns).join(Unit, Unit.id == table.unit_id)
                 .where(table.indicator_id == indicator_id, scope.clause()))
    if unit_ids is not None:
        statement = statement.where(table.unit_id.in_([int(unit) for unit in unit_ids]))
    return statement


@dataclass(frozen=True)
class LatestReadings:
    """One indicator's snapshot rows (of one source) for the units of one scope, by unit id. Immutable: shared by
    every request of a data version. Typed arrays (8 bytes a number) and binary search rather than numpy: a drill
    looks up a few dozen units, and numpy's cost per call, paid a dozen times, was most of that."""

    scope: Scope
    unit_ids: array          # 'q', ascending
    values: array            # 'd', NaN where there is no value
    observed_at: array       # 'd' (epoch seconds), NaN where unknown
    reported: array          # 'q'
    expected: array          # 'q'

    def rows(self, unit_ids: Sequence[int]) -> list[tuple[float | None, int | None, int, int] | None]:
        """(value, observed_at, reported, expected) per unit asked for, in order; None for a unit without a row
        (no data yet, or outside the scope the snapshot was read for)."""
        ids, count = self.unit_ids, len(self.unit_ids)
        found = []
        for unit_id in unit_ids:
            at = bisect_left(ids, unit_id)
            if at == count or ids[at] != unit_id:
                found.append(None)
                continue
            value, observed = self.values[at], self.observed_at[at]
            found.append((None if value != value else value, None if observed != observed else int(observed),
                          self.reported[at], self.expected[at]))
        return found


def latest_readings(session: Session, scope: Scope, indicator_id: int, source: str,
                    unit_ids: Sequence[int] | None = None) -> LatestReadings:
    """The snapshot of one indicator for every unit of `scope` (only `unit_ids`, when given), in one query."""
    rows = sorted(session.execute(snapshot_statement(scope, indicator_id, source, unit_ids)).all(),
                  key=lambda row: row[0])
    nan = float("nan")
    return LatestReadings(
        scope,
        array("q", [row[0] for row in rows]),
        array("d", [nan if row[1] is None else row[1] for row in rows]),
        array("d", [nan if row[2] is None else row[2] for row in rows]),
        array("q", [row[3] for row in rows]),
        array("q", [row[4] for row in rows]))


class ChildReading(NamedTuple):
    """A child of the unit on the map with its current reading: a row of readings.children_readings, in plain
    Python values (value and observed_at None where there is none)."""

    unit_id: int
    code: str
    name_zh: str
    name_en: str
    level: int
    population: int
    value: float | None
    observed_at: int | None
    reported: int | None
    expected: int | None
    status: str
    lft: int  # the child's nested-set bounds: what its subtree's alert count reads
    rgt: int


def children_in_scope(tree: UnitTree, scope: Scope, unit_id: int) -> list[UnitRow]:
    """The children of `unit_id` that lie inside the viewer's scope, in the tree's order. OutOfScope when the viewer
    may not see `unit_id` (Scope.require's test, on the unit's UnitRow rather than a pandas row)."""
    try:
        unit = tree.row(unit_id)
    except KeyError:
        unit = None
    if unit is None or not scope.contains_bounds(unit.lft):
        raise OutOfScope(f"unit {unit_id} is outside the viewer's scope {scope.root_code}")
    low, high = scope.lft, scope.rgt
    return [child for child in map(tree.row, tree.child_ids(unit_id)) if low <= child.lft <= high]


def children_latest(tree: UnitTree, scope: Scope, indicator: Indicator, latest: LatestReadings | None,
                    unit_id: int, now: int) -> list[ChildReading]:
    """The children of `unit_id` inside the viewer's scope, in the tree's order, with their current reading and
    status at `now`: what readings.children_readings answers, from a snapshot in hand. `latest` is the snapshot
    the children's level reads (None: the indicator is not measured there, so every child has no data).
    OutOfScope when the viewer may not see `unit_id`; a snapshot read for another scope is refused."""
    if latest is not None and latest.scope != scope:
        raise ValueError(f"a snapshot read for scope {latest.scope.root_code} asked for scope {scope.root_code}")
    children = children_in_scope(tree, scope, unit_id)
    if not children:
        return []
    rows = latest.rows([child.id for child in children]) if latest is not None else [None] * len(children)
    thresholds = indicator.thresholds_at(Level(children[0].level))
    interval, direction = indicator.interval_seconds, indicator.direction
    readings = []
    for child, row in zip(children, rows):
        value, observed_at, reported, expected = row if row is not None else (None, None, None, None)
        status = status_of(value, observed_at, now, interval, thresholds, direction) if row is not None \
            else Status.NO_DATA
        readings.append(ChildReading(child.id, child.code, child.name_zh, child.name_en, child.level,
                                     child.population, value, observed_at, reported, expected, status.value,
                                     child.lft, child.rgt))
    return readings
