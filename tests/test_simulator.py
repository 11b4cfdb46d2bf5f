"""The simulator connector: deterministic, replayable, plausible, complete per indicator, with some silence.

Most tests fetch straight from the connector with the tiny city's unit tree; completeness and value ranges also
use a 200-community demo city, where silence at a 1 % share is visible. The districts' own counts are checked in
that city with 25 times the people, so an hour's count is large enough for percentages to mean something.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from cityops.buckets import bucket_start
from cityops.catalog import Catalog
from cityops.db import migrate, session_scope
from cityops.demo_city import generate_city
from cityops.hierarchy import Level
from cityops.tree import load_tree
from connectors.base import ConnectorContext, RecordBatch, resolve_config
from connectors.config import ConnectorInstance
from connectors.runner import run_connector
from connectors.simulator import COUNT_NOISE, MODELS, OWN_COUNTS, SimulatorConnector

ZONE = "Asia/Shanghai"
NOW = int(datetime(2026, 11, 26, 10, 30, tzinfo=ZoneInfo(ZONE)).timestamp())
HOUR = 3600
ALL_LEVELS = (Level.DISTRICT, Level.STREET, Level.COMMUNITY)

# What a sane source could report for each indicator: (lowest, highest, whole numbers only).
PLAUSIBLE = {
    "hotline_complaints": (0, 500, True),
    "hotline_complaints_district": (0, 20_000, True),
    "grid_incidents_open": (0, 5000, True),
    "grid_incidents_overdue": (0, 5000, True),
    "fire_alarms": (0, 50, True),
    "waterlogging_depth": (0, 100, False),
    "garbage_sorting_compliance": (0, 100, False),
    "elderly_care_coverage": (0, 100, False),
    "aqi": (0, 500, True),
    "pm25": (0, 1000, True),
    "noise": (30, 110, False),
    "traffic_congestion": (0, 10, False),
    "population_inflow": (0, 1_000_000, True),
    "water_pressure": (0.05, 1.0, False),
    "power_load_ratio": (0, 150, False),
}


def tree_of(url):
    with session_scope(url) as session:
        return load_tree(session)


def simulator(tree, catalog, now=NOW, **config) -> SimulatorConnector:
    context = ConnectorContext(catalog=catalog, tree=tree, now=now, timezone=ZONE)
    return SimulatorConnector("sim", resolve_config(SimulatorConnector.config_schema, config, "test"), context)


def fetch(tree, catalog, since, now, **config) -> list[tuple]:
    """Every record the simulator yields, as (unit_code, indicator, observed_at, value) in yield order."""
    records = []
    for batch in simulator(tree, catalog, now, **config).fetch(str(since)):
        assert isinstance(batch, RecordBatch)
        records.extend((code, key, int(at), float(value)) for code, key, at, value
                       in batch.frame[list(RecordBatch.COLUMNS)].itertuples(index=False, name=None))
    return records


@pytest.fixture
def tiny_tree(sqlite_city_db):
    return tree_of(sqlite_city_db.url)


@pytest.fixture(scope="module")
def demo_tree(tmp_path_factory, catalog, city_db_factory):
    url = f"sqlite:///{(tmp_path_factory.mktemp('demo') / 'demo.db').as_posix()}"
    migrate(url)
    city_db_factory(url, catalog, generate_city(2026, districts=4, streets=20, communities=200))
    return tree_of(url)


@pytest.fixture(scope="module")
def demo_window(demo_tree, catalog):
    """Six whole hours from the 200-community city: every unit reports once per hourly bucket unless silent."""
    start = bucket_start(NOW, HOUR) - 6 * HOUR
    return start, fetch(demo_tree, catalog, start, start + 6 * HOUR - 1, seed=11)


def test_same_seed_and_window_give_identical_records(tiny_tree, catalog):
    first = fetch(tiny_tree, catalog, NOW - 6 * HOUR, NOW, seed=5)
    assert len(first) > 500
    assert fetch(tiny_tree, catalog, NOW - 6 * HOUR, NOW, seed=5) == first
    other = fetch(tiny_tree, catalog, NOW - 6 * HOUR, NOW, seed=6)
    assert [r[3] for r in other] != [r[3] for r in first]


def test_values_do_not_depend_on_how_the_time_is_split_into_runs(tiny_tree, catalog):
    start, middle, end = NOW - 9 * HOUR, NOW - 9 * HOUR + 4 * HOUR + 1234, NOW
    whole = fetch(tiny_tree, catalog, start, end, seed=5)
    parts = fetch(tiny_tree, catalog, start, middle - 1, seed=5) + fetch(tiny_tree, catalog, middle, end, seed=5)
    assert sorted(parts) == sorted(whole)
    assert len(parts) == len(whole) == len(set(whole))


def test_records_come_in_time_order_within_the_window(tiny_tree, catalog):
    since, now = NOW - 13 * HOUR - 17, NOW  # spans several internal windows
    times = [r[2] for r in fetch(tiny_tree, catalog, since, now, seed=5)]
    assert times == sorted(times)                 # ordered=True lets the runner commit the cursor per batch
    assert times[0] >= since and times[-1] <= now
    assert SimulatorConnector.ordered


def test_a_live_run_only_produces_records_from_its_cursor_on(tiny_tree, catalog):
    cursor = NOW - 600
    live = fetch(tiny_tree, catalog, cursor, NOW + 300, seed=5)
    assert live and all(cursor <= r[2] <= NOW + 300 for r in live)
    full = fetch(tiny_tree, catalog, NOW - 2 * HOUR, NOW + 300, seed=5)
    assert sorted(live) == sorted(r for r in full if r[2] >= cursor)


def test_every_reported_indicator_is_produced_at_its_level(tiny_tree, catalog):
    records = fetch(tiny_tree, catalog, NOW - 30 * HOUR, NOW, seed=5)
    produced = {r[1] for r in records}
    assert produced == {i.key for i in catalog.reported()}
    assert set(MODELS) | set(OWN_COUNTS) == {i.key for i in catalog.reported()}
    assert "grid_overdue_rate" not in produced  # derived: never reported
    level_of = dict(zip(tiny_tree.frame["code"], tiny_tree.frame["level"]))
    for code, key, _, _ in records:
        assert level_of[code] == catalog[key].level, (code, key)


def test_values_are_finite_and_plausible(demo_window, tiny_tree, catalog):
    _, records = demo_window
    records = records + fetch(tiny_tree, catalog, NOW - 30 * HOUR, NOW, seed=5)  # the daily ones too
    seen = defaultdict(list)
    for _, key, _, value in records:
        seen[key].append(value)
    assert set(seen) == set(PLAUSIBLE)
    for key, values in seen.items():
        low, high, whole = PLAUSIBLE[key]
        assert all(math.isfinite(v) for v in values), key
        assert low <= min(values) and max(values) <= high, (key, min(values), max(values))
        if whole:
            assert all(float(v).is_integer() for v in values), key
        assert len(set(values)) > 1, f"{key} never changes"


def test_overdue_never_exceeds_open_for_the_same_community_and_time(demo_window):
    _, records = demo_window
    open_ = {(code, at): value for code, key, at, value in records if key == "grid_incidents_open"}
    overdue = {(code, at): value for code, key, at, value in records if key == "grid_incidents_overdue"}
    both = open_.keys() & overdue.keys()
    assert len(both) > 1000
    assert all(overdue[k] <= open_[k] for k in both)
    assert any(overdue[k] > 0 for k in both)


def test_some_units_are_silent(demo_window, catalog):
    start, records = demo_window
    per_key = Counter(key for _, key, at, _ in records)
    for indicator in catalog.reported():
        if indicator.level != Level.COMMUNITY or indicator.interval_seconds != HOUR:
            continue
        expected = 200 * 6  # one report per community per whole hour
        assert expected * 0.95 < per_key[indicator.key] < expected, indicator.key
    hourly = [(code, key, bucket_start(at, HOUR)) for code, key, at, _ in records
              if catalog[key].interval_seconds == HOUR]
    assert len(set(hourly)) == len(hourly)  # a unit reports at most once per interval
    # Silence moves around: different communities miss different hours.
    reported = {(code, bucket) for code, key, bucket in hourly if key == "hotline_complaints"}
    communities = {code for code, key, _ in hourly if catalog[key].level == Level.COMMUNITY}
    missing = {(code, start + h * HOUR) for code in communities for h in range(6)} - reported
    assert len({code for code, _ in missing}) > 1 and len({bucket for _, bucket in missing}) > 1


def test_without_silence_every_unit_reports_every_interval(demo_tree, catalog):
    start = bucket_start(NOW, HOUR) - 2 * HOUR
    records = fetch(demo_tree, catalog, start, start + 2 * HOUR - 1, seed=11, silent_share=0.0)
    per_key = Counter(key for _, key, _, _ in records)
    assert per_key["hotline_complaints"] == 200 * 2
    assert per_key["aqi"] == 20 * 2
    assert per_key["traffic_congestion"] == 20 * 24
    assert per_key["power_load_ratio"] == 4 * 24
    assert per_key["hotline_complaints_district"] == 4 * 2


def test_health_check(tiny_tree, catalog):
    assert simulator(tiny_tree, catalog).check().healthy
    lonely = type(tiny_tree)(tiny_tree.frame[tiny_tree.frame["parent_id"].isna()])
    health = simulator(lonely, catalog).check()
    assert not health.healthy and "no units loaded" in health.detail


def test_replaying_a_window_through_the_runner_changes_nothing(city_db, catalog):
    inst = ConnectorInstance("city-simulator", "simulator", ALL_LEVELS, 300,
                             resolve_config(SimulatorConnector.config_schema, {"seed": 3}, "test"))
    since = str(NOW - 4 * HOUR)
    first = run_connector(city_db.url, inst, catalog, timezone=ZONE, now=NOW, since=since)
    assert (first.status, first.rejected, first.duplicates) == ("ok", 0, 0)
    assert first.accepted == first.fetched > 300

    def snapshot():
        with city_db.session() as session:
            return [session.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2, 3")).all()
                    for table in ("observations", "current_values", "rollup_history", "current_rollups")]

    before = snapshot()
    replay = run_connector(city_db.url, inst, catalog, timezone=ZONE, now=NOW, since=since)
    assert (replay.status, replay.fetched, replay.accepted, replay.duplicates) == ("ok", first.fetched, 0,
                                                                                  first.fetched)
    assert snapshot() == before

    # The next live run continues from the cursor: only the newest record time is delivered again.
    with city_db.session() as session:
        cursor = int(session.execute(text("SELECT cursor FROM connector_cursors")).scalar())
    assert NOW - 300 < cursor <= NOW
    live = run_connector(city_db.url, inst, catalog, timezone=ZONE, now=NOW + 900)
    with city_db.session() as session:
        at_cursor = session.execute(text("SELECT count(*) FROM observations WHERE observed_at = :t"),
                                    {"t": cursor}).scalar()
    assert live.status == "ok" and live.duplicates == at_cursor and live.accepted == live.fetched - at_cursor > 0


# ------------------------------------------------------------------------------------------------
# A district's own count against the sum of its communities' (for the cross-level consistency rule)
# ------------------------------------------------------------------------------------------------

WEEK = 7 * 24 * HOUR


@pytest.fixture(scope="module")
def crowded_tree(tmp_path_factory, catalog, city_db_factory):
    """The 200-community demo city with 25 times the people: a district counts dozens of calls an hour."""
    url = f"sqlite:///{(tmp_path_factory.mktemp('crowded') / 'crowded.db').as_posix()}"
    migrate(url)
    records = [dataclasses.replace(unit, population=unit.population * 25)
               for unit in generate_city(2026, districts=4, streets=20, communities=200)]
    city_db_factory(url, catalog, records)
    return tree_of(url)


def hotline_only(catalog) -> Catalog:
    return Catalog((catalog["hotline_complaints"], catalog["hotline_complaints_district"]), catalog.source)


def district_of_community(tree) -> dict[str, str]:
    pairs = tree.membership(Level.COMMUNITY, include_self=False)
    codes, levels = tree.frame["code"], tree.frame["level"]
    pairs = pairs[levels.reindex(pairs["ancestor_id"]).to_numpy() == int(Level.DISTRICT)]
    return dict(zip(codes.reindex(pairs["leaf_id"]), codes.reindex(pairs["ancestor_id"])))


def own_counts_and_sums(tree, catalog, start, end, **config):
    """{(district code, hour): (the district's own count, the sum of its communities' reports)} for [start, end)."""
    district_of = district_of_community(tree)
    own, summed = {}, defaultdict(float)
    for code, key, at, value in fetch(tree, hotline_only(catalog), start, end - 1, **config):
        if key == "hotline_complaints_district":
            own[(code, bucket_start(at, HOUR))] = value
        else:
            summed[(district_of[code], bucket_start(at, HOUR))] += value
    return {hour: (own[hour], summed[hour]) for hour in own}


@pytest.fixture(scope="module")
def week_of_counts(crowded_tree, catalog):
    """A week up to the tests' clock without silence, so each district hour is compared with all its communities."""
    start = bucket_start(NOW, HOUR) - WEEK
    counts = own_counts_and_sums(crowded_tree, catalog, start, start + WEEK, seed=11, silent_share=0.0)
    broken = simulator(crowded_tree, catalog, seed=11).planned_broken_feeds(start, start + WEEK)
    return start, counts, broken


