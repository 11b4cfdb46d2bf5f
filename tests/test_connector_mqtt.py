"""The mqtt connector type against the real Mosquitto broker of this machine (127.0.0.1:1883), through the runner.

Readings are published by a separate paho client; every test has its own topic prefix and client ids (uuid), so
tests never see each other's messages, and its broker session is deleted afterwards. The broker is used as it is
configured (mosquitto's default max_queued_messages 1000 per offline session), so bursts stay below that.
Settings it does not have — a password file, the queue limits the module docstring recommends — are tried on a
private mosquitto started on a free port. Nothing is mocked.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from textwrap import dedent
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import text

import connectors.mqtt  # noqa: F401  (registers mqtt)
from cityops.hierarchy import Level
from cityops.tree import load_tree
from connectors.archive import run_payloads
from connectors.base import ConnectorContext
from connectors.config import ConnectorInstance, load_connectors
from connectors.mapping import FieldMapping
from connectors.mqtt import MqttConnector
from connectors.runner import run_connector

ROOT = Path(__file__).resolve().parent.parent
BROKER_HOST, BROKER_PORT = "127.0.0.1", 1883
ZONE = "Asia/Shanghai"
SHANGHAI = ZoneInfo(ZONE)
NOW = int(datetime(2026, 11, 26, 10, 30, tzinfo=SHANGHAI).timestamp())
ALL_LEVELS = (Level.DISTRICT, Level.STREET, Level.COMMUNITY)
STREETS = ["990101001", "990101002", "990102001", "990102002"]
S11, S12 = STREETS[:2]
NOT_TEXT = b"\xfa\xfb not text"  # not UTF-8 (and no byte-order mark that would make it UTF-16)
LONG = FieldMapping.parse({"unit_code": "code", "observed_at": "time", "indicator": "metric", "value": "value"})


def at(hour: int, minute: int = 0) -> int:
    return int(datetime(2026, 11, 26, hour, minute, tzinfo=SHANGHAI).timestamp())


def iso(hour: int, minute: int = 0) -> str:
    return datetime(2026, 11, 26, hour, minute, tzinfo=SHANGHAI).isoformat()


def reading(code: str, metric: str, when: str | int, value) -> dict:
    return {"code": code, "time": when, "metric": metric, "value": value}


# ------------------------------------------------------------------------------------------------
# The broker: topics, sessions, a publisher
# ------------------------------------------------------------------------------------------------


def _client(client_id: str) -> mqtt.Client:
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)


@pytest.fixture
def prefix() -> str:
    return f"onescreen-test/{uuid.uuid4().hex}"


@pytest.fixture
def client_id():
    """A fresh session id; the session (and anything left queued in it) is deleted from the broker afterwards."""
    name = f"onescreen-test-{uuid.uuid4().hex[:12]}"
    yield name
    cleaner = _client(name)
    cleaner.connect(BROKER_HOST, BROKER_PORT, clean_start=True, properties=Properties(PacketTypes.CONNECT))
    cleaner.loop_start()
    deadline = time.monotonic() + 5
    while not cleaner.is_connected() and time.monotonic() < deadline:
        time.sleep(0.01)
    cleaner.disconnect()  # session expiry 0 and a clean start: the broker forgets the session
    cleaner.loop_stop()


def encode(payload) -> bytes:
    if isinstance(payload, bytes):
        return payload
    return payload.encode("utf-8") if isinstance(payload, str) else json.dumps(payload).encode("utf-8")


def publish(messages: list[tuple[str, object]], retain: bool = False, port: int = BROKER_PORT) -> None:
    """Publish (topic, payload) pairs with QoS 1 and wait until the broker has acknowledged every one."""
    publisher = _client(f"onescreen-test-pub-{uuid.uuid4().hex[:12]}")
    publisher.max_inflight_messages_set(0)
    publisher.connect(BROKER_HOST, port)
    publisher.loop_start()
    try:
        sent = [publisher.publish(topic, encode(payload), qos=1, retain=retain) for topic, payload in messages]
        for info in sent:
            info.wait_for_publish(timeout=10)
            assert info.is_published()
    finally:
        publisher.disconnect()
        publisher.loop_stop()


def sensors(client_id: str, prefix: str, mapping: FieldMapping = LONG, **config) -> ConnectorInstance:
    config = {"topics": [f"{prefix}/#"], "client_id": client_id, "drain_seconds": 3.0, "idle_seconds": 0.4,
              "session_expiry_seconds": 600, **config}
    MqttConnector.validate_config(config)
    return ConnectorInstance(name="sensors", type="mqtt", levels=ALL_LEVELS, interval_seconds=60, config=config,
                             mapping=mapping)


def run(db, inst, archive: Path, **options):
    return run_connector(db.url, inst, db.catalog, timezone=ZONE, now=NOW, archive_root=archive, **options)


def fetch_all(db, sql, **params):
    with db.session() as session:
        return [tuple(row) for row in session.execute(text(sql), params).all()]


def stored(db) -> dict[tuple[str, str, int], float]:
    rows = fetch_all(db, "SELECT u.code, i.key, o.observed_at, o.value FROM observations o "
                         "JOIN units u ON u.id = o.unit_id JOIN indicators i ON i.id = o.indicator_id")
    return {(code, key, int(when)): value for code, key, when, value in rows}


def quarantined(db) -> list[tuple[str, dict, str | None]]:
    return [(reason, json.loads(raw), source)
            for reason, raw, source in fetch_all(db, "SELECT reason, raw, source FROM quarantine ORDER BY id")]


def archived_lines(archive: Path, summary) -> list[dict]:
    lines = []
    for reference in run_payloads(archive, summary.archive):
        with gzip.open(archive / reference) as payload:
            lines.extend(json.loads(line) for line in payload.read().splitlines())
    return lines


def connector(db, inst: ConnectorInstance) -> MqttConnector:
    with db.session() as session:
        tree = load_tree(session)
    context = ConnectorContext(catalog=db.catalog, tree=tree, now=NOW, timezone=ZONE)
    return MqttConnector(inst.name, inst.config, context, inst.mapping)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ------------------------------------------------------------------------------------------------
# Buffering: the persistent session holds what arrives between runs
# ------------------------------------------------------------------------------------------------


def test_readings_published_between_runs_wait_in_the_session_and_are_stored_once(sqlite_city_db, tmp_path, prefix,
                                                                                  client_id, caplog):
    inst, archive = sensors(client_id, prefix), tmp_path / "archive"
    with caplog.at_level(logging.WARNING, logger="connectors.mqtt"):
        first = run(sqlite_city_db, inst, archive)  # creates the session on the broker
    assert (first.status, first.fetched) == ("ok", 0)
    assert [record.getMessage() for record in caplog.records] == [
        f"sensors: MQTT broker 127.0.0.1:1883: the broker had no session for client_id {client_id!r}: expected at "
        f"the first run; otherwise the session expired (session_expiry_seconds) or the broker lost it (no "
        f"persistence), and readings published since the last run are lost"]
    caplog.clear()

    # Published while no run is connected: only the broker's session keeps them.
    single = reading(S11, "aqi", iso(10), 52)
    several = [reading(S12, "pm25", iso(10), 31.5), reading(S12, "noise", "2026-11-26 10:05", 55.2)]
    publish([(f"{prefix}/{S11}/air", single), (f"{prefix}/{S12}/air", several),
             (f"{prefix}/{S11}/air", reading(S11, "aqi", at(10, 10), 0))])
    with caplog.at_level(logging.WARNING, logger="connectors.mqtt"):
        second = run(sqlite_city_db, inst, archive)
    assert (second.status, second.fetched, second.accepted, second.rejected) == ("ok", 4, 4, 0)
    assert not caplog.records  # the session was there
    assert stored(sqlite_city_db) == {(S11, "aqi", at(10)): 52.0, (S12, "pm25", at(10)): 31.5,
                                      (S12, "noise", at(10, 5)): 55.2, (S11, "aqi", at(10, 10)): 0.0}

    # The messages were archived before parsing, as one JSON-lines payload, byte for byte.
    [reference] = run_payloads(archive, second.archive)
    assert reference.endswith("-messages.jsonl.gz")
    lines = archived_lines(archive, second)
    assert [(line["topic"], line["payload"], line["qos"]) for line in lines] == [
        (f"{prefix}/{S11}/air", json.dumps(single), 1), (f"{prefix}/{S12}/air", json.dumps(several), 1),
        (f"{prefix}/{S11}/air", json.dumps(reading(S11, "aqi", at(10, 10), 0)), 1)]

    # Committed, so acknowledged: the broker delivers nothing again.
    third = run(sqlite_city_db, inst, archive)
    assert (third.status, third.fetched) == ("ok", 0)

    replay = run(sqlite_city_db, inst, archive, replay=[reference])
    assert (replay.status, replay.fetched, replay.accepted, replay.duplicates) == ("ok", 4, 0, 4)
    assert len(stored(sqlite_city_db)) == 4


def test_a_burst_before_and_during_a_run_is_stored_in_full(sqlite_city_db, tmp_path, prefix, client_id):
    inst, archive = sensors(client_id, prefix, drain_seconds=8.0, idle_seconds=1.0), tmp_path / "archive"
    run(sqlite_city_db, inst, archive)
    start = NOW - 86400

    def burst(first: int, count: int) -> list[tuple[str, dict]]:
        return [(f"{prefix}/{STREETS[i % 4]}/air", reading(STREETS[i % 4], "aqi", start + 60 * i, i))
                for i in range(first, first + count)]

    # 300 while no run is connected, 300 more while the run drains (below mosquitto's default queue of 1000).
    publish(burst(0, 300))
    during = threading.Thread(target=lambda: (time.sleep(0.2), publish(burst(300, 300))))
    during.start()
    try:
        summary = run(sqlite_city_db, inst, archive)
    finally:
        during.join()
    assert (summary.status, summary.fetched, summary.accepted, summary.duplicates) == ("ok", 600, 600, 0)
    assert stored(sqlite_city_db) == {(STREETS[i % 4], "aqi", start + 60 * i): float(i) for i in range(600)}
    assert len(archived_lines(archive, summary)) == 600
    assert run(sqlite_city_db, inst, archive).fetched == 0


def test_a_run_takes_at_most_max_messages_and_the_rest_wait_for_the_next(sqlite_city_db, tmp_path, prefix,
                                                                        client_id):
    inst, archive = sensors(client_id, prefix, max_messages=5), tmp_path / "archive"
    run(sqlite_city_db, inst, archive)
    publish([(f"{prefix}/{S11}/air", reading(S11, "aqi", at(9, minute), minute)) for minute in range(12)])
    # Never a duplicate: every acknowledgement reached the broker although it sent the next messages at once.
    runs = [run(sqlite_city_db, inst, archive) for _ in range(4)]
    assert [(summary.fetched, summary.accepted) for summary in runs] == [(5, 5), (5, 5), (2, 2), (0, 0)]
    assert stored(sqlite_city_db) == {(S11, "aqi", at(9, minute)): float(minute) for minute in range(12)}


def test_a_backlog_larger_than_the_inbox_is_held_back_by_the_broker_not_in_memory(sqlite_city_db, tmp_path, prefix,
                                                                                 client_id, monkeypatch):
    inst, archive = sensors(client_id, prefix), tmp_path / "archive"
    run(sqlite_city_db, inst, archive)
    publish([(f"{prefix}/{S11}/air", reading(S11, "aqi", at(8) + 60 * i, i)) for i in range(40)])
    monkeypatch.setattr("connectors.mqtt_session.INBOX_MESSAGES", 3)
    waiting = []
    original = MqttConnector._drain

    def drain_after_a_pause(self, link, settings):
        time.sleep(0.3)  # the broker sends the whole backlog at once; only three may wait in memory
        waiting.append(link.inbox.qsize())
        yield from original(self, link, settings)

    monkeypatch.setattr(MqttConnector, "_drain", drain_after_a_pause)
    summary = run(sqlite_city_db, inst, archive)
    assert waiting == [3]
    # Held back, not dropped: the run still takes every message of the backlog, in one run.
    assert (summary.status, summary.fetched, summary.accepted) == ("ok", 40, 40), summary.error_message
    assert stored(sqlite_city_db) == {(S11, "aqi", at(8) + 60 * i): float(i) for i in range(40)}


def test_messages_the_run_could_not_take_in_time_come_again_at_the_next_run(sqlite_city_db, tmp_path, prefix,
                                                                           client_id, monkeypatch):
    inst, archive = sensors(client_id, prefix), tmp_path / "archive"
    run(sqlite_city_db, inst, archive)
    publish([(f"{prefix}/{S11}/air", reading(S11, "aqi", at(8) + 60 * i, i)) for i in range(30)])
    # An inbox of five that gives up at once, and a run busy for a moment before it takes any: most of the
    # backlog arrives while the inbox is full and is left unacknowledged by each run.
    monkeypatch.setattr("connectors.mqtt_session.INBOX_MESSAGES", 5)
    monkeypatch.setattr("connectors.mqtt_session.INBOX_STALL_SECONDS", 0.0)
    original = MqttConnector._drain

    def drain_after_a_pause(self, link, settings):
        time.sleep(0.3)
        yield from original(self, link, settings)

    monkeypatch.setattr(MqttConnector, "_drain", drain_after_a_pause)
    runs = [run(sqlite_city_db, inst, archive)]
    while sum(summary.fetched for summary in runs) < 30 and len(runs) < 30:
        runs.append(run(sqlite_city_db, inst, archive))
    runs.append(run(sqlite_city_db, inst, archive))
    assert all(summary.status == "ok" for summary in runs)
    assert runs[0].fetched < 30 and runs[-1].fetched == 0
    assert sum(summary.fetched for summary in runs) == sum(summary.accepted for summary in runs) == 30
    assert stored(sqlite_city_db) == {(S11, "aqi", at(8) + 60 * i): float(i) for i in range(30)}


# ------------------------------------------------------------------------------------------------
# Crash safety: acknowledged only once committed
# ------------------------------------------------------------------------------------------------

CRASHING_RUN = """
import json, os, sys
sys.path.insert(0, {root!r})
import connectors.mqtt
from cityops.catalog import load_catalog
from cityops.hierarchy import Level
from cityops.settings import DATA_DIR
from connectors.config import ConnectorInstance
from connectors.mapping import FieldMapping
from connectors.runner import run_connector

