"""Time buckets, and the observations of a run of buckets, read from the database or from rows held in memory.

Roll-ups are kept per indicator and time bucket (`bucket_start`). The buckets an ingest touched are read a window
of neighbouring buckets at a time (`bucket_windows`): from the database (`read_window`), or — for the buckets whose
stored rows are exactly rows a run has just committed and still holds (`HeldRows`, `buckets_held_in`) — from memory.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from cityops.models import Observation, Unit
from cityops.storage import fetch_frame


def bucket_start(observed_at, interval_seconds: int, utc_offset_seconds: int = 0):
    """The start of the interval bucket holding a time (or each time of an array or Series); buckets of a day or
    more start at local midnight."""
    offset = utc_offset_seconds if interval_seconds >= 86400 else 0
    return (observed_at + offset) // interval_seconds * interval_seconds - offset


# One window read and rolled up at a time covers at most this much time (bounded memory for long backfills).
MAX_WINDOW_SECONDS = 7 * 86400
# Buckets this close together are read in one window, the untouched buckets between them too (and not written):
# hourly readings of a 15-minute indicator touch every fourth bucket, and one read per bucket would cost a query,
# a merge and an aggregation each.
MAX_GAP_SECONDS = 3600


def bucket_windows(buckets: list[int], step: int) -> list[tuple[int, int]]:
    """[start, end) windows covering the sorted `buckets`, each bucket in exactly one."""
    gap = max(step, MAX_GAP_SECONDS)
    windows: list[tuple[int, int]] = []
    for start in buckets:
        if windows and start - windows[-1][1] < gap and start + step - windows[-1][0] <= MAX_WINDOW_SECONDS:
            windows[-1] = (windows[-1][0], start + step)
        else:
            windows.append((start, start + step))
    return windows


def _window_clause(indicator_id: int, level: int, start: int, end: int):
    """Observations of one indicator in [start, end), reached through the units at its level: one primary-key
    range per unit, the fastest path to them (see migrations 0002)."""
    return (select().select_from(Unit).join(Observation, and_(
        Observation.unit_id == Unit.id, Observation.indicator_id == indicator_id,
        Observation.observed_at >= start, Observation.observed_at < end)).where(Unit.level == level))


LEAF_COLUMNS = ["leaf_id", "observed_at", "value"]  # a leaf's value as read back, from history or current values
LEAF_TYPES = ["int64", "int64", "float64"]


def read_window(session: Session, level: int, indicator_id: int, start: int, end: int) -> pd.DataFrame:
    """The stored observations of one indicator at its level in [start, end), as LEAF_COLUMNS."""
    return fetch_frame(session, _window_clause(indicator_id, level, start, end).add_columns(
        Observation.unit_id, Observation.observed_at, Observation.value), LEAF_COLUMNS, LEAF_TYPES)


class HeldRows:
    """Committed rows held in memory, split by indicator once and sorted by time, so that each bucket window
    is two binary searches rather than a scan of every row held."""

    def __init__(self, recent: pd.DataFrame):
        # One ordering of the plain columns (by indicator, then time) and a slice of it per indicator: a sorted
        # copy of the frame and a copy per group would hold the rows three times, at the peak of a run's memory.
        indicators = recent["indicator_id"].to_numpy()
        ids, counts = np.unique(indicators, return_counts=True)
        order = np.lexsort((recent["observed_at"].to_numpy(), indicators))
        times, units = recent["observed_at"].to_numpy(dtype=np.int64)[order], recent["unit_id"].to_numpy()[order]
        values = recent["value"].to_numpy()[order]
        del order
        ends = np.cumsum(counts)  # in that order the indicators' rows follow one another, lowest id first
        self._by_indicator = {int(ident): (times[end - count:end], units[end - count:end], values[end - count:end])
                              for ident, count, end in zip(ids.tolist(), counts.tolist(), ends.tolist())}

    def __bool__(self) -> bool:
        return bool(self._by_indicator)

    def times(self, indicator_id: int) -> np.ndarray:
        return self._by_indicator.get(indicator_id, (np.empty(0, dtype=np.int64),))[0]

    def window(self, indicator_id: int, start: int, end: int) -> pd.DataFrame:
        """A `read_window` over the rows held."""
        times, units, values = self._by_indicator.get(indicator_id, (np.empty(0, dtype=np.int64),) * 3)
        low, high = np.searchsorted(times, [start, end])
        return pd.DataFrame({"leaf_id": units[low:high], "observed_at": times[low:high], "value": values[low:high]})


def _bucket_counts(observed_at, step: int, offset: int) -> dict[int, int]:
    starts, counts = np.unique(bucket_start(np.asarray(observed_at, dtype=np.int64), step, offset),
                               return_counts=True)
    return dict(zip(starts.tolist(), counts.tolist()))


def buckets_held_in(recent: HeldRows | None, session: Session, sources: list[int], level: int,
                    buckets: list[int], step: int, offset: int) -> set[int]:
    """The buckets whose stored rows, for every source indicator, are exactly the rows held in `recent`.

    Counting is enough: `recent` holds committed rows, so equal counts mean the same rows. Rows another
    run wrote into the same bucket make the counts differ, and that bucket is read from the database.
    """
    if not recent or not buckets:
        return set()
    local = offset if step >= 86400 else 0
    low, high = buckets[0], buckets[-1] + step
    held = set(buckets)
    for source in sources:
        rows = recent.times(source)
        in_memory = _bucket_counts(rows, step, offset)
        window = _window_clause(source, level, low, high)
        # Stored rows include the ones held, so equal totals over the window mean equal counts in every bucket:
        # one count answers for all of them (a backfill's case). Otherwise count bucket by bucket.
        stored_total = session.scalar(window.add_columns(func.count()))
        held_total = int(((rows >= low) & (rows < high)).sum())
        if stored_total == held_total:
            held = {b for b in held if b in in_memory}
            continue
        if 2 * held_total < stored_total:
            # Most of the window's rows were committed before the ones held: few buckets can be whole in memory,
            # and counting bucket by bucket costs a pass over the window, about what reading those back would.
            return set()
        bucket = (Observation.observed_at + local) // step
        stored = dict(session.execute(window.add_columns(bucket, func.count()).group_by(bucket)).all())
        held = {b for b in held if b in in_memory and stored.get((b + local) // step) == in_memory[b]}
    return held


def latest_per_bucket(frame: pd.DataFrame, interval: int, offset: int) -> pd.DataFrame:
    """Each leaf's latest value in each bucket: LEAF_COLUMNS in, `bucket_start` instead of `observed_at` out."""
    if frame.empty:
        return frame.drop(columns="observed_at").assign(bucket_start=pd.Series(dtype="int64"))
    frame = frame.assign(bucket_start=bucket_start(frame["observed_at"], interval, offset))
    frame = frame.sort_values("observed_at").drop_duplicates(["leaf_id", "bucket_start"], keep="last")
    return frame.drop(columns="observed_at")
