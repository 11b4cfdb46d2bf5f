"""Roll-ups: a parent's value from its leaves' values by the indicator's rule, with completeness.

`aggregate` is pure (DataFrames in, DataFrame out) so every rule is tested without a database;
`refresh_rollups` applies it after an ingest, only to the indicators and time buckets that changed, reading
each run of buckets from the database or from the rows a run still holds (cityops.buckets).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from functools import partial

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.buckets import (LEAF_COLUMNS, LEAF_TYPES, HeldRows, bucket_start, bucket_windows, buckets_held_in,
                             latest_per_bucket, read_window)
from cityops.catalog import Catalog, Indicator, RollupRule
from cityops.models import CurrentValue, RollupBacklog
from cityops.status import STALE_GRACE
from cityops.storage import _dialect_insert, fetch_frame
from cityops.tree import UnitTree


def aggregate(values: pd.DataFrame, membership: pd.DataFrame, rule: RollupRule, scale: float = 1.0,
              by: tuple[str, ...] = ()) -> pd.DataFrame:
    """Roll leaf values up to every ancestor.

    values: one row per leaf (and per `by` group, e.g. a time bucket) with `leaf_id` and `value`;
            population-weighted means need `weight`; ratios need `numerator` and `denominator` instead.
    membership: (leaf_id, ancestor_id) pairs.
    Returns ancestor_id, *by, value, reported (leaves that contributed), one row per group.

    Written with array operations rather than a join and a group-by: a backfill rolls up hundreds of
    thousands of leaf values per indicator, and this runs in ingest's time.
    """
    columns = ["ancestor_id", *by, "value", "reported"]
    needed = ["numerator", "denominator"] if rule == RollupRule.RATIO else ["value"]
    if not values.empty:
        values = values.dropna(subset=needed)
    if values.empty:
        return pd.DataFrame(columns=columns)
    rows, ancestor_code, ancestor_ids = _expand_to_ancestors(values["leaf_id"].to_numpy(dtype=np.int64), membership)
    if not len(rows):
        return pd.DataFrame(columns=columns)
    # Group codes from small per-column codes: ancestors are a few hundred, buckets a few dozen, so the groups
    # are cells of a dense grid, counted with bincount (no hashing of the expanded rows).
    by_code, by_first = _row_codes([values[name].to_numpy() for name in by], len(values))
    cells = len(ancestor_ids) * len(by_first)
    cell = ancestor_code * len(by_first) + by_code[rows]
    if cells <= 4 * len(cell) + 1024:
        occupied = np.bincount(cell, minlength=cells)
        present = np.flatnonzero(occupied)
        lookup = np.empty(cells, dtype=np.int64)
        lookup[present] = np.arange(len(present))
        group = lookup[cell]
    else:
        group, present = pd.factorize(cell)
        present = np.asarray(present)
    groups = len(present)
    reported = np.bincount(group, minlength=groups)

    def total(column: np.ndarray) -> np.ndarray:
        return np.bincount(group, weights=column, minlength=groups)

    if rule == RollupRule.RATIO:
        numerator = total(values["numerator"].to_numpy(dtype=float)[rows])
        denominator = total(values["denominator"].to_numpy(dtype=float)[rows])
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(denominator != 0, numerator / denominator, np.nan) * scale
    else:
        leaf_value = values["value"].to_numpy(dtype=float)[rows]
        if rule == RollupRule.SUM:
            value = total(leaf_value)
        elif rule == RollupRule.MEAN:
            value = total(leaf_value) / reported
        elif rule == RollupRule.MAX:
            order = np.argsort(group, kind="stable")
            starts = np.flatnonzero(np.r_[True, np.diff(group[order]) != 0])
            value = np.empty(groups)
            value[group[order][starts]] = np.maximum.reduceat(leaf_value[order], starts)
        elif rule == RollupRule.POPULATION_WEIGHTED_MEAN:
            weight = np.nan_to_num(values["weight"].to_numpy(dtype=float)[rows])
            weights = total(weight)
            plain = total(leaf_value) / reported
            # A group whose units all have population 0 falls back to the plain mean rather than 0/0.
            with np.errstate(divide="ignore", invalid="ignore"):
                value = np.where(weights != 0, total(leaf_value * weight) / weights, plain)
        else:  # pragma: no cover - the catalog validates rules
            raise ValueError(f"unknown roll-up rule {rule}")
    result = {"ancestor_id": ancestor_ids[present // len(by_first)]}
    first_row = by_first[present % len(by_first)]
    result.update({name: values[name].to_numpy()[first_row] for name in by})
    result.update(value=value, reported=reported)
    return pd.DataFrame(result, columns=columns)


def _expand_to_ancestors(leaves: np.ndarray, membership: pd.DataFrame):
    """The inner join of leaf values with (leaf, ancestor) pairs, as aligned arrays: for each value position
    (`rows`), one entry per ancestor of its leaf, as a code into `ancestor_ids`. Unknown leaves drop out."""
    known, first, counts, member_codes, ancestor_ids = _membership_index(membership)
    position = np.searchsorted(known, leaves)
    found = position < len(known)
    found[found] = known[position[found]] == leaves[found]
    matched = np.flatnonzero(found)
    per_row = counts[position[matched]]
    rows = np.repeat(matched, per_row)
    within = np.arange(len(rows)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    return rows, member_codes[np.repeat(first[position[matched]], per_row) + within], ancestor_ids


_MEMBERSHIP_INDEXES: dict[int, tuple[pd.DataFrame, tuple]] = {}


def _membership_index(membership: pd.DataFrame) -> tuple:
    """Membership pairs sorted by leaf, as arrays: (leaves, first pair of each, pairs per leaf, ancestor code of
    each pair, ancestor ids). Kept per membership frame (the tree keeps those), since every roll-up asks."""
    cached = _MEMBERSHIP_INDEXES.get(id(membership))
    if cached is not None and cached[0] is membership:
        return cached[1]
    member_leaves = membership["leaf_id"].to_numpy(dtype=np.int64)
    order = np.argsort(member_leaves, kind="stable")
    ancestor_ids, member_codes = np.unique(membership["ancestor_id"].to_numpy(dtype=np.int64)[order],
                                           return_inverse=True)
    known, first, counts = np.unique(member_leaves[order], return_index=True, return_counts=True)
    index = (known, first, counts, member_codes, ancestor_ids)
    if len(_MEMBERSHIP_INDEXES) >= 16:
        _MEMBERSHIP_INDEXES.clear()
    # The frame is kept with its index, so its id cannot be reused by another frame while the entry lives.
    _MEMBERSHIP_INDEXES[id(membership)] = (membership, index)
    return index


def _row_codes(columns: list[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray]:
    """A code per row for the combination of `columns` (0..n-1), and the first row holding each code."""
    code = np.zeros(length, dtype=np.int64)
    for column in columns:
        codes, uniques = pd.factorize(column)
        # Re-numbered after each column, so the combined code stays below the row count (no overflow).
        code, _ = pd.factorize(code * len(uniques) + codes)
    _, first = np.unique(code, return_index=True)
    return code, first


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
                    recent: pd.DataFrame | None = None, left: dict[str, set[int]] | None = None) -> int:
    """Recompute roll-ups for the time buckets that `touched` (key → observed_at values) fell into.

    `recent` (unit_id, indicator_id, observed_at, value) are rows this process has just committed: a bucket
    whose stored rows are exactly these is rolled up from memory instead of being read back (a backfill's
    buckets are); any other bucket is read from the database — unless `left` is given: then those buckets are
    not computed but added to `left` (key → times, as `touched`), for a later pass. Returns the number of
    roll-up rows written. The caller commits.
    """
    written = 0
    held = HeldRows(recent) if recent is not None and not recent.empty else None
    for indicator in dependents(catalog, touched):
        sources = [indicator.numerator, indicator.denominator] if indicator.is_derived else [indicator.key]
        times = set().union(*(touched.get(key, set()) for key in sources))
        if not times:
            continue
        buckets = sorted({bucket_start(t, indicator.interval_seconds, utc_offset_seconds) for t in times})
        skipped: set[int] | None = set() if left is not None else None
        written += _refresh_history(session, indicator, indicator_ids, tree, buckets, utc_offset_seconds, held,
                                    skipped)
        for key in sources if skipped else ():
            # Both ends of each bucket, so the sources' own buckets (of any interval) cover it.
            left.setdefault(key, set()).update(t for b in skipped for t in (b, b + indicator.interval_seconds - 1))
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
                    now: int, utc_offset_seconds: int = 0, recent: pd.DataFrame | None = None,
                    held_only: bool = False) -> int:
    """Compute every queued bucket's roll-ups and clear the queue, in the caller's transaction. With
    `held_only`, only the buckets `recent` holds whole; the others stay queued (a run letting go of the rows it
    holds, midway: a bucket it must read back now would likely be read back again at its end)."""
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
    left: dict[str, set[int]] | None = {} if held_only else None
    written = refresh_rollups(session, catalog, indicator_ids, tree, touched, now, utc_offset_seconds, recent, left)
    if left:
        queue_rollups(session, catalog, indicator_ids, left, utc_offset_seconds)
    return written


def _leaf_frame(indicator: Indicator, tree: UnitTree) -> tuple[pd.DataFrame, pd.Series]:
    membership = tree.membership(indicator.level, include_self=indicator.is_derived)
    expected = tree.leaf_counts(indicator.level, include_self=indicator.is_derived).rename("expected")
    return membership, expected


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


def _refresh_history(session, indicator, ids, tree, buckets, offset, recent: HeldRows | None = None,
                     skipped: set[int] | None = None) -> int:
    membership, expected = _leaf_frame(indicator, tree)
    step = indicator.interval_seconds
    written = 0
    sources = [ids[indicator.numerator], ids[indicator.denominator]] if indicator.is_derived else [ids[indicator.key]]
    in_memory = buckets_held_in(recent, session, sources, int(indicator.level), buckets, step, offset)
    from_database = [b for b in buckets if b not in in_memory]
    if skipped is not None:
        skipped.update(from_database)
        from_database = []
    for start, end, reader, wanted in [
        *((start, end, recent.window, in_memory) for start, end in bucket_windows(sorted(in_memory), step)),
        *((start, end, partial(read_window, session, int(indicator.level)), set(from_database))
          for start, end in bucket_windows(from_database, step)),
    ]:
        values = _leaf_values(session, indicator, ids, tree,
                              lambda ident: latest_per_bucket(reader(ident, start, end), step, offset))
        rolled = aggregate(values, membership, indicator.rollup, indicator.scale, by=("bucket_start",))
        # Only the buckets asked for: a window also spans untouched buckets, and the rows held in memory are not
        # all the rows of those.
        rolled = rolled[rolled["bucket_start"].isin(wanted)] if not rolled.empty else rolled
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
                       .where(CurrentValue.indicator_id == indicator_id), LEAF_COLUMNS, LEAF_TYPES)


def _refresh_current(session, indicator, ids, tree, now: int) -> int:
    """The live roll-up: each leaf's latest value counts while it is within its expected interval."""
    membership, expected = _leaf_frame(indicator, tree)
    # Fresh as in cityops.status.is_stale: a value is stale only when *older* than the grace period.
    fresh_from = now - indicator.interval_seconds * STALE_GRACE
    everything = _leaf_values(session, indicator, ids, tree, lambda ident: _read_current(session, ident))
    latest = aggregate(pd.DataFrame({"leaf_id": everything["leaf_id"].to_numpy(),
                                     "value": everything["observed_at"].to_numpy(dtype=float)}),
                       membership, RollupRule.MAX).set_index("ancestor_id")["value"]
    fresh = everything[everything["observed_at"] >= fresh_from].drop(columns="observed_at")
    rolled = aggregate(fresh, membership, indicator.rollup, indicator.scale).set_index("ancestor_id")
    units = expected.index
    value = rolled["value"].reindex(units).to_numpy(dtype=float)
    reported = rolled["reported"].reindex(units).fillna(0).to_numpy(dtype=np.int64)
    last = latest.reindex(units).to_numpy(dtype=float)
    rows = list(zip(units.astype("int64").tolist(), [ids[indicator.key]] * len(units), [now] * len(units),
                    [None if v != v else v for v in value.tolist()], reported.tolist(),
                    expected.to_numpy(dtype=np.int64).tolist(), [None if t != t else int(t) for t in last.tolist()]))
    placeholder = "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"
    session.connection().exec_driver_sql(_UPSERT_CURRENT_ROLLUP.format(p=placeholder), rows)
    return len(rows)


_UPSERT_CURRENT_ROLLUP = (
    "INSERT INTO current_rollups (unit_id, indicator_id, as_of, value, reported, expected, latest_observed_at) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}) ON CONFLICT (unit_id, indicator_id) DO UPDATE SET "
    "as_of = excluded.as_of, value = excluded.value, reported = excluded.reported, expected = excluded.expected, "
    "latest_observed_at = excluded.latest_observed_at "
    # A slower run finishing after a newer one must not put older numbers back.
    "WHERE current_rollups.as_of <= excluded.as_of"
)