config = json.loads({config!r})
instance = ConnectorInstance("sensors", "mqtt", (Level.DISTRICT, Level.STREET, Level.COMMUNITY), 60, config,
                             mapping=FieldMapping.parse({mapping!r}))
# The runner reports progress after committing its first batch (a group of messages, at least 4 records): the
# process dies right there, with
# records committed and none of the run's messages acknowledged (committed() is never reached).
run_connector({url!r}, instance, load_catalog(DATA_DIR / "indicators.yaml"), timezone="Asia/Shanghai",
              now={now}, batch_size=4, progress=lambda summary: os._exit(3))
"""


def test_a_run_that_dies_before_acknowledging_is_received_again_and_stored_once(sqlite_city_db, tmp_path, prefix,
                                                                              client_id):
    inst, archive = sensors(client_id, prefix), tmp_path / "archive"
    run(sqlite_city_db, inst, archive)
    expected = {(STREETS[i % 4], "aqi", at(8, i)): float(i) for i in range(10)}
    publish([(f"{prefix}/{code}/air", reading(code, key, when, value)) for (code, key, when), value in
             expected.items()])

    script = tmp_path / "crashing_run.py"
    script.write_text(CRASHING_RUN.format(root=str(ROOT), config=json.dumps(inst.config), url=sqlite_city_db.url,
                                          mapping={"unit_code": "code", "observed_at": "time", "indicator": "metric",
                                                   "value": "value"}, now=NOW), encoding="utf-8")
    crashed = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert crashed.returncode == 3, crashed.stderr
    committed = len(stored(sqlite_city_db))
    assert 0 < committed <= 10  # the first batch (a group of messages) was committed before the process died
    assert fetch_all(sqlite_city_db, "SELECT status FROM connector_runs ORDER BY id DESC LIMIT 1") == [("running",)]

    recovery = run(sqlite_city_db, inst, archive)
    assert (recovery.status, recovery.fetched, recovery.accepted, recovery.duplicates) == \
        ("ok", 10, 10 - committed, committed)
    assert stored(sqlite_city_db) == expected
    assert run(sqlite_city_db, inst, archive).fetched == 0


def test_a_failed_commit_acknowledges_nothing(sqlite_city_db, tmp_path, prefix, client_id):
    inst, archive = sensors(client_id, prefix), tmp_path / "archive"
    run(sqlite_city_db, inst, archive)
    expected = {(S11, "aqi", at(7)): 40.0, (S12, "aqi", at(7)): 41.0}
    publish([(f"{prefix}/{code}/air", reading(code, key, when, value)) for (code, key, when), value in
             expected.items()])
    with sqlite_city_db.session() as session:  # the database refuses every write, as a full disk would
        session.execute(text("CREATE TRIGGER refuse_writes BEFORE INSERT ON observations "
                             "BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END"))

    failed = run(sqlite_city_db, inst, archive)
    assert (failed.status, failed.error_family, failed.accepted) == ("failed", "unexpected", 0)
    assert "disk full (test)" in failed.error_message

    with sqlite_city_db.session() as session:
        session.execute(text("DROP TRIGGER refuse_writes"))
    again = run(sqlite_city_db, inst, archive)
    assert (again.status, again.fetched, again.accepted) == ("ok", 2, 2)
    assert stored(sqlite_city_db) == expected
    assert run(sqlite_city_db, inst, archive).fetched == 0


def test_another_client_taking_the_session_fails_the_run_and_loses_nothing(sqlite_city_db, tmp_path, prefix,
                                                                         client_id):
    archive = tmp_path / "archive"
    run(sqlite_city_db, sensors(client_id, prefix), archive)
    publish([(f"{prefix}/{S11}/air", reading(S11, "aqi", at(5), 33))])
    # A second program configured with the same client_id connects while the run listens.
    intruder = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True,
                           reconnect_on_failure=False)
    session = Properties(PacketTypes.CONNECT)
    session.SessionExpiryInterval = 600

    def intrude():
        time.sleep(0.5)
        intruder.connect(BROKER_HOST, BROKER_PORT, clean_start=False, properties=session)
        intruder.loop_start()

    thread = threading.Thread(target=intrude)
    thread.start()
    started = time.monotonic()
    try:
        summary = run(sqlite_city_db, sensors(client_id, prefix, drain_seconds=20.0, idle_seconds=10.0), archive)
    finally:
        thread.join()
        intruder.disconnect()
        intruder.loop_stop()
    assert time.monotonic() - started < 5  # noticed at once, not after idle_seconds
    # mosquitto 2.0 closes the connection without a reason (brokers sending "session taken over" make it fatal).
    assert (summary.status, summary.error_family, summary.accepted) == ("failed", "retriable", 0)
    assert summary.error_message == (
        f"sensors: MQTT broker 127.0.0.1:1883: the connection was lost during the run (Unspecified error) after 1 "
        f"message(s); none was acknowledged, so the broker delivers them again at the next run. If this repeats, "
        f"check that no other client uses client_id {client_id!r}")
    # Neither connection acknowledged the reading: the next run has it.
    assert run(sqlite_city_db, sensors(client_id, prefix), archive).accepted == 1
    assert stored(sqlite_city_db) == {(S11, "aqi", at(5)): 33.0}


# ------------------------------------------------------------------------------------------------
# Payloads and topics
# ------------------------------------------------------------------------------------------------


def test_unreadable_payloads_are_quarantined_with_topic_and_text_and_the_rest_stored(sqlite_city_db, tmp_path,
                                                                                   prefix, client_id):
    inst, archive = sensors(client_id, prefix), tmp_path / "archive"
    run(sqlite_city_db, inst, archive)
    topic = f"{prefix}/{S11}/air"
    publish([(topic, reading(S11, "aqi", iso(9), 50)),
             (topic, "aqi=51"),
             (topic, NOT_TEXT),
             (topic, "42"),
             (topic, [reading(S12, "aqi", iso(9), 53), "x" * 3000]),
             (topic, reading("990199999", "aqi", iso(9), 54)),
             (topic, "[]")])
    summary = run(sqlite_city_db, inst, archive)
    assert (summary.status, summary.fetched, summary.accepted, summary.rejected) == ("partial", 7, 2, 5)
    assert stored(sqlite_city_db) == {(S11, "aqi", at(9)): 50.0, (S12, "aqi", at(9)): 53.0}

    [reference] = run_payloads(archive, summary.archive)
    must = "; the publisher must send a JSON object or a list of objects"
    found = quarantined(sqlite_city_db)
    assert [(reason, source) for reason, _raw, source in found] == [
        (f"message on topic {topic!r} is not JSON (Expecting value: line 1 column 1 (char 0)){must}",
         f"{reference}#2"),
        (f"message on topic {topic!r} is not UTF-8 text (invalid start byte at byte 0){must}", f"{reference}#3"),
        (f"message on topic {topic!r} is the number 42, not a JSON object or list of objects{must}",
         f"{reference}#4"),
        (f"message on topic {topic!r} holds the string {'x' * 40!r} at position 1 of its list, not an object{must}",
         f"{reference}#5"),
        ("unknown unit code '990199999'", f"{reference}#6"),
    ]
    raws = [raw for _reason, raw, _source in found]
    assert raws[0] == {"topic": topic, "payload": "aqi=51"}
    assert raws[1] == {"topic": topic, "payload": NOT_TEXT.decode("utf-8", errors="replace")}
    assert raws[3]["topic"] == topic and len(raws[3]["payload"]) == 2000 and raws[3]["payload"].endswith("…")
    assert raws[4] == {**reading("990199999", "aqi", iso(9), 54), "_topic": topic}
    # The payload that is not UTF-8 is archived losslessly, and replays to the same verdicts.
    assert base64.b64decode(archived_lines(archive, summary)[2]["payload_base64"]) == NOT_TEXT
    replay = run(sqlite_city_db, inst, archive, replay=[reference])
    assert (replay.fetched, replay.duplicates, replay.rejected) == (7, 2, 5)
    assert [reason for reason, _raw, _source in quarantined(sqlite_city_db)[5:]] == \
        [reason for reason, _raw, _source in found]


def test_topic_pattern_gives_unit_and_indicator_and_topic_field_names_the_topic(sqlite_city_db, tmp_path, prefix,
                                                                               client_id):
    pattern = re.escape(prefix) + r"/(?P<unit_code>[0-9]{9})/air/(?P<indicator>[a-z0-9_]+)"
    mapping = FieldMapping.parse({"unit_code": "unit_code", "indicator": "indicator", "observed_at": "time",
                                  "value": "value"})
    inst = sensors(client_id, prefix, mapping, topic_pattern=pattern, topic_field="sensor_topic")
    archive = tmp_path / "archive"
    run(sqlite_city_db, inst, archive)
    publish([(f"{prefix}/{S11}/air/aqi", {"time": iso(10), "value": 52}),
             # The topic wins over what a payload claims: the broker's ACL guards topics, not payloads.
             (f"{prefix}/{S12}/air/pm25", {"time": iso(10), "value": 30, "unit_code": "990199999"}),
             (f"{prefix}/{S11}/water/level", {"time": iso(10), "value": 1.2}),
             (f"{prefix}/990199999/air/aqi", {"time": iso(10), "value": 60})])
    summary = run(sqlite_city_db, inst, archive)
    assert (summary.fetched, summary.accepted, summary.rejected) == (4, 2, 2)
    assert stored(sqlite_city_db) == {(S11, "aqi", at(10)): 52.0, (S12, "pm25", at(10)): 30.0}
    (mismatch, raw, _source), (unknown, row, _source2) = quarantined(sqlite_city_db)
    assert mismatch == f"topic '{prefix}/{S11}/water/level' does not match topic_pattern {pattern!r}; fix the " \
                       f"pattern or the topics"
    assert raw == {"topic": f"{prefix}/{S11}/water/level", "row": {"time": iso(10), "value": 1.2}}
    assert unknown == "unknown unit code '990199999'"
    assert row == {"time": iso(10), "value": 60, "unit_code": "990199999", "indicator": "aqi",
                   "sensor_topic": f"{prefix}/990199999/air/aqi"}


def test_retained_readings_are_delivered_once_not_at_every_run(sqlite_city_db, tmp_path, prefix, client_id):
    topic = f"{prefix}/{S11}/air"
    publish([(topic, reading(S11, "aqi", iso(6), 45))], retain=True)  # before the session exists
    try:
        inst, archive = sensors(client_id, prefix), tmp_path / "archive"
        assert run(sqlite_city_db, inst, archive).accepted == 1  # a new subscription gets the retained reading
        assert run(sqlite_city_db, inst, archive).fetched == 0  # subscribing again does not re-deliver it
        assert stored(sqlite_city_db) == {(S11, "aqi", at(6)): 45.0}
    finally:
        publish([(topic, b"")], retain=True)  # clears the retained message


# ------------------------------------------------------------------------------------------------
# Health, errors and configuration
# ------------------------------------------------------------------------------------------------


def test_check_reports_the_broker_without_taking_any_message(sqlite_city_db, tmp_path, prefix, client_id):
    inst, archive = sensors(client_id, prefix), tmp_path / "archive"
    run(sqlite_city_db, inst, archive)
    publish([(f"{prefix}/{S11}/air", reading(S11, "aqi", iso(9), 50))])
    health = connector(sqlite_city_db, inst).check()
    assert health.healthy
    assert health.detail == f"broker 127.0.0.1:1883 reachable (MQTT 5), 1 topic(s): {prefix}/#"
    assert run(sqlite_city_db, inst, archive).accepted == 1  # check() left the message for the run

    port = closed_port()
    refused = connector(sqlite_city_db, sensors(client_id, prefix, port=port)).check()
    assert not refused.healthy
    assert refused.detail == f"retriable: sensors: MQTT broker 127.0.0.1:{port}: connection refused; is the broker " \
                             f"running and listening on port {port}? (trying again at the next run)"
    unknown = connector(sqlite_city_db, sensors(client_id, prefix, host="no-such-broker.invalid")).check()
    assert not unknown.healthy and unknown.detail.startswith(
        "retriable: sensors: MQTT broker no-such-broker.invalid:1883: cannot resolve host 'no-such-broker.invalid'")
    wrong = connector(sqlite_city_db, ConnectorInstance("sensors", "mqtt", ALL_LEVELS, 60,
                                                        {**inst.config, "qos": 0}, mapping=LONG)).check()
    assert not wrong.healthy and wrong.detail.startswith("connector sensors: config: qos 0 cannot be buffered")

    failed = run(sqlite_city_db, sensors(client_id, prefix, port=port), archive)
    assert (failed.status, failed.error_family) == ("failed", "retriable")
    assert "connection refused" in failed.error_message


@pytest.fixture
def private_broker():
    """Start a private mosquitto on a free port with extra mosquitto.conf lines (and users); returns its port.

    The shared broker must stay as configured; settings an operator would change are tried on these."""
    binary, passwd = shutil.which("mosquitto") or "/usr/sbin/mosquitto", shutil.which("mosquitto_passwd")
    if not (Path(binary).exists() and passwd):
        pytest.skip("mosquitto and mosquitto_passwd are needed for a private broker")
    started: list[tuple[subprocess.Popen, tempfile.TemporaryDirectory]] = []

    def start(settings: str, users: dict[str, str] | None = None) -> int:
        # Not under tmp_path: mosquitto started by root reads its files as the mosquitto user, who may not enter
        # pytest's private temporary folders. The passwords are throw-away ones.
        holder = tempfile.TemporaryDirectory(prefix="onescreen-mqtt-test-")
        folder = Path(holder.name)
        folder.chmod(0o755)
        lines = [f"listener {closed_port()} 127.0.0.1", "persistence false", settings]
        for user, password in (users or {}).items():
            create = [] if (folder / "passwords").exists() else ["-c"]
            subprocess.run([passwd, "-b", *create, str(folder / "passwords"), user, password], check=True)
            (folder / "passwords").chmod(0o644)
        if users:
            lines.append(f"password_file {folder / 'passwords'}")
        (folder / "mosquitto.conf").write_text("\n".join(lines) + "\n")
        process = subprocess.Popen([binary, "-c", str(folder / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        started.append((process, holder))
        port = int(lines[0].split()[1])
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return port
            except OSError:
                if process.poll() is not None:
                    pytest.fail(f"private mosquitto did not start: {process.stderr.read().decode(errors='replace')}")
                if time.monotonic() > deadline:
                    pytest.fail("private mosquitto did not start within 5 s")
                time.sleep(0.02)

    yield start
    for process, holder in started:
        process.terminate()
        process.wait(timeout=5)
        holder.cleanup()


def test_with_the_recommended_queue_settings_a_burst_while_offline_is_kept_whole(sqlite_city_db, tmp_path, prefix,
                                                                                client_id, private_broker):
    """The mosquitto.conf lines the module docstring asks operators for: 3000 readings between two runs, all kept
    (the shared broker, with mosquitto's default max_queued_messages 1000, would keep 1000)."""
    port = private_broker("allow_anonymous true\nmax_queued_messages 0\nmax_queued_bytes 268435456")
    inst, archive = sensors(client_id, prefix, port=port, drain_seconds=20.0, idle_seconds=1.0), tmp_path / "archive"
    run(sqlite_city_db, inst, archive)
    start = NOW - 3 * 86400
    publish([(f"{prefix}/{STREETS[i % 4]}/air", reading(STREETS[i % 4], "aqi", start + 60 * i, i)) for i in
             range(3000)], port=port)
    summary = run(sqlite_city_db, inst, archive)
    assert (summary.status, summary.fetched, summary.accepted) == ("ok", 3000, 3000)
    assert stored(sqlite_city_db) == {(STREETS[i % 4], "aqi", start + 60 * i): float(i) for i in range(3000)}
    # Archived in groups of at most 1000 messages, one JSON line each.
    payloads = run_payloads(archive, summary.archive)
    assert len(payloads) >= 3 and len(archived_lines(archive, summary)) == 3000
    assert run(sqlite_city_db, inst, archive).fetched == 0


def test_bad_credentials_are_fatal(sqlite_city_db, tmp_path, prefix, client_id, private_broker, monkeypatch):
    port = private_broker("allow_anonymous false", users={"sensor": "s3cret"})
    wrong = sensors(client_id, prefix, port=port, username="sensor", password="guess")
    health = connector(sqlite_city_db, wrong).check()
    assert not health.healthy
    assert health.detail == f"fatal: sensors: MQTT broker 127.0.0.1:{port}: the broker refused the login of user " \
                            f"'sensor' (Not authorized); check username and password_env (leave both out only if " \
                            f"the broker allows anonymous clients)"
    summary = run(sqlite_city_db, wrong, tmp_path / "archive")
    assert (summary.status, summary.error_family) == ("failed", "fatal")
    assert "refused the login of user 'sensor'" in summary.error_message
    anonymous = connector(sqlite_city_db, sensors(client_id, prefix, port=port)).check()
    assert not anonymous.healthy and "refused the login of anonymous clients" in anonymous.detail

    # The password comes from the environment, through connectors.yaml.
    monkeypatch.setenv("TEST_MQTT_PASSWORD", "s3cret")
    (tmp_path / "connectors.yaml").write_text(dedent(f"""\
        connectors:
          - name: sensors
            type: mqtt
            levels: [street]
            schedule: {{interval: 1m}}
            config: {{port: {port}, topics: ["{prefix}/#"], client_id: {client_id}, username: sensor,
                      password_env: TEST_MQTT_PASSWORD, idle_seconds: 0.3}}
            mapping: {{unit_code: code, observed_at: time, indicator: metric, value: value}}
        """), encoding="utf-8")
    [loaded] = load_connectors(tmp_path / "connectors.yaml")
    assert loaded.config["password"] == "s3cret"
    assert connector(sqlite_city_db, loaded).check().healthy
    assert run(sqlite_city_db, loaded, tmp_path / "archive").status == "ok"


@pytest.mark.parametrize("change, message", [
    ({"qos": 0}, "qos 0 cannot be buffered"),
    ({"qos": 2}, "qos must be 1, not 2"),
    ({"topics": []}, "topics must be a list of at least one topic filter"),
    ({"topics": ["city/#/air"]}, "topics: topic filter 'city/#/air': '#' must be the whole last level"),
    ({"topics": ["city/a+/air"]}, "topics: topic filter 'city/a+/air': '+' must be a whole level"),
    ({"client_id": " "}, "client_id must be a non-empty name"),
    ({"max_messages": 70000}, "max_messages must be between 1 and 65535"),
    ({"idle_seconds": 0}, "idle_seconds must be more than 0 seconds"),
    ({"session_expiry_seconds": 0}, "session_expiry_seconds must be between 1 and"),
    ({"password": "x"}, "password_env is set but username is not"),
    ({"ca_file": "/etc/ssl/ca.pem"}, "ca_file is only used with tls: true"),
    ({"topic_pattern": "city/(?P<unit_code>"}, "topic_pattern 'city/(?P<unit_code>' is not a regular expression"),
    ({"topic_pattern": "city/([0-9]+)"}, "topic_pattern 'city/([0-9]+)' has no named group"),
])
def test_config_mistakes_are_named(change, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        MqttConnector.validate_config({"topics": ["city/#"], "client_id": "onescreen", **change})


def test_the_documented_yaml_example_loads(tmp_path, catalog, monkeypatch):
    monkeypatch.setenv("AIR_MQTT_PASSWORD", "secret")
    doc = connectors.mqtt.__doc__
    start = doc.index("    connectors:")
    (tmp_path / "connectors.yaml").write_text(dedent(doc[start:doc.index("\n\n", start)]), encoding="utf-8")
    [loaded] = load_connectors(tmp_path / "connectors.yaml", catalog_keys=[i.key for i in catalog])
    assert (loaded.type, loaded.config["topics"], loaded.config["client_id"], loaded.config["password"]) == \
        ("mqtt", ["city/+/air/#"], "onescreen-air-sensors", "secret")
    found = re.fullmatch(loaded.config["topic_pattern"], "city/990101001/air/aqi")
    assert found.groupdict() == {"unit_code": "990101001", "indicator": "aqi"}
