"""What each kind of rule says about a unit's data: at each time, breaching (warning or critical) or not.

Pure functions over plain numbers, one per rule type; cityops/alerts/episodes.py turns their judgements into
alerts. Readings are (time, value) pairs — a unit's values for one indicator, usually its roll-up buckets.
A missing value is never a breach here: silence is its own rule (`silence`), so "no data" and "too high" are
never confused on the screen.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Iterable, Mapping

import numpy as np

from cityops.alerts.episodes import Judgement, Severity
from cityops.catalog import Direction, Thresholds
from cityops.status import STALE_GRACE

WEEK = 7 * 86400
# The median absolute deviation of a normal distribution is 0.6745 σ: scaled by this, MAD estimates σ.
MAD_TO_SIGMA = 1.4826


class Worse(StrEnum):
    """Which way a change or a deviation is bad."""

    UP = "up"
    DOWN = "down"
    EITHER = "either"

    @classmethod
    def of(cls, direction: Direction) -> "Worse":
        return cls.UP if direction == Direction.HIGHER_IS_WORSE else cls.DOWN


def _present(value: float | None) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _graded(score: float, warning: float, critical: float) -> Severity | None:
    """Severity of a non-negative score against its two limits."""
    if score >= critical:
        return Severity.CRITICAL
    if score >= warning:
        return Severity.WARNING
    return None


def _signed(score: float, worse: Worse) -> float:
    """The part of a signed score that counts as bad (0 when it goes the harmless way)."""
    if worse is Worse.UP:
        return max(score, 0.0)
    if worse is Worse.DOWN:
        return max(-score, 0.0)
    return abs(score)


def threshold(readings: Iterable[tuple[int, float | None]], limits: Thresholds,
              direction: Direction) -> list[Judgement]:
    """Each reading against the warning and critical thresholds (the catalog's, for the unit's level)."""
    judgements = []
    for at, value in readings:
        if not _present(value):
            continue
        if direction == Direction.HIGHER_IS_WORSE:
            severity = (Severity.CRITICAL if value >= limits.critical else
                        Severity.WARNING if value >= limits.warning else None)
        else:
            severity = (Severity.CRITICAL if value <= limits.critical else
                        Severity.WARNING if value <= limits.warning else None)
        judgements.append(Judgement(at, severity, float(value)))
    return judgements


def change(readings: Iterable[tuple[int, float | None]], reference: Mapping[int, float | None], offset: int,
           warning_pct: float, critical_pct: float, worse: Worse, min_base: float) -> list[Judgement]:
    """Each reading against the one `offset` seconds earlier (the previous period, or 7 days for the same hour
    last week), as a percentage change. A reading whose reference is missing, or smaller than `min_base` in
    size (a jump from 0 to 1 is not +∞ %), is not judged. The judged value is the change in percent."""
    judgements = []
    for at, value in readings:
        base = reference.get(at - offset)
        if not _present(value) or not _present(base) or abs(base) < min_base:
            continue
        percent = (value - base) / abs(base) * 100.0
        judgements.append(Judgement(at, _graded(_signed(percent, worse), warning_pct, critical_pct), percent))
    return judgements


def anomaly(readings: Iterable[tuple[int, float | None]], history: Mapping[int, float | None], weeks: int,
            warning_z: float, critical_z: float, worse: Worse, min_samples: int = 3,
            min_spread: float = 1e-9) -> list[Judgement]:
    """Each reading's robust z-score against the same hour of the week in the `weeks` before it:
    (value − median) / (1.4826 × MAD). Fewer than `min_samples` past values: not judged. A baseline without
    spread (every week the same) uses `min_spread` as its σ, so any departure from it stands out. The judged
    value is the z-score."""
    judgements = []
    for at, value in readings:
        if not _present(value):
            continue
        past = [history.get(at - WEEK * k) for k in range(1, weeks + 1)]
        past = np.array([v for v in past if _present(v)], dtype=float)
        if len(past) < min_samples:
            continue
        centre = float(np.median(past))
        sigma = max(MAD_TO_SIGMA * float(np.median(np.abs(past - centre))), min_spread)
        z = (value - centre) / sigma
        judgements.append(Judgement(at, _graded(_signed(z, worse), warning_z, critical_z), z))
    return judgements


def consistency(reported: Iterable[tuple[int, float | None]], summed: Mapping[int, float | None],
                warning_pct: float, critical_pct: float, min_base: float) -> list[Judgement]:
    """A unit's own reported total against the sum of what its children reported for the same time, as the
    percentage difference (of the larger of the two, at least `min_base`): where information islands disagree.
    Times without both figures are not judged. The judged value is the difference in percent."""
    judgements = []
    for at, value in reported:
        total = summed.get(at)
        if not _present(value) or not _present(total):
            continue
        percent = abs(value - total) / max(abs(value), abs(total), min_base) * 100.0
        judgements.append(Judgement(at, _graded(percent, warning_pct, critical_pct), percent))
    return judgements


def silence(latest_observed_at: int | None, now: int, interval_seconds: int, critical_after: float,
            first_seen_at: int | None = None) -> Judgement:
    """Whether a unit (or a source) has gone quiet, at `now`: warning once its newest value is older than its
    expected interval allows (the screen's stale mark, interval × 1.25), critical after `critical_after`
    intervals. A unit that never reported is judged from `first_seen_at` (when it was expected to start).
    The judged value is the silence in seconds."""
    since = latest_observed_at if latest_observed_at is not None else first_seen_at
    if since is None:
        return Judgement(now, None, None)
    quiet = now - since
    severity = _graded(quiet / interval_seconds, STALE_GRACE, critical_after) if quiet > 0 else None
    if severity is Severity.WARNING and quiet <= interval_seconds * STALE_GRACE:
        severity = None  # exactly at the grace limit still counts as fresh, as on the screen
    return Judgement(now, severity, float(quiet))