def broken_share(broken, district: str, hour: int) -> float | None:
    return next((share for code, since, until, share in broken if code == district and since <= hour < until), None)


def gap_pct(own: float, summed: float) -> float:
    """The consistency rule's measure: the difference as a percentage of the larger figure."""
    return abs(own - summed) / max(own, summed, 1) * 100


def test_a_district_counts_what_its_communities_report_within_the_noise(week_of_counts):
    start, counts, broken = week_of_counts
    assert len(counts) == 4 * 7 * 24  # every district, every hour: the own count is produced like any feed
    normal = {hour: pair for hour, pair in counts.items() if broken_share(broken, *hour) is None}
    assert len(normal) > 0.95 * len(counts)
    for (district, hour), (own, summed) in normal.items():
        assert abs(own - summed) <= COUNT_NOISE * summed + 0.5, (district, hour, own, summed)
    busy = [(own, summed) for own, summed in normal.values() if summed >= 20]  # the rule's min_base
    assert len(busy) > 100
    assert max(gap_pct(own, summed) for own, summed in busy) < 10  # never a warning when nothing is wrong
    assert sum(own != summed for own, summed in busy) > len(busy) / 2  # and not a copy: the count has noise


def test_a_broken_district_feed_under_reports_for_hours_at_a_time(week_of_counts):
    start, counts, broken = week_of_counts
    assert len(broken) >= 2  # one every three days: a week always has some, so the demo's alert fires now and then
    for district, since, until, share in broken:
        assert until - since >= 3 * HOUR  # outlasts the rule's `for: 2h`
        assert 0.6 <= share <= 0.8        # 20–40 % missing: a warning, often a critical
        hours = [hour for hour in range(since, until, HOUR) if start <= hour < start + WEEK]
        for hour in hours:
            own, summed = counts[(district, hour)]
            assert abs(own - share * summed) <= COUNT_NOISE * share * summed + 0.5, (district, hour, own, summed)
            if summed >= 20:
                assert gap_pct(own, summed) > 10, (district, hour, own, summed)
        others = [counts[(code, hour)] for code in {d for d, _ in counts} - {district} for hour in hours]
        assert others and all(abs(own - summed) <= COUNT_NOISE * summed + 0.5 for own, summed in others)
    judged = [gap_pct(*counts[(d, hour)]) for d, since, until, _ in broken
              for hour in range(since, until, HOUR) if (d, hour) in counts and counts[(d, hour)][1] >= 20]
    assert judged and max(judged) > 25  # the rule's critical_pct is reached


