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
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple, Sequence

from sqlalchemy import Select, case, literal_column, select
from sqlalchemy.orm import Session

from cityops.catalog import Indicator
from cityops.hierarchy import Level
from cityops.models import CurrentRollup, CurrentValue, Unit
from cityops.scope import OutOfScope, Scope
from cityops.status import Status, status_of
from cityops.tree import UnitRow, UnitTree


def snapshot_statement(scope: Scope, indicator_id: int | Sequence[int], source: str,
                       unit_ids: Sequence[int] | None = None) -> Select:
    """unit_id, value, observed_at, reported, expected of one indicator's snapshot for units of the scope (only
    `unit_ids`, when given): the reported snapshot for 'reported', the live roll-up for 'rollup' (readings.source_of
    says which a level reads). A roll-up is as fresh as the newest value in it, and has a value only while
    someone reported in its interval; a unit's own figure counts as 1 of 1 reported. Given several indicator
    ids, the rows of all of them, each row ending with its indicator_id."""
    if source == "reported":
        columns = (CurrentValue.unit_id, CurrentValue.value, CurrentValue.observed_at, literal_column("1"),
                   literal_column("1"))
        table = CurrentValue
    else:
        columns = (CurrentRollup.unit_id, case((CurrentRollup.reported == 0, None), else_=CurrentRollup.value),
                   CurrentRollup.latest_observed_at, CurrentRollup.reported, CurrentRollup.expected)
        table = CurrentRollup
    if isinstance(indicator_id, (list, tuple)):
        statement = select(*columns, table.indicator_id).where(table.indicator_id.in_([int(i) for i in indicator_id]))
    else:
        statement = select(*columns).where(table.indicator_id == int(indicator_id))
    statement = statement.join(Unit, Unit.id == table.unit_id).where(scope.clause())
    if unit_ids is not None:
        statement = statement.where(table.unit_id.in_([int(unit) for unit in unit_ids]))
    return statement


@dataclass(frozen=True)
class LatestReadings:
    """One indicator's snapshot rows (of one source) for the units of one scope, by unit id. Immutable: shared by
    every request of a data version. Typed arrays (8 bytes a number) rather than numpy: a drill looks up a few
    dozen units, and numpy's cost per call, paid a dozen times, was most of that."""

    scope: Scope
    unit_ids: array          # 'q', ascending
    values: array            # 'd', NaN where there is no value
    observed_at: array       # 'd' (epoch seconds), NaN where unknown

    @cached_property
    def _positions(self) -> dict[int, int]:
        # Built by the first drill of a data version (~0.2 ms and ~0.7 MB for 6,000 units, dropped with the
        # snapshot): a binary search in a typed array boxes a number at every step, ~0.3 µs a child on every drill;
        # a dict look-up costs ~25 ns.
        return dict(zip(self.unit_ids, range(len(self.unit_ids))))

    def readings(self, unit_ids: Sequence[int]) -> tuple[list[float | None], list[int | None]]:
        """(values, observed_at) of the units asked for, in order; None for a unit without a row (no data yet, or
        outside the scope the snapshot was read for) and where the row has none."""
        values, observed = self.values, self.observed_at
        found = list(map(self._positions.get, unit_ids))
        # NaN (no value) is the one number unequal to itself.
        value_of = [None if at is None else value if (value := values[at]) == value else None for at in found]
        observed_of = [None if at is None else int(moment) if (moment := observed[at]) == moment else None
                       for at in found]
        return value_of, observed_of


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
        array("d", [nan if row[2] is None else row[2] for row in rows]))


class ChildrenLatest(NamedTuple):
    """The children of the unit on the map with their current readings, as columns in the tree's order (one entry
    per child in each): what the map draws, built with a few list passes rather than an object per child."""

    children: list[UnitRow]           # code, names and nested-set bounds (what a subtree's alert count reads)
    values: list[float | None]
    observed_at: list[int | None]
    statuses: list[Status]

    def newest_observed(self) -> int | None:
        return max((observed for observed in self.observed_at if observed is not None), default=None)


def children_in_scope(tree: UnitTree, scope: Scope, unit_id: int) -> list[UnitRow]:
    """The children of `unit_id` that lie inside the viewer's scope, in the tree's order. OutOfScope when the viewer
    may not see `unit_id` (Scope.require's test, on the unit's UnitRow rather than a pandas row)."""
    try:
        unit = tree.row(unit_id)
    except KeyError:
        unit = None
    if unit is None or not scope.contains_bounds(unit.lft):
        raise OutOfScope(f"unit {unit_id} is outside the viewer's scope {scope.root_code}")
    children = tree.child_rows(unit_id)
    low, high = scope.lft, scope.rgt
    if low <= unit.lft and unit.rgt <= high:
        return list(children)  # the scope holds the whole unit, so every child: nothing to test one by one
    return [child for child in children if low <= child.lft <= high]


def children_latest(tree: UnitTree, scope: Scope, indicator: Indicator, latest: LatestReadings | None,
                    unit_id: int, now: int) -> ChildrenLatest:
    """The children of `unit_id` inside the viewer's scope, in the tree's order, with their current reading and
    status at `now`: what readings.children_readings answers, from a snapshot in hand. `latest` is the snapshot
    the children's level reads (None: the indicator is not measured there, so every child has no data).
    OutOfScope when the viewer may not see `unit_id`; a snapshot read for another scope is refused."""
    if latest is not None and latest.scope != scope:
        raise ValueError(f"a snapshot read for scope {latest.scope.root_code} asked for scope {scope.root_code}")
    children = children_in_scope(tree, scope, unit_id)
    if not children:
        return ChildrenLatest([], [], [], [])
    if latest is None:
        nothing = [None] * len(children)
        return ChildrenLatest(children, nothing, nothing, [Status.NO_DATA] * len(children))
    values, observed_at = latest.readings([child.id for child in children])
    thresholds = indicator.thresholds_at(Level(children[0].level))
    interval, direction = indicator.interval_seconds, indicator.direction
    statuses = [status_of(value, observed, now, interval, thresholds, direction)
                for value, observed in zip(values, observed_at)]
    return ChildrenLatest(children, values, observed_at, statuses)
