"""When a breach becomes an alert, and when an alert is over: one state machine for every kind of rule.

A rule (cityops/alerts/judgements.py) turns a unit's data into *judgements*: at each time, breaching (with a
severity) or not. This module decides what those mean for the (rule, unit) pair's *episode*:

- a breach starts an episode, **pending**; it **fires** once the breach has held `for_seconds` (at once with 0);
  a judgement without breach before then ends the episode quietly (a blip is not an alert);
- while firing, a higher severity than any notified so far **escalates** (notified once per escalation);
- a firing episode **resolves** only after `keep_firing_for` seconds without breach: a value that dips under the
  threshold and climbs back keeps one alert, rather than a resolve and a new alert each time (flapping).

Evaluation is incremental and idempotent: an episode remembers the newest judgement it has taken in
(`evaluated_to`), and judgements at or before it are ignored, so evaluating the same data twice — or a window
that overlaps the last one — changes nothing and notifies nothing. An episode is identified by when its breach
began (`started_at`): storage keys alerts by (rule, unit, started_at), so even a state lost and rebuilt from
scratch does not create a second alert for the same breach.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Iterable


class Severity(StrEnum):
    """The two alert severities, named as the screen's status colours (normal · warning · critical)."""

    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return 1 if self is Severity.WARNING else 2


class Phase(StrEnum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"


class Change(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Judgement:
    """At `at`, the rule's verdict on one unit: breaching with `severity`, or not (None). `value` is what was
    judged (the reading, the change, the z-score, the gap...), for the alert's evidence."""

    at: int
    severity: Severity | None
    value: float | None = None


@dataclass(frozen=True)
class Episode:
    """One (rule, unit) pair's state between evaluations."""

    phase: Phase = Phase.OK
    started_at: int | None = None       # the first breaching judgement of the current episode
    fired_at: int | None = None
    last_breach_at: int | None = None
    severity: Severity | None = None    # the highest severity of the episode so far
    notified: Severity | None = None    # the severity last notified (when it fired or escalated)
    value: float | None = None          # the judged value at the last breach
    evaluated_to: int | None = None     # the newest judgement taken in


@dataclass(frozen=True)
class Transition:
    change: Change
    at: int
    started_at: int                      # the episode's identity
    severity: Severity
    value: float | None


def advance(episode: Episode, judgements: Iterable[Judgement], for_seconds: int,
            keep_firing_for: int) -> tuple[Episode, list[Transition]]:
    """Take in judgements (any order; those at or before `episode.evaluated_to` are ignored) and return the new
    episode and what changed, oldest first."""
    changes: list[Transition] = []
    for judgement in sorted(judgements, key=lambda j: j.at):
        if episode.evaluated_to is not None and judgement.at <= episode.evaluated_to:
            continue
        episode = _take(episode, judgement, for_seconds, keep_firing_for, changes)
        episode = replace(episode, evaluated_to=judgement.at)
    return episode, changes


def _take(episode: Episode, judgement: Judgement, for_seconds: int, keep_firing_for: int,
          changes: list[Transition]) -> Episode:
    at, severity, value = judgement.at, judgement.severity, judgement.value
    if severity is None:
        if episode.phase is Phase.PENDING:
            return Episode()  # a blip shorter than `for`: no alert, nothing notified
        if episode.phase is Phase.FIRING and at - episode.last_breach_at >= keep_firing_for:
            changes.append(Transition(Change.RESOLVED, at, episode.started_at, episode.severity, value))
            return Episode()
        return episode  # quiet, or firing on until keep_firing_for has passed without breach
    if episode.phase is Phase.OK:
        episode = Episode(Phase.PENDING, started_at=at, severity=severity)
        if for_seconds > 0:
            changes.append(Transition(Change.PENDING, at, at, severity, value))
    highest = severity if severity.rank > episode.severity.rank else episode.severity
    episode = replace(episode, last_breach_at=at, severity=highest, value=value)
    if episode.phase is Phase.PENDING:
        if at - episode.started_at < for_seconds:
            return episode
        changes.append(Transition(Change.FIRING, at, episode.started_at, highest, value))
        return replace(episode, phase=Phase.FIRING, fired_at=at, notified=highest)
    if severity.rank > episode.notified.rank:
        changes.append(Transition(Change.ESCALATED, at, episode.started_at, severity, value))
        return replace(episode, notified=severity)
    return episode
