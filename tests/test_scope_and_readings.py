"""Viewer scope and what the screen reads: current readings, children, trends and rankings, never outside scope.

The database is the tiny city with two hours of hand-picked values (readings_city.py lists them), and `catalog` is
`pinned_catalog` from there: the shipped catalog with the thresholds the expectations below were worked out for.
"""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import text

from cityops.hierarchy import Level
from cityops.readings import Reading, children_readings, last_update, source_of, trend, unit_readings, \
    units_over_threshold
from cityops.rollup import refresh_rollups
from cityops.scope import OutOfScope, Scope, Viewer, scope_of_unit, viewer_scope
from cityops.status import Status
from cityops.tree import load_tree
from readings_city import (C, CITY, D1, D2, HOUR, NOW, OFFSET, S11, S12, S21, S22,  # noqa: F401 - pinned_catalog
                           pinned_catalog, populate)


@pytest.fixture(scope="module")
def db(tmp_path_factory, catalog, city_db_factory):
    from cityops.db import migrate

    url = f"sqlite:///{(tmp_path_factory.mktemp('readings') / 'readings.db').as_posix()}"
    migrate(url)
    city = city_db_factory(url, catalog)
    populate(city)
    return city


@pytest.fixture
def session(db):
    with db.session() as session:
        yield session


@pytest.fixture
def everyone(session) -> Scope:
    return viewer_scope(session, Viewer())


@pytest.fixture
def district_one(session) -> Scope:
    return viewer_scope(session, Viewer("district-1 officer", root_code=D1))


def ids(db, *codes):
    return [db.unit_ids[code] for code in codes]


# ------------------------------------------------------------------------------------------------
# Scope
# ------------------------------------------------------------------------------------------------


def test_anonymous_viewer_sees_the_whole_city(db, session, everyone):
    tree = load_tree(session)
    assert everyone.root_id == db.unit_ids[CITY] and everyone.root_code == CITY
    assert all(everyone.contains(tree, unit_id) for unit_id in db.unit_ids.values())
    assert everyone == scope_of_unit(tree, tree.root_id)


def test_district_scope_contains_its_subtree_only(db, session, district_one):
    tree = load_tree(session)
    assert district_one.root_code == D1
    inside = [D1, S11, S12, *C[:4]]
    outside = [CITY, D2, S21, S22, *C[4:]]
    assert all(district_one.contains(tree, unit_id) for unit_id in ids(db, *inside))
    assert not any(district_one.contains(tree, unit_id) for unit_id in ids(db, *outside))
    assert not district_one.contains(tree, 99_999)  # an id sent by a page that does not exist
    district_one.require(tree, db.unit_ids[C[3]])
    for code in (CITY, D2, C[4]):
        with pytest.raises(OutOfScope, match=D1):
            district_one.require(tree, db.unit_ids[code])


def test_scope_clause_limits_units_in_sql(db, session, district_one):
    from sqlalchemy import select

    from cityops.models import Unit

    codes = set(session.execute(select(Unit.code).where(district_one.clause())).scalars())
    assert codes == {D1, S11, S12, *C[:4]}


def test_viewer_assigned_to_an_unknown_unit_sees_nothing(session):
    with pytest.raises(OutOfScope, match="unknown unit 990199"):
        viewer_scope(session, Viewer("ghost", root_code="990199"))


@pytest.mark.parametrize("call", ["children", "unit", "trend", "over_threshold"])
def test_every_query_refuses_a_unit_outside_the_scope(db, session, district_one, catalog, call):
    for code in (CITY, D2, S21, C[5]):
        unit = db.unit_ids[code]
        with pytest.raises(OutOfScope):
            if call == "children":
                children_readings(session, district_one, catalog, db.indicator_ids, unit, "hotline_complaints", NOW)
            elif call == "unit":
                unit_readings(session, district_one, catalog, db.indicator_ids, unit, NOW)
            elif call == "trend":
                trend(session, district_one, catalog, db.indicator_ids, unit, "hotline_complaints", 0, NOW)
            else:
                units_over_threshold(session, district_one, catalog, db.indicator_ids, unit, "hotline_complaints",
                                     NOW)


def test_a_scope_rooted_below_the_city_sees_only_its_children(db, session, catalog):
    tree = load_tree(session)
    street = scope_of_unit(tree, db.unit_ids[S12])
    frame = children_readings(session, street, catalog, db.indicator_ids, db.unit_ids[S12], "hotline_complaints", NOW)
    assert list(frame["code"]) == [C[2], C[3]]
    with pytest.raises(OutOfScope):
        children_readings(session, street, catalog, db.indicator_ids, db.unit_ids[D1], "hotline_complaints", NOW)


