"""People's side of alerts (acknowledge, assign, comment, close; deadlines; audit) and the screen's alert queries
(list by unit, counts per level, evidence), on the tiny city in SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select

from cityops.alerts.evaluate import evaluate_alerts
from cityops.alerts.lifecycle import AlertActionError, acknowledge, assign, close, comment, history
from cityops.alerts.queries import alert_counts, alert_list, evidence, open_alerts
from cityops.alerts.rules import AlertConfig, Rule, RuleType
from cityops.hierarchy import Level
from cityops.incidents import upsert_incidents
from cityops.models import Alert, ConnectorRun
from cityops.rollup import process_backlog, queue_rollups
from cityops.scope import OutOfScope, scope_of_unit
from cityops.storage import upsert_observations
from cityops.tree import load_tree

HOUR = 3600
COMMUNITY = "990101001001"   # in street 990101001, district 990101
ELSEWHERE = "990102001001"   # in district 990102
RULE = Rule("over", RuleType.THRESHOLD, ("hotline_complaints",), (Level.COMMUNITY, Level.STREET), 0, 0)


def raise_alerts(db, now, values: dict[str, float], run_id: int | None = None) -> None:
    """Every community reports hotline_complaints an hour ago (0 unless given), then the rules are evaluated."""
    at = now - HOUR
    rows = [{"unit_id": ident, "indicator_id": db.indicator_ids["hotline_complaints"], "observed_at": at,
             "value": float(values.get(code, 0.0)), "run_id": run_id}
            for code, ident in db.unit_ids.items() if len(code) == 12]
    with db.session() as session:
        upsert_observations(session, rows)
        queue_rollups(session, db.catalog, db.indicator_ids, {"hotline_complaints": {at}})
        tree = load_tree(session)
        process_backlog(session, db.catalog, db.indicator_ids, tree, now)
        evaluate_alerts(session, db.catalog, db.indicator_ids, tree, AlertConfig((RULE,)), now)


def the_alert(db, code) -> int:
    with db.session() as session:
        return session.scalar(select(Alert.id).where(Alert.unit_id == db.unit_ids[code]))


def city_scope(session):
    tree = load_tree(session)
    return scope_of_unit(tree, tree.root_id), tree


def test_each_action_is_recorded_with_who_and_when(city_db, now):
    raise_alerts(city_db, now, {COMMUNITY: 5})
    ident = the_alert(city_db, COMMUNITY)
    with city_db.session() as session:
        scope, tree = city_scope(session)
        acknowledge(session, scope, tree, ident, "王值班", now + 60)
        acknowledge(session, scope, tree, ident, "someone else", now + 61)  # already acknowledged: no change
        assign(session, scope, tree, ident, "鹤口区城管中队", "王值班", now + 120)
        comment(session, scope, tree, ident, "现场积水已排除一半", "李队长", now + 600)
        close(session, scope, tree, ident, "管道疏通完毕", "李队长", now + 900)
    with city_db.session() as session:
        scope, tree = city_scope(session)
        alert = session.get(Alert, ident)
        assert (alert.acknowledged_by, alert.assignee, alert.closed_by, alert.resolution) == (
            "王值班", "鹤口区城管中队", "李队长", "管道疏通完毕")
        steps = [(e["action"], e["actor"], e["at"]) for e in history(session, scope, tree, ident)]
    assert steps == [("firing", "system", now), ("acknowledged", "王值班", now + 60),
                     ("assigned", "王值班", now + 120), ("commented", "李队长", now + 600),
                     ("closed", "李队长", now + 900)]


def test_actions_that_cannot_be_taken_say_why(city_db, now):
    raise_alerts(city_db, now, {COMMUNITY: 5})
    ident = the_alert(city_db, COMMUNITY)
    with city_db.session() as session:
        scope, tree = city_scope(session)
        with pytest.raises(AlertActionError, match="resolution must not be empty"):
            close(session, scope, tree, ident, "  ", "王值班", now)
        with pytest.raises(AlertActionError, match="sign in"):
            acknowledge(session, scope, tree, ident, "", now)
        with pytest.raises(AlertActionError, match="does not exist"):
            acknowledge(session, scope, tree, 99_999, "王值班", now)
        close(session, scope, tree, ident, "done", "王值班", now)
    with city_db.session() as session:
        scope, tree = city_scope(session)
        with pytest.raises(AlertActionError, match="closed by 王值班"):
            assign(session, scope, tree, ident, "someone", "王值班", now)
        comment(session, scope, tree, ident, "found the cause later", "王值班", now)  # still allowed


def test_a_viewer_cannot_act_on_or_see_alerts_outside_their_scope(city_db, now):
    raise_alerts(city_db, now, {COMMUNITY: 5, ELSEWHERE: 5})
    ident = the_alert(city_db, ELSEWHERE)
    with city_db.session() as session:
        tree = load_tree(session)
        district_one = scope_of_unit(tree, city_db.unit_ids["990101"])
        with pytest.raises(OutOfScope):
            acknowledge(session, district_one, tree, ident, "王值班", now)
        with pytest.raises(OutOfScope):
            evidence(session, district_one, tree, city_db.catalog, city_db.indicator_ids, ident)
        with pytest.raises(OutOfScope):
            alert_list(session, district_one, tree, city_db.unit_ids["990102"], now)
        listed = alert_list(session, district_one, tree, city_db.unit_ids["990101"], now)
        counts = alert_counts(session, district_one, tree, [city_db.unit_ids["990101"], city_db.unit_ids["990102"]],
                              now)
    assert list(listed["code"]) == [COMMUNITY]
    assert list(counts.index) == [city_db.unit_ids["990101"]]  # the other district is not counted for this viewer


def test_counts_roll_up_the_hierarchy_and_overdue_follows_the_deadlines(city_db, now):
    raise_alerts(city_db, now, {COMMUNITY: 5, "990101001002": 3})  # a critical and a warning; street sum 8 < 9
    units = [city_db.unit_ids[code] for code in ("990000", "990101", "990102", "990101001", COMMUNITY)]
    with city_db.session() as session:
        scope, tree = city_scope(session)
        counts = alert_counts(session, scope, tree, units, now)
        assert counts.loc[units, "open"].tolist() == [2, 2, 0, 2, 1]
        assert counts.loc[units, "critical"].tolist() == [1, 1, 0, 1, 1]
        assert counts["overdue"].sum() == 0
        # Past the critical alert's 15-minute dispatch deadline, unacknowledged: overdue (the warning has an hour).
        later = now + 16 * 60
        assert alert_counts(session, scope, tree, units, later)["overdue"].tolist() == [1, 1, 0, 1, 1]
        listed = alert_list(session, scope, tree, tree.root_id, later)
        assert listed["code"].tolist() == [COMMUNITY, "990101001002"] and listed["overdue"].tolist() == [True, False]
        acknowledge(session, scope, tree, the_alert(city_db, COMMUNITY), "王值班", later)
        assert alert_counts(session, scope, tree, units, later)["overdue"].sum() == 0
        # Past the 4-hour handling deadline it is overdue again until closed.
        assert alert_counts(session, scope, tree, units, now + 5 * HOUR)["overdue"].tolist() == [2, 2, 0, 2, 1]


def test_open_alerts_read_once_are_counted_overdue_at_the_moment_asked(city_db, now):
    """What the map keeps per data version (queries.OpenAlerts): read at one moment, counted at any later one as
    a fresh read then would count, in the viewer's scope only."""
    raise_alerts(city_db, now, {COMMUNITY: 5, "990101001002": 3, ELSEWHERE: 5})
    units = [city_db.unit_ids[code] for code in ("990000", "990101", "990102", "990101001", COMMUNITY)]
    with city_db.session() as session:
        scope, tree = city_scope(session)
        kept = open_alerts(session, scope)
        bounds = [(int(tree.frame.at[unit, "lft"]), int(tree.frame.at[unit, "rgt"])) for unit in units]
        for moment in (now, now + 16 * 60, now + 5 * HOUR):
            fresh = alert_counts(session, scope, tree, units, moment)
            assert kept.counts(bounds, moment) == list(fresh.itertuples(index=False, name=None)), moment
        district_one = open_alerts(session, scope_of_unit(tree, city_db.unit_ids["990101"]))
    # The other district's alert is not even held for this viewer's scope.
    assert len(district_one.positions) == 2
    assert district_one.counts(bounds[1:3], now) == [(2, 0, 1), (0, 0, 0)]


