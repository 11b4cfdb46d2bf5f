"""Roll-ups: a parent's value from its leaves' values by the indicator's rule, with completeness.

`aggregate` is pure (DataFrames in, DataFrame out) so every rule is tested without a database;
`refresh_rollups` applies it after an ingest, only to the indicators and time buckets that changed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from functools import partial

import numpy as np
import pandas as pd
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from cityops.catalog import Catalog, Indicator, RollupRule
from cityops.models import CurrentRollup, CurrentValue, Observation, RollupBacklog, RollupHistory
from cityops.status import STALE_GRACE
from cityops.storage import _dialect_insert, fetch_frame
from cityops.tree import UnitTree


def aggregate(values: pd.DataFrame, membership: pd.DataFrame, rule: RollupRule, scale: float = 1.0,
              by: tuple[str, ...] = ()) -> pd.DataFrame:
    """Roll leaf values up to every ancestor.

    values: one row per leaf (and per `by` group, e.g. a time bucket) with `leaf_id` and `value`;
            population-weighted means need `weight`; ratios need `numerator` and `denominator` instead.
    membership: (leaf_id, ancestor_id) pairs.
    Returns ancestor_id, *by, value, reported (leaves that contributed).
    """
    columns = ["ancestor_id", *by, "value", "reported"]
    if values.empty:
        return pd.DataFrame(columns=columns)
    joined = values.merge(membership, on="leaf_id", how="inner")
    if rule == RollupRule.RATIO:
        joined = joined.dropna(subset=["numerator", "denominator"])
    else:
        joined = joined.dropna(subset=["value"])
    keys = ["ancestor_id", *by]
    grouped = joined.groupby(keys, sort=False)
    reported = grouped.size().rename("reported")
    if rule == RollupRule.SUM:
        value = grouped["value"].sum()
    elif rule == RollupRule.MEAN:
        value = grouped["value"].mean()
    elif rule == RollupRule.MAX:
        value = grouped["value"].max()
    elif rule == RollupRule.POPULATION_WEIGHTED_MEAN:
        joined = joined.assign(weighted=joined["value"] * joined["weight"])
        sums = joined.groupby(keys, sort=False)[["weighted", "weight", "value"]].sum()
        # A group whose units all have population 0 falls back to the plain mean rather than 0/0.
        plain = joined.groupby(keys, sort=False)["value"].mean()
        value = (sums["weighted"] / sums["weight"].replace(0, np.nan)).fillna(plain)
    elif rule == RollupRule.RATIO:
        sums = grouped[["numerator", "denominator"]].sum()
        value = sums["numerator"] / sums["denominator"].replace(0, np.nan) * scale
    else:  # pragma: no cover - the catalog validates rules
        raise ValueError(f"unknown roll-up rule {rule}")
    result = pd.concat([value.rename("value"), reported], axis=1).reset_index()
    return result[columns]


def bucket_start(observed_at: int, interval_seconds: int, utc_offset_seconds: int = 0) -> int:
    """The start of the interval bucket holding a time; buckets of a day or more start at local midnight."""
    offset = utc_offset_seconds if interval_seconds >= 86400 else 0
    return (observed_at + offset) // interval_seconds * interval_seconds - offset


def dependents(catalog: Catalog, touched_keys) -> list[Indicator]:
    """The touched indicators and the ratios derived from them: everything whose roll-up may change."""
    result: dict[str, Indicator] = {}
    for key in touched_keys:
        indicator = catalog[key]
        result[key] = indicator
        for derived in catalog.derived_from(key):
            result[derived.key] = derived
    return list(result.values())


def refresh_rollups(session: Session, catalog: Catalog, indicator_ids: dict[str, int], tree: UnitTree,
                    touched: dict[str, set[int]], now: int, utc_offset_seconds: int = 0,
                    recent: pd.DataFrame | None = None) -> int:
    """Recompute roll-ups for the time buckets that `touched` (key → observed_at values) fell into.

    `recent` (unit_id, indicator_id, observed_at, value) are rows this process has just committed: a bucket
    whose stored rows are exactly these is rolled up from memory instead of being read back (a backfill's
    buckets are); any other bucket is read from the database. Returns the number of roll-up rows written.
    The caller commits.
    """
    written = 0
    for indicator in dependents(catalog, touched):
        sources = [indicator.numerator, indicator.denominator] if indicator.is_derived else [indicator.key]
        times = set().union(*(touched.get(key, set()) for key in sources))
        if not times:
            continue
        buckets = sorted({bucket_start(t, indicator.interval_seconds, utc_offset_seconds) for t in times})
        written += _refresh_history(session, indicator, indicator_ids, tree, buckets, utc_offset_seconds, recent)
        if max(times) >= now - indicator.interval_seconds * STALE_GRACE:
            written += _refresh_current(session, indicator, indicator_ids, tree, now)
    return written


def queue_rollups(session: Session, catalog: Catalog, indicator_ids: dict[str, int],
                  touched: dict[str, Iterable[int]], utc_offset_seconds: int = 0) -> None:
    """Record which buckets new observations fell into; `process_backlog` computes them later."""
    rows = set()
    for key, times in touched.items():
        # A backfill touches a million timestamps but a few hundred buckets: reduce them as arrays.
        starts = np.unique(bucket_start(np.fromiter(times, dtype=np.int64) if not isinstance(times, np.ndarray)
                                        else times.astype(np.int64),
                                        catalog[key].interval_seconds, utc_offset_seconds))
        rows.update((indicator_ids[key], int(start)) for start in starts)
    if not rows:
        return
    statement = _dialect_insert(session, RollupBacklog.__table__).on_conflict_do_nothing()
    session.execute(statement, [{"indicator_id": i, "bucket_start": b} for i, b in sorted(rows)])


def process_backlog(session: Session, catalog: Catalog, indicator_ids: dict[str, int], tree: UnitTree,
                    now: int, utc_offset_seconds: int = 0, recent: pd.DataFrame | None = None) -> int:
    """Compute every queued bucket's roll-ups and clear the queue, in the caller's transaction."""
    key_by_id = {ident: key for key, ident in indicator_ids.items()}
    # Take the queue in one statement: buckets another run queues meanwhile stay for the next pass, and if the
    # computation fails the transaction rolls back and the queue is intact.
    table = RollupBacklog.__table__
    queued = session.execute(table.delete().returning(table.c.indicator_id, table.c.bucket_start)).all()
    if not queued:
        return 0
    touched: dict[str, set[int]] = defaultdict(set)
    for ident, start in queued:
        key = key_by_id.get(ident)
        if key is None or key not in catalog:
            continue  # an indicator removed from the catalog: nothing to roll up any more
        # Both ends of the bucket, so a derived indicator with another interval sees every bucket it overlaps.
        touched[key].update((start, start + catalog[key].interval_seconds - 1))
    return refresh_rollups(session, catalog, indicator_ids, tree, touched, now, utc_offset_seconds, recent)


def _leaf_frame(indicator: Indicator, tree: UnitTree) -> tuple[pd.DataFrame, pd.Series]:
    membership = tree.membership(indicator.level, include_self=indicator.is_derived)
    expected = membership.groupby("ancestor_id").size().rename("expected")
    return membership, expected


def _contiguous_runs(buckets: list[int], step: int) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for start in buckets:
        if runs and start <= runs[-1][1]:
            runs[-1] = (runs[-1][0], start + step)
        else:
            runs.append((start, start + step))
    return runs


def _read_window(session: Session, indicator_id: int, start: int, end: int) -> pd.DataFrame:
    return fetch_frame(session, select(Observation.unit_id, Observation.observed_at, Observation.value).where(
        and_(Observation.indicator_id == indicator_id, Observation.observed_at >= start,
             Observation.observed_at < end)), ["leaf_id", "observed_at", "value"])


def _memory_window(recent: pd.DataFrame):
    """A `_read_window` over rows held in memory."""
    def read(indicator_id: int, start: int, end: int) -> pd.DataFrame:
        rows = recent[(recent["indicator_id"] == indicator_id) & (recent["observed_at"] >= start)
                      & (recent["observed_at"] < end)]
        return pd.DataFrame({"leaf_id": rows["unit_id"].to_numpy(), "observed_at": rows["observed_at"].to_numpy(),
                             "value": rows["value"].to_numpy()})
    return read


def _bucket_counts(observed_at, step: int, offset: int) -> pd.Series:
    local = offset if step >= 86400 else 0
    return pd.Series((np.asarray(observed_at, dtype=np.int64) + local) // step * step - local).value_counts()


def _buckets_held_in(recent: pd.DataFrame | None, session: Session, sources: list[int], buckets: list[int],
                     step: int, offset: int) -> set[int]:
    """The buckets whose stored rows, for every source indicator, are exactly the rows held in `recent`.

    Counting is enough: `recent` holds committed rows, so equal counts mean the same rows. Rows another
    run wrote into the same bucket make the counts differ, and that bucket is read from the database.
    """
    if recent is None or recent.empty or not buckets:
        return set()
    local = offset if step >= 86400 else 0
    held = set(buckets)
    for source in sources:
        rows = recent.loc[recent["indicator_id"] == source, "observed_at"]
        in_memory = _bucket_counts(rows, step, offset)
        bucket = (Observation.observed_at + local) // step
        stored = dict(session.execute(
            select(bucket, func.count()).where(Observation.indicator_id == source,
                                               Observation.observed_at >= buckets[0],
                                               Observation.observed_at < buckets[-1] + step)
            .group_by(bucket)).all())
        held = {b for b in held if b in in_memory.index
                and stored.get((b + local) // step) == int(in_memory[b])}
    return held


def _latest_per_bucket(frame: pd.DataFrame, interval: int, offset: int) -> pd.DataFrame:
    if frame.empty:
        return frame.assign(bucket_start=pd.Series(dtype="int64"))
    local = offset if interval >= 86400 else 0
    frame = frame.assign(bucket_start=(frame["observed_at"] + local) // interval * interval - local)
    frame = frame.sort_values("observed_at").drop_duplicates(["leaf_id", "bucket_start"], keep="last")
    return frame.drop(columns="observed_at")


def _leaf_values(session: Session, indicator: Indicator, ids: dict[str, int], tree: UnitTree,
                 reader) -> pd.DataFrame:
    """Leaf values in the shape `aggregate` expects, from `reader(indicator_id) -> DataFrame`."""
    if indicator.is_derived:
        numerator = reader(ids[indicator.numerator]).rename(columns={"value": "numerator"})
        denominator = reader(ids[indicator.denominator]).rename(columns={"value": "denominator"})
        keys = ["leaf_id", *(["bucket_start"] if "bucket_start" in numerator else [])]
        merged = numerator.merge(denominator, on=keys, how="inner", suffixes=("", "_denominator"))
        if "observed_at" in merged:
            # The pair is only as fresh as its older part.
            merged["observed_at"] = merged[["observed_at", "observed_at_denominator"]].min(axis=1)
            merged = merged.drop(columns="observed_at_denominator")
        return merged
    frame = reader(ids[indicator.key])
    if indicator.rollup == RollupRule.POPULATION_WEIGHTED_MEAN:
        frame = frame.assign(weight=tree.frame["population"].reindex(frame["leaf_id"]).to_numpy(dtype=float))
    return frame


def _refresh_history(session, indicator, ids, tree, buckets, offset, recent=None) -> int:
    membership, expected = _leaf_frame(indicator, tree)
    step = indicator.interval_seconds
    written = 0
    sources = [ids[indicator.numerator], ids[indicator.denominator]] if indicator.is_derived else [ids[indicator.key]]
    in_memory = _buckets_held_in(recent, session, sources, buckets, step, offset)
    for start, end, reader in [
        *((start, end, _memory_window(recent)) for start, end in _contiguous_runs(sorted(in_memory), step)),
        *((start, end, partial(_read_window, session))
          for start, end in _contiguous_runs([b for b in buckets if b not in in_memory], step)),
    ]:
        values = _leaf_values(session, indicator, ids, tree,
                              lambda ident: _latest_per_bucket(reader(ident, start, end), step, offset))
        rolled = aggregate(values, membership, indicator.rollup, indicator.scale, by=("bucket_start",))
        if rolled.empty:
            continue
        rolled = rolled.merge(expected, left_on="ancestor_id", right_index=True)
        rows = list(zip(
            rolled["ancestor_id"].astype("int64").tolist(), [ids[indicator.key]] * len(rolled),
            rolled["bucket_start"].astype("int64").tolist(),
            rolled["value"].astype(float).astype(object).where(rolled["value"].notna(), None).tolist(),
            rolled["reported"].astype("int64").tolist(), rolled["expected"].astype("int64").tolist()))
        # A backfill writes tens of thousands of roll-up rows: plain SQL to the driver, as for observations.
        placeholder = "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"
        session.connection().exec_driver_sql(_UPSERT_ROLLUP_HISTORY.format(p=placeholder), rows)
        written += len(rows)
    return written


_UPSERT_ROLLUP_HISTORY = (
    "INSERT INTO rollup_history (unit_id, indicator_id, bucket_start, value, reported, expected) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}) ON CONFLICT (unit_id, indicator_id, bucket_start) DO UPDATE SET "
    "value = excluded.value, reported = excluded.reported, expected = excluded.expected"
)


def _read_current(session: Session, indicator_id: int) -> pd.DataFrame:
    return fetch_frame(session, select(CurrentValue.unit_id, CurrentValue.observed_at, CurrentValue.value)
                       .where(CurrentValue.indicator_id == indicator_id), ["leaf_id", "observed_at", "value"])


def _refresh_current(session, indicator, ids, tree, now: int) -> int:
    """The live roll-up: each leaf's latest value counts while it is within its expected interval."""
    membership, expected = _leaf_frame(indicator, tree)
    # Fresh as in cityops.status.is_stale: a value is stale only when *older* than the grace period.
    fresh_from = now - indicator.interval_seconds * STALE_GRACE
    everything = _leaf_values(session, indicator, ids, tree, lambda ident: _read_current(session, ident))
    latest = everything.merge(membership, on="leaf_id").groupby("ancestor_id")["observed_at"].max()
    fresh = everything[everything["observed_at"] >= fresh_from].drop(columns="observed_at")
    rolled = aggregate(fresh, membership, indicator.rollup, indicator.scale).set_index("ancestor_id")
    frame = expected.to_frame().join(rolled, how="left").join(latest.rename("latest"), how="left")
    rows = [
        {"unit_id": int(unit_id), "indicator_id": ids[indicator.key], "as_of": now,
         "value": None if pd.isna(value) else float(value),
         "reported": 0 if pd.isna(reported) else int(reported), "expected": int(count),
         "latest_observed_at": None if pd.isna(last) else int(last)}
        for unit_id, count, value, reported, last in frame[["expected", "value", "reported", "latest"]]
        .itertuples(index=True)
    ]
    table = CurrentRollup.__table__
    statement = _dialect_insert(session, table)
    statement = statement.on_conflict_do_update(
        index_elements=["unit_id", "indicator_id"],
        set_={name: getattr(statement.excluded, name)
              for name in ("as_of", "value", "reported", "expected", "latest_observed_at")},
        where=table.c.as_of <= statement.excluded.as_of,
    )
    session.execute(statement, rows)
    return len(rows)
