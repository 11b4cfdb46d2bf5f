"""Time buckets (`bucket_start`), the windows of buckets read together, and the rows a run holds answering for
the database.

The tests of the roll-ups computed from these are in test_rollup.py.
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from cityops.buckets import (MAX_WINDOW_SECONDS, HeldRows, bucket_start, bucket_windows, buckets_held_in,
                             latest_per_bucket, read_window)
from cityops.hierarchy import Level

SHANGHAI = ZoneInfo("Asia/Shanghai")
EIGHT_HOURS = 8 * 3600


def epoch(*parts, zone=timezone.utc) -> int:
    return int(datetime(*parts, tzinfo=zone).timestamp())


def test_bucket_start_for_sub_daily_intervals_ignores_the_offset():
    t = epoch(2026, 11, 26, 2, 47, 13)
    assert bucket_start(t, 3600) == epoch(2026, 11, 26, 2, 0)
    assert bucket_start(t, 3600, EIGHT_HOURS) == epoch(2026, 11, 26, 2, 0)
    assert bucket_start(t, 300, EIGHT_HOURS) == epoch(2026, 11, 26, 2, 45)
    assert bucket_start(t, 900) == epoch(2026, 11, 26, 2, 45)
    assert bucket_start(epoch(2026, 11, 26, 3, 0), 3600) == epoch(2026, 11, 26, 3, 0)  # a start is its own bucket


def test_daily_buckets_start_at_local_midnight():
    # 10:30 in Shanghai on the 26th belongs to the Shanghai day that began at 00:00 local = 16:00 UTC on the 25th.
    assert bucket_start(epoch(2026, 11, 26, 10, 30, zone=SHANGHAI), 86400, EIGHT_HOURS) == \
        epoch(2026, 11, 26, 0, 0, zone=SHANGHAI) == epoch(2026, 11, 25, 16, 0)
    # 07:59 local is still the 26th locally though it is the 25th in UTC.
    assert bucket_start(epoch(2026, 11, 26, 7, 59, zone=SHANGHAI), 86400, EIGHT_HOURS) == \
        epoch(2026, 11, 26, 0, 0, zone=SHANGHAI)
    # 23:59 local on the 26th (15:59 UTC) and 00:00 local on the 27th fall either side of a boundary.
    assert bucket_start(epoch(2026, 11, 26, 23, 59, 59, zone=SHANGHAI), 86400, EIGHT_HOURS) == \
        epoch(2026, 11, 26, 0, 0, zone=SHANGHAI)
    assert bucket_start(epoch(2026, 11, 27, 0, 0, zone=SHANGHAI), 86400, EIGHT_HOURS) == \
        epoch(2026, 11, 27, 0, 0, zone=SHANGHAI)
    # Without an offset a day is a UTC day.
    assert bucket_start(epoch(2026, 11, 26, 10, 30, zone=SHANGHAI), 86400) == epoch(2026, 11, 26, 0, 0)


@settings(deadline=None)
@given(st.integers(0, 4_000_000_000), st.sampled_from([300, 900, 3600, 86400, 2 * 86400]),
       st.sampled_from([0, EIGHT_HOURS, -5 * 3600, 5 * 3600 + 1800]))
def test_bucket_start_holds_the_time_and_is_aligned(t, interval, offset):
    start = bucket_start(t, interval, offset)
    assert start <= t < start + interval
    effective = offset if interval >= 86400 else 0
    assert (start + effective) % interval == 0
    assert bucket_start(start, interval, offset) == start

# ------------------------------------------------------------------------------------------------
# Windows of buckets
# ------------------------------------------------------------------------------------------------


@given(st.lists(st.integers(0, 3000), unique=True, max_size=300), st.sampled_from([300, 900, 3600, 86400]))
def test_windows_hold_every_bucket_once_and_stay_bounded(slots, step):
    buckets = sorted(slot * step for slot in slots)
    windows = bucket_windows(buckets, step)
    assert all(end - start <= max(MAX_WINDOW_SECONDS, step) for start, end in windows)
    assert all(previous[1] <= following[0] for previous, following in zip(windows, windows[1:]))
    for bucket in buckets:
        assert sum(start <= bucket and bucket + step <= end for start, end in windows) == 1


def test_hourly_readings_of_a_fifteen_minute_indicator_are_read_in_one_window():
    hour = epoch(2026, 11, 26, 2, 0)
    hours = [hour + 3600 * n for n in range(48)]
    assert bucket_windows(hours, 900) == [(hour, hour + 47 * 3600 + 900)]


# ------------------------------------------------------------------------------------------------
# Rows held in memory answer as the database would
# ------------------------------------------------------------------------------------------------

STREETS = ["990101001", "990101002", "990102001", "990102002"]
QUARTER = 900


def test_held_rows_read_the_same_window_as_the_database(sqlite_city_db):
    """A run's committed rows, held in memory, give exactly what reading the same window back would."""
    hour = epoch(2026, 11, 26, 2, 0)
    observations = [(street, key, hour + 300 * k + n, 40.0 + 10 * n + k)
                    for n, street in enumerate(STREETS) for k in range(-6, 7) for key in ("noise", "aqi")]
    sqlite_city_db.store(observations)
    held = HeldRows(pd.DataFrame(sqlite_city_db.rows(observations)))
    with sqlite_city_db.session() as session:
        for key in ("noise", "aqi"):
            ident = sqlite_city_db.indicator_ids[key]
            for start, end in [(hour - 1800, hour), (hour, hour + QUARTER), (hour - 7200, hour + 7200)]:
                stored = read_window(session, int(Level.STREET), ident, start, end)
                in_memory = held.window(ident, start, end)
                assert sorted(map(tuple, stored.to_numpy().tolist())) == \
                    sorted(map(tuple, in_memory.to_numpy().tolist())), (key, start)
                assert len(stored) > 0
            assert buckets_held_in(held, session, [ident], int(Level.STREET),
                                   [hour - QUARTER, hour, hour + QUARTER], QUARTER, 0) == \
                {hour - QUARTER, hour, hour + QUARTER}


def test_rows_another_run_stored_in_a_bucket_make_it_not_held(sqlite_city_db):
    hour = epoch(2026, 11, 26, 2, 0)
    sqlite_city_db.store([(STREETS[0], "noise", hour + 60, 50)])  # an earlier run's reading
    mine = [(STREETS[1], "noise", hour + 120, 60), (STREETS[1], "noise", hour + QUARTER, 70)]
    sqlite_city_db.store(mine)
    held = HeldRows(pd.DataFrame(sqlite_city_db.rows(mine)))
    ident = sqlite_city_db.indicator_ids["noise"]
    with sqlite_city_db.session() as session:
        assert buckets_held_in(held, session, [ident], int(Level.STREET), [hour, hour + QUARTER], QUARTER, 0) == \
            {hour + QUARTER}


def test_latest_per_bucket_keeps_each_leafs_last_value_in_each_local_day():
    day = epoch(2026, 11, 26, 0, 0, zone=SHANGHAI)
    frame = pd.DataFrame({"leaf_id": [1, 1, 1, 2], "observed_at": [day + 3600, day + 7200, day - 60, day + 60],
                          "value": [1.0, 2.0, 3.0, 4.0]})
    latest = latest_per_bucket(frame, 86400, EIGHT_HOURS)
    assert sorted(map(tuple, latest[["leaf_id", "bucket_start", "value"]].to_numpy().tolist())) == \
        [(1, day - 86400, 3.0), (1, day, 2.0), (2, day, 4.0)]