def test_the_broken_feeds_are_planned_from_the_seed(crowded_tree, catalog, week_of_counts):
    start, counts, broken = week_of_counts
    assert simulator(crowded_tree, catalog, seed=11).planned_broken_feeds(start, start + WEEK) == broken
    assert simulator(crowded_tree, catalog, seed=12).planned_broken_feeds(start, start + WEEK) != broken
    day = start + 2 * 24 * HOUR
    again = own_counts_and_sums(crowded_tree, catalog, day, day + 12 * HOUR, seed=11, silent_share=0.0)
    assert again == {hour: pair for hour, pair in counts.items() if day <= hour[1] < day + 12 * HOUR}


def test_the_backfill_produces_the_districts_own_counts(tiny_tree, catalog):
    records = []
    for batch in simulator(tiny_tree, hotline_only(catalog), NOW, seed=5, backfill_days=1).fetch(None):
        records.extend(batch.frame.itertuples(index=False))
    own = [r for r in records if r.indicator == "hotline_complaints_district"]
    assert {r.unit_code for r in own} == {"990101", "990102"}
    # From the city's midnight a day before NOW (11-25 00:00) to NOW (11-26 10:30): 35 hours for each district.
    midnight = int(datetime(2026, 11, 25, tzinfo=ZoneInfo(ZONE)).timestamp())
    assert 2 * 35 * 0.9 < len(own) <= 2 * 35
    assert min(r.observed_at for r in own) >= midnight