# ------------------------------------------------------------------------------------------------
# Readings
# ------------------------------------------------------------------------------------------------


def by_code(frame: pd.DataFrame) -> dict[str, dict]:
    return {row["code"]: row for row in frame.to_dict("records")}


def test_children_of_a_street_with_community_thresholds(db, session, everyone, catalog):
    rows = by_code(children_readings(session, everyone, catalog, db.indicator_ids, db.unit_ids[S11],
                                     "hotline_complaints", NOW))
    assert set(rows) == {C[0], C[1]}
    assert (rows[C[0]]["value"], rows[C[0]]["status"]) == (4.0, "warning")   # community: warning 3, critical 5
    assert (rows[C[1]]["value"], rows[C[1]]["status"]) == (1.0, "normal")
    assert rows[C[0]]["observed_at"] == HOUR + 600 and rows[C[0]]["reported"] == 1


def test_children_of_a_district_use_street_thresholds(db, session, everyone, catalog):
    rows = by_code(children_readings(session, everyone, catalog, db.indicator_ids, db.unit_ids[D2],
                                     "hotline_complaints", NOW))
    # 15 is critical for a community but only a warning for a street (14/22); 1 with one of two reporting.
    assert (rows[S21]["value"], rows[S21]["status"], rows[S21]["reported"], rows[S21]["expected"]) == \
        (15.0, "warning", 2, 2)
    assert (rows[S22]["value"], rows[S22]["status"], rows[S22]["reported"], rows[S22]["expected"]) == \
        (1.0, "normal", 1, 2)
    rows = by_code(children_readings(session, everyone, catalog, db.indicator_ids, db.unit_ids[D1],
                                     "hotline_complaints", NOW))
    assert (rows[S11]["value"], rows[S11]["status"]) == (5.0, "normal")  # critical by community thresholds


def test_a_value_older_than_its_interval_and_a_quarter_is_stale(db, session, everyone, catalog):
    rows = by_code(children_readings(session, everyone, catalog, db.indicator_ids, db.unit_ids[S22],
                                     "hotline_complaints", NOW))
    assert (rows[C[6]]["value"], rows[C[6]]["status"]) == (2.0, "stale")     # 80 minutes old, interval 1 h
    assert rows[C[7]]["status"] == "normal"
    # The same value 75 minutes old would still be fresh.
    fresh = children_readings(session, everyone, catalog, db.indicator_ids, db.unit_ids[S22], "hotline_complaints",
                              HOUR - 3000 + 4500)
    assert by_code(fresh)[C[6]]["status"] == "normal"


def test_higher_is_better_colours(db, session, everyone, catalog):
    rows = by_code(children_readings(session, everyone, catalog, db.indicator_ids, db.unit_ids[S11],
                                     "garbage_sorting_compliance", NOW))
    assert rows[C[0]]["status"] == "normal" and rows[C[1]]["status"] == "warning"
    rows = by_code(children_readings(session, everyone, catalog, db.indicator_ids, db.unit_ids[S12],
                                     "garbage_sorting_compliance", NOW))
    assert rows[C[2]]["status"] == "critical" and rows[C[3]]["status"] == "normal"


def test_children_below_the_measured_level_have_no_data(db, session, everyone, catalog):
    frame = children_readings(session, everyone, catalog, db.indicator_ids, db.unit_ids[S11], "aqi", NOW)
    assert list(frame["code"]) == [C[0], C[1]]
    assert set(frame["status"]) == {"nodata"} and frame["value"].isna().all()


def test_a_community_has_no_children_and_nothing_below_it(db, session, everyone, catalog):
    for key in ("aqi", "hotline_complaints"):
        leaf = children_readings(session, everyone, catalog, db.indicator_ids, db.unit_ids[C[0]], key, NOW)
        assert leaf.empty and {"unit_id", "code", "value", "status"} <= set(leaf.columns)
        below = units_over_threshold(session, everyone, catalog, db.indicator_ids, db.unit_ids[C[0]], key, NOW)
        assert below.empty and "severity" in below.columns


