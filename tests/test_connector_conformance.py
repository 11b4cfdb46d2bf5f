"""One conformance test class over every registered connector type: the contract every plugin keeps.

For each type a small working source (a file, a database, a local HTTP server...) with two known records is built
and configured through a real connectors.yaml. Every type must: document itself with a YAML example, declare its
secrets, say healthy for a working source and why not for a broken one (without fetching anything), fetch lazily
through the runner, archive what it fetched before parsing (types that fetch payloads), store exactly the two
records, store nothing new when run again, and replay its archive into duplicates without moving the cursor.
A type registered without a source here fails `test_every_registered_type_is_covered`.
"""

from __future__ import annotations

import inspect
import json
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import text

import connectors  # noqa: F401  (registers the built-in types)
from connectors.archive import run_payloads
from connectors.base import REGISTRY, ConfigField, Connector, ConnectorContext, Health
from connectors.config import load_connectors
from connectors.runner import build_connector, run_connector
from sensorthings_server import sensorthings_server

ZONE = "Asia/Shanghai"
COMMUNITY_A, COMMUNITY_B = "990101001001", "990102002002"
ROWS = [{"code": COMMUNITY_A, "time": "2026-11-26T09:00:00+08:00", "metric": "hotline_complaints", "value": 3},
        {"code": COMMUNITY_B, "time": "2026-11-26T10:00:00+08:00", "metric": "hotline_complaints", "value": 5}]
# Doubled braces: entries go through str.format(name=...) once.
MAPPING = "{{unit_code: code, observed_at: time, indicator: metric, value: value}}"
NOW = 1795740000  # 2026-11-26T15:20+08:00: after both records


@dataclass
class Source:
    """A working source for one type: its connectors.yaml entry, the records it holds, and a broken twin."""

    entry: str                 # YAML lines of one connector (indented for the connectors: list)
    broken_entry: str | None   # the same source made unusable (a missing folder, a closed port...)
    expected: int | None       # records stored by the first run (None: at least one, e.g. a simulation)
    archives: bool = True      # fetches payloads, so archives and can replay them
    observations: int | None = None  # observations the first run stores when not one per record (derived counts)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def simulator_source(tmp_path, monkeypatch) -> Source:
    entry = "  - name: {name}\n    type: simulator\n    levels: [district, street, community]\n" \
            "    schedule: {{interval: 5m}}\n" \
            "    config: {{backfill_days: 1}}\n"
    return Source(entry, None, None, archives=False)


def drop_folder_source(tmp_path, monkeypatch) -> Source:
    folder = tmp_path / "drops"
    folder.mkdir()
    lines = ["code,time,metric,value"] + [f"{r['code']},{r['time']},{r['metric']},{r['value']}" for r in ROWS]
    (folder / "daily.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    entry = ("  - name: {name}\n    type: drop_folder\n    levels: [community]\n    schedule: {{interval: 10m}}\n"
             f"    config: {{{{folder: \"{{folder}}\", settle_seconds: 0}}}}\n    mapping: {MAPPING}\n")
    return Source(entry.replace("{folder}", str(folder)), entry.replace("{folder}", str(tmp_path / "missing")), 2)


def sql_query_source(tmp_path, monkeypatch) -> Source:
    database = tmp_path / "grid.sqlite"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE counts (code TEXT, time TEXT, metric TEXT, value REAL)")
        connection.executemany("INSERT INTO counts VALUES (?, ?, ?, ?)",
                               [(r["code"], r["time"], r["metric"], r["value"]) for r in ROWS])
    monkeypatch.setenv("CONFORMANCE_GRID_URL", f"sqlite:///{database}")
    monkeypatch.setenv("CONFORMANCE_MISSING_URL", f"sqlite:///{tmp_path / 'missing.sqlite'}")
    entry = ("  - name: {name}\n    type: sql_query\n    levels: [community]\n    schedule: {{interval: 10m}}\n"
             "    config: {{url_env: CONFORMANCE_GRID_URL, query: \"SELECT * FROM counts\", time_column: time, "
             "time_format: text}}\n"
             f"    mapping: {MAPPING}\n")
    return Source(entry, entry.replace("CONFORMANCE_GRID_URL", "CONFORMANCE_MISSING_URL"), 2)


class _Rows(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = json.dumps({"data": ROWS}).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):  # noqa: N802
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Rows)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def http_json_source(tmp_path, monkeypatch, base_url) -> Source:
    entry = ("  - name: {name}\n    type: http_json\n    levels: [community]\n    schedule: {{interval: 5m}}\n"
             "    config: {{url: \"{url}/counts\", records_path: data, attempts: 1}}\n"
             f"    mapping: {MAPPING}\n")
    return Source(entry.replace("{url}", base_url), entry.replace("{url}", f"http://127.0.0.1:{_closed_port()}"), 2)


