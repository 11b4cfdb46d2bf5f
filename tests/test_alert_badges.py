"""Alert badges: the per-indicator counts behind the KPI cards' badges (tiny city, SQLite and PostgreSQL), the pure
builders of the badges, and the map and KPI callbacks that carry them — always within the viewer's scope."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pandas as pd
import pytest
from dash import no_update
from plotly.utils import PlotlyJSONEncoder
from sqlalchemy import insert, select

from cityops.alerts.badges import indicator_alert_counts
from cityops.alerts.evaluate import evaluate_alerts
from cityops.alerts.lifecycle import acknowledge, close
from cityops.alerts.queries import alert_counts
from cityops.alerts.rules import AlertConfig, Rule, RuleType
from cityops.hierarchy import Level
from cityops.models import Alert
from cityops.rollup import process_backlog, queue_rollups
from cityops.scope import OutOfScope, scope_of_unit
from cityops.settings import Settings
from cityops.storage import upsert_observations
from cityops.tree import load_tree
from layouts.alert_badges import AlertTally, card_badge, heading_badge, map_badges, tally_of
from layouts.map_panel import labels_hideout
from dash_calls import in_callback  # noqa: E402

HOUR = 3600
CITY, DISTRICT, OTHER_DISTRICT = "990000", "990101", "990102"
STREET = "990101001"
COMMUNITY = "990101001001"     # in street 990101001, district 990101
NEIGHBOUR = "990101001002"     # the same street
ELSEWHERE = "990102001001"     # in district 990102
RULE = Rule("over", RuleType.THRESHOLD, ("hotline_complaints",), (Level.COMMUNITY, Level.STREET), 0, 0)


def raise_alerts(db, now, values: dict[str, float]) -> None:
    """Every community reports hotline_complaints an hour ago (0 unless given), then the rule is evaluated
    (community thresholds: warning 2, critical 4; street: 9, 13)."""
    at = now - HOUR
    rows = [{"unit_id": ident, "indicator_id": db.indicator_ids["hotline_complaints"], "observed_at": at,
             "value": float(values.get(code, 0.0)), "run_id": None}
            for code, ident in db.unit_ids.items() if len(code) == 12]
    with db.session() as session:
        upsert_observations(session, rows)
        queue_rollups(session, db.catalog, db.indicator_ids, {"hotline_complaints": {at}})
        tree = load_tree(session)
        process_backlog(session, db.catalog, db.indicator_ids, tree, now)
        evaluate_alerts(session, db.catalog, db.indicator_ids, tree, AlertConfig((RULE,)), now)


def add_alert(db, code: str, indicator: str | None, now: int, *, severity="warning", phase="firing",
              closed=False, rule="by-hand") -> int:
    """One alert row as the rule engine stores it (for the cases raise_alerts does not make: other indicators,
    source rules without an indicator, pending and closed ones). Due in an hour."""
    with db.session() as session:
        return session.execute(insert(Alert).values(
            rule=rule, unit_id=db.unit_ids[code], indicator_id=db.indicator_ids[indicator] if indicator else 0,
            started_at=now - 600, phase=phase, severity=severity, value=1.0, line=1.0, last_breach_at=now - 600,
            evaluated_to=now, fired_at=None if phase == "pending" else now - 600,
            closed_at=now if closed else None, dispatch_due=now + HOUR, handle_due=now + 4 * HOUR,
        )).inserted_primary_key[0]


def counts_at(db, code: str, now: int, scope_code: str = CITY):
    with db.session() as session:
        tree = load_tree(session)
        scope = scope_of_unit(tree, db.unit_ids[scope_code])
        counts = indicator_alert_counts(session, scope, tree, db.indicator_ids, db.unit_ids[code], now)
    return {key: tuple(int(v) for v in row) for key, row in counts[["open", "overdue", "critical"]].iterrows()}


# ------------------------------------------------------------------------------------------------
# The per-indicator counts
# ------------------------------------------------------------------------------------------------


def test_indicator_counts_roll_up_to_every_level_the_alert_lies_under(city_db, now):
    raise_alerts(city_db, now, {COMMUNITY: 5, NEIGHBOUR: 3})  # a critical and a warning; street sum 8 < 9
    add_alert(city_db, ELSEWHERE, "aqi", now, severity="critical")
    assert counts_at(city_db, CITY, now) == {"hotline_complaints": (2, 0, 1), "aqi": (1, 0, 1)}
    assert counts_at(city_db, DISTRICT, now) == {"hotline_complaints": (2, 0, 1)}
    assert counts_at(city_db, STREET, now) == {"hotline_complaints": (2, 0, 1)}
    assert counts_at(city_db, NEIGHBOUR, now) == {"hotline_complaints": (1, 0, 0)}
    assert counts_at(city_db, OTHER_DISTRICT, now) == {"aqi": (1, 0, 1)}
    assert counts_at(city_db, "990101002", now) == {}  # the district's other street has none


def test_indicator_counts_leave_out_closed_pending_and_source_alerts(city_db, now):
    raise_alerts(city_db, now, {COMMUNITY: 5})
    add_alert(city_db, COMMUNITY, "aqi", now, phase="pending")
    add_alert(city_db, COMMUNITY, "aqi", now, closed=True, rule="by-hand-closed")
    add_alert(city_db, COMMUNITY, None, now, rule="source-silent")  # a source rule: belongs to no indicator
    assert counts_at(city_db, CITY, now) == {"hotline_complaints": (1, 0, 1)}
    # The same alerts as queries.alert_counts sees them: the source alert is open under the unit, on no card.
    with city_db.session() as session:
        tree = load_tree(session)
        unit = alert_counts(session, scope_of_unit(tree, tree.root_id), tree, [tree.root_id], now)
    assert int(unit.loc[tree.root_id, "open"]) == 2


def test_indicator_counts_follow_the_deadlines_and_the_people(city_db, now):
    raise_alerts(city_db, now, {COMMUNITY: 5, NEIGHBOUR: 3})
    later = now + 16 * 60  # past the critical alert's 15-minute dispatch deadline, not the warning's hour
    assert counts_at(city_db, CITY, later) == {"hotline_complaints": (2, 1, 1)}
    with city_db.session() as session:
        tree = load_tree(session)
        scope = scope_of_unit(tree, tree.root_id)
        critical = session.scalar(select(Alert.id).where(Alert.unit_id == city_db.unit_ids[COMMUNITY]))
        acknowledge(session, scope, tree, critical, "王值班", later)
    assert counts_at(city_db, CITY, later) == {"hotline_complaints": (2, 0, 1)}
    with city_db.session() as session:
        tree = load_tree(session)
        close(session, scope_of_unit(tree, tree.root_id), tree, critical, "已处理", "王值班", later)
    assert counts_at(city_db, CITY, later) == {"hotline_complaints": (1, 0, 0)}  # only the warning is left


def test_a_district_viewer_gets_no_counts_of_another_district(city_db, now):
    raise_alerts(city_db, now, {COMMUNITY: 5, ELSEWHERE: 5})
    assert counts_at(city_db, DISTRICT, now, scope_code=DISTRICT) == {"hotline_complaints": (1, 0, 1)}
    for outside in (OTHER_DISTRICT, ELSEWHERE, CITY):
        with pytest.raises(OutOfScope):
            counts_at(city_db, outside, now, scope_code=DISTRICT)


# ------------------------------------------------------------------------------------------------
# Pure builders
# ------------------------------------------------------------------------------------------------


def test_a_tally_takes_the_worst_severity_and_nothing_open_means_no_badge():
    assert AlertTally(0, 0, 0).severity is None
    assert AlertTally(3, 0, 0).severity == "warning"
    assert AlertTally(3, 1, 1).severity == "critical"
    counts = pd.DataFrame({"open": [2], "overdue": [1], "critical": [0]}, index=pd.Index([7], name="unit_id"))
    assert tally_of(counts, 7) == AlertTally(2, 1, 0)
    assert tally_of(counts, 8) == AlertTally()  # a unit without a row has nothing open


def test_labels_hideout_carries_a_badge_only_for_units_with_open_alerts():
    tallies = {"990101": AlertTally(3, 1, 1), "990102": AlertTally(2, 0, 0), "990103": AlertTally()}
    zh = labels_hideout(tallies, "zh")
    assert zh["language"] == "zh"
    assert zh["alerts"] == {
        "990101": {"n": 3, "d": 1, "s": "critical", "o": "超时 1", "t": "告警 3 未结 · 1 超时"},
        "990102": {"n": 2, "d": 0, "s": "warning", "o": "", "t": "告警 2 未结"},
    }
    en = labels_hideout(tallies, "en")
    assert en["alerts"]["990101"]["o"] == "1 overdue" and en["alerts"]["990102"]["t"] == "alerts: 2 open"
    assert map_badges({}, "zh") == {} and labels_hideout({"990103": AlertTally()}, "zh")["alerts"] == {}


def _text(component) -> str:
    """All the text a component shows, as Dash would serialise it."""
    return "".join(_texts(json.loads(json.dumps(component, cls=PlotlyJSONEncoder))))


def _texts(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)
    elif isinstance(node, dict):
        yield from _texts(node.get("props", {}).get("children"))


def test_kpi_heading_and_card_badges_show_counts_in_the_severity_colour():
    heading = heading_badge(AlertTally(3, 1, 1), "zh")
    assert _text(heading) == "⚠ 3 未结 · 1 超时" and "alert-critical" in heading.className
    assert _text(heading_badge(AlertTally(2, 0, 0), "en")) == "⚠ 2 open"
    assert "alert-warning" in heading_badge(AlertTally(2, 0, 0), "en").className
    card = card_badge(AlertTally(2, 1, 0), "zh")
    assert _text(card) == "⚠ 2超时 1" and "alert-warning" in card.className
    assert "1 条超时" in card.title
    # The overdue count apart from its word, which a wall's card leaves out for want of room (assets/wall.css).
    for language, words in (("zh", ["超时 "]), ("en", [" overdue"])):
        overdue = card_badge(AlertTally(4, 2, 1), language).children[1].children
        assert [part.children for part in overdue if part.className == "overdue-word"] == words
        assert [part.children for part in overdue if part.className == "overdue-count"] == ["2"]
    assert heading_badge(AlertTally(), "zh") is None and card_badge(AlertTally(), "en") is None


# ------------------------------------------------------------------------------------------------
# The callbacks that carry them (a real app on the tiny city in SQLite)
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def app_with_alerts(sqlite_city_db):
    """The app on the tiny city, with a critical hotline alert in COMMUNITY and a warning in ELSEWHERE raised
    at the real clock (the callbacks read the time themselves)."""
    from app import create_app

    raise_alerts(sqlite_city_db, int(time.time()), {COMMUNITY: 5, ELSEWHERE: 3})
    settings = replace(Settings(), database_url=sqlite_city_db.url, run_scheduler=False)
    return create_app(settings)


def test_map_badges_come_after_the_first_paint_then_with_every_change(app_with_alerts):
    from callbacks.map import first_map, show_first_badges, show_map

    with app_with_alerts.server.test_request_context("/"):
        assert first_map().labels_hideout is None  # the first paint waits for no alert query
    first = in_callback(app_with_alerts, show_first_badges, 1, None, {"unit": None, "indicator": "aqi"})
    assert {code: (b["n"], b["s"]) for code, b in first["alerts"].items()} == {
        DISTRICT: (1, "critical"), OTHER_DISTRICT: (1, "warning")}
    # A refresh that changed no count sends no labels hideout; a drill-down sends the new level's badges.
    refresh = in_callback(app_with_alerts, show_map, {"unit": None, "indicator": "aqi"}, 1,
                          f"/geo/{CITY}/children.pbf", first)
    assert refresh[6] is no_update
    drilled = in_callback(app_with_alerts, show_map, {"unit": DISTRICT, "indicator": "aqi"}, 1,
                          f"/geo/{CITY}/children.pbf", first)
    assert drilled[1] == f"/geo/{DISTRICT}/labels.geojson"
    assert {code: b["n"] for code, b in drilled[6]["alerts"].items()} == {STREET: 1}


def test_kpi_heading_and_cards_show_the_viewed_units_alerts(app_with_alerts):
    from callbacks.kpi import show_kpis

    cards, heading, digest = in_callback(app_with_alerts, show_kpis, {"unit": DISTRICT, "indicator": "aqi"}, 0)
    assert heading[0].children == "区1" and heading[1].children.children == " · 关键指标"  # the words give way first
    assert _text(heading[2]) == "⚠ 1 未结" and "alert-critical" in heading[2].className
    by_key = {card.id["indicator"]: card for card in cards}
    assert "hotline_complaints_district" not in by_key  # `kpi: false` in the catalog: no card
    assert _text(card_badge_of(by_key["hotline_complaints"])) == "⚠ 1"
    assert card_badge_of(by_key["aqi"]) is None
    # The other district's warning is not this unit's; the city sees both.
    _cards, city_heading, _ = in_callback(app_with_alerts, show_kpis, {"unit": CITY, "indicator": "aqi"}, 0)
    assert _text(city_heading[2]) == "⚠ 2 未结"
    _cards, calm, _ = in_callback(app_with_alerts, show_kpis, {"unit": "990101002", "indicator": "aqi"}, 0)
    assert calm[-1] is None  # nothing open: no badge at all


def test_a_card_showing_the_street_s_value_shows_the_street_s_alerts(sqlite_city_db):
    """A community's AQI card is its street's reading: with the street's AQI alert open, the card (red) carries
    its badge, named as the street's; the community's own cards and heading count only the community's."""
    from app import create_app
    from callbacks.kpi import show_kpis

    now = int(time.time())
    add_alert(sqlite_city_db, STREET, "aqi", now, severity="critical")
    add_alert(sqlite_city_db, DISTRICT, "aqi", now, rule="district-aqi")  # above the street: not its card's
    app = create_app(replace(Settings(), database_url=sqlite_city_db.url, run_scheduler=False))
    cards, heading, _ = in_callback(app, show_kpis, {"unit": COMMUNITY, "indicator": "aqi"}, 0)
    by_key = {card.id["indicator"]: card for card in cards}
    badge = card_badge_of(by_key["aqi"])
    assert _text(badge) == "⚠ 1" and "alert-critical" in badge.className
    with sqlite_city_db.session() as session:
        street_name = load_tree(session).row(sqlite_city_db.unit_ids[STREET]).name_zh
    assert badge.title.startswith(f"{street_name}：1 条未结告警")
    assert card_badge_of(by_key["hotline_complaints"]) is None
    assert heading[-1] is None  # nothing open in the community itself


def card_badge_of(card):
    head = card.children[0]
    return head.children[1]