def test_unit_readings_of_the_city_equal_the_live_rollups_in_the_database(db, session, everyone, catalog):
    readings = unit_readings(session, everyone, catalog, db.indicator_ids, db.unit_ids[CITY], NOW)
    rows = session.execute(text(
        "SELECT i.key, c.value, c.reported, c.expected, c.latest_observed_at FROM current_rollups c "
        "JOIN indicators i ON i.id = c.indicator_id WHERE c.unit_id = :u"), {"u": db.unit_ids[CITY]}).all()
    assert {key for key, *_ in rows} == {"hotline_complaints", "aqi", "garbage_sorting_compliance",
                                         "grid_incidents_open", "grid_incidents_overdue", "grid_overdue_rate"}
    for key, value, reported, expected, latest in rows:
        reading = readings[key]
        assert (reading.value, reading.reported, reading.expected, reading.observed_at) == \
            (value if reported else None, reported, expected, latest), key
    assert readings["hotline_complaints"].value == 27.0
    assert (readings["hotline_complaints"].reported, readings["hotline_complaints"].expected) == (7, 8)
    assert readings["aqi"].value == pytest.approx((80 * 3 + 120 * 7 + 160 * 11 + 90 * 15) / 36)
    assert readings["grid_overdue_rate"].value == pytest.approx(2 / 80 * 100)
    # Nothing reported for the rest: no data, but measured.
    assert readings["noise"] == Reading("noise", None, None, Status.NO_DATA)


def test_unit_readings_change_versus_the_previous_period(db, session, everyone, catalog):
    city = unit_readings(session, everyone, catalog, db.indicator_ids, db.unit_ids[CITY], NOW)["hotline_complaints"]
    assert (city.value, city.previous, city.change) == (27.0, 9.0, 18.0)
    community = unit_readings(session, everyone, catalog, db.indicator_ids, db.unit_ids[C[4]], NOW)
    hotline = community["hotline_complaints"]
    assert (hotline.value, hotline.previous, hotline.change, hotline.status) == (9.0, 1.0, 8.0, Status.CRITICAL)
    assert (hotline.reported, hotline.expected) == (1, 1)


def test_unit_readings_statuses_at_each_level(db, session, everyone, catalog):
    def read(code):
        return unit_readings(session, everyone, catalog, db.indicator_ids, db.unit_ids[code], NOW)

    assert read(C[0])["grid_overdue_rate"].status == Status.CRITICAL   # 20 %
    assert read(S11)["grid_overdue_rate"].status == Status.WARNING     # 2 of 20 = 10 %
    assert read(D1)["grid_overdue_rate"].status == Status.NORMAL       # 2 of 40 = 5 %
    assert read(D1)["aqi"].status == Status.WARNING                    # (80·3000 + 120·7000) / 10000 = 108
    assert read(D1)["aqi"].value == pytest.approx(108.0)
    assert read(S21)["aqi"].status == Status.CRITICAL
    assert read(S22)["hotline_complaints"].status == Status.NORMAL


def test_a_unit_below_the_measured_level_reads_its_ancestors_value(db, session, everyone, catalog):
    community = unit_readings(session, everyone, catalog, db.indicator_ids, db.unit_ids[C[0]], NOW)
    street = unit_readings(session, everyone, catalog, db.indicator_ids, db.unit_ids[S11], NOW)
    district = unit_readings(session, everyone, catalog, db.indicator_ids, db.unit_ids[D1], NOW)
    # AQI is measured per street: the community's card shows its street's reading, saying whose it is.
    assert street["aqi"].measured and street["aqi"].value == 80.0 and street["aqi"].status == Status.NORMAL
    assert community["aqi"] == Reading("aqi", 80.0, street["aqi"].observed_at, Status.NORMAL, reported=1,
                                       expected=1, previous=street["aqi"].previous, measured=False,
                                       owner_id=db.unit_ids[S11])
    # Power load is measured per district: the street and the community read the district's (nothing reported).
    assert not street["power_load_ratio"].measured and street["power_load_ratio"].owner_id == db.unit_ids[D1]
    assert district["power_load_ratio"] == Reading("power_load_ratio", None, None, Status.NO_DATA)
    assert community["power_load_ratio"] == Reading("power_load_ratio", None, None, Status.NO_DATA, measured=False,
                                                    owner_id=db.unit_ids[D1])
    assert community["hotline_complaints"].measured and community["hotline_complaints"].owner_id is None
    assert set(community) == set(catalog.keys)


def test_an_ancestor_outside_the_viewers_scope_stands_for_nothing(db, session, catalog):
    """A viewer who may see one community only is not shown its street's figures through it."""
    tree = load_tree(session)
    community_only = scope_of_unit(tree, db.unit_ids[C[0]])
    community = unit_readings(session, community_only, catalog, db.indicator_ids, db.unit_ids[C[0]], NOW)
    assert community["aqi"] == Reading("aqi", None, None, Status.NO_DATA, measured=False)
    assert community["hotline_complaints"].measured


