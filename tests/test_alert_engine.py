"""The alert engine as pure functions: rule judgements and the episode state machine, with properties.

Properties (hypothesis): evaluating the same data again creates nothing new; evaluating in pieces equals
evaluating at once; one breach fires once; recovery resolves; flapping under `keep_firing_for` stays one alert;
a breach shorter than `for` never fires; no data is never a breach, and silence is its own judgement.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cityops.alerts import judgements as judge
from cityops.alerts.episodes import Change, Episode, Judgement, Phase, Severity, advance
from cityops.catalog import Direction, Thresholds

MINUTE = 60
HOUR = 3600
SEVERITIES = st.sampled_from([None, None, Severity.WARNING, Severity.CRITICAL])


@st.composite
def timelines(draw, max_size=40):
    """Judgements at increasing times (steps of 1 to 90 minutes)."""
    steps = draw(st.lists(st.integers(1, 90), min_size=1, max_size=max_size))
    severities = draw(st.lists(SEVERITIES, min_size=len(steps), max_size=len(steps)))
    at, result = 1_800_000_000, []
    for step, severity in zip(steps, severities):
        at += step * MINUTE
        result.append(Judgement(at, severity, float(step)))
    return result


DURATIONS = st.sampled_from([0, 15 * MINUTE, HOUR, 3 * HOUR])


@settings(max_examples=300)
@given(timelines(), DURATIONS, DURATIONS)
def test_evaluating_the_same_data_again_creates_nothing(timeline, for_seconds, keep_firing_for):
    once, changes = advance(Episode(), timeline, for_seconds, keep_firing_for)
    again, repeated = advance(once, timeline, for_seconds, keep_firing_for)
    assert repeated == [] and again == once


@settings(max_examples=300)
@given(timelines(), DURATIONS, DURATIONS, st.data())
def test_evaluating_in_pieces_equals_evaluating_at_once(timeline, for_seconds, keep_firing_for, data):
    whole, all_changes = advance(Episode(), timeline, for_seconds, keep_firing_for)
    cut = data.draw(st.integers(0, len(timeline)))
    overlap = data.draw(st.integers(0, cut))  # the second window may repeat part of the first
    first, changes = advance(Episode(), timeline[:cut], for_seconds, keep_firing_for)
    second, more = advance(first, timeline[overlap:], for_seconds, keep_firing_for)
    assert second == whole and changes + more == all_changes


@settings(max_examples=300)
@given(timelines(), DURATIONS, DURATIONS)
def test_one_breach_fires_once_and_resolves_at_most_once(timeline, for_seconds, keep_firing_for):
    _, changes = advance(Episode(), timeline, for_seconds, keep_firing_for)
    fired = [c.started_at for c in changes if c.change is Change.FIRING]
    resolved = [c.started_at for c in changes if c.change is Change.RESOLVED]
    assert len(fired) == len(set(fired)) and len(resolved) == len(set(resolved))
    assert set(resolved) <= set(fired)
    for change in changes:  # nothing happens to an episode after it resolved
        assert not any(r.started_at == change.started_at and r.at < change.at for r in changes
                       if r.change is Change.RESOLVED)


@settings(max_examples=300)
@given(timelines(), DURATIONS, DURATIONS)
def test_recovery_resolves(timeline, for_seconds, keep_firing_for):
    last = timeline[-1].at
    calm = [Judgement(last + step, None, 0.0) for step in range(MINUTE, keep_firing_for + 2 * MINUTE, MINUTE)]
    episode, changes = advance(Episode(), timeline + calm, for_seconds, keep_firing_for)
    assert episode.phase is Phase.OK
    fired = {c.started_at for c in changes if c.change is Change.FIRING}
    assert fired == {c.started_at for c in changes if c.change is Change.RESOLVED}


@settings(max_examples=200)
@given(st.integers(2, 30), st.integers(1, 59), st.sampled_from([HOUR, 2 * HOUR]))
def test_flapping_within_keep_firing_for_stays_one_alert(flips, gap_minutes, keep_firing_for):
    start, timeline = 1_800_000_000, []
    for n in range(flips):  # breach, then a dip under the threshold shorter than keep_firing_for, again and again
        timeline.append(Judgement(start + n * 2 * gap_minutes * MINUTE, Severity.WARNING, 10.0))
        timeline.append(Judgement(start + (n * 2 + 1) * gap_minutes * MINUTE, None, 5.0))
    episode, changes = advance(Episode(), timeline, 0, keep_firing_for)
    assert [c.change for c in changes] == [Change.FIRING]
    assert episode.phase is Phase.FIRING and episode.started_at == start


@settings(max_examples=200)
@given(st.integers(1, 10), st.sampled_from([HOUR, 3 * HOUR]))
def test_a_breach_shorter_than_for_never_fires(points, for_seconds):
    start = 1_800_000_000
    step = (for_seconds - MINUTE) // points
    breach = [Judgement(start + n * step, Severity.CRITICAL, 99.0) for n in range(points)]
    episode, changes = advance(Episode(), [*breach, Judgement(start + for_seconds - 1, None, 1.0)], for_seconds, 0)
    assert [c.change for c in changes] == [Change.PENDING] and episode.phase is Phase.OK


def test_for_and_escalation_notify_once_each():
    start = 1_800_000_000
    timeline = [Judgement(start, Severity.WARNING, 80.0), Judgement(start + HOUR, Severity.WARNING, 85.0),
                Judgement(start + 2 * HOUR, Severity.CRITICAL, 120.0),
                Judgement(start + 3 * HOUR, Severity.CRITICAL, 130),
                Judgement(start + 4 * HOUR, Severity.WARNING, 90.0), Judgement(start + 5 * HOUR, None, 10.0),
                Judgement(start + 7 * HOUR, None, 10.0)]
    episode, changes = advance(Episode(), timeline, HOUR, 2 * HOUR)
    assert [(c.change, c.at - start, c.severity) for c in changes] == [
        (Change.PENDING, 0, Severity.WARNING), (Change.FIRING, HOUR, Severity.WARNING),
        (Change.ESCALATED, 2 * HOUR, Severity.CRITICAL), (Change.RESOLVED, 7 * HOUR, Severity.CRITICAL)]
    assert episode == Episode(evaluated_to=start + 7 * HOUR)


# ------------------------------------------------------------------------------------------------
# What each rule judges
# ------------------------------------------------------------------------------------------------

AQI = Thresholds(warning=150, critical=200)


@given(st.lists(st.one_of(st.none(), st.just(float("nan")), st.floats(0, 500)), max_size=30))
def test_no_data_is_never_a_breach(values):
    readings = [(1_800_000_000 + n * HOUR, value) for n, value in enumerate(values)]
    judged = judge.threshold(readings, AQI, Direction.HIGHER_IS_WORSE)
    assert [j.at for j in judged] == [at for at, value in readings if value is not None and value == value]


def test_silence_is_its_own_judgement_whatever_the_last_value_said():
    now, interval = 1_800_000_000, HOUR
    last_value_normal = judge.threshold([(now - 5 * HOUR, 50.0)], AQI, Direction.HIGHER_IS_WORSE)
    assert last_value_normal[0].severity is None
    assert judge.silence(now - 5 * HOUR, now, interval, critical_after=4).severity is Severity.CRITICAL
    assert judge.silence(now - 2 * HOUR, now, interval, critical_after=4).severity is Severity.WARNING
    assert judge.silence(now - int(1.25 * HOUR), now, interval, critical_after=4).severity is None  # as on screen
    assert judge.silence(None, now, interval, critical_after=4, first_seen_at=now - HOUR).severity is None
    assert judge.silence(None, now, interval, critical_after=4).severity is None  # nothing expected yet


def test_thresholds_follow_the_indicator_direction():
    compliance = Thresholds(warning=80, critical=60)  # garbage-sorting compliance: low is bad
    judged = judge.threshold([(1, 90.0), (2, 70.0), (3, 55.0)], compliance, Direction.HIGHER_IS_BETTER)
    assert [j.severity for j in judged] == [None, Severity.WARNING, Severity.CRITICAL]


def test_change_against_the_same_hour_last_week():
    week = judge.WEEK
    reference = {1_000 - week: 100.0, 2_000 - week: 100.0, 3_000 - week: 0.5, 4_000 - week: 100.0}
    readings = [(1_000, 160.0), (2_000, 260.0), (3_000, 50.0), (4_000, 20.0), (5_000, 100.0)]
    judged = judge.change(readings, reference, week, warning_pct=50, critical_pct=100, worse=judge.Worse.UP,
                          min_base=1.0)
    assert [(j.at, j.severity) for j in judged] == [(1_000, Severity.WARNING), (2_000, Severity.CRITICAL),
                                                    (4_000, None)]  # 3_000: base too small; 5_000: no base
    assert judged[0].value == 60.0
    falling = judge.change(readings, reference, week, 50, 75, judge.Worse.DOWN, 1.0)
    assert [(j.at, j.severity) for j in falling if j.severity] == [(4_000, Severity.CRITICAL)]


def test_anomaly_is_a_robust_z_score_against_the_same_hour_of_past_weeks():
    week, at = judge.WEEK, 10 * judge.WEEK
    history = {at - week * k: value for k, value in enumerate([100, 104, 96, 100, 5000], start=1)}  # one outlier
    quiet = judge.anomaly([(at, 102.0)], history, weeks=5, warning_z=3, critical_z=5, worse=judge.Worse.EITHER)
    assert quiet[0].severity is None  # the past outlier does not widen the baseline: median and MAD ignore it
    loud = judge.anomaly([(at, 130.0)], history, weeks=5, warning_z=3, critical_z=5, worse=judge.Worse.EITHER)
    assert loud[0].severity is Severity.CRITICAL and loud[0].value > 5
    assert judge.anomaly([(at, 130.0)], {at - week: 100.0}, 5, 3, 5, judge.Worse.UP) == []  # too little history
    low = judge.anomaly([(at, 70.0)], history, 5, 3, 5, judge.Worse.UP)
    assert low[0].severity is None  # unusually low is fine where only high is bad


def test_consistency_compares_a_unit_with_the_sum_of_its_children():
    reported = [(1, 1000.0), (2, 1000.0), (3, 1000.0), (4, 1000.0)]
    summed = {1: 990.0, 2: 880.0, 3: 600.0}
    judged = judge.consistency(reported, summed, warning_pct=5, critical_pct=20, min_base=1.0)
    assert [(j.at, j.severity) for j in judged] == [(1, None), (2, Severity.WARNING), (3, Severity.CRITICAL)]
    assert judged[1].value == 12.0