@pytest.fixture
def sensorthings_rows() -> Iterator[str]:
    """The two rows on the tests' SensorThings server (tests/sensorthings_server.py): a datastream each, on a Thing
    naming its community; yields the service root."""
    with sensorthings_server() as dataset:
        for number, row in enumerate(ROWS, start=1):
            dataset.thing(number, row["code"], code=row["code"])
            dataset.datastream(number, f"sensor {number}", number, row["metric"], definition=row["metric"],
                               indicator=row["metric"])
            dataset.observe(number, (row["time"], row["value"]))
        yield dataset.root


def sensorthings_source(tmp_path, monkeypatch, sensorthings_url) -> Source:
    entry = ("  - name: {name}\n    type: sensorthings\n    levels: [community]\n    schedule: {{interval: 10m}}\n"
             "    config: {{url: \"{url}\", unit_code_from: \"thing_property:code\", "
             "indicator_from: \"datastream_property:indicator\", attempts: 1}}\n")
    return Source(entry.replace("{url}", sensorthings_url),
                  entry.replace("{url}", f"http://127.0.0.1:{_closed_port()}/v1.1"), 2)


def mqtt_source(tmp_path, monkeypatch) -> Source:
    """The two rows as retained messages on the real broker (expiring by themselves, like the session)."""
    import uuid

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    prefix = f"onescreen-conformance/{uuid.uuid4().hex}"
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    publisher.connect("127.0.0.1", 1883)
    publisher.loop_start()
    expiry = Properties(PacketTypes.PUBLISH)
    expiry.MessageExpiryInterval = 120
    for number, row in enumerate(ROWS):
        publisher.publish(f"{prefix}/{number}", json.dumps(row), qos=1, retain=True,
                          properties=expiry).wait_for_publish(10)
    publisher.disconnect()
    publisher.loop_stop()
    entry = ("  - name: {name}\n    type: mqtt\n    levels: [community]\n    schedule: {{interval: 1m}}\n"
             "    config: {{port: PORT, topics: [\"" + prefix + "/#\"], client_id: conformance-"
             + uuid.uuid4().hex[:12] + ", idle_seconds: 0.3, session_expiry_seconds: 120}}\n"
             "    mapping: " + MAPPING + "\n")
    return Source(entry.replace("PORT", "1883"), entry.replace("PORT", str(_closed_port())), 2)


class _Open311(BaseHTTPRequestHandler):
    """Just enough GeoReport v2: services.json, and requests.json with the two rows as requests on page 1."""

    POINTS = {COMMUNITY_A: (0.5, 0.5), COMMUNITY_B: (3.5, 1.5)}  # inside each community's box

    def do_GET(self):  # noqa: N802
        path, _, query = self.path.partition("?")
        if path.endswith("/services.json"):
            body = [{"service_code": "001", "service_name": "道路破损"}]
        elif path.endswith("/requests.json"):
            body = [] if "page=1" not in query.split("&") else [
                {"service_request_id": f"r{n}", "status": "open", "service_name": "道路破损",
                 "requested_datetime": row["time"], "updated_datetime": row["time"],
                 "long": self.POINTS[row["code"]][0], "lat": self.POINTS[row["code"]][1], "phone": "13812345678"}
                for n, row in enumerate(ROWS)]
        else:
            self.send_response(404)
            self.end_headers()
            return
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def open311_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Open311)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/open311/v2"
    server.shutdown()
    thread.join(timeout=5)


def open311_source(tmp_path, monkeypatch, open311_url) -> Source:
    entry = ("  - name: {name}\n    type: open311\n    levels: [community]\n    schedule: {{interval: 10m}}\n"
             "    config: {{url: \"{url}\", attempts: 1}}\n")
    # Two incidents; what is stored as observations are their counts: open and overdue for all 8 communities.
    return Source(entry.replace("{url}", open311_url),
                  entry.replace("{url}", f"http://127.0.0.1:{_closed_port()}/open311/v2"), 2, observations=16)


SOURCES = {
    "open311": open311_source,
    "simulator": simulator_source,
    "drop_folder": drop_folder_source,
    "sql_query": sql_query_source,
    "http_json": http_json_source,
    "sensorthings": sensorthings_source,
    "mqtt": mqtt_source,
}


def test_every_registered_type_is_covered():
    built_in = {name for name, kind in REGISTRY.items() if kind.__module__.startswith("connectors.")}
    assert built_in <= set(SOURCES), f"no conformance source for {sorted(built_in - set(SOURCES))}"