def test_sparklines_below_the_measured_level_are_the_ancestors(db, session, everyone, catalog):
    from cityops.readings import sparklines

    since = NOW - 3 * HOUR
    community = sparklines(session, everyone, catalog, db.indicator_ids, db.unit_ids[C[0]], since)
    street = sparklines(session, everyone, catalog, db.indicator_ids, db.unit_ids[S11], since)
    assert street["aqi"] and community["aqi"] == street["aqi"]
    assert community["hotline_complaints"] and community["hotline_complaints"] != street["hotline_complaints"]
    community_only = scope_of_unit(load_tree(session), db.unit_ids[C[0]])
    alone = sparklines(session, community_only, catalog, db.indicator_ids, db.unit_ids[C[0]], since)
    assert alone["aqi"] == [] and alone["hotline_complaints"] == community["hotline_complaints"]


def test_source_of(catalog):
    assert source_of(catalog["aqi"], Level.STREET) == "reported"
    assert source_of(catalog["aqi"], Level.DISTRICT) == "rollup"
    assert source_of(catalog["aqi"], Level.COMMUNITY) is None
    assert source_of(catalog["grid_overdue_rate"], Level.COMMUNITY) == "rollup"


def test_trend_of_a_rollup_and_of_a_reported_value(db, session, everyone, catalog):
    city = trend(session, everyone, catalog, db.indicator_ids, db.unit_ids[CITY], "hotline_complaints",
                 HOUR - 3600, NOW)
    assert city.values.tolist() == [[HOUR - 3600, 9.0, 8, 8], [HOUR, 27.0, 7, 8]]
    community = trend(session, everyone, catalog, db.indicator_ids, db.unit_ids[C[0]], "hotline_complaints",
                      HOUR - 7200, NOW)
    assert community.values.tolist() == [[HOUR - 3000, 1.0, 1, 1], [HOUR + 600, 4.0, 1, 1]]
    assert trend(session, everyone, catalog, db.indicator_ids, db.unit_ids[C[0]], "aqi", 0, NOW).empty


def test_units_over_threshold_worst_first_at_every_level(db, session, everyone, catalog):
    ranked = units_over_threshold(session, everyone, catalog, db.indicator_ids, db.unit_ids[CITY],
                                  "hotline_complaints", NOW)
    got = list(zip(ranked["code"], ranked["status"], ranked["severity"]))
    # Severity: (value − warning) ÷ (critical − warning) at the unit's own level.
    assert got[0] == (C[4], "critical", 3.0)
    assert set(got[1:3]) == {(C[2], "critical", 1.5), (C[5], "critical", 1.5)}
    assert got[3:] == [(C[0], "warning", 0.5), (S21, "warning", 0.125)]
    assert C[6] not in set(ranked["code"])  # stale values are not ranked, whatever they say


def test_units_over_threshold_stays_within_the_scope(db, session, district_one, catalog):
    ranked = units_over_threshold(session, district_one, catalog, db.indicator_ids, db.unit_ids[D1],
                                  "hotline_complaints", NOW)
    assert list(ranked["code"]) == [C[2], C[0]]
    limited = units_over_threshold(session, district_one, catalog, db.indicator_ids, db.unit_ids[D1],
                                   "hotline_complaints", NOW, limit=1)
    assert list(limited["code"]) == [C[2]]
    none = units_over_threshold(session, district_one, catalog, db.indicator_ids, db.unit_ids[D1], "noise", NOW)
    assert none.empty and "severity" in none.columns


def test_last_update_is_the_newest_successful_run(session):
    assert last_update(session) == NOW


def test_readings_on_both_databases(city_db, catalog):
    """The same reads on SQLite and PostgreSQL: the city's readings match its live roll-up rows."""
    populate(city_db)
    with city_db.session() as session:
        everyone = viewer_scope(session, Viewer())
        city = unit_readings(session, everyone, catalog, city_db.indicator_ids, city_db.unit_ids[CITY], NOW)
        district = viewer_scope(session, Viewer(root_code=D2))
        ranked = units_over_threshold(session, district, catalog, city_db.indicator_ids, city_db.unit_ids[D2],
                                      "hotline_complaints", NOW)
        children = children_readings(session, district, catalog, city_db.indicator_ids, city_db.unit_ids[D2],
                                     "aqi", NOW)
        with pytest.raises(OutOfScope):
            unit_readings(session, district, catalog, city_db.indicator_ids, city_db.unit_ids[C[0]], NOW)
    assert (city["hotline_complaints"].value, city["hotline_complaints"].reported) == (27.0, 7)
    assert city["hotline_complaints"].previous == 9.0
    assert list(ranked["code"])[0] == C[4] and set(ranked["code"]) == {C[4], C[5], S21}
    assert dict(zip(children["code"], children["status"])) == {S21: "critical", S22: "normal"}


