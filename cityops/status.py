"""The one status language: normal · warning · critical · stale · no data, decided in one place."""

from __future__ import annotations

import math
from enum import StrEnum

from cityops.catalog import Direction, Thresholds

# A value may arrive a little after its interval (clock skew, a slow source) before it counts as stale.
STALE_GRACE = 1.25


class Status(StrEnum):
    NORMAL = "normal"
    WARNING = "warning"
    CRITICAL = "critical"
    STALE = "stale"
    NO_DATA = "nodata"


def breach_level(value: float | None, thresholds: Thresholds | None, direction: Direction) -> Status:
    """Normal, warning or critical for a value against its thresholds; no data for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Status.NO_DATA
    if thresholds is None:
        return Status.NORMAL
    if direction == Direction.HIGHER_IS_WORSE:
        if value >= thresholds.critical:
            return Status.CRITICAL
        if value >= thresholds.warning:
            return Status.WARNING
        return Status.NORMAL
    if value <= thresholds.critical:
        return Status.CRITICAL
    if value <= thresholds.warning:
        return Status.WARNING
    return Status.NORMAL


def is_stale(observed_at: int | None, now: int, interval_seconds: int) -> bool:
    return observed_at is None or now - observed_at > interval_seconds * STALE_GRACE


def status_of(value: float | None, observed_at: int | None, now: int, interval_seconds: int,
              thresholds: Thresholds | None, direction: Direction) -> Status:
    """What the screen shows: a stale value is stale whatever it says; otherwise its breach level."""
    if value is None or observed_at is None:
        return Status.NO_DATA
    if is_stale(observed_at, now, interval_seconds):
        return Status.STALE
    return breach_level(value, thresholds, direction)


def severity(value: float | None, thresholds: Thresholds | None, direction: Direction) -> float:
    """How far past its warning line a value is, in units of the warning→critical gap (for ranking).

    0 at the warning line, 1 at the critical line; negative when normal. Comparable across indicators.
    """
    if value is None or thresholds is None:
        return float("-inf")
    # For higher-is-better the gap is negative, so falling values rank higher: one formula serves both.
    return (value - thresholds.warning) / (thresholds.critical - thresholds.warning)


def source_freshness(last_success: int | None, interval_seconds: int, now: int) -> str:
    """fresh: delivered within about one schedule interval; late: missed a few runs; silent: gone quiet."""
    if last_success is None:
        return "silent"
    age = now - last_success
    if age <= interval_seconds * 2:
        return "fresh"
    if age <= interval_seconds * 6:
        return "late"
    return "silent"
