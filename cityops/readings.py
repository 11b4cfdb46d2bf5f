"""What the screen asks of the data: current readings, trends and rankings, always within a viewer's scope.

A unit's current value comes from the snapshot tables, never from history: the reported snapshot at the level
an indicator is measured at, the live roll-up above it (and at every level for ratios).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import and_, func, or_, select, tuple_, union_all
from sqlalchemy.orm import Session

from cityops.catalog import Catalog, Indicator, RollupRule
from cityops.hierarchy import Level
from cityops.latest_readings import snapshot_statement
from cityops.models import ConnectorRun, Observation, RollupHistory, Unit
from cityops.scope import Scope
from cityops.status import Status, severity, status_of
from cityops.tree import UnitTree, load_tree


@dataclass(frozen=True)
class Reading:
    """One number as the screen shows it, with everything needed to trust it."""

    indicator: str
    value: float | None
    observed_at: int | None      # when the newest contributing value was observed
    status: Status
    reported: int | None = None  # completeness of a roll-up: N of M leaves reported within the interval
    expected: int | None = None
    previous: float | None = None
    measured: bool = True        # False when the indicator is not measured at or above this unit's level
    owner_id: int | None = None  # then, the ancestor at its level whose value this is (readings.standing_unit)

    @property
    def change(self) -> float | None:
        if self.value is None or self.previous is None:
            return None
        return self.value - self.previous


def source_of(indicator: Indicator, level: Level) -> str | None:
    """'reported', 'rollup' or None (not measured at this level)."""
    if level > indicator.level:
        return None
    if level == indicator.level and not indicator.is_derived:
        return "reported"
    return "rollup"


def current_frame(session: Session, scope: Scope, indicator: Indicator, indicator_id: int,
                  unit_ids: list[int], level: Level, now: int) -> pd.DataFrame:
    """Current value, time, completeness and status for units of one level (all within scope)."""
    columns = ["unit_id", "value", "observed_at", "reported", "expected", "status"]
    source = source_of(indicator, level)
    if source is None or not unit_ids:
        return pd.DataFrame(columns=columns)
    rows = session.execute(snapshot_statement(scope, indicator_id, source, unit_ids)).all()
    frame = pd.DataFrame(rows, columns=columns[:-1])
    # A roll-up without a value (nobody reported in its interval) arrives as None: NaN, as every missing value.
    frame["value"] = frame["value"].astype("float64")
    thresholds = indicator.thresholds_at(level)
    frame["status"] = [
        status_of(None if pd.isna(v) else float(v), None if pd.isna(t) else int(t), now,
                  indicator.interval_seconds, thresholds, indicator.direction).value
        for v, t in zip(frame["value"], frame["observed_at"])
    ]
    return frame[columns]


def children_readings(session: Session, scope: Scope, catalog: Catalog, ids: dict[str, int], unit_id: int,
                      indicator_key: str, now: int, *, tree: UnitTree | None = None) -> pd.DataFrame:
    """The selected unit's children with their current reading: what the ranking, the comparison and the exports
    draw (the map reads the same rows from a snapshot kept per data version: latest_readings.children_latest)."""
    tree = tree if tree is not None else load_tree(session)  # callbacks pass the request's
    scope.require(tree, unit_id)
    indicator = catalog[indicator_key]
    children = tree.children(unit_id)
    # .loc: a plain [] with the empty list of a unit without children would select no *columns*.
    children = children.loc[[scope.contains_bounds(int(lft)) for lft in children["lft"]]]
    level = Level(int(tree.frame.at[unit_id, "level"]) + 1) if not children.empty else None
    base = children[["code", "name_zh", "name_en", "level", "population"]].rename_axis("unit_id").reset_index()
    if level is None:
        return base.assign(value=None, observed_at=None, reported=None, expected=None, status=Status.NO_DATA.value)
    frame = current_frame(session, scope, indicator, ids[indicator_key], base["unit_id"].tolist(), level, now)
    merged = base.merge(frame, on="unit_id", how="left")
    # An empty `frame` leaves the column all-NaN floats: as objects, it takes the status text.
    merged["status"] = merged["status"].astype(object).fillna(Status.NO_DATA.value)
    return merged


def standing_unit(tree: UnitTree, scope: Scope, indicator: Indicator, unit_id: int) -> int | None:
    """The unit whose value stands for `unit_id`'s on its own panels: itself where the indicator is measured at or
    above its level; below that, its ancestor at the indicator's level (a community's air quality is its street's),
    if the viewer may see that ancestor. None: nothing the viewer may see stands for it."""
    row = tree.row(unit_id)
    if source_of(indicator, Level(row.level)) is not None:
        return unit_id
    while row.level > indicator.level and row.parent_id is not None:
        row = tree.row(row.parent_id)
    return row.id if row.level == indicator.level and scope.contains(tree, row.id) else None


def unit_readings(session: Session, scope: Scope, catalog: Catalog, ids: dict[str, int], unit_id: int,
                  now: int, *, tree: UnitTree | None = None) -> dict[str, Reading]:
    """Every indicator's reading for one unit, with the previous period's value for the change. An indicator not
    measured at the unit's level reads its ancestor's at that level (`Reading.owner_id`, see `standing_unit`).
    Four statements whatever the catalog's size: the unit's (and those ancestors') rows of each snapshot, then each
    source's previous values (the KPI cards ask on every drill and refresh; one statement per indicator and two
    per card cost ~17 ms)."""
    tree = tree if tree is not None else load_tree(session)  # callbacks pass the request's
    scope.require(tree, unit_id)
    owners = {indicator.key: standing_unit(tree, scope, indicator, unit_id) for indicator in catalog}
    levels = {owner: Level(tree.row(owner).level) for owner in set(owners.values()) if owner is not None}
    sources = {key: None if owner is None else source_of(catalog[key], levels[owner]) for key, owner in owners.items()}
    current: dict[tuple[int, int], tuple] = {}
    for source in ("reported", "rollup"):
        wanted = [key for key, chosen in sources.items() if chosen == source]
        if wanted:
            units = sorted({owners[key] for key in wanted})
            for row in session.execute(snapshot_statement(scope, [ids[key] for key in wanted], source, units)):
                current[row[0], row[5]] = row
    shown: dict[str, tuple] = {}
    for indicator in catalog:
        owner = owners[indicator.key]
        row = current.get((owner, ids[indicator.key]))
        if sources[indicator.key] is None or row is None:
            continue
        value = None if row[1] is None else float(row[1])
        observed_at = None if row[2] is None else int(row[2])
        status = status_of(value, observed_at, now, indicator.interval_seconds,
                           indicator.thresholds_at(levels[owner]), indicator.direction)
        shown[indicator.key] = (value, observed_at, status, int(row[3]), int(row[4]))
    previous = _previous_values(session, catalog, ids, owners, sources,
                                {key: observed_at for key, (_v, observed_at, *_rest) in shown.items()})
    readings: dict[str, Reading] = {}
    for indicator in catalog:
        key = indicator.key
        owner = owners[key]
        inherited = {} if owner == unit_id else {"measured": False, "owner_id": owner}
        if sources[key] is None:
            readings[key] = Reading(key, None, None, Status.NO_DATA, measured=False)
        elif key not in shown:
            readings[key] = Reading(key, None, None, Status.NO_DATA, **inherited)
        else:
            value, observed_at, status, reported, expected = shown[key]
            readings[key] = Reading(key, value, observed_at, status, reported=reported, expected=expected,
                                    previous=previous.get(key), **inherited)
    return readings


def _previous_values(session, catalog: Catalog, ids: dict[str, int], owners: dict[str, int | None],
                     sources: dict[str, str | None], observed: dict[str, int | None]) -> dict[str, float]:
    """Each indicator's value one interval before its current one (what 'change vs previous period' compares
    with), in one statement per source: the newest row at or before that moment, per indicator (of the unit whose
    value it shows, `owners`)."""
    found: dict[str, float] = {}
    by_id = {ids[key]: key for key in observed}
    for source, table, time_column in (("reported", Observation, Observation.observed_at),
                                       ("rollup", RollupHistory, RollupHistory.bucket_start)):
        newest = [select(table.indicator_id, table.value)
                  .where(table.unit_id == owners[key], table.indicator_id == ids[key],
                         time_column <= observed_at - catalog[key].interval_seconds)
                  .order_by(time_column.desc()).limit(1).subquery()
                  for key, observed_at in observed.items() if observed_at is not None and sources[key] == source]
        if not newest:
            continue
        statement = union_all(*(select(row.c.indicator_id, row.c.value) for row in newest))
        for indicator_id, value in session.execute(statement):
            found[by_id[indicator_id]] = value
    return found


def trend(session: Session, scope: Scope, catalog: Catalog, ids: dict[str, int], unit_id: int,
          indicator_key: str, since: int, until: int, *, tree: UnitTree | None = None) -> pd.DataFrame:
    """Time series (time, value, reported, expected) of one unit and indicator, oldest first."""
    tree = tree if tree is not None else load_tree(session)  # callbacks pass the request's
    scope.require(tree, unit_id)
    indicator = catalog[indicator_key]
    level = Level(int(tree.frame.at[unit_id, "level"]))
    source = source_of(indicator, level)
    if source is None:
        return pd.DataFrame(columns=["time", "value", "reported", "expected"])
    if source == "reported":
        rows = session.execute(
            select(Observation.observed_at, Observation.value).where(
                Observation.unit_id == unit_id, Observation.indicator_id == ids[indicator_key],
                Observation.observed_at.between(since, until)).order_by(Observation.observed_at)).all()
        frame = pd.DataFrame(rows, columns=["time", "value"])
        return frame.assign(reported=1, expected=1)
    rows = session.execute(
        select(RollupHistory.bucket_start, RollupHistory.value, RollupHistory.reported, RollupHistory.expected)
        .where(RollupHistory.unit_id == unit_id, RollupHistory.indicator_id == ids[indicator_key],
               RollupHistory.bucket_start.between(since - indicator.interval_seconds, until))
        .order_by(RollupHistory.bucket_start)).all()
    return pd.DataFrame(rows, columns=["time", "value", "reported", "expected"])


TREND_COLUMNS = ["time", "value", "low", "high", "reported", "expected"]


def bucketed_trend(session: Session, scope: Scope, catalog: Catalog, ids: dict[str, int], unit_id: int,
                   indicator_key: str, since: int, until: int, bucket: int, utc_offset: int = 0, *,
                   tree: UnitTree | None = None, now: int | None = None) -> pd.DataFrame:
    """One unit and indicator from `since` to `until` in time buckets (cityops/time_range.py picks their size):
    per bucket the mean value with its lowest and highest (a peak averaged away stays visible), the mean count
    of leaves reported and the count expected. One row for every bucket of the window, oldest first; a bucket
    without data holds NaN, so the chart shows a gap, never a 0. Empty when the indicator is not measured at
    the unit's level. A sum's interval still filling at `now` (default `until`; a window a week back passes the
    real moment) is left out: a bucket of one interval is then empty with its completeness kept
    (without_filling_bucket), a coarser one is the mean of its other intervals."""
    tree = tree if tree is not None else load_tree(session)  # callbacks pass the request's
    scope.require(tree, unit_id)
    indicator = catalog[indicator_key]
    level = Level(int(tree.frame.at[unit_id, "level"]))
    if source_of(indicator, level) is None:
        return pd.DataFrame(columns=TREND_COLUMNS)
    now = until if now is None else now
    coarse = bucket > indicator.interval_seconds
    frame = _bucketed(session, scope, indicator, ids[indicator_key], [unit_id], level, since, until, bucket,
                      utc_offset, filling_at=now if coarse else None)
    grid = pd.Index(_bucket_grid(since, until, bucket, utc_offset), name="time")
    series = frame.drop(columns="unit_id").set_index("time").reindex(grid).reset_index()[TREND_COLUMNS]
    if not coarse:
        return without_filling_bucket(series, indicator, now, bucket)
    if (len(series) and pd.isna(series["value"].iloc[-1]) and indicator.rollup == RollupRule.SUM
            and source_of(indicator, level) == "rollup"):
        # A coarse bucket holding only the interval still filling (the 30-day chart's 06:00 point at 06:10): empty,
        # with that interval's completeness, as a bucket of one interval is (the chart says it is filling).
        start = int(series["time"].iloc[-1])
        filling = session.execute(
            select(RollupHistory.bucket_start, RollupHistory.reported, RollupHistory.expected)
            .where(RollupHistory.unit_id == unit_id, RollupHistory.indicator_id == ids[indicator_key],
                   RollupHistory.bucket_start >= start, RollupHistory.bucket_start < until,
                   RollupHistory.reported > 0)
            .order_by(RollupHistory.bucket_start.desc()).limit(1)).first()
        if filling is not None and still_filling(filling[0], indicator.interval_seconds, filling[1], filling[2], now):
            series.loc[series.index[-1], ["reported", "expected"]] = [float(filling[1]), float(filling[2])]
    return series


def without_filling_bucket(series: pd.DataFrame, indicator: Indicator, until: int, bucket: int) -> pd.DataFrame:
    """`series` (time, value, …, reported, expected) with its last bucket left empty when it is a sum still
    filling (`still_filling`). Drawn, it reads as a fall at the end of the line: to nothing at the start of every
    hour (the city's complaints "dropping" from 197 to 5 at 00:04, 436 of 6,000 communities in), and still by a
    seventh at 333 of 404 (a district's open incidents 4,098 → 3,528 beside a card saying 4,203). The KPI card
    says the current value; the bucket is drawn once every leaf is in or the bucket is over."""
    if series.empty or indicator.rollup != RollupRule.SUM:
        return series
    last = series.iloc[-1]
    if (pd.notna(last["value"]) and pd.notna(last["expected"])
            and still_filling(int(last["time"]), bucket, last["reported"], last["expected"], until)):
        series = series.copy()
        series.loc[series.index[-1], [column for column in ("value", "low", "high") if column in series]] = float("nan")
    return series


def still_filling(start, bucket: int, reported, expected, until: int):
    """Whether a sum's bucket (or each of a column of them) is still filling: it ends after `until` and not every
    leaf it expects has reported to it. Its sum is then short by whatever the others will report (leaves report at
    their own moments within the hour), so no chart draws it: the line would end in a fall that is not there."""
    return (start + bucket > until) & (expected > 1) & (reported < expected)


def children_trends(session: Session, scope: Scope, catalog: Catalog, ids: dict[str, int], unit_id: int,
                    indicator_key: str, since: int, until: int, bucket: int, utc_offset: int = 0, *,
                    tree: UnitTree | None = None, now: int | None = None) -> pd.DataFrame:
    """The mean value per bucket of every child of a unit in the viewer's scope, in one query: a row per child
    (index: unit id), a column per bucket of the window (NaN where a child has no data). What the comparison
    view's sparklines draw; no rows when the indicator is not measured at the children's level."""
    tree = tree if tree is not None else load_tree(session)  # callbacks pass the request's
    scope.require(tree, unit_id)
    indicator = catalog[indicator_key]
    children = tree.children(unit_id)
    children = children.loc[[scope.contains_bounds(int(lft)) for lft in children["lft"]]]  # as children_readings
    grid = _bucket_grid(since, until, bucket, utc_offset)
    if children.empty:
        return pd.DataFrame(columns=grid, dtype=float)
    level = Level(int(tree.frame.at[unit_id, "level"]) + 1)
    # A sum's interval still filling `now` (default `until`) is left out of each row, as out of the trend
    # (bucketed_trend).
    now = until if now is None else now
    filling_sum = indicator.rollup == RollupRule.SUM and source_of(indicator, level) == "rollup"
    coarse = bucket > indicator.interval_seconds
    frame = _bucketed(session, scope, indicator, ids[indicator_key], children.index.tolist(), level, since, until,
                      bucket, utc_offset, mean_only=coarse or not filling_sum, filling_at=now if coarse else None)
    if frame.empty:
        return pd.DataFrame(columns=grid, dtype=float)
    if filling_sum and not coarse:
        frame.loc[still_filling(frame["time"], bucket, frame["reported"], frame["expected"], now),
                  "value"] = float("nan")
    wide = frame.pivot(index="unit_id", columns="time", values="value").astype(float)
    return wide.reindex(columns=grid)


def _bucket_grid(since: int, until: int, bucket: int, utc_offset: int) -> list[int]:
    """The start of every bucket from the one holding `since` to the last one starting before `until`,
    aligned on the zone's midnight (as cityops.time_range.bucket_floor)."""
    first = (since + utc_offset) // bucket * bucket - utc_offset
    return list(range(first, until, bucket))


def _bucketed(session: Session, scope: Scope, indicator: Indicator, indicator_id: int, unit_ids: list[int],
              level: Level, since: int, until: int, bucket: int, utc_offset: int,
              mean_only: bool = False, filling_at: int | None = None) -> pd.DataFrame:
    """unit_id, time (bucket start), value (mean), low, high, reported (mean), expected (max) per unit and bucket
    (with `mean_only`: unit_id, time, value), grouped in the database: a 30-day window of 5-minute figures for
    200 units leaves it as a few thousand rows. Reported history below the indicator's level, roll-up history
    from it up (as source_of says). With `filling_at`, a sum's roll-up intervals still filling then
    (`still_filling`) are left out before grouping: the bucket holding them is the mean of the rest."""
    source = source_of(indicator, level)
    columns = ["unit_id", "time", "value"] if mean_only else ["unit_id", *TREND_COLUMNS]
    if source is None or not unit_ids:
        return pd.DataFrame(columns=columns)
    first = (since + utc_offset) // bucket * bucket - utc_offset
    table, at = (Observation, Observation.observed_at) if source == "reported" else \
        (RollupHistory, RollupHistory.bucket_start)
    # Grouped by the label: PostgreSQL would not match the expression's bound parameters in the select list
    # with their copies in GROUP BY.
    slot = (((at + utc_offset) // bucket) * bucket - utc_offset).label("slot")
    selected = [table.unit_id, slot, func.avg(table.value)]
    if not mean_only:
        selected += [func.min(table.value), func.max(table.value)]
        if source == "rollup":
            selected += [func.avg(RollupHistory.reported), func.max(RollupHistory.expected)]
    # A roll-up nobody reported to has no value: a gap rather than a 0.
    reporting = [RollupHistory.reported > 0] if source == "rollup" else []
    if filling_at is not None and source == "rollup" and indicator.rollup == RollupRule.SUM:
        reporting.append(or_(RollupHistory.bucket_start + indicator.interval_seconds <= filling_at,
                             RollupHistory.expected <= 1, RollupHistory.reported >= RollupHistory.expected))
    rows = session.execute(
        select(*selected).join(Unit, Unit.id == table.unit_id)
        .where(table.indicator_id == indicator_id, table.unit_id.in_(unit_ids), at >= first, at < until,
               scope.clause(), *reporting)
        .group_by(table.unit_id, slot)).all()
    # Built column by column: pandas reads a list of rows one cell at a time, ten times slower.
    values = list(zip(*rows)) if rows else [()] * len(selected)
    frame = pd.DataFrame({name: pd.array(column, dtype="float64" if index > 1 else "int64")
                          for index, (name, column) in enumerate(zip(columns, values))})
    if not mean_only and source == "reported":
        frame["reported"], frame["expected"] = 1.0, 1  # a unit's own figure: it reported, or the bucket is a gap
    return frame[columns]


def sparklines(session: Session, scope: Scope, catalog: Catalog, ids: dict[str, int], unit_id: int,
               since: int, *, tree: UnitTree | None = None, now: int | None = None) -> dict[str, list[float | None]]:
    """Recent values of every indicator for one unit in two queries, for the KPI cards' sparklines: of the unit
    whose value each card shows (`standing_unit`: a community's AQI card draws its street's). Given `now`, a sum's
    hour still filling is left out (without_filling_bucket: the line fell to a fraction at the end of the hour's
    first minutes)."""
    tree = tree if tree is not None else load_tree(session)  # callbacks pass the request's
    scope.require(tree, unit_id)
    wanted: dict[str, set[tuple[int, int]]] = {"reported": set(), "rollup": set()}
    keys: dict[tuple[int, int], str] = {}
    for indicator in catalog:
        owner = standing_unit(tree, scope, indicator, unit_id)
        if owner is not None:
            pair = (owner, ids[indicator.key])
            wanted[source_of(indicator, Level(tree.row(owner).level))].add(pair)
            keys[pair] = indicator.key
    series: dict[str, list] = {key: [] for key in catalog.keys}
    for source, table, time_column in (("reported", Observation, Observation.observed_at),
                                       ("rollup", RollupHistory, RollupHistory.bucket_start)):
        pairs = wanted[source]
        if not pairs:
            continue
        counts = (RollupHistory.reported, RollupHistory.expected) if source == "rollup" else ()
        last: dict[str, tuple] = {}
        # Exact (unit, indicator) pairs: the street's history of indicators the community reports itself is not read.
        for unit, ident, value, at, *reported in session.execute(
                select(table.unit_id, table.indicator_id, table.value, time_column, *counts).where(
                    tuple_(table.unit_id, table.indicator_id).in_(sorted(pairs)),
                    time_column >= since).order_by(time_column)):
            series[keys[unit, ident]].append(value)
            last[keys[unit, ident]] = (at, *reported)
        if source == "rollup" and now is not None:
            for key, (at, reported, expected) in last.items():
                indicator = catalog[key]
                if indicator.rollup == RollupRule.SUM and still_filling(at, indicator.interval_seconds, reported,
                                                                        expected, now):
                    series[key].pop()
    return series


def units_over_threshold(session: Session, scope: Scope, catalog: Catalog, ids: dict[str, int], unit_id: int,
                         indicator_key: str, now: int, limit: int = 50, *,
                         tree: UnitTree | None = None) -> pd.DataFrame:
    """Units below the selected one (every level down to where it is measured) now in warning or critical,
    worst first."""
    tree = tree if tree is not None else load_tree(session)  # callbacks pass the request's
    scope.require(tree, unit_id)
    indicator = catalog[indicator_key]
    root = tree.frame.loc[unit_id]
    inside = tree.frame[(tree.frame["lft"] > root["lft"]) & (tree.frame["rgt"] < root["rgt"])]
    inside = inside.loc[[scope.contains_bounds(int(lft)) for lft in inside["lft"]]]  # .loc, as in children_readings
    frames = []
    for level_value, group in inside.groupby("level"):
        level = Level(int(level_value))
        frame = current_frame(session, scope, indicator, ids[indicator_key], group.index.tolist(), level, now)
        frame = frame[frame["status"].isin([Status.WARNING.value, Status.CRITICAL.value])]
        if frame.empty:
            continue
        thresholds = indicator.thresholds_at(level)
        frame = frame.assign(level=int(level),
                             severity=[severity(float(v), thresholds, indicator.direction) for v in frame["value"]])
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["unit_id", "code", "name_zh", "name_en", "level", "value", "observed_at",
                                     "status", "severity", "reported", "expected"])
    ranked = pd.concat(frames, ignore_index=True)
    ranked = ranked.join(tree.frame[["code", "name_zh", "name_en"]], on="unit_id")
    ranked = ranked.sort_values(["severity", "level"], ascending=[False, True]).head(limit)
    return ranked.reset_index(drop=True)


def last_update(session: Session) -> int | None:
    """When data last arrived from any source (the end of the newest run that stored something)."""
    return session.scalar(select(func.max(ConnectorRun.finished_at)).where(
        and_(ConnectorRun.status.in_(["ok", "partial"]))))
