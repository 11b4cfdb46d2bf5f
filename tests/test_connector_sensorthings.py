"""The sensorthings connector type against a real local SensorThings server (tests/sensorthings_server.py:
service root, Datastreams and their Observations with the query options the type uses, tokens, failures on
demand), through the real runner. Nothing is mocked.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import text

import connectors.sensorthings  # noqa: F401  (registers the type)
import connectors.sensorthings_observations
from cityops.hierarchy import Level
from cityops.tree import load_tree
from connectors.archive import RunArchive, open_payload, run_payloads
from connectors.base import ConnectorContext, FatalError, Record, RecordBatch
from connectors.config import ConnectorInstance, load_connectors
from connectors.mapping import source_at
from connectors.runner import build_connector, run_connector
from sensorthings_server import ROOT_PATH, SensorThings, epoch, sensorthings_server

ZONE = "Asia/Shanghai"
NOW = int(datetime.fromisoformat("2026-11-26T02:30:00+00:00").timestamp())  # 10:30 in Shanghai, as conftest
# Retries in milliseconds; no lookback unless a test is about it, so the $filter shows the cursor itself.
FAST = {"backoff": 0.01, "max_wait": 5.0, "timeout": 5.0, "lookback": "0"}
BY_PROPERTY = {"unit_code_from": "thing_property:street_code",
               "indicator_from": "datastream_property:onescreen_indicator"}
BY_OBSERVED_NAME = {"unit_code_from": "thing_property:street_code", "indicator_from": "observed_property_name",
                    "indicator_names": {"PM2.5": "pm25", "Air Quality Index": "aqi", "Noise level": "noise"}}


def at(hour: int, minute: int) -> str:
    """A time on the test day, as SensorThings servers write it (UTC, Z)."""
    return f"2026-11-26T{hour:02d}:{minute:02d}:00Z"


# ------------------------------------------------------------------------------------------------
# The server (tests/sensorthings_server.py), and the dataset most tests use
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def sta():
    with sensorthings_server() as server:
        yield server


def air_network(sta: SensorThings) -> None:
    """Three stations on three streets: PM2.5 (5 readings), AQI (4) and noise (2), a few minutes apart."""
    sta.thing(1, "AQ-West", street_code="990101001")
    sta.thing(2, "AQ-East", street_code="990102002")
    sta.thing(3, "Noise-North", street_code=990101002)  # a number: codes are often stored as one
    sta.datastream(11, "West PM2.5", 1, "PM2.5", onescreen_indicator="pm25")
    sta.datastream(12, "East AQI", 2, "Air Quality Index", onescreen_indicator="aqi")
    sta.datastream(13, "North noise", 3, "Noise level", onescreen_indicator="noise")
    sta.observe(11, (at(1, 0), 31.5), (at(1, 10), 40), (at(1, 20), 38.25), (at(1, 30), 12), (at(1, 40), 0))
    sta.observe(12, (at(1, 5), 55), (at(1, 15), 61), (at(1, 25), 70), (at(1, 35), 48))
    sta.observe(13, (at(1, 2), 52.5), (at(1, 32), 49))


AIR_VALUES = {
    **{("990101001", "pm25", epoch(at(1, m))): v for m, v in ((0, 31.5), (10, 40), (20, 38.25), (30, 12), (40, 0))},
    **{("990102002", "aqi", epoch(at(1, m))): v for m, v in ((5, 55), (15, 61), (25, 70), (35, 48))},
    **{("990101002", "noise", epoch(at(1, m))): v for m, v in ((2, 52.5), (32, 49))},
}


# ------------------------------------------------------------------------------------------------
# Running, and looking at the database and the archive
# ------------------------------------------------------------------------------------------------


def instance(sta: SensorThings, name: str = "iot", **config) -> ConnectorInstance:
    return ConnectorInstance(name=name, type="sensorthings", levels=(Level.STREET, Level.COMMUNITY),
                             interval_seconds=600, config={"url": sta.root, **FAST, **BY_PROPERTY, **config})


def run(db, inst: ConnectorInstance, tmp_path, **options):
    options.setdefault("now", NOW)
    return run_connector(db.url, inst, db.catalog, timezone=ZONE, archive_root=tmp_path / "archive", **options)


def fetch_all(db, sql: str, **params) -> list:
    with db.session() as session:
        return session.execute(text(sql), params).all()


def values(db) -> dict[tuple[str, str, int], float]:
    found = fetch_all(db, "SELECT u.code, i.key, o.observed_at, o.value FROM observations o "
                          "JOIN units u ON u.id = o.unit_id JOIN indicators i ON i.id = o.indicator_id")
    return {(code, key, int(at_)): value for code, key, at_, value in found}


def quarantined(db) -> list[tuple[str, Any, str]]:
    return [(reason, json.loads(raw), source)
            for reason, raw, source in fetch_all(db, "SELECT reason, raw, source FROM quarantine ORDER BY id")]


def cursor_of(db, name: str = "iot") -> str | None:
    found = fetch_all(db, "SELECT cursor FROM connector_cursors WHERE connector = :n", n=name)
    return found[0][0] if found else None


def archived(tmp_path, summary) -> list[tuple[str, bytes]]:
    """(label, payload) of every page the run archived, in order."""
    root = tmp_path / "archive"
    found = []
    for reference in run_payloads(root, summary.archive):
        with open_payload(root, reference) as stream:
            found.append((reference.rsplit("/", 1)[-1].removesuffix(".gz").split("-", 1)[-1], stream.read()))
    return found


def as_records(items) -> list[tuple]:
    """(unit_code, indicator, observed_at, value, source) of every record a connector yielded, batches read row by
    row (a batch's source: one payload, "#position" appended, or one source per row)."""
    found = []
    for item in items:
        if isinstance(item, RecordBatch):
            for position, row in zip(item.frame.index, item.frame[list(RecordBatch.COLUMNS)].itertuples(index=False)):
                source = source_at(item.source, position)
                found.append((*row, source))
        else:
            found.append((item.unit_code, item.indicator, item.observed_at, item.value, item.source))
    return found


@pytest.fixture
def context(sqlite_city_db, tmp_path):
    """What the runner hands a connector, with a run archive that check() must leave untouched."""
    with sqlite_city_db.session() as session:
        tree = load_tree(session)
    return ConnectorContext(sqlite_city_db.catalog, tree, NOW, ZONE, archive=RunArchive(tmp_path / "archive",
                                                                                         "iot", 1, NOW))


# ------------------------------------------------------------------------------------------------
# Fetching
# ------------------------------------------------------------------------------------------------


def test_datastreams_and_their_observations_are_read_page_by_page_and_stored_exactly(sqlite_city_db, sta,
                                                                                      tmp_path):
    air_network(sta)
    summary = run(sqlite_city_db, instance(sta, page_size=2), tmp_path)
    assert (summary.status, summary.fetched, summary.accepted, summary.rejected) == ("ok", 11, 11, 0)
    assert values(sqlite_city_db) == AIR_VALUES

    # The datastreams: listed with their Thing and ObservedProperty, two per page, the next link followed.
    listing = [r for r in sta.seen if r.path.endswith("/Datastreams")]
    assert [(r.query["$expand"], r.query["$top"], r.query.get("$skip")) for r in listing] == \
        [("Thing,ObservedProperty", "2", None), ("Thing,ObservedProperty", "2", "2")]
    # Then each datastream's observations in time order, every next link followed: 3 + 2 + 1 pages.
    asked = sta.observation_requests()
    assert [(r.path.rsplit("/", 2)[-2], r.query.get("$skip")) for r in asked] == [
        ("Datastreams(11)", None), ("Datastreams(11)", "2"), ("Datastreams(11)", "4"),
        ("Datastreams(12)", None), ("Datastreams(12)", "2"), ("Datastreams(13)", None)]
    assert all(r.query["$orderby"] == "phenomenonTime asc" and r.query["$top"] == "2" for r in asked)
    assert all("$filter" not in r.query for r in asked)  # no cursor, no history: everything the server has

    # Each page archived as it came; observations inside an envelope naming their datastream.
    pages = archived(tmp_path, summary)
    assert [label for label, _ in pages] == ["datastreams-1.json", "datastreams-2.json", "observations-11-1.json",
                                             "observations-11-2.json", "observations-11-3.json",
                                             "observations-12-1.json", "observations-12-2.json",
                                             "observations-13-1.json"]
    envelope = json.loads(pages[2][1])
    assert envelope["datastream"]["@iot.id"] == 11 and envelope["datastream"]["Thing"]["name"] == "AQ-West"
    assert [o["result"] for o in envelope["observations"]["value"]] == [31.5, 40]
    # The page is kept byte for byte (the server wrote it with json.dumps' default separators).
    assert pages[2][1].endswith(b'"observations": ' + json.dumps(envelope["observations"]).encode() + b"}")
    # The cursor: the newest observation of any datastream.
    assert cursor_of(sqlite_city_db) == str(epoch(at(1, 40)))


def test_a_second_run_asks_only_from_the_cursor_and_stores_the_new_observations(sqlite_city_db, sta, tmp_path):
    air_network(sta)
    inst = instance(sta, page_size=2)
    first = run(sqlite_city_db, inst, tmp_path)
    assert first.accepted == 11 and cursor_of(sqlite_city_db) == str(epoch(at(1, 40)))

    sta.observe(11, (at(1, 50), 20), (at(2, 0), 22.5))
    sta.observe(12, (at(1, 55), 51))
    sta.seen.clear()
    second = run(sqlite_city_db, inst, tmp_path)
    asked = sta.observation_requests()
    # Every datastream is asked from the cursor, as UTC with Z, the spaces percent-encoded (not "+").
    assert {r.query["$filter"] for r in asked} == {"phenomenonTime ge 2026-11-26T01:40:00Z"}
    assert all("$filter=phenomenonTime%20ge%202026-11-26T01:40:00Z&" in r.raw_query
               for r in asked if "$skip" not in r.query)
    # The cursor's own observation comes again (ge is inclusive): a duplicate, not a second copy.
    assert (second.status, second.fetched, second.accepted, second.duplicates) == ("ok", 4, 3, 1)
    assert values(sqlite_city_db) == {**AIR_VALUES, ("990101001", "pm25", epoch(at(1, 50))): 20,
                                      ("990101001", "pm25", epoch(at(2, 0))): 22.5,
                                      ("990102002", "aqi", epoch(at(1, 55))): 51}
    assert cursor_of(sqlite_city_db) == str(epoch(at(2, 0)))


def test_lookback_recovers_a_late_sensor_and_history_limits_the_first_run(sqlite_city_db, sta, tmp_path):
    air_network(sta)
    inst = instance(sta, lookback="1h", history="2h")
    first = run(sqlite_city_db, inst, tmp_path)
    # No cursor yet: the first run reads the last two hours (NOW is 02:30 UTC).
    assert {r.query["$filter"] for r in sta.observation_requests()} == {"phenomenonTime ge 2026-11-26T00:30:00Z"}
    assert first.accepted == 11

    # The east station was offline and uploads its buffer: readings older than the cursor (01:40).
    sta.observe(12, (at(1, 38), 44), (at(1, 45), 46))
    sta.seen.clear()
    second = run(sqlite_city_db, inst, tmp_path)
    assert {r.query["$filter"] for r in sta.observation_requests()} == {"phenomenonTime ge 2026-11-26T00:40:00Z"}
    assert (second.status, second.accepted) == ("ok", 2)
    assert values(sqlite_city_db)[("990102002", "aqi", epoch(at(1, 38)))] == 44
    assert cursor_of(sqlite_city_db) == str(epoch(at(1, 45)))


def test_an_interval_phenomenon_time_is_stored_at_its_end(sqlite_city_db, sta, tmp_path):
    sta.thing(1, "Noise-West", street_code="990101001")
    sta.datastream(21, "West noise, hourly", 1, "Noise level", onescreen_indicator="noise")
    sta.observe(21, (f"{at(0, 0)}/{at(1, 0)}", 51.5), (f"{at(1, 0)}/{at(2, 0)}", 48))
    inst = instance(sta)
    summary = run(sqlite_city_db, inst, tmp_path)
    assert (summary.status, summary.accepted) == ("ok", 2)
    assert values(sqlite_city_db) == {("990101001", "noise", epoch(at(1, 0))): 51.5,
                                      ("990101001", "noise", epoch(at(2, 0))): 48}
    assert cursor_of(sqlite_city_db) == str(epoch(at(2, 0)))

    # The next hour starts where the stored one ended: the server (comparing starts) sends it.
    sta.observe(21, (f"{at(2, 0)}/{at(3, 0)}", 45))
    second = run(sqlite_city_db, instance(sta), tmp_path, now=NOW + 3600)
    assert (second.status, second.accepted) == ("ok", 1)
    assert values(sqlite_city_db)[("990101001", "noise", epoch(at(3, 0)))] == 45


def test_text_ids_are_quoted_in_the_observations_path(sqlite_city_db, sta, tmp_path):
    sta.thing(1, "AQ-West", street_code="990101001")
    sta.datastream("ds-west-pm25", "West PM2.5", 1, "PM2.5", onescreen_indicator="pm25")
    sta.observe("ds-west-pm25", (at(1, 0), 30), (at(1, 10), 33))
    summary = run(sqlite_city_db, instance(sta), tmp_path)
    assert (summary.status, summary.accepted) == ("ok", 2)
    assert [r.path for r in sta.observation_requests()] == [f"{ROOT_PATH}/Datastreams('ds-west-pm25')/Observations"]
    assert [label for label, _ in archived(tmp_path, summary)] == ["datastreams-1.json",
                                                                   "observations-ds-west-pm25-1.json"]


@pytest.mark.parametrize("config, unit_code, indicator", [
    ({"unit_code_from": "thing_name", "indicator_from": "datastream_property:onescreen_indicator"},
     "990101002", "noise"),
    ({"unit_code_from": "datastream_property:street", "indicator_from": "observed_property_definition",
      "indicator_names": {"http://vocab.example/13": "noise"}}, "990101001", "noise"),
    ({"unit_code_from": "thing_property:street_code", "indicator_from": "observed_property_name",
      "indicator_names": {"Noise level": "noise"}}, "990102001", "noise"),
])
def test_each_way_of_naming_the_unit_and_the_indicator(sta, context, config, unit_code, indicator):
    sta.thing(3, "990101002", street_code="990102001")
    sta.datastream(13, "Noise", 3, "Noise level", onescreen_indicator="noise", street="990101001")
    sta.observe(13, (at(1, 0), 52))
    envelope = json.dumps({"datastream": sta._entity(sta.datastreams[0], {"Thing", "ObservedProperty"}),
                           "observations": {"value": sta.observations[13]}}).encode()
    replayed = list(build_connector(instance(sta, **config), context).replay("observations-13-1.json", envelope))
    assert [type(item) for item in replayed] == [RecordBatch]
    assert as_records(replayed) == [(unit_code, indicator, at(1, 0), 52, "observations-13-1.json#0")]


def test_datastreams_that_cannot_be_resolved_are_quarantined_once_each_and_the_others_stored(sqlite_city_db, sta,
                                                                                             tmp_path):
    air_network(sta)
    sta.thing(4, "Humidity-West", street_code="990101001")
    sta.thing(5, "Sensor without a street")
    sta.thing(6, "Noise-Community", street_code="990101001001")  # a community: noise is reported per street
    sta.thing(7, "Elsewhere", street_code="123456789")
    sta.datastream(14, "West humidity", 4, "Relative Humidity")
    sta.datastream(15, "Lost PM2.5", 5, "PM2.5")
    sta.datastream(16, "Community noise", 6, "Noise level")
    sta.datastream(17, "Far PM2.5", 7, "PM2.5")
    sta.datastream(18, "West PM2.5, second sensor", 1, "PM2.5")
    for ident in range(14, 19):
        sta.observe(ident, (at(1, 0), 1))
    summary = run(sqlite_city_db, instance(sta, **BY_OBSERVED_NAME, page_size=5), tmp_path)
    assert (summary.status, summary.fetched, summary.accepted, summary.rejected) == ("partial", 16, 11, 5)
    assert values(sqlite_city_db) == AIR_VALUES

    reasons = {raw["datastream"]["@iot.id"]: (reason, source) for reason, raw, source in quarantined(sqlite_city_db)}
    expected = {
        14: "datastream 14 'West humidity': observed property name 'Relative Humidity' is not a catalog indicator "
            "and not in indicator_names; add it to indicator_names",
        15: "datastream 15 'Lost PM2.5': its Thing has no property 'street_code'",
        16: "datastream 16 'Community noise': noise is reported per street, but 990101001001 (from "
            "thing_property:street_code) is a community",
        17: "datastream 17 'Far PM2.5': unit code '123456789' (from thing_property:street_code) is not a unit of "
            "this city",
        18: "datastream 18 'West PM2.5, second sensor': it resolves to 990101001 / pm25 like datastream 11 "
            "'West PM2.5', whose values it would overwrite",
    }
    assert set(reasons) == set(expected)
    for ident, start in expected.items():
        reason, source = reasons[ident]
        assert reason.startswith(start), reason
        assert "`onescreen backfill iot`" in reason and "datastream_filter" in reason
    # Each names its place in the archived Datastreams page (page 1 holds 11-15, page 2 16-18).
    assert reasons[14][1].endswith("-datastreams-1.json.gz#3") and reasons[17][1].endswith("-datastreams-2.json.gz#1")
    # Their observations are not asked for.
    assert {r.path.rsplit("/", 2)[-2] for r in sta.observation_requests()} == \
        {"Datastreams(11)", "Datastreams(12)", "Datastreams(13)"}


def test_unreadable_and_non_numeric_observations_are_quarantined_and_the_rest_stored(sqlite_city_db, sta,
                                                                                     tmp_path):
    air_network(sta)
    sta.observe(11, (at(1, 45), "n/a"), (at(1, 46), {"mean": 3}), (at(1, 47), None), (at(1, 48), "12.5"))
    sta.observations[11].append({"@iot.id": 1, "result": 7})  # no phenomenonTime
    summary = run(sqlite_city_db, instance(sta), tmp_path)
    assert (summary.status, summary.accepted, summary.rejected) == ("partial", 12, 4)
    assert values(sqlite_city_db) == {**AIR_VALUES, ("990101001", "pm25", epoch(at(1, 48))): 12.5}
    found = quarantined(sqlite_city_db)
    assert [reason for reason, _raw, _source in found] == [
        "value 'n/a' is not a number", "value {'mean': 3} is not a number", "value None is not a number",
        "datastream 11: the observation has no phenomenonTime"]
    reason, raw, source = found[0]
    # The record as resolved (quarantine re-processing can run it again), its datastream and what was sent.
    assert raw == {"unit_code": "990101001", "indicator": "pm25", "observed_at": at(1, 45), "value": "n/a",
                   "datastream": 11, "observation": sta.observations[11][5]}
    assert re.search(r"iot/.*/run-\d+/0002-observations-11-1\.json\.gz#5$", source)


@pytest.mark.parametrize("batch_rows", [None, 3])
def test_one_bad_observation_among_good_ones_is_quarantined_alone_with_its_page_and_position(
        sqlite_city_db, sta, tmp_path, monkeypatch, batch_rows):
    """Pages travel to the runner as batches of several pages (or, with small batches, several batches): a rejected
    observation still names its own archived page and position, and keeps what the server sent."""
    if batch_rows:
        monkeypatch.setattr(connectors.sensorthings_observations, "BATCH_ROWS", batch_rows)
    air_network(sta)
    sta.observations[12][3]["result"] = "broken"  # AQI at 01:35: the second row of datastream 12's second page
    sta.observe(11, (f"{at(1, 40)}/{at(1, 45)}", 9))  # an interval, among plain instants: stored at its end
    sta.observe(13, ("", 5))  # no time at all: sorted first by the server
    summary = run(sqlite_city_db, instance(sta, page_size=2), tmp_path)
    assert (summary.status, summary.fetched, summary.accepted, summary.rejected) == ("partial", 13, 11, 2)
    good = {key: value for key, value in AIR_VALUES.items() if key != ("990102002", "aqi", epoch(at(1, 35)))}
    assert values(sqlite_city_db) == {**good, ("990101001", "pm25", epoch(at(1, 45))): 9}

    found = {reason: (raw, source) for reason, raw, source in quarantined(sqlite_city_db)}
    assert set(found) == {"value 'broken' is not a number", "datastream 13: phenomenonTime '' is not a time"}
    raw, source = found["value 'broken' is not a number"]
    assert raw == {"unit_code": "990102002", "indicator": "aqi", "observed_at": at(1, 35), "value": "broken",
                   "datastream": 12, "observation": sta.observations[12][3]}
    assert re.search(r"-observations-12-2\.json\.gz#1$", source)
    raw, source = found["datastream 13: phenomenonTime '' is not a time"]
    assert (raw["observed_at"], raw["value"], raw["datastream"]) == ("", 5, 13)
    assert re.search(r"-observations-13-1\.json\.gz#0$", source)
    assert cursor_of(sqlite_city_db) == str(epoch(at(1, 45)))


def test_observations_come_as_columnar_batches_of_several_pages(sta, context, monkeypatch):
    monkeypatch.setattr(connectors.sensorthings_observations, "BATCH_ROWS", 5)
    air_network(sta)
    connector = build_connector(instance(sta, page_size=2), context)
    items = list(connector.fetch(None))
    run = context.archive.reference  # each page's reference in the run's archive: two Datastreams pages first
    # Pages of 2, 2, 1 (datastream 11) make the first batch; 2, 2 (12) and 2 (13) the second.
    assert [(type(item), len(item)) for item in items] == [(RecordBatch, 5), (RecordBatch, 6)]
    assert as_records(items) == [
        ("990101001", "pm25", at(1, 0), 31.5, f"{run}/0003-observations-11-1.json.gz#0"),
        ("990101001", "pm25", at(1, 10), 40, f"{run}/0003-observations-11-1.json.gz#1"),
        ("990101001", "pm25", at(1, 20), 38.25, f"{run}/0004-observations-11-2.json.gz#0"),
        ("990101001", "pm25", at(1, 30), 12, f"{run}/0004-observations-11-2.json.gz#1"),
        ("990101001", "pm25", at(1, 40), 0, f"{run}/0005-observations-11-3.json.gz#0"),
        ("990102002", "aqi", at(1, 5), 55, f"{run}/0006-observations-12-1.json.gz#0"),
        ("990102002", "aqi", at(1, 15), 61, f"{run}/0006-observations-12-1.json.gz#1"),
        ("990102002", "aqi", at(1, 25), 70, f"{run}/0007-observations-12-2.json.gz#0"),
        ("990102002", "aqi", at(1, 35), 48, f"{run}/0007-observations-12-2.json.gz#1"),
        ("990101002", "noise", at(1, 2), 52.5, f"{run}/0008-observations-13-1.json.gz#0"),
        ("990101002", "noise", at(1, 32), 49, f"{run}/0008-observations-13-1.json.gz#1")]
    # A rejected row's source row is built when the validator asks for it, from the page it came from.
    assert items[1].raw[3] == {"unit_code": "990102002", "indicator": "aqi", "observed_at": at(1, 35), "value": 48,
                               "datastream": 12, "observation": sta.observations[12][3]}


def test_every_shape_of_phenomenon_time_is_read_as_one_observation_at_a_time_would_be(sta, context):
    """Pages of plain instants are read column-wise; anything else (intervals, white space, missing fields) one by
    one, with the same results."""
    air_network(sta)
    observations = [{"phenomenonTime": at(1, 0), "result": 1},
                    {"phenomenonTime": f" {at(0, 0)} / {at(1, 10)} ", "result": 2},
                    {"phenomenonTime": f" {at(1, 20)}", "result": [3, 4]},
                    {"phenomenonTime": "   ", "result": 5},
                    {"phenomenonTime": 1764118800, "result": 6},
                    {"result": 7},
                    {"phenomenonTime": at(1, 30)},
                    ["not", "an", "object"],
                    {"phenomenonTime": at(1, 40), "result": None}]
    envelope = json.dumps({"datastream": sta._entity(sta.datastreams[0], {"Thing", "ObservedProperty"}),
                           "observations": {"value": observations}}).encode()
    items = list(build_connector(instance(sta), context).replay("observations-11-1.json", envelope))
    assert as_records(items) == [
        ("990101001", "pm25", at(1, 0), 1, "observations-11-1.json#0"),
        ("990101001", "pm25", at(1, 10), 2, "observations-11-1.json#1"),
        ("990101001", "pm25", at(1, 20), [3, 4], "observations-11-1.json#2"),
        ("990101001", "pm25", at(1, 40), None, "observations-11-1.json#8"),
        ("990101001", "pm25", "", 5, "observations-11-1.json#3"),
        ("990101001", "pm25", None, 6, "observations-11-1.json#4"),
        ("990101001", "pm25", None, 7, "observations-11-1.json#5"),
        ("990101001", "pm25", at(1, 30), None, "observations-11-1.json#6"),
        ("990101001", "pm25", None, None, "observations-11-1.json#7")]
    assert [item.problem for item in items if isinstance(item, Record)] == [
        "datastream 11: phenomenonTime '   ' is not a time", "datastream 11: phenomenonTime 1764118800 is not a time",
        "datastream 11: the observation has no phenomenonTime", "datastream 11: the observation has no result",
        "datastream 11: the observation is not a JSON object"]
    assert items[-1].raw == {"unit_code": "990101001", "indicator": "pm25", "observed_at": None, "value": None,
                             "datastream": 11, "observation": ["not", "an", "object"]}


def test_a_503_is_retried_and_the_run_completes(sqlite_city_db, sta, tmp_path):
    air_network(sta)
    sta.failures.append(("Datastreams(12)/Observations", 503))
    summary = run(sqlite_city_db, instance(sta), tmp_path)
    assert (summary.status, summary.accepted) == ("ok", 11)
    assert [r.path for r in sta.observation_requests()].count(f"{ROOT_PATH}/Datastreams(12)/Observations") == 2
    assert values(sqlite_city_db) == AIR_VALUES


def test_a_persistent_outage_fails_retriable_and_keeps_the_cursor(sqlite_city_db, sta, tmp_path):
    air_network(sta)
    sta.failures.extend([("Datastreams(13)/Observations", 503)] * 3)
    summary = run(sqlite_city_db, instance(sta, attempts=3), tmp_path)
    assert (summary.status, summary.error_family) == ("failed", "retriable")
    assert "Datastreams(13)/Observations" in summary.error_message
    assert "HTTP 503" in summary.error_message and "after 3 attempt(s)" in summary.error_message
    # The cursor waits for a run that reads every datastream.
    assert cursor_of(sqlite_city_db) is None


@pytest.mark.parametrize("auth, header", [("bearer", "authorization"), ("header", "x-api-key")])
def test_the_token_is_sent_and_a_refusal_fails_fatally_naming_token_env(sqlite_city_db, sta, tmp_path, auth,
                                                                        header):
    air_network(sta)
    sta.token = "s3cret"
    good = run(sqlite_city_db, instance(sta, auth=auth, token="s3cret"), tmp_path)
    assert (good.status, good.accepted) == ("ok", 11)
    assert sta.seen[0].headers[header] == ("Bearer s3cret" if auth == "bearer" else "s3cret")

    sta.seen.clear()
    refused = run(sqlite_city_db, instance(sta, auth=auth, token="stale"), tmp_path)
    assert (refused.status, refused.error_family) == ("failed", "fatal")
    assert "authentication refused (HTTP 401" in refused.error_message and "token_env" in refused.error_message
    assert "invalid credentials" in refused.error_message and "stale" not in refused.error_message
    assert len(sta.seen) == 1  # a refusal is not retried


def test_a_next_link_to_another_host_fails_naming_the_servers_root_url_setting(sqlite_city_db, sta, tmp_path):
    air_network(sta)
    sta.link_base = "http://localhost:8080"  # FROST's serviceRootUrl left at its internal default
    summary = run(sqlite_city_db, instance(sta, page_size=2), tmp_path)
    assert (summary.status, summary.error_family) == ("failed", "fatal")
    assert "points to another host (http://localhost:8080/FROST-Server/v1.1/Datastreams?…)" in summary.error_message
    assert "serviceRootUrl" in summary.error_message
    assert len(sta.seen) == 1


@pytest.mark.parametrize("config, message", [
    ({"unit_code_from": "thing_property"}, "unit_code_from must be one of thing_property:<name>, "
                                           "datastream_property:<name>, thing_name, not 'thing_property'"),
    ({"indicator_from": "observed_property_name:x"}, "indicator_from must be one of"),
    ({"indicator_from": "observed_property_name", "indicator_names": {"PM2.5": "pm_25"}},
     "indicator_names maps to unknown indicator(s) pm_25"),
    ({"lookback": "soon"}, "lookback: 'soon' is not a duration"),
    ({"auth": "bearer"}, "auth bearer needs a token: set token_env"),
    ({"url": "ftp://example.org/v1.1"}, "url must be the service root"),
])
def test_an_unusable_config_fails_the_run_with_what_to_change(sqlite_city_db, sta, tmp_path, config, message):
    summary = run(sqlite_city_db, instance(sta, **config), tmp_path)
    assert (summary.status, summary.error_family) == ("failed", "fatal")
    assert message in summary.error_message
    assert sta.seen == []


def test_connectors_yaml_gives_the_token_through_its_environment_variable(sqlite_city_db, sta, tmp_path,
                                                                          monkeypatch):
    air_network(sta)
    sta.token = "from-the-environment"
    monkeypatch.setenv("IOT_PLATFORM_TOKEN", "from-the-environment")
    path = tmp_path / "connectors.yaml"
    path.write_text(f"""
connectors:
  - name: iot
    type: sensorthings
    levels: [street]
    schedule: {{interval: 10m}}
    config:
      url: {sta.root}
      datastream_filter: "properties/onescreen_indicator ne null"
      unit_code_from: thing_property:street_code
      indicator_from: observed_property_name
      indicator_names: {{"PM2.5": pm25, "Air Quality Index": aqi, "Noise level": noise}}
      page_size: 1000
      auth: bearer
      token_env: IOT_PLATFORM_TOKEN
      backoff: 0.01
""", encoding="utf-8")
    (inst,) = load_connectors(path, catalog_keys=sqlite_city_db.catalog.keys)
    summary = run(sqlite_city_db, inst, tmp_path)
    assert (summary.status, summary.accepted) == ("ok", 11)
    assert sta.seen[0].query["$filter"] == "properties/onescreen_indicator ne null"


# ------------------------------------------------------------------------------------------------
# Replay
# ------------------------------------------------------------------------------------------------


def test_replay_resolves_datastreams_again_so_a_corrected_indicator_name_takes_effect(sqlite_city_db, sta,
                                                                                      tmp_path):
    """AQI was mapped to pm25 by mistake; after the fix, replaying the run stores the AQI readings as aqi."""
    air_network(sta)
    wrong = {**BY_OBSERVED_NAME, "indicator_names": {**BY_OBSERVED_NAME["indicator_names"],
                                                      "Air Quality Index": "pm25"}}
    first = run(sqlite_city_db, instance(sta, **wrong), tmp_path)
    assert (first.status, first.accepted) == ("ok", 11)
    assert ("990102002", "pm25", epoch(at(1, 5))) in values(sqlite_city_db)

    requests_before = len(sta.seen)
    references = run_payloads(tmp_path / "archive", first.archive)
    replayed = run(sqlite_city_db, instance(sta, **BY_OBSERVED_NAME), tmp_path, replay=references)
    assert len(sta.seen) == requests_before  # parsed from the archive, not fetched
    assert (replayed.status, replayed.fetched, replayed.accepted, replayed.duplicates) == ("ok", 11, 4, 7)
    stored = values(sqlite_city_db)
    assert all(stored[key] == value for key, value in AIR_VALUES.items())
    # Replay adds; the values stored under the wrong indicator stay until removed.
    assert stored[("990102002", "pm25", epoch(at(1, 5)))] == 55


def test_replay_of_a_datastreams_page_reports_its_unresolvable_datastreams_and_bad_payloads_are_fatal(
        sta, context):
    air_network(sta)
    sta.thing(5, "Sensor without a street")
    sta.datastream(15, "Lost PM2.5", 5, "PM2.5", onescreen_indicator="pm25")
    connector = build_connector(instance(sta), context)
    page = json.dumps({"value": [sta._entity(d, {"Thing", "ObservedProperty"}) for d in sta.datastreams]}).encode()
    (problem,) = connector.replay("datastreams-1.json", page)
    assert problem.problem.startswith("datastream 15 'Lost PM2.5': its Thing has no property 'street_code'")
    assert problem.source == "datastreams-1.json#3"

    envelope = json.dumps({"datastream": sta._entity(sta.datastreams[0], {"Thing", "ObservedProperty"}),
                           "observations": {"value": sta.observations[11][:2]}}).encode()
    assert as_records(connector.replay("observations-11-1.json", envelope)) == [
        ("990101001", "pm25", at(1, 0), 31.5, "observations-11-1.json#0"),
        ("990101001", "pm25", at(1, 10), 40, "observations-11-1.json#1")]
    with pytest.raises(FatalError, match="archived observations-11-1.json: the source answered with an HTML page"):
        list(connector.replay("observations-11-1.json", b"<html><body>502 Bad Gateway</body></html>"))


# ------------------------------------------------------------------------------------------------
# check()
# ------------------------------------------------------------------------------------------------


def test_check_counts_the_datastreams_and_archives_nothing(sta, context):
    air_network(sta)
    sta.thing(5, "Weather")
    sta.datastream(15, "Temperature", 5, "Air temperature")  # not for OneScreen: no onescreen_indicator
    assert build_connector(instance(sta), context).check().detail == "4 datastreams"
    sta.seen.clear()
    chosen = build_connector(instance(sta, datastream_filter="properties/onescreen_indicator ne null"), context)
    health = chosen.check()
    assert (health.healthy, health.detail) == (True, "3 datastreams matching datastream_filter")
    assert [r.path for r in sta.seen] == [ROOT_PATH, ROOT_PATH + "/Datastreams"]
    assert (sta.seen[1].query["$count"], sta.seen[1].query["$top"]) == ("true", "0")
    assert context.archive.count == 0 and not context.archive.folder.exists()


def test_check_says_exactly_why_the_server_is_not_healthy(sta, context):
    air_network(sta)
    bad_filter = build_connector(instance(sta, datastream_filter="properties/x eq"), context).check()
    assert not bad_filter.healthy and bad_filter.detail.startswith("fatal: iot: GET ")
    assert "HTTP 400" in bad_filter.detail and "Query is not valid: properties/x eq" in bad_filter.detail

    none_chosen = build_connector(instance(sta, datastream_filter="properties/nothing ne null"), context).check()
    assert (none_chosen.healthy, none_chosen.detail) == (False, "no datastreams matching datastream_filter; "
                                                                "check datastream_filter")

    not_root = build_connector(instance(sta, url=sta.root + "/Datastreams"), context).check()
    assert not not_root.healthy and "is not a SensorThings service root" in not_root.detail

    wrong_path = build_connector(instance(sta, url=sta.base + "/v1.1"), context).check()
    assert not wrong_path.healthy and "not found (HTTP 404" in wrong_path.detail

    sta.token = "s3cret"
    sta.seen.clear()
    refused = build_connector(instance(sta, auth="bearer", token="wrong"), context).check()
    assert not refused.healthy and "authentication refused (HTTP 401" in refused.detail and len(sta.seen) == 1
    sta.failures.append(("FROST-Server", 503))
    busy = build_connector(instance(sta, auth="bearer", token="s3cret"), context).check()
    assert not busy.healthy and busy.detail.startswith("retriable: ") and "HTTP 503" in busy.detail
    assert context.archive.count == 0