@pytest.mark.parametrize("type_name", sorted(SOURCES))
class TestConnectorContract:
    @pytest.fixture
    def source(self, type_name, tmp_path, monkeypatch, request) -> Source:
        builder = SOURCES[type_name]
        servers = {"base_url": "http_server", "sensorthings_url": "sensorthings_rows",
                   "open311_url": "open311_server"}
        wanted = [servers[name] for name in inspect.signature(builder).parameters if name in servers]
        return builder(tmp_path, monkeypatch, *(request.getfixturevalue(name) for name in wanted))

    def instance(self, entry: str, tmp_path, catalog, name="conformance"):
        path = tmp_path / f"{name}.yaml"
        path.write_text("connectors:\n" + entry.format(name=name), encoding="utf-8")
        (found,) = load_connectors(path, catalog.keys, ZONE)  # the YAML path, validation included
        return found

    def test_declares_itself(self, type_name):
        kind = REGISTRY[type_name]
        assert issubclass(kind, Connector) and kind.type_name == type_name
        assert all(isinstance(spec, ConfigField) and spec.help for spec in kind.config_schema), \
            "every config field explains itself"
        module = sys.modules[kind.__module__]
        assert f"type: {type_name}" in (module.__doc__ or ""), "the module docstring shows a connectors.yaml entry"
        assert kind.check is not Connector.check and kind.fetch is not Connector.fetch

    def test_check_says_healthy_or_why_not_without_fetching(self, type_name, source, sqlite_city_db, tmp_path):
        from cityops.tree import load_tree

        with sqlite_city_db.session() as session:
            tree = load_tree(session)
        context = ConnectorContext(catalog=sqlite_city_db.catalog, tree=tree, now=NOW, timezone=ZONE)
        health = build_connector(self.instance(source.entry, tmp_path, sqlite_city_db.catalog), context).check()
        assert isinstance(health, Health) and health.healthy and health.detail
        if source.broken_entry is not None:
            broken = self.instance(source.broken_entry, tmp_path, sqlite_city_db.catalog, name="broken")
            try:
                verdict = build_connector(broken, context).check()
            except Exception as error:  # noqa: BLE001 - the contract says check() reports, never raises
                pytest.fail(f"check() raised {type(error).__name__}: {error}")
            assert not verdict.healthy and len(verdict.detail) > 10
        with sqlite_city_db.session() as session:
            assert session.execute(text("SELECT count(*) FROM observations")).scalar() == 0

    def test_fetch_is_lazy(self, type_name, source, sqlite_city_db, tmp_path):
        from cityops.tree import load_tree

        with sqlite_city_db.session() as session:
            tree = load_tree(session)
        context = ConnectorContext(catalog=sqlite_city_db.catalog, tree=tree, now=NOW, timezone=ZONE)
        connector = build_connector(self.instance(source.entry, tmp_path, sqlite_city_db.catalog), context)
        assert inspect.isgenerator(connector.fetch(None)), "fetch() yields records as it reads, never a list"

    def test_runs_archive_store_once_and_replay(self, type_name, source, sqlite_city_db, tmp_path):
        instance = self.instance(source.entry, tmp_path, sqlite_city_db.catalog)
        archive = tmp_path / "archive"
        now = int(time.time()) if source.expected is None else NOW

        def run(**options):
            return run_connector(sqlite_city_db.url, instance, sqlite_city_db.catalog, timezone=ZONE, now=now,
                                 archive_root=archive, **options)

        first = run(since=str(now - 3600)) if source.expected is None else run()
        assert first.status == "ok", first
        if source.expected is None:
            assert first.accepted > 0
        else:
            assert (first.fetched, first.accepted, first.rejected) == (source.expected, source.expected, 0)
        with sqlite_city_db.session() as session:
            stored = session.execute(text("SELECT count(*) FROM observations")).scalar()
            cursor = session.execute(text("SELECT cursor FROM connector_cursors WHERE connector = 'conformance'"))\
                .scalar()
        assert stored == (first.accepted if source.observations is None else source.observations)
        again = run(since=str(now - 3600)) if source.expected is None else run()
        assert again.status == "ok" and again.accepted == 0, again  # re-running stores nothing new
        payloads = run_payloads(archive, first.archive) if first.archive else []
        if not source.archives:
            return
        assert payloads, "every fetched payload is archived before it is parsed"
        replay = run(replay=payloads)
        assert (replay.status, replay.accepted, replay.duplicates) == ("ok", 0, source.expected), replay
        with sqlite_city_db.session() as session:
            after = session.execute(text("SELECT cursor FROM connector_cursors WHERE connector = 'conformance'"))\
                .scalar()
        assert after is not None and (cursor is None or after >= cursor)