def test_the_first_run_s_history_starts_at_midnight_with_every_hour_whole(tiny_tree, catalog):
    """Begun at NOW minus a day (10:30), the first hour held the reports of the units whose offset in the hour
    came after :30 only; a week later "the same hour last week" compared a whole hour with it."""
    records = []
    for batch in simulator(tiny_tree, hotline_only(catalog), NOW, seed=5, backfill_days=1,
                           silent_share=0.0).fetch(None):
        records.extend(batch.frame.itertuples(index=False))
    hours = Counter(bucket_start(r.observed_at, HOUR, 0) for r in records if r.indicator == "hotline_complaints")
    midnight = int(datetime(2026, 11, 25, tzinfo=ZoneInfo(ZONE)).timestamp())
    assert min(hours) == midnight
    whole = hours[midnight + 12 * HOUR]
    assert whole > 0 and all(hours[hour] == whole for hour in range(midnight, NOW // HOUR * HOUR, HOUR))


@pytest.mark.parametrize("zone, now, start", [
    # Half an hour off UTC: the city's midnight is no hour of UTC; the next one is.
    ("Asia/Kolkata", datetime(2026, 11, 26, 10, 30, tzinfo=ZoneInfo("Asia/Kolkata")),
     datetime(2026, 11, 19, 0, 30, tzinfo=ZoneInfo("Asia/Kolkata"))),
    # Seven calendar days back across the end of summer time (25 October): that day's midnight, not an hour off.
    ("Europe/Berlin", datetime(2026, 10, 28, 9, 0, tzinfo=ZoneInfo("Europe/Berlin")),
     datetime(2026, 10, 21, 0, 0, tzinfo=ZoneInfo("Europe/Berlin"))),
])
def test_the_first_history_starts_on_a_whole_hour_at_the_city_s_midnight(zone, now, start):
    from connectors.simulator import first_history_start

    assert first_history_start(now.timestamp(), ZoneInfo(zone), 7) == int(start.timestamp())
