"""The scheduler starts once per deployment, and the CLI explains itself and reports config errors clearly."""

from __future__ import annotations

from dataclasses import replace

from click.testing import CliRunner

from cityops.settings import Settings
from connectors.scheduler import ALERTS_JOB, RELOAD_JOB, start_scheduler
from onescreen import cli


def test_a_second_scheduler_in_the_same_deployment_does_not_start(tmp_path, monkeypatch):
    monkeypatch.setenv("ONESCREEN_LOCK_DIR", str(tmp_path))
    settings = replace(Settings(), database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    first = start_scheduler(settings, first_run_delay=3600)
    try:
        assert first is not None and first.scheduler.running
        jobs = [job.id for job in first.scheduler.get_jobs() if job.id not in (RELOAD_JOB, ALERTS_JOB)]
        assert jobs == ["city-simulator"]
        assert start_scheduler(settings, first_run_delay=3600) is None
    finally:
        first.shutdown()
    again = start_scheduler(settings, first_run_delay=3600)  # the lock is released on shutdown
    assert again is not None
    again.shutdown()


def test_cli_help_lists_every_command():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "scheduler", "seed-demo", "import", "backfill", "run", "check", "connectors",
                    "alerts", "init-db"):
        assert command in result.output


def test_catalog_error_names_the_file_entry_and_fix(tmp_path, monkeypatch):
    catalog = tmp_path / "indicators.yaml"
    catalog.write_text("indicators:\n  - key: aqi\n    name_zh: 空气\n    name_en: Air\n    unit: AQI\n"
                       "    level: street\n    rollup: avg\n    direction: higher_is_worse\n"
                       "    interval: 1h\n    thresholds: {warning: 100, critical: 150}\n", encoding="utf-8")
    monkeypatch.setenv("ONESCREEN_CATALOG", str(catalog))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    result = CliRunner().invoke(cli, ["init-db"])
    assert result.exit_code != 0
    assert str(catalog) in result.output and "'aqi'" in result.output and "rollup 'avg'" in result.output
    assert "sum, mean, population_weighted_mean, max, ratio" in result.output


def test_import_command_loads_a_geojson_file_all_or_nothing(tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    sample = Path(__file__).parent / "fixtures" / "boundaries" / "sample_statistical.geojson"
    result = CliRunner().invoke(cli, ["import", str(sample)])
    assert result.exit_code == 0, result.output
    assert "8 community" in result.output
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
                      '{"code": "990101", "name": "区"}, "geometry": {"type": "Point", "coordinates": [0, 0]}}]}',
                      encoding="utf-8")
    result = CliRunner().invoke(cli, ["import", str(broken)])
    assert result.exit_code != 0
    assert "nothing was loaded" in result.output and "990101" in result.output


def test_init_db_creates_the_database_folder_of_a_fresh_clone(tmp_path, monkeypatch):
    database = tmp_path / "var" / "nested" / "onescreen.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{database}")
    result = CliRunner().invoke(cli, ["init-db"])
    assert result.exit_code == 0, result.output
    assert database.exists() and "16 indicators registered" in result.output


def _connectors_file(path, entries: str):
    path.write_text("connectors:\n" + entries, encoding="utf-8")
    import os
    import time as clock
    # Make sure the change is visible even on file systems with coarse modification times.
    stamp = clock.time_ns() + 2_000_000_000
    os.utime(path, ns=(stamp, stamp))


SIMULATOR = ("  - name: {name}\n    type: simulator\n    levels: [community]\n"
             "    schedule: {schedule}\n")


