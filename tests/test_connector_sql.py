"""The sql_query connector against real source databases: a SQLite file and a database on the local PostgreSQL.

Every run goes through the real runner into OneScreen's own (SQLite, once also PostgreSQL) database.
"""

from __future__ import annotations

import gzip
import os
import socket
import sqlite3
import uuid
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

import connectors.sql  # noqa: F401  (registers the type)
from cityops.hierarchy import Level
from cityops.tree import load_tree
from connectors.archive import open_payload, run_payloads
from connectors.base import ConnectorContext
from connectors.config import ConnectorConfigError, ConnectorInstance, load_connectors
from connectors.mapping import FieldMapping
from connectors.runner import build_connector, run_connector

ZONE = "Asia/Shanghai"
SHANGHAI = ZoneInfo(ZONE)
NOW = int(datetime(2026, 11, 26, 10, 30, tzinfo=SHANGHAI).timestamp())
HOUR = 3600
ALL_LEVELS = (Level.DISTRICT, Level.STREET, Level.COMMUNITY)
STREETS = ["990101001", "990101002", "990102001", "990102002"]
COMMUNITIES = [s + c for s in STREETS for c in ("001", "002")]
LONG = {"unit_code": "code", "observed_at": "at", "indicator": "metric", "value": "value"}
POSTGRES_SERVER_URL = os.environ.get("ONESCREEN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


# ------------------------------------------------------------------------------------------------
# Source databases
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgresql_source_database():
    """A database `onescreen_src_<random>` standing for another system's server, dropped at the end."""
    name = f"onescreen_src_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_SERVER_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # noqa: BLE001 - as in conftest: no server fails the tests, never skips them
        admin.dispose()
        pytest.fail(f"PostgreSQL at {POSTGRES_SERVER_URL} is required (set ONESCREEN_TEST_POSTGRES to another "
                    f"server): {type(error).__name__}: {error}", pytrace=False)
    try:
        yield POSTGRES_SERVER_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgresql_source(postgresql_source_database) -> str:
    """The session's source database, emptied for this test."""
    execute(postgresql_source_database, "DROP SCHEMA public CASCADE", "CREATE SCHEMA public")
    return postgresql_source_database


@pytest.fixture
def sqlite_source(tmp_path) -> str:
    path = tmp_path / "source.db"
    sqlite3.connect(path).close()
    return f"sqlite:///{path.as_posix()}"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_source(request) -> str:
    return request.getfixturevalue(f"{request.param}_source")


def execute(url: str, *statements: str, rows: list[dict] | None = None) -> None:
    """Run statements on a source database (the last one once per row, when rows are given)."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in statements[:-1]:
                connection.execute(text(statement))
            connection.execute(text(statements[-1]), rows or {})
    finally:
        engine.dispose()


def source_rows(url: str, sql: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql))]
    finally:
        engine.dispose()


# How each kind of time column is declared and written. Texts are UTC with "Z", timestamps naive Shanghai time.
KINDS = {
    "sqlite-epoch": ("sqlite", "epoch", "INTEGER", lambda at: at),
    "sqlite-text": ("sqlite", "text", "TEXT",
                    lambda at: datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")),
    "sqlite-timestamp": ("sqlite", "timestamp", "TIMESTAMP",
                         lambda at: datetime.fromtimestamp(at, SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")),
    "postgresql-timestamp": ("postgresql", "timestamp", "timestamp",
                             lambda at: datetime.fromtimestamp(at, SHANGHAI).replace(tzinfo=None)),
    "postgresql-timestamptz": ("postgresql", "timestamp", "timestamptz",
                               lambda at: datetime.fromtimestamp(at, SHANGHAI)),
}


def readings_table(url: str, time_type: str = "INTEGER", code_type: str = "TEXT") -> None:
    execute(url, f"CREATE TABLE readings (code {code_type}, metric TEXT, at {time_type}, value DOUBLE PRECISION)")


def insert_readings(url: str, rows: list[tuple], stamp=lambda at: at) -> None:
    execute(url, "INSERT INTO readings (code, metric, at, value) VALUES (:code, :metric, :at, :value)",
            rows=[{"code": code, "metric": metric, "at": stamp(at), "value": value}
                  for code, metric, at, value in rows])


# ------------------------------------------------------------------------------------------------
# Runs
# ------------------------------------------------------------------------------------------------


def instance(url: str, mapping: dict | None = None, name: str = "grid", levels=ALL_LEVELS, **config):
    config.setdefault("query", "SELECT code, metric, at, value FROM readings")
    config.setdefault("time_column", "at")
    config.setdefault("time_format", "epoch")
    return ConnectorInstance(name=name, type="sql_query", levels=levels, interval_seconds=300,
                             config={"url": url, **config}, mapping=FieldMapping.parse(mapping or LONG))


def run(db, inst, tmp_path, **options):
    options.setdefault("timezone", ZONE)
    options.setdefault("now", NOW)
    return run_connector(db.url, inst, db.catalog, archive_root=tmp_path / "archive", **options)


def stored(db) -> dict[tuple[str, str, int], float]:
    with db.session() as session:
        rows = session.execute(text("SELECT u.code, i.key, o.observed_at, o.value FROM observations o JOIN units u "
                                    "ON u.id = o.unit_id JOIN indicators i ON i.id = o.indicator_id")).all()
    return {(code, key, int(at)): value for code, key, at, value in rows}


def quarantined(db) -> list[tuple[str, str, str]]:
    with db.session() as session:
        return [tuple(r) for r in session.execute(text("SELECT reason, raw, source FROM quarantine ORDER BY id"))]


def cursor_of(db, name="grid"):
    with db.session() as session:
        return session.execute(text("SELECT cursor FROM connector_cursors WHERE connector = :n"), {"n": name}).scalar()


def hotline(times, start=1) -> list[tuple]:
    return [(code, "hotline_complaints", at, float(start + n)) for at in times for n, code in enumerate(COMMUNITIES)]


# ------------------------------------------------------------------------------------------------
# Incremental reading, for every kind of time column
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_runs_read_new_rows_only_and_move_the_cursor(kind, request, sqlite_city_db, tmp_path):
    backend, time_format, time_type, stamp = KINDS[kind]
    url = request.getfixturevalue(f"{backend}_source")
    # PostgreSQL codes as numbers: they must come through as the same codes.
    readings_table(url, time_type, code_type="BIGINT" if kind == "postgresql-timestamptz" else "TEXT")
    t0, t1, t2 = NOW - 3 * HOUR, NOW - 2 * HOUR, NOW - HOUR
    insert_readings(url, hotline([t0, t1]), stamp)
    inst = instance(url, time_format=time_format)

    first = run(sqlite_city_db, inst, tmp_path)
    assert (first.status, first.fetched, first.accepted, first.rejected) == ("ok", 16, 16, 0)
    assert stored(sqlite_city_db) == {(code, key, at): value for code, key, at, value in hotline([t0, t1])}
    assert cursor_of(sqlite_city_db) == str(t1)

    # Later: a new hour, and a row older than the cursor (half an hour before it) that must not be read.
    insert_readings(url, hotline([t2], start=100) + [(COMMUNITIES[0], "hotline_complaints", t1 - 1800, 99.0)], stamp)
    second = run(sqlite_city_db, inst, tmp_path)
    # Since is inclusive: the cursor's own rows come again, unchanged.
    assert (second.status, second.fetched, second.accepted, second.duplicates) == ("ok", 16, 8, 8)
    assert cursor_of(sqlite_city_db) == str(t2)
    rows = stored(sqlite_city_db)
    assert (COMMUNITIES[0], "hotline_complaints", t1 - 1800) not in rows
    assert rows[(COMMUNITIES[7], "hotline_complaints", t2)] == 107.0 and len(rows) == 24

    third = run(sqlite_city_db, inst, tmp_path)
    assert (third.fetched, third.accepted, third.duplicates) == (8, 0, 8)


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/Berlin"])
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_naive_timestamps_are_read_in_the_configured_zone(zone, backend, request, sqlite_city_db, tmp_path):
    url = request.getfixturevalue(f"{backend}_source")
    readings_table(url, "TIMESTAMP")
    local = [datetime(2026, 11, 26, 1, 0), datetime(2026, 11, 26, 2, 0)]
    insert_readings(url, [(COMMUNITIES[0], "hotline_complaints", at, 5.0) for at in local],
                    lambda at: at.strftime("%Y-%m-%d %H:%M:%S") if backend == "sqlite" else at)
    inst = instance(url, time_format="timestamp")
    expected = [int(at.replace(tzinfo=ZoneInfo(zone)).timestamp()) for at in local]

    first = run(sqlite_city_db, inst, tmp_path, timezone=zone)
    assert first.accepted == 2
    assert sorted(at for _code, _key, at in stored(sqlite_city_db)) == expected
    assert cursor_of(sqlite_city_db) == str(expected[1])
    # The cursor, turned back into the column's time, selects exactly the newest row again.
    assert run(sqlite_city_db, inst, tmp_path, timezone=zone).fetched == 1


def test_start_limits_the_first_run(sqlite_source, sqlite_city_db, tmp_path):
    readings_table(sqlite_source)
    insert_readings(sqlite_source, hotline([NOW - 3 * HOUR, NOW - HOUR]))
    start = datetime.fromtimestamp(NOW - 2 * HOUR, SHANGHAI).strftime("%Y-%m-%d %H:%M")  # naive: Shanghai
    inst = instance(sqlite_source, start=start)
    summary = run(sqlite_city_db, inst, tmp_path)
    assert summary.fetched == 8 and {at for _c, _k, at in stored(sqlite_city_db)} == {NOW - HOUR}


# ------------------------------------------------------------------------------------------------
# Mappings and bad rows
# ------------------------------------------------------------------------------------------------


def test_wide_rows_give_one_record_per_mapped_column(sqlite_source, sqlite_city_db, tmp_path):
    hour = datetime.fromtimestamp(NOW - HOUR, SHANGHAI).strftime("%Y-%m-%dT%H:%M:%S")
    execute(sqlite_source, "CREATE TABLE air (street TEXT, hour TEXT, aqi INTEGER, pm25 REAL, noise REAL)")
    rows = [{"street": s, "hour": hour, "aqi": 50 + n, "pm25": 20.5 + n, "noise": None if n == 3 else 55.0}
            for n, s in enumerate(STREETS)]
    rows.append({"street": STREETS[0], "hour": "yesterday", "aqi": 1, "pm25": 1, "noise": 1})  # not a time
    execute(sqlite_source, "INSERT INTO air VALUES (:street, :hour, :aqi, :pm25, :noise)", rows=rows)
    mapping = {"unit_code": "street", "observed_at": "hour",
               "values": {"aqi": "aqi", "pm25": "pm25", "noise": "noise"}}
    inst = instance(sqlite_source, mapping, query="SELECT * FROM air", time_column="hour", time_format="text")

    summary = run(sqlite_city_db, inst, tmp_path)
    assert (summary.status, summary.fetched, summary.accepted, summary.rejected) == ("partial", 15, 11, 4)
    at = NOW - HOUR
    stored_rows = stored(sqlite_city_db)
    assert stored_rows[(STREETS[2], "aqi", at)] == 52.0 and stored_rows[(STREETS[2], "pm25", at)] == 22.5
    assert stored_rows[(STREETS[0], "noise", at)] == 55.0 and (STREETS[3], "noise", at) not in stored_rows
    reasons = {}
    for reason, raw, source in quarantined(sqlite_city_db):
        reasons.setdefault(reason, []).append((raw, source))
    [(raw, source)] = reasons["value nan is not a finite number"]
    assert '"street": "990102002"' in raw and '"noise": null' in raw and source.endswith("rows-1.csv.gz#3")
    assert len(reasons["timestamp 'yesterday' is not ISO 8601 (e.g. 2026-11-26T10:00:00+08:00)"]) == 3
    assert cursor_of(sqlite_city_db) == str(at)  # a row that is not a time does not move the cursor


def test_bad_rows_are_quarantined_with_reasons_and_the_good_ones_kept(postgresql_source, sqlite_city_db, tmp_path):
    readings_table(postgresql_source)
    at = NOW - HOUR
    good = [(COMMUNITIES[0], "hotline_complaints", at, 3.0), (COMMUNITIES[1], "hotline_complaints", at, 0.0)]
    bad = [("990199999999", "hotline_complaints", at, 1.0),      # no such unit
           (COMMUNITIES[2], "hotline_complaints", at, None),     # NULL
           (COMMUNITIES[3], "hotline_complaints", at, -3.0),     # a negative count
           (COMMUNITIES[4], "hotline_complaints", at, float("nan")),
           (COMMUNITIES[5], "rainfall", at, 2.0),                # not in the catalog
           (STREETS[0], "hotline_complaints", at, 1.0),          # reported per community, not street
           (COMMUNITIES[6], "hotline_complaints", NOW + 2 * HOUR, 1.0)]
    insert_readings(postgresql_source, good + bad)

    summary = run(sqlite_city_db, instance(postgresql_source), tmp_path)
    assert (summary.status, summary.fetched, summary.accepted, summary.rejected) == ("partial", 9, 2, 7)
    assert stored(sqlite_city_db) == {(code, key, t): value for code, key, t, value in good}
    reasons = [reason for reason, _raw, _source in quarantined(sqlite_city_db)]
    assert sorted(reasons) == sorted([
        "unknown unit code '990199999999'", "value nan is not a finite number", "negative count -3.0 for "
        "hotline_complaints", "value nan is not a finite number", "unknown indicator 'rainfall'",
        "hotline_complaints is reported per community, but 990101001 is a street",
        f"timestamp {NOW + 2 * HOUR} is in the future (more than 5 min ahead of the server clock)"])
    # Each quarantined record keeps its source row and points at the archived chunk it came in.
    raw_of = {reason: (raw, source) for reason, raw, source in quarantined(sqlite_city_db)}
    raw, source = raw_of["unknown unit code '990199999999'"]
    assert '"code": "990199999999"' in raw and f'"at": "{at}"' in raw
    reference, position = source.split("#")
    with open_payload(tmp_path / "archive", reference) as stream:
        lines = stream.read().decode().splitlines()
    assert lines[0] == "code,metric,at,value" and lines[1 + int(position)].startswith("990199999999,")
    # The future row holds the cursor back, so it is read again (and accepted) once its time has come.
    assert cursor_of(sqlite_city_db) == str(at)


# ------------------------------------------------------------------------------------------------
# Failures
# ------------------------------------------------------------------------------------------------


def test_a_query_error_fails_the_run_as_fatal_and_names_the_problem(any_source, sqlite_city_db, tmp_path):
    readings_table(any_source)
    insert_readings(any_source, hotline([NOW - HOUR]))
    summary = run(sqlite_city_db, instance(any_source, query="SELECT code, metric, at, valu FROM readings"), tmp_path)
    assert (summary.status, summary.error_family, summary.fetched) == ("failed", "fatal", 0)
    assert "sql_query connector 'grid'" in summary.error_message and "valu" in summary.error_message
    assert "Fix config.query" in summary.error_message and "[SQL:" not in summary.error_message
    assert cursor_of(sqlite_city_db) is None and stored(sqlite_city_db) == {}


def test_a_mapped_column_the_query_lacks_is_fatal(sqlite_source, sqlite_city_db, tmp_path):
    readings_table(sqlite_source)
    inst = instance(sqlite_source, {**LONG, "value": "amount"})
    summary = run(sqlite_city_db, inst, tmp_path)
    assert (summary.status, summary.error_family) == ("failed", "fatal")
    assert "returns no column(s) amount (it returns code, metric, at, value)" in summary.error_message


@pytest.mark.parametrize("config, complaint", [
    ({"time_column": "at; DROP TABLE readings"}, "time_column 'at; DROP TABLE readings' must be a plain column"),
    ({"time_column": "strftime('%s', at)"}, "alias the expression in the query"),
    ({"query": "DELETE FROM readings"}, "query must be a SELECT (or WITH … SELECT), not DELETE"),
    ({"query": "  -- tidy up\nDROP TABLE readings"}, "not DROP"),
    ({"query": "SELECT * FROM readings; DROP TABLE readings"}, "more than one statement"),
    ({"time_format": "unix"}, "time_format 'unix' is not one of timestamp, epoch, text"),
    ({"start": "last week"}, "start 'last week' is not an ISO time"),
    ({"batch_rows": 0}, "batch_rows and timeout must be positive"),
])
def test_unsafe_or_wrong_config_is_fatal_and_touches_nothing(config, complaint, sqlite_source, sqlite_city_db,
                                                             tmp_path):
    readings_table(sqlite_source)
    insert_readings(sqlite_source, hotline([NOW - HOUR]))
    summary = run(sqlite_city_db, instance(sqlite_source, **config), tmp_path)
    assert (summary.status, summary.error_family) == ("failed", "fatal")
    assert summary.error_message.startswith("sql_query connector 'grid': ") and complaint in summary.error_message
    assert len(source_rows(sqlite_source, "SELECT * FROM readings")) == 8


def test_the_source_session_cannot_write(postgresql_source, sqlite_city_db, tmp_path):
    """Even a SELECT that would write (a function, a data-modifying CTE) fails: sessions are read-only."""
    readings_table(postgresql_source)
    insert_readings(postgresql_source, hotline([NOW - HOUR]))
    execute(postgresql_source, "CREATE FUNCTION wipe() RETURNS integer LANGUAGE sql AS "
                             "'DELETE FROM readings RETURNING 1'")
    attempts = [("SELECT code, metric, at, value, wipe() AS w FROM readings", "read-only transaction"),
                ("WITH gone AS (DELETE FROM readings RETURNING *) SELECT * FROM gone", "must be at the top level")]
    for query, complaint in attempts:
        summary = run(sqlite_city_db, instance(postgresql_source, query=query), tmp_path)
        assert (summary.status, summary.error_family) == ("failed", "fatal") and complaint in summary.error_message
        assert len(source_rows(postgresql_source, "SELECT * FROM readings")) == 8


def test_connection_problems_are_fatal_or_retriable(postgresql_source, sqlite_city_db, tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    server = postgresql_source.split("@", 1)[-1].rsplit("/", 1)[0]  # host:port of the local server
    refused = run(sqlite_city_db, instance(f"postgresql://reader:s3cret@127.0.0.1:{closed_port}/grid",
                                           timeout=3), tmp_path)
    assert (refused.status, refused.error_family) == ("failed", "retriable")
    assert "cannot reach postgresql://reader:***@127.0.0.1" in refused.error_message
    assert "refused" in refused.error_message.lower() and "s3cret" not in refused.error_message

    missing = f"postgresql://postgres:s3cret@{server}/no_such_db_{uuid.uuid4().hex[:6]}"
    missing_db = run(sqlite_city_db, instance(missing), tmp_path)
    assert (missing_db.status, missing_db.error_family) == ("failed", "fatal")
    assert "does not exist" in missing_db.error_message and "url_env" in missing_db.error_message
    assert "s3cret" not in missing_db.error_message

    path = tmp_path / "typo" / "grid.db"
    missing_file = run(sqlite_city_db, instance(f"sqlite:///{path.as_posix()}"), tmp_path)
    assert (missing_file.status, missing_file.error_family) == ("failed", "fatal")
    assert f"no SQLite database at {path.as_posix()}" in missing_file.error_message and not path.exists()


def test_a_failure_midway_keeps_the_batches_committed_before_it(sqlite_source, sqlite_city_db, tmp_path):
    execute(sqlite_source, "CREATE TABLE readings (code TEXT, metric TEXT, at INTEGER, value REAL, poison INTEGER)",
            "CREATE INDEX readings_at ON readings (at)")  # read in index order, row by row, as a real source is
    times = [NOW - HOUR + 60 * n for n in range(8)]
    execute(sqlite_source, "INSERT INTO readings VALUES (:code, 'hotline_complaints', :at, 1, :poison)",
            rows=[{"code": code, "at": at, "poison": -(2 ** 63) if n == 7 else 0}
                  for n, (code, at) in enumerate(zip(COMMUNITIES, times))])
    # SQLite raises "integer overflow" for abs() of the smallest integer: the 8th row breaks the read.
    inst = instance(sqlite_source, query="SELECT code, metric, at, value, abs(poison) AS p FROM readings",
                    batch_rows=3)
    broken = run(sqlite_city_db, inst, tmp_path, batch_size=3)
    assert (broken.status, broken.accepted) == ("partial", 6) and "integer overflow" in broken.error_message
    assert cursor_of(sqlite_city_db) == str(times[5])

    execute(sqlite_source, "UPDATE readings SET poison = 0")
    resumed = run(sqlite_city_db, inst, tmp_path, batch_size=3)
    assert (resumed.status, resumed.fetched, resumed.accepted) == ("ok", 3, 2)
    assert cursor_of(sqlite_city_db) == str(times[7]) and len(stored(sqlite_city_db)) == 8


# ------------------------------------------------------------------------------------------------
# Secrets, batches, replay, check
# ------------------------------------------------------------------------------------------------


def test_the_url_is_a_secret_read_from_the_environment(sqlite_source, sqlite_city_db, tmp_path, monkeypatch):
    readings_table(sqlite_source)
    insert_readings(sqlite_source, hotline([NOW - HOUR]))
    entry = ("connectors:\n  - name: grid\n    type: sql_query\n    levels: [community]\n"
             "    schedule: {interval: 5m}\n    config:\n      {url}\n"
             "      query: SELECT code, metric, at, value FROM readings\n"
             "      time_column: at\n      time_format: epoch\n"
             "    mapping: {unit_code: code, observed_at: at, indicator: metric, value: value}\n")
    path = tmp_path / "connectors.yaml"
    path.write_text(entry.replace("{url}", "url_env: GRID_DB_URL"), encoding="utf-8")
    with pytest.raises(ConnectorConfigError, match="secret url missing: set url_env .*'GRID_DB_URL'"):
        load_connectors(path)

    monkeypatch.setenv("GRID_DB_URL", sqlite_source)
    [inst] = load_connectors(path)
    assert inst.config["url"] == sqlite_source and inst.config["batch_rows"] == 50_000
    summary = run(sqlite_city_db, inst, tmp_path)
    assert (summary.status, summary.accepted) == ("ok", 8)

    path.write_text(entry.replace("{url}", f"url: {sqlite_source}"), encoding="utf-8")
    with pytest.raises(ConnectorConfigError, match="url is a secret and must not be written in the file"):
        load_connectors(path)
    # Config a run could never use stops start-up, naming the entry.
    unsafe = entry.replace("{url}", "url_env: GRID_DB_URL").replace("SELECT code, metric, at, value", "DELETE")
    path.write_text(unsafe, encoding="utf-8")
    with pytest.raises(ConnectorConfigError, match=r"connector 'grid' \(#1\): config: query must be a SELECT"):
        load_connectors(path)


def test_chunks_smaller_than_the_table_commit_the_cursor_one_by_one(postgresql_source, city_db, tmp_path):
    readings_table(postgresql_source, "timestamptz")
    times = [NOW - 2 * HOUR + 60 * n for n in range(16)]
    insert_readings(postgresql_source, [(COMMUNITIES[n % 8], "hotline_complaints", at, float(n))
                                      for n, at in enumerate(times)], KINDS["postgresql-timestamptz"][3])
    cursors = []
    summary = run(city_db, instance(postgresql_source, batch_rows=3, time_format="timestamp"), tmp_path,
                  batch_size=3, progress=lambda _summary: cursors.append(cursor_of(city_db)))
    assert (summary.status, summary.fetched, summary.accepted) == ("ok", 16, 16)
    assert cursors == [str(times[n]) for n in (2, 5, 8, 11, 14, 15)]
    assert len(run_payloads(tmp_path / "archive", summary.archive)) == 6


@pytest.mark.parametrize("time_format", ["epoch", "text"])
def test_fetch_and_replay_of_its_archived_chunks_give_identical_batches(any_source, sqlite_city_db, tmp_path,
                                                                       time_format):
    """Fetch reads the driver's rows and replay the archived CSV: the batches must not differ in any cell or type."""
    import pandas as pd

    from connectors.archive import RunArchive

    execute(any_source, "CREATE TABLE readings (code TEXT, metric TEXT, at TEXT, value DOUBLE PRECISION, "
                        "note TEXT, amount BIGINT, part DOUBLE PRECISION)")
    stamp = {"epoch": str, "text": lambda at: datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    rows = [(code, metric, stamp[time_format](NOW - HOUR + 60 * n), value, note, amount, part)
            for n, (code, metric, value, note, amount, part) in enumerate([
                (COMMUNITIES[0], "hotline_complaints", 3.0, "a, \"quoted\"\nnote", 7, 0.1),
                (COMMUNITIES[1], "hotline_complaints", None, "", None, None),
                (COMMUNITIES[2], "热线投诉", -2.5, "NA", 2 ** 40, float("inf")),
                ("990199999999", "hotline_complaints", float("nan"), None, -1, 1e16),
                (COMMUNITIES[3], None, 1e-7, "nan", 0, -0.0),
                (None, "hotline_complaints", 12345678.123456789, " x ", 3, 2.5),
                (COMMUNITIES[4], "hotline_complaints", 0.30000000000000004, "日本", 5, 1.0)])]
    rows.append((COMMUNITIES[5], "hotline_complaints", "yesterday", 1.0, "late", 1, 1.0))
    if time_format == "epoch":
        rows = [(c, m, None if at == "yesterday" else int(at), *rest) for c, m, at, *rest in rows]
    execute(any_source, "INSERT INTO readings VALUES (:code, :metric, :at, :value, :note, :amount, :part)",
            rows=[dict(zip(["code", "metric", "at", "value", "note", "amount", "part"], row)) for row in rows])
    if time_format == "epoch" and "postgresql" in any_source:
        execute(any_source, "ALTER TABLE readings ALTER COLUMN at TYPE BIGINT USING at::bigint")
    with sqlite_city_db.session() as session:
        tree = load_tree(session)
    archive = RunArchive(tmp_path / "archive", "grid", 1, NOW)
    context = ConnectorContext(catalog=sqlite_city_db.catalog, tree=tree, now=NOW, timezone=ZONE, archive=archive)
    connector = build_connector(instance(any_source, time_format=time_format, batch_rows=3,
                                         query="SELECT * FROM readings"), context)

    fetched = list(connector.fetch(None))
    assert sum(len(batch.raw) for batch in fetched) == 8
    references = run_payloads(tmp_path / "archive", archive.reference)
    assert len(references) == len(fetched) == 3
    for batch, reference in zip(fetched, references):
        with open_payload(tmp_path / "archive", reference) as stream:
            # The label as the runner gives it (it sets `source` itself).
            label = reference.rsplit("/", 1)[-1].removesuffix(".gz").split("-", 1)[-1]
            [replayed] = connector.replay(label, stream.read())
        assert batch.source == reference
        pd.testing.assert_frame_equal(batch.frame, replayed.frame, check_exact=True)
        pd.testing.assert_frame_equal(batch.raw, replayed.raw, check_exact=True)
        assert batch.cursor == replayed.cursor


def test_replay_parses_archived_chunks_again_with_a_fixed_mapping(sqlite_source, sqlite_city_db, tmp_path):
    readings_table(sqlite_source)
    insert_readings(sqlite_source, [(code, "热线投诉", at, value) for code, _key, at, value in hotline([NOW - HOUR])])
    summary = run(sqlite_city_db, instance(sqlite_source, batch_rows=5), tmp_path)
    assert (summary.status, summary.rejected) == ("partial", 8)
    assert {reason for reason, _raw, _source in quarantined(sqlite_city_db)} == {"unknown indicator '热线投诉'"}
    references = run_payloads(tmp_path / "archive", summary.archive)
    assert [ref.rsplit("/", 1)[-1] for ref in references] == ["0001-rows-1.csv.gz", "0002-rows-2.csv.gz"]
    with gzip.open(tmp_path / "archive" / references[0]) as stream:
        assert stream.read().decode().splitlines()[:2] == ["code,metric,at,value",
                                                         f"990101001001,热线投诉,{NOW - HOUR},1.0"]

    fixed = instance(sqlite_source, {**LONG, "indicator_names": {"热线投诉": "hotline_complaints"}})
    replayed = run(sqlite_city_db, fixed, tmp_path, replay=references)
    assert (replayed.status, replayed.fetched, replayed.accepted) == ("ok", 8, 8)
    assert stored(sqlite_city_db) == {(c, k, at): v for c, k, at, v in hotline([NOW - HOUR])}
    assert cursor_of(sqlite_city_db) is None  # a replay never moves the cursor


def test_check_reports_columns_or_exactly_what_is_wrong(any_source, sqlite_city_db, tmp_path):
    readings_table(any_source)
    with sqlite_city_db.session() as session:
        tree = load_tree(session)
    context = ConnectorContext(catalog=sqlite_city_db.catalog, tree=tree, now=NOW, timezone=ZONE)

    def check(**overrides):
        mapping = overrides.pop("mapping", None)
        return build_connector(instance(any_source, mapping, **overrides), context).check()

    healthy = check()
    assert healthy.healthy and healthy.detail == "4 columns, time column at"
    lacking = check(mapping={**LONG, "value": "amount"})
    assert not lacking.healthy and "returns no column(s) amount" in lacking.detail
    wrong = check(query="SELECT code, metric, at FROM no_such_table")
    assert not wrong.healthy and "no_such_table" in wrong.detail and "Fix config.query" in wrong.detail
    no_time = check(time_column="observed")
    assert not no_time.healthy and "observed" in no_time.detail
    assert not (tmp_path / "archive").exists()


def test_check_finds_a_time_format_that_does_not_fit_the_column(postgresql_source, sqlite_city_db):
    readings_table(postgresql_source, "TEXT")
    context = ConnectorContext(catalog=sqlite_city_db.catalog, tree=None, now=NOW, timezone=ZONE)
    inst = instance(postgresql_source, time_format="timestamp")
    health = build_connector(inst, context).check()
    assert not health.healthy and "operator does not exist: text >=" in health.detail
    assert "time_format (timestamp)" in health.detail
    assert build_connector(instance(postgresql_source, time_format="text"), context).check().healthy
