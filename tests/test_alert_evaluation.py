"""Alert evaluation in the database: judgements after an ingest become alert rows, events and cursors.

On the tiny city (2 districts × 2 streets × 2 communities), SQLite then PostgreSQL. hotline_complaints is
reported by communities every hour; its community thresholds are warning 2, critical 4 (data/indicators.yaml).
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select, text

from cityops.alerts.evaluate import LOOKBACK, evaluate_alerts
from cityops.alerts.rules import AlertConfig, Rule, RuleType
from cityops.hierarchy import Level
from cityops.models import Alert, AlertCursor, AlertEvent, ConnectorRun
from cityops.rollup import process_backlog, queue_rollups
from cityops.tree import load_tree

HOUR = 3600
COMMUNITY = "990101001001"
OTHER = "990101001002"


def threshold_rule(for_seconds=0, keep=0, levels=(Level.COMMUNITY,)) -> Rule:
    return Rule("over", RuleType.THRESHOLD, ("hotline_complaints",), tuple(levels), for_seconds, keep)


def ingest(db, observations, now):
    """Store observations and roll them up, as a connector run does."""
    result, touched = db.store(observations)
    with db.session() as session:
        queue_rollups(session, db.catalog, db.indicator_ids, touched)
        process_backlog(session, db.catalog, db.indicator_ids, load_tree(session), now)
    return set(touched)


def evaluate(db, rules, now, touched=None):
    with db.session() as session:
        return evaluate_alerts(session, db.catalog, db.indicator_ids, load_tree(session), AlertConfig(tuple(rules)),
                               now, touched)


def alerts(db) -> list[Alert]:
    with db.session() as session:
        rows = session.scalars(select(Alert).order_by(Alert.id)).all()
        session.expunge_all()
        return rows


def events(db) -> list[tuple[int, str]]:
    with db.session() as session:
        return [tuple(row) for row in session.execute(select(AlertEvent.alert_id, AlertEvent.action)
                                                      .order_by(AlertEvent.id))]


def hourly(db, code, start, values):
    return [(code, "hotline_complaints", start + i * HOUR, value) for i, value in enumerate(values)]


def everyone_else(db, start, hours, value=0.0, besides=(COMMUNITY,)):
    """The other communities reporting quietly, so roll-ups are complete."""
    codes = [code for code in db.unit_ids if len(code) == 12 and code not in besides]
    return [(code, "hotline_complaints", start + i * HOUR, value) for code in codes for i in range(hours)]


def test_a_breach_fires_once_however_often_it_is_evaluated(city_db, now):
    start = now - 3 * HOUR
    touched = ingest(city_db, hourly(city_db, COMMUNITY, start, [0, 5, 5]) + everyone_else(city_db, start, 3), now)
    report = evaluate(city_db, [threshold_rule()], now, touched)
    assert report.stored.changes["firing"] == 1
    for _ in range(3):
        again = evaluate(city_db, [threshold_rule()], now, touched)
        assert sum(again.stored.changes.values()) == 0
    (alert,) = alerts(city_db)
    assert (alert.phase, alert.severity, alert.unit_id) == ("firing", "critical", city_db.unit_ids[COMMUNITY])
    assert (alert.started_at, alert.fired_at, alert.value, alert.line) == (start + HOUR, start + HOUR, 5.0, 4.0)
    assert alert.dispatch_due == now + 15 * 60 and alert.handle_due == now + 4 * HOUR
    assert events(city_db) == [(alert.id, "firing")]


def test_recovery_resolves_after_keep_firing_for_and_a_dip_does_not(city_db, now):
    start = now - 5 * HOUR
    rule = threshold_rule(keep=2 * HOUR)
    # breach, one quiet hour (a dip: shorter than keep_firing_for), breach again, then quiet for good
    ingest(city_db, hourly(city_db, COMMUNITY, start, [5, 0, 5, 0, 0]) + everyone_else(city_db, start, 5), now)
    report = evaluate(city_db, [rule], now)
    (alert,) = alerts(city_db)
    assert report.stored.changes == {"firing": 1, "resolved": 1}
    assert (alert.phase, alert.started_at, alert.resolved_at) == ("resolved", start, start + 4 * HOUR)
    assert [action for _, action in events(city_db)] == ["firing", "resolved"]


def test_for_holds_a_breach_pending_and_a_blip_leaves_nothing(city_db, now):
    start = now - 4 * HOUR
    rule = threshold_rule(for_seconds=2 * HOUR)
    ingest(city_db, hourly(city_db, COMMUNITY, start, [3, 0]) + hourly(city_db, OTHER, start, [3, 3])
           + everyone_else(city_db, start, 2, besides=(COMMUNITY, OTHER)), now - 2 * HOUR)
    evaluate(city_db, [rule], now - 2 * HOUR)
    (pending,) = alerts(city_db)
    assert (pending.unit_id, pending.phase) == (city_db.unit_ids[OTHER], "pending")  # COMMUNITY's blip is gone
    ingest(city_db, hourly(city_db, OTHER, start + 2 * HOUR, [3]), now)
    report = evaluate(city_db, [rule], now)
    (alert,) = alerts(city_db)
    assert report.stored.changes["firing"] == 1
    assert (alert.id, alert.phase, alert.severity, alert.started_at) == (pending.id, "firing", "warning", start)
    assert events(city_db) == [(alert.id, "firing")]


def test_escalation_is_its_own_change(city_db, now):
    start = now - 3 * HOUR
    ingest(city_db, hourly(city_db, COMMUNITY, start, [2, 3, 6]) + everyone_else(city_db, start, 3), now)
    report = evaluate(city_db, [threshold_rule()], now)
    (alert,) = alerts(city_db)
    assert report.stored.changes == {"firing": 1, "escalated": 1}
    assert (alert.severity, alert.notified, alert.line) == ("critical", "critical", 4.0)


def test_a_backfill_of_old_breaches_raises_nothing(city_db, now):
    start = now - 2 * 86400
    values = [5] * 24
    ingest(city_db, hourly(city_db, COMMUNITY, start, values) + everyone_else(city_db, start, 24), now)
    report = evaluate(city_db, [threshold_rule()], now)
    assert alerts(city_db) == [] and report.judged == 0
    assert start + 24 * HOUR < now - LOOKBACK


def test_only_touched_indicators_are_read_and_the_cursor_moves(city_db, now):
    start = now - 2 * HOUR
    touched = ingest(city_db, hourly(city_db, COMMUNITY, start, [5, 5]) + everyone_else(city_db, start, 2), now)
    assert evaluate(city_db, [threshold_rule()], now, touched={"aqi"}).judged == 0
    assert alerts(city_db) == []
    report = evaluate(city_db, [threshold_rule()], now, touched=touched)
    assert report.judged == 16  # 8 communities × 2 hours
    with city_db.session() as session:
        cursor = session.scalar(select(AlertCursor.evaluated_to))
    assert cursor == start + HOUR
    assert evaluate(city_db, [threshold_rule()], now, touched=touched).judged == 0  # nothing new after the cursor


def test_roll_ups_are_judged_once_their_units_have_reported(city_db, now):
    street = "990101001"
    rule = threshold_rule(levels=(Level.STREET,))  # street thresholds: warning 9, critical 13
    at = now - HOUR
    ingest(city_db, [(COMMUNITY, "hotline_complaints", at, 10)], now)  # 1 of the street's 2 communities
    assert evaluate(city_db, [rule], now).judged == 0  # half a sum is not judged
    ingest(city_db, [(OTHER, "hotline_complaints", at, 4)], now)
    report = evaluate(city_db, [rule], now)
    assert report.stored.changes["firing"] == 1
    (alert,) = alerts(city_db)
    assert (alert.unit_id, alert.value, alert.severity) == (city_db.unit_ids[street], 14.0, "critical")


def test_silence_is_its_own_alert_and_grows_critical(city_db, now):
    rule = Rule("silent", RuleType.NO_DATA, ("hotline_complaints",), (Level.COMMUNITY,),
                options={"critical_after": 4.0})
    last = now - 2 * HOUR
    ingest(city_db, hourly(city_db, COMMUNITY, last, [1]) + everyone_else(city_db, now - HOUR, 1), now)
    report = evaluate(city_db, [rule, threshold_rule()], now)
    (alert,) = [a for a in alerts(city_db) if a.rule == "silent"]
    assert report.stored.changes["firing"] == 1
    assert (alert.unit_id, alert.severity, alert.value) == (city_db.unit_ids[COMMUNITY], "warning", 2 * HOUR)
    later = now + 3 * HOUR
    report = evaluate(city_db, [rule], later)
    (alert,) = [a for a in alerts(city_db) if a.rule == "silent" and a.unit_id == city_db.unit_ids[COMMUNITY]]
    assert alert.severity == "critical"
    assert not [a for a in alerts(city_db) if a.rule == "over"]  # silence is never a breach


def test_a_resolved_alert_nobody_took_up_closes_itself(city_db, now):
    start = now - 3 * HOUR
    ingest(city_db, hourly(city_db, COMMUNITY, start, [5, 0, 0]) + everyone_else(city_db, start, 3), now)
    config_now = now
    evaluate(city_db, [threshold_rule()], config_now)
    (alert,) = alerts(city_db)
    assert alert.phase == "resolved" and alert.closed_at is None
    report = evaluate(city_db, [threshold_rule()], alert.resolved_at + 12 * HOUR)
    (alert,) = alerts(city_db)
    assert report.closed == 1 and alert.closed_by == "system" and alert.resolution
    with city_db.session() as session:
        assert session.scalar(select(func.count()).select_from(AlertEvent).where(AlertEvent.action == "closed")) == 1


@pytest.mark.parametrize("compare,shift", [("previous_period", HOUR), ("same_hour_last_week", 7 * 86400)])
def test_rate_of_change_against_the_previous_period_or_last_week(city_db, now, compare, shift):
    rule = Rule("surge", RuleType.RATE_OF_CHANGE, ("hotline_complaints",), (Level.COMMUNITY,),
                options={"compare": compare, "warning_pct": 50.0, "critical_pct": 100.0, "worse": None,
                         "min_base": 1.0})
    at = now - HOUR
    ingest(city_db, [(COMMUNITY, "hotline_complaints", at - shift, 2), (COMMUNITY, "hotline_complaints", at, 5),
                     (OTHER, "hotline_complaints", at - shift, 2), (OTHER, "hotline_complaints", at, 2.5)], now)
    evaluate(city_db, [rule], now)
    (alert,) = alerts(city_db)
    assert (alert.unit_id, alert.severity, alert.value, alert.line) == (city_db.unit_ids[COMMUNITY], "critical",
                                                                        150.0, 100.0)


@pytest.mark.parametrize("last_week_in, fires", [((COMMUNITY,), False), ((COMMUNITY, OTHER), True)])
def test_a_sum_compares_only_with_an_hour_its_units_reported_to(city_db, now, last_week_in, fires):
    """A street's complaints against the same hour last week: with one of its two communities in then, that hour
    is half a figure (seen: the demo's first backfilled hour, a quarter of the city in, read as every district's
    complaints +438 %)."""
    week = 7 * 86400
    surge = Rule("surge", RuleType.RATE_OF_CHANGE, ("hotline_complaints",), (Level.STREET,),
                 options={"compare": "same_hour_last_week", "warning_pct": 50.0, "critical_pct": 80.0,
                          "worse": None, "min_base": 1.0})
    at = now - HOUR
    before = [(code, "hotline_complaints", at - week, 2) for code in last_week_in]
    ingest(city_db, before + [(COMMUNITY, "hotline_complaints", at, 3), (OTHER, "hotline_complaints", at, 5)], now)
    evaluate(city_db, [surge], now)
    # 8 now: against 4 with both in, +100 % (critical); against the 2 of one, no comparison at all.
    fired = [(alert.unit_id, alert.severity, alert.value) for alert in alerts(city_db)]
    assert fired == ([(city_db.unit_ids["990101001"], "critical", 100.0)] if fires else [])


@pytest.mark.parametrize("weeks_whole", [True, False])
def test_the_anomaly_rule_leaves_out_past_hours_a_sum_had_few_units_in(city_db, now, weeks_whole):
    rule = Rule("odd", RuleType.ANOMALY, ("hotline_complaints",), (Level.STREET,),
                options={"weeks": 4, "warning_z": 3.5, "critical_z": 5.0, "worse": None, "min_samples": 4})
    at = now - HOUR
    week = 7 * 86400
    history = [(code, "hotline_complaints", at - k * week, value) for k, value in zip(range(1, 5), [2, 3, 2, 3])
               for code in ((COMMUNITY, OTHER) if weeks_whole or k != 4 else (COMMUNITY,))]
    ingest(city_db, history + [(COMMUNITY, "hotline_complaints", at, 9), (OTHER, "hotline_complaints", at, 9)], now)
    evaluate(city_db, [rule], now)
    fired = [alert.unit_id for alert in alerts(city_db)]
    # Four whole past weeks (4, 6, 4, 6) make 18 an anomaly; with the fourth half in, three samples are too few.
    assert fired == ([city_db.unit_ids["990101001"]] if weeks_whole else [])


def test_anomaly_against_the_same_hour_of_past_weeks(city_db, now):
    rule = Rule("odd", RuleType.ANOMALY, ("hotline_complaints",), (Level.COMMUNITY,),
                options={"weeks": 4, "warning_z": 3.5, "critical_z": 5.0, "worse": None, "min_samples": 3})
    at = now - HOUR
    week = 7 * 86400
    history = [(code, "hotline_complaints", at - k * week, value) for k, value in zip(range(1, 5), [2, 3, 2, 3])
               for code in (COMMUNITY, OTHER)]
    ingest(city_db, history + [(COMMUNITY, "hotline_complaints", at, 9), (OTHER, "hotline_complaints", at, 3)], now)
    evaluate(city_db, [rule], now)
    (alert,) = alerts(city_db)
    assert alert.unit_id == city_db.unit_ids[COMMUNITY] and alert.severity == "critical"
    assert alert.value == pytest.approx((9 - 2.5) / (1.4826 * 0.5))


def test_an_ingest_s_own_rows_are_judged_late_arrivals_included(city_db, now):
    """With the rows a run committed (`fresh`), a value arriving after its time was judged elsewhere still counts;
    without them the cursor, at the newest time judged, would pass it by."""
    at = now - HOUR
    touched = ingest(city_db, everyone_else(city_db, at, 1), now)
    evaluate(city_db, [threshold_rule()], now, touched)  # the cursor is at `at` now
    late = hourly(city_db, COMMUNITY, at, [5])
    touched = ingest(city_db, late, now)
    assert evaluate(city_db, [threshold_rule()], now, touched).judged == 0  # read back: after the cursor only
    fresh = pd.DataFrame(city_db.rows(late))
    with city_db.session() as session:
        report = evaluate_alerts(session, city_db.catalog, city_db.indicator_ids, load_tree(session),
                                 AlertConfig((threshold_rule(),)), now, touched, fresh=fresh)
    assert report.judged == 1 and report.stored.changes["firing"] == 1
    (alert,) = alerts(city_db)
    assert (alert.unit_id, alert.started_at) == (city_db.unit_ids[COMMUNITY], at)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.integers(0, 6), min_size=2, max_size=6), cut=st.integers(1, 5),
       for_hours=st.integers(0, 2), keep_hours=st.integers(0, 2))
def test_evaluating_in_pieces_stores_what_evaluating_at_once_stores(sqlite_city_db, now, values, cut, for_hours,
                                                                    keep_hours):
    """The stored alerts and events do not depend on how ingests cut the data, nor on evaluating twice."""
    rule = threshold_rule(for_seconds=for_hours * HOUR, keep=keep_hours * HOUR)
    start = now - len(values) * HOUR + 1
    rows = hourly(sqlite_city_db, COMMUNITY, start, values)
    cut = min(cut, len(rows) - 1)

    def stored():
        return ([(a.phase, a.started_at, a.severity, a.fired_at, a.resolved_at) for a in alerts(sqlite_city_db)],
                [action for _, action in events(sqlite_city_db)])

    def reset():
        with sqlite_city_db.session() as session:
            for table in ("alerts", "alert_events", "alert_cursors", "observations"):
                session.execute(text(f"DELETE FROM {table}"))

    reset()
    ingest(sqlite_city_db, rows, now)
    fresh = pd.DataFrame(sqlite_city_db.rows(rows))
    evaluate_fresh(sqlite_city_db, rule, now, fresh)
    evaluate_fresh(sqlite_city_db, rule, now, fresh)  # the same data again changes nothing
    at_once = stored()
    reset()
    for piece in (rows[:cut], rows[cut:]):
        ingest(sqlite_city_db, piece, now)
        evaluate_fresh(sqlite_city_db, rule, now, pd.DataFrame(sqlite_city_db.rows(piece)))
    assert stored() == at_once
    fired = [a for a in at_once[0] if a[3] is not None]
    assert len([e for e in at_once[1] if e == "firing"]) == len(fired)  # one breach fires (and notifies) once


def evaluate_fresh(db, rule, now, fresh):
    with db.session() as session:
        evaluate_alerts(session, db.catalog, db.indicator_ids, load_tree(session), AlertConfig((rule,)), now,
                        {"hotline_complaints"}, fresh=fresh)


def test_a_silent_source_is_its_own_alert_at_the_city(city_db, now):
    rule = Rule("source-silent", RuleType.NO_DATA, (), (), options={"critical_after": 4.0}, sources=("all",))
    config = AlertConfig((rule,))

    def ran(connector, finished, status="ok"):
        with city_db.session() as session:
            session.execute(insert(ConnectorRun).values(connector=connector, started_at=finished - 10,
                                                        finished_at=finished, status=status))

    def evaluate_sources(at):
        with city_db.session() as session:
            return evaluate_alerts(session, city_db.catalog, city_db.indicator_ids, load_tree(session), config, at,
                                   set(), sources={"quiet": HOUR, "lively": HOUR, "never": HOUR})

    ran("quiet", now - 2 * HOUR)
    ran("quiet", now - 60, status="failed")  # failing is not delivering
    ran("lively", now - 600)
    report = evaluate_sources(now)
    (alert,) = alerts(city_db)
    assert report.stored.changes["firing"] == 1
    assert (alert.source, alert.indicator_id, alert.unit_id, alert.severity, alert.value) == (
        "quiet", 0, city_db.unit_ids["990000"], "warning", 2 * HOUR)
    ran("lively", now + 5 * HOUR - 600)
    assert evaluate_sources(now + 5 * HOUR).stored.changes == {"escalated": 1, "firing": 1}  # and "never" now
    assert {(a.source, a.severity) for a in alerts(city_db)} == {("quiet", "critical"), ("never", "critical")}
    ran("quiet", now + 5 * HOUR + 60)
    assert evaluate_sources(now + 5 * HOUR + 120).stored.changes == {"resolved": 1}


def test_a_district_s_own_count_against_its_communities_sum(city_db, now):
    """Where information islands disagree: the district's own figure against the sum of its communities'."""
    rule = Rule("mismatch", RuleType.CONSISTENCY, ("hotline_complaints",), (Level.DISTRICT,),
                options={"reported": "hotline_complaints_district", "warning_pct": 10.0, "critical_pct": 25.0,
                         "min_base": 5.0})
    at = now - HOUR
    communities = [(code, "hotline_complaints", at, 5.0) for code in city_db.unit_ids if len(code) == 12]
    own = [("990101", "hotline_complaints_district", at + 600, 14.0),   # its communities sum to 20: 30 % short
           ("990102", "hotline_complaints_district", at + 600, 19.0)]   # 5 % short: normal
    ingest(city_db, communities + own, now)
    report = evaluate(city_db, [rule], now)
    assert report.judged == 2
    (alert,) = alerts(city_db)
    assert (alert.unit_id, alert.severity, alert.started_at) == (city_db.unit_ids["990101"], "critical", at - at % HOUR)
    assert alert.value == pytest.approx(30.0) and alert.line == 25.0


def test_an_own_count_is_not_held_against_a_sum_few_communities_reported_to(city_db, now):
    """Three hours ago one of 990102's four communities reported: the hour is over, its sum (5) is a quarter of
    a figure, and the district's own 19 disagrees with it only because the others were silent."""
    rule = Rule("mismatch", RuleType.CONSISTENCY, ("hotline_complaints",), (Level.DISTRICT,),
                options={"reported": "hotline_complaints_district", "warning_pct": 10.0, "critical_pct": 25.0,
                         "min_base": 5.0})
    at = now - 3 * HOUR
    ingest(city_db, [("990102001001", "hotline_complaints", at, 5.0),
                     ("990102", "hotline_complaints_district", at + 600, 19.0)], now)
    evaluate(city_db, [rule], now)
    assert alerts(city_db) == []