def test_the_schedule_follows_the_connectors_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ONESCREEN_LOCK_DIR", str(tmp_path))
    path = tmp_path / "connectors.yaml"
    _connectors_file(path, SIMULATOR.format(name="a", schedule="{interval: 5m}"))
    settings = replace(Settings(), database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", connectors_path=path)
    handle = start_scheduler(settings, first_run_delay=3600)
    try:
        def jobs():
            return {job.id: job for job in handle.scheduler.get_jobs() if job.id not in (RELOAD_JOB, ALERTS_JOB)}

        assert set(jobs()) == {"a"}
        _connectors_file(path, SIMULATOR.format(name="a", schedule="{interval: 10m}")
                         + SIMULATOR.format(name="b", schedule='{cron: "*/15 * * * *"}'))
        handle.jobs.load()
        assert set(jobs()) == {"a", "b"}
        assert jobs()["a"].trigger.interval.total_seconds() == 600
        assert "*/15" in str(jobs()["b"].trigger)
        assert handle.jobs.instances["b"].interval_seconds == 900  # the longest gap between cron runs
        _connectors_file(path, "  - name: b\n    type: nonsense\n    levels: [community]\n    schedule: {interval: 5m}\n")
        handle.jobs.load()  # a broken file keeps the running schedule
        assert set(jobs()) == {"a", "b"}
        _connectors_file(path, SIMULATOR.format(name="b", schedule="{interval: 5m}"))
        handle.jobs.load()
        assert set(jobs()) == {"b"}
    finally:
        handle.shutdown()


def test_a_fatal_failure_pauses_the_connector_until_its_file_changes(tmp_path, monkeypatch):
    from connectors.base import Connector, FatalError, Health, register

    @register
    class RefusingConnector(Connector):
        type_name = "test-refusing"

        def check(self):
            return Health(False, "refused")

        def fetch(self, since):
            raise FatalError("the source rejected the API key")
            yield  # pragma: no cover

    monkeypatch.setenv("ONESCREEN_LOCK_DIR", str(tmp_path))
    database = f"sqlite:///{tmp_path / 'db.sqlite'}"
    from cityops.db import migrate

    migrate(database)
    path = tmp_path / "connectors.yaml"
    entry = "  - name: refusing\n    type: test-refusing\n    levels: [community]\n    schedule: {interval: 5m}\n"
    _connectors_file(path, entry)
    settings = replace(Settings(), database_url=database, connectors_path=path, archive_dir=tmp_path / "archive")
    handle = start_scheduler(settings, first_run_delay=3600)
    try:
        handle.jobs.run("refusing")
        assert handle.jobs.paused == {"refusing": "the source rejected the API key"}
        assert handle.scheduler.get_job("refusing").next_run_time is None  # paused
        _connectors_file(path, entry.replace("5m", "10m"))
        handle.jobs.load()
        assert handle.jobs.paused == {} and handle.scheduler.get_job("refusing").next_run_time is not None
    finally:
        handle.shutdown()


def test_a_source_asking_to_wait_moves_the_next_run_to_when_it_said(tmp_path, monkeypatch):
    """A real local API answering 429 with Retry-After: 2 h. The run fails as retriable, and the next scheduled
    run is not before the two hours are over, however short the connector's interval."""
    import threading
    from datetime import datetime, timedelta, timezone
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cityops.db import migrate

    requests_seen = []

    class Throttling(BaseHTTPRequestHandler):
        def do_GET(self):
            requests_seen.append(self.path)
            self.send_response(429)
            self.send_header("Retry-After", "7200")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Throttling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("ONESCREEN_LOCK_DIR", str(tmp_path))
    database = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(database)
    path = tmp_path / "connectors.yaml"
    _connectors_file(path, "  - name: throttled\n    type: http_json\n    levels: [community]\n"
                           "    schedule: {interval: 1m}\n"
                           f"    config: {{url: 'http://127.0.0.1:{server.server_port}/api', max_wait: 1}}\n"
                           "    mapping: {unit_code: code, observed_at: time, indicator: key, value: value}\n")
    settings = replace(Settings(), database_url=database, connectors_path=path, archive_dir=tmp_path / "archive")
    handle = start_scheduler(settings, first_run_delay=3600)
    try:
        handle.jobs.run("throttled")
        next_run = handle.scheduler.get_job("throttled").next_run_time
        assert len(requests_seen) == 1  # asked to wait longer than max_wait: no retry within the run
        assert next_run >= datetime.now(timezone.utc) + timedelta(seconds=7200 - 60)
        assert "throttled" not in handle.jobs.paused  # retriable: postponed, not paused
    finally:
        handle.shutdown()
        server.shutdown()

def test_backfill_of_a_time_range_stores_only_that_range_and_leaves_the_cursor(tmp_path, monkeypatch):
    """`onescreen backfill NAME --from … --to …` through the CLI, on the tiny city and the simulator."""
    from sqlalchemy import text as sql

    from cityops.boundaries import replace_units
    from cityops.db import migrate, session_scope
    from city_factory import tiny_city

    database = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate(database)
    with session_scope(database) as session:
        replace_units(session, tiny_city())
    monkeypatch.setenv("DATABASE_URL", database)
    monkeypatch.setenv("ONESCREEN_ARCHIVE_DIR", str(tmp_path / "archive"))
    result = CliRunner().invoke(cli, ["backfill", "city-simulator", "--from", "2026-11-20T00:00",
                                      "--to", "2026-11-20T06:00"])
    assert result.exit_code == 0, result.output
    assert "after the range left for the schedule" in result.output
    with session_scope(database) as session:
        first, last = session.execute(sql("SELECT min(observed_at), max(observed_at) FROM observations")).one()
        cursor = session.execute(sql("SELECT cursor FROM connector_cursors")).scalar()
    from datetime import datetime
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Asia/Shanghai")
    assert datetime(2026, 11, 20, tzinfo=zone).timestamp() <= first
    assert last <= datetime(2026, 11, 20, 6, tzinfo=zone).timestamp()
    assert cursor is None  # the schedule starts from its own cursor, not from this range
    bad = CliRunner().invoke(cli, ["backfill", "city-simulator", "--from", "yesterday"])
    assert bad.exit_code != 0 and "is not an ISO 8601 date or time" in bad.output


def test_the_quarantine_commands_answer_on_an_empty_deployment(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    runner = CliRunner()
    assert "re-process" in runner.invoke(cli, ["quarantine", "--help"]).output
    listed = runner.invoke(cli, ["quarantine", "list", "--connector", "city-simulator"])
    assert listed.exit_code == 0 and listed.output.strip() == "no quarantined records for city-simulator"
    unknown = runner.invoke(cli, ["quarantine", "reprocess", "no-such-source"])
    assert unknown.exit_code != 0 and "no connector named 'no-such-source'" in unknown.output
