"""Kill the process with SIGKILL in the middle of a run and restart: no record lost, none duplicated.

A real `onescreen.py run` process reads a 400,000-row table from a SQL source, committing batch by batch; it is
killed once part of the source is stored, then run again to the end.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
ROWS = 400_000
COMMUNITIES = [f"9901{d:02d}{s:03d}{c:03d}" for d in (1, 2) for s in (1, 2) for c in (1, 2)]
START = 1_700_000_000  # 2023-11-14, long before the run: every row is valid


def _source(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE counts (code TEXT, minute INTEGER, complaints INTEGER)")
        connection.executemany("INSERT INTO counts VALUES (?, ?, ?)",
                               ((COMMUNITIES[i % 8], START + (i // 8) * 60, i % 17) for i in range(ROWS)))


def _stored(db) -> int:
    with db.session() as session:
        return session.execute(text("SELECT count(*) FROM observations")).scalar()


def test_a_run_killed_midway_loses_and_duplicates_nothing(sqlite_city_db, tmp_path):
    source = tmp_path / "grid.sqlite"
    _source(source)
    connectors = tmp_path / "connectors.yaml"
    connectors.write_text(f"""connectors:
  - name: grid-db
    type: sql_query
    levels: [community]
    schedule: {{interval: 10m}}
    config: {{url_env: GRID_URL, query: "SELECT * FROM counts", time_column: minute, time_format: epoch,
              batch_rows: 20000}}
    mapping: {{unit_code: code, observed_at: minute, values: {{hotline_complaints: complaints}}}}
""", encoding="utf-8")
    env = {**os.environ, "DATABASE_URL": sqlite_city_db.url, "ONESCREEN_CONNECTORS": str(connectors),
           "ONESCREEN_ARCHIVE_DIR": str(tmp_path / "archive"), "GRID_URL": f"sqlite:///{source}"}
    command = [sys.executable, str(ROOT / "onescreen.py"), "run", "grid-db"]

    victim = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while _stored(sqlite_city_db) == 0 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert victim.poll() is None, "the run finished before it could be killed: " + victim.stdout.read().decode()
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    killed_at = _stored(sqlite_city_db)
    assert 0 < killed_at < ROWS  # killed midway, after at least one committed batch

    finished = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    with sqlite_city_db.session() as session:
        count, distinct, total = session.execute(text(
            "SELECT count(*), count(DISTINCT unit_id || '-' || observed_at), sum(value) FROM observations")).one()
        runs = session.execute(text("SELECT status, error_family FROM connector_runs ORDER BY id")).all()
    assert count == distinct == ROWS  # every source row stored exactly once
    assert total == sum(i % 17 for i in range(ROWS))
    # The next run records the killed one as interrupted, so no run shows as running forever.
    assert [tuple(run) for run in runs] == [("failed", "interrupted"), ("ok", None)]