def test_evidence_leads_from_the_alert_to_the_records_and_the_run(city_db, now):
    with city_db.session() as session:
        run_id = session.execute(insert(ConnectorRun).values(
            connector="hotline", started_at=now - 100, finished_at=now - 90, status="ok", fetched=8, accepted=8,
            rejected=0, duplicates=0, archive="hotline/2026/11/26/run-1")).inserted_primary_key[0]
        upsert_incidents(session, [{
            "source": "hotline", "external_id": "A-1", "category": "积水", "status": "open", "source_status": "new",
            "opened_at": now - 2 * HOUR, "updated_at": now - 2 * HOUR, "closed_at": None, "lon": 0.5, "lat": 0.5,
            "unit_id": city_db.unit_ids[COMMUNITY], "address": "某路1号", "description": None, "contact_masked": None,
            "raw": None, "run_id": run_id, "first_seen_at": now, "last_seen_at": now}])
    raise_alerts(city_db, now, {COMMUNITY: 6, "990101001002": 8}, run_id=run_id)  # street sum 14: critical
    with city_db.session() as session:
        scope, tree = city_scope(session)
        street = the_alert(city_db, "990101001")
        found = evidence(session, scope, tree, city_db.catalog, city_db.indicator_ids, street)
    assert found.alert["indicator"] == "hotline_complaints" and found.alert["value"] == 14.0
    assert found.records["code"].tolist() == ["990101001002", COMMUNITY]  # its communities, largest first
    assert found.records["value"].tolist() == [8.0, 6.0]
    assert found.runs[["id", "connector", "archive"]].values.tolist() == [[run_id, "hotline",
                                                                           "hotline/2026/11/26/run-1"]]
    assert found.incidents["external_id"].tolist() == ["A-1"]
