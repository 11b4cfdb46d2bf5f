"""The one status language: breach levels, severity for ranking, staleness and source freshness."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityops.catalog import Direction, Thresholds
from cityops.status import STALE_GRACE, Status, breach_level, is_stale, severity, source_freshness, status_of

WORSE = Direction.HIGHER_IS_WORSE
BETTER = Direction.HIGHER_IS_BETTER
UP = Thresholds(warning=10.0, critical=20.0)       # higher is worse
DOWN = Thresholds(warning=90.0, critical=80.0)     # higher is better


@pytest.mark.parametrize("value, expected", [
    (-5.0, Status.NORMAL), (0.0, Status.NORMAL), (9.999, Status.NORMAL),
    (10.0, Status.WARNING), (10.001, Status.WARNING), (19.999, Status.WARNING),
    (20.0, Status.CRITICAL), (20.001, Status.CRITICAL), (1e9, Status.CRITICAL),
])
def test_breach_level_higher_is_worse_at_and_around_thresholds(value, expected):
    assert breach_level(value, UP, WORSE) == expected


@pytest.mark.parametrize("value, expected", [
    (100.0, Status.NORMAL), (90.001, Status.NORMAL),
    (90.0, Status.WARNING), (89.999, Status.WARNING), (80.001, Status.WARNING),
    (80.0, Status.CRITICAL), (79.999, Status.CRITICAL), (0.0, Status.CRITICAL),
])
def test_breach_level_higher_is_better_at_and_around_thresholds(value, expected):
    assert breach_level(value, DOWN, BETTER) == expected


def test_breach_level_without_value_or_thresholds():
    assert breach_level(None, UP, WORSE) == Status.NO_DATA
    assert breach_level(float("nan"), UP, WORSE) == Status.NO_DATA
    assert breach_level(1e9, None, WORSE) == Status.NORMAL
    assert breach_level(-1e9, None, BETTER) == Status.NORMAL


@settings(deadline=None)
@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.floats(0.001, 1e6))
def test_directions_mirror_each_other(value, warning, gap):
    """Negating value and thresholds turns higher-is-worse into higher-is-better with the same status."""
    worse = Thresholds(warning, warning + gap)
    better = Thresholds(-warning, -(warning + gap))
    assert breach_level(value, worse, WORSE) == breach_level(-value, better, BETTER)


def test_severity_is_zero_at_warning_one_at_critical_for_both_directions():
    assert severity(10.0, UP, WORSE) == 0.0
    assert severity(20.0, UP, WORSE) == 1.0
    assert severity(15.0, UP, WORSE) == 0.5
    assert severity(5.0, UP, WORSE) == -0.5
    assert severity(90.0, DOWN, BETTER) == 0.0
    assert severity(80.0, DOWN, BETTER) == 1.0
    assert severity(70.0, DOWN, BETTER) == 2.0
    assert severity(95.0, DOWN, BETTER) == -0.5
    assert severity(None, UP, WORSE) == -math.inf
    assert severity(15.0, None, WORSE) == -math.inf


def test_severity_ranks_worse_values_higher_in_both_directions():
    worse_ranked = sorted([12.0, 30.0, 5.0, 20.0], key=lambda v: severity(v, UP, WORSE), reverse=True)
    assert worse_ranked == [30.0, 20.0, 12.0, 5.0]
    better_ranked = sorted([85.0, 60.0, 95.0, 80.0], key=lambda v: severity(v, DOWN, BETTER), reverse=True)
    assert better_ranked == [60.0, 80.0, 85.0, 95.0]


@settings(deadline=None)
@given(st.floats(-1e6, 1e6, allow_nan=False), st.floats(-1e6, 1e6, allow_nan=False))
def test_severity_order_agrees_with_breach_order(a, b):
    """A value with a worse status never ranks below one with a better status."""
    rank = {Status.NORMAL: 0, Status.WARNING: 1, Status.CRITICAL: 2}
    for thresholds, direction in ((UP, WORSE), (DOWN, BETTER)):
        if rank[breach_level(a, thresholds, direction)] > rank[breach_level(b, thresholds, direction)]:
            assert severity(a, thresholds, direction) > severity(b, thresholds, direction)


def test_stale_after_one_and_a_quarter_intervals():
    interval, now = 3600, 1_000_000
    assert STALE_GRACE == 1.25
    assert not is_stale(now, now, interval)
    assert not is_stale(now - 4500, now, interval)        # exactly 1.25 × interval: still fresh
    assert is_stale(now - 4501, now, interval)
    assert is_stale(None, now, interval)


def test_status_of_stale_beats_breach_and_missing_is_no_data():
    now = 1_000_000
    assert status_of(25.0, now - 60, now, 3600, UP, WORSE) == Status.CRITICAL
    assert status_of(25.0, now - 4501, now, 3600, UP, WORSE) == Status.STALE
    assert status_of(5.0, now - 4501, now, 3600, UP, WORSE) == Status.STALE
    assert status_of(None, now, now, 3600, UP, WORSE) == Status.NO_DATA
    assert status_of(25.0, None, now, 3600, UP, WORSE) == Status.NO_DATA
    assert status_of(85.0, now, now, 86400, DOWN, BETTER) == Status.WARNING


@pytest.mark.parametrize("age, expected", [
    (0, "fresh"), (300, "fresh"), (600, "fresh"), (601, "late"), (1800, "late"), (1801, "silent"), (86400, "silent"),
])
def test_source_freshness(age, expected):
    now = 1_000_000
    assert source_freshness(now - age, 300, now) == expected


def test_source_that_never_delivered_is_silent():
    assert source_freshness(None, 300, 1_000_000) == "silent"


def test_source_health_uses_the_last_run_that_delivered(sqlite_url):
    from sqlalchemy import text

    from cityops.db import session_scope
    from cityops.sources import SourceHealth, source_health

    now = 1_000_000
    with session_scope(sqlite_url) as session:
        session.execute(text(
            "INSERT INTO connector_runs (connector, started_at, finished_at, status, fetched, accepted, rejected, "
            "duplicates) VALUES ('a', 0, :ok, 'ok', 0, 0, 0, 0), ('a', 0, :failed, 'failed', 0, 0, 0, 0), "
            "('b', 0, :partial, 'partial', 0, 0, 0, 0), ('c', 0, :failed, 'failed', 0, 0, 0, 0)"),
            {"ok": now - 900, "failed": now - 10, "partial": now - 3000})
    with session_scope(sqlite_url) as session:
        health = source_health(session, {"a": 300, "b": 300, "c": 300, "d": 60}, now)
    assert health == [SourceHealth("a", now - 900, "late"), SourceHealth("b", now - 3000, "silent"),
                      SourceHealth("c", None, "silent"), SourceHealth("d", None, "silent")]