def test_a_street_whose_communities_all_went_quiet_has_no_live_value(sqlite_city_db, catalog):
    db = sqlite_city_db
    stale_at = NOW - 2 * 3600
    populate(db)
    _, touched = db.store([(C[0], "fire_alarms", stale_at, 3), (C[1], "fire_alarms", stale_at, 1),
                           (C[2], "fire_alarms", NOW - 60, 0)])
    with db.session() as session:
        refresh_rollups(session, catalog, db.indicator_ids, load_tree(session), touched, NOW, OFFSET)
        rows = by_code(children_readings(session, viewer_scope(session, Viewer()), catalog, db.indicator_ids,
                                         db.unit_ids[D1], "fire_alarms", NOW))
    assert pd.isna(rows[S11]["value"]) and (rows[S11]["reported"], rows[S11]["expected"]) == (0, 2)
    assert rows[S11]["observed_at"] == stale_at and rows[S11]["status"] != "normal"
    assert (rows[S12]["value"], rows[S12]["reported"], rows[S12]["status"]) == (0.0, 1, "normal")


def test_unit_readings_read_every_indicator_in_four_statements_on_both_databases(db_url, catalog, city_db_factory):
    """The KPI cards' readings of one unit: the snapshot rows of each source, then each source's previous values,
    whatever the catalog's size, on SQLite and PostgreSQL; each reading as the one-indicator reads give it."""
    from sqlalchemy import event

    from cityops.db import engine_for, session_scope
    from cityops.readings import current_frame

    city = city_db_factory(db_url, catalog)
    populate(city)
    statements: list[str] = []

    def seen(_connection, _cursor, statement, *_args):
        statements.append(statement)

    with session_scope(db_url) as session:
        everyone = viewer_scope(session, Viewer())
        tree = load_tree(session)
        for code in (CITY, D1, S12, C[4], C[6]):
            unit = city.unit_ids[code]
            event.listen(engine_for(db_url), "before_cursor_execute", seen)
            try:
                statements.clear()
                readings = unit_readings(session, everyone, catalog, city.indicator_ids, unit, NOW, tree=tree)
                assert len(statements) <= 4, statements
            finally:
                event.remove(engine_for(db_url), "before_cursor_execute", seen)
            for indicator in catalog:
                reading = readings[indicator.key]
                # Below the indicator's level the reading is the ancestor's there: compared with that one's read.
                owner = reading.owner_id if reading.owner_id is not None else unit
                assert reading.owner_id is None or not reading.measured
                frame = current_frame(session, everyone, indicator, city.indicator_ids[indicator.key], [owner],
                                      Level(int(tree.frame.at[owner, "level"])), NOW)
                if frame.empty:
                    assert reading.value is None and reading.status in (Status.NO_DATA,), (code, indicator.key)
                    continue
                row = frame.iloc[0]
                assert reading.status.value == row["status"], (code, indicator.key)
                assert reading.value == (None if pd.isna(row["value"]) else pytest.approx(float(row["value"])))
                assert (reading.reported, reading.expected) == (int(row["reported"]), int(row["expected"]))
        hotline = unit_readings(session, everyone, catalog, city.indicator_ids, city.unit_ids[C[4]], NOW)
        assert (hotline["hotline_complaints"].previous, hotline["hotline_complaints"].change) == (1.0, 8.0)
        # The sparklines' (unit, indicator) pairs read on both databases: a community's AQI is its street's.
        from cityops.readings import sparklines
        community_lines = sparklines(session, everyone, catalog, city.indicator_ids, city.unit_ids[C[0]],
                                     NOW - 3 * HOUR, tree=tree)
        street_lines = sparklines(session, everyone, catalog, city.indicator_ids, city.unit_ids[S11], NOW - 3 * HOUR,
                                  tree=tree)
        assert street_lines["aqi"] and community_lines["aqi"] == street_lines["aqi"]
        city_hotline = unit_readings(session, everyone, catalog, city.indicator_ids, city.unit_ids[CITY], NOW)
        assert (city_hotline["hotline_complaints"].previous, city_hotline["hotline_complaints"].change) == (9.0, 18.0)
