"""The SQL query's source for bench/connector_types.py: a grid-management system's SQLite database."""

from __future__ import annotations

import sqlite3
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from sources_records import SOURCE_URL_ENV, Plan, Source, time_texts  # noqa: E402


def build_sql_query(plan: Plan, folder: Path) -> Source:
    """A grid-management system's SQLite database with an hourly readings table, read from its first hour."""
    path = folder / "grid-system.db"
    connection = sqlite3.connect(path)
    try:
        connection.execute("CREATE TABLE hourly_readings (unit_code TEXT NOT NULL, metric TEXT NOT NULL, "
                           "hour TEXT NOT NULL, value REAL)")
        for frame in plan.frames():
            hours = time_texts(frame["observed_at"], plan.city.timezone, lambda t: t.strftime("%Y-%m-%d %H:%M:%S"))
            connection.executemany("INSERT INTO hourly_readings VALUES (?, ?, ?, ?)",
                                   zip(frame["unit_code"], frame["indicator"], hours, frame["value"].tolist()))
        connection.execute("CREATE INDEX hourly_readings_hour ON hourly_readings (hour)")
        connection.commit()
    finally:
        connection.close()
    start = datetime.fromtimestamp(plan.first_hour, ZoneInfo(plan.city.timezone)).isoformat()
    entry = {"name": "bench-sql-query", "type": "sql_query", "levels": ["community", "street"],
             "schedule": {"interval": "10m"}, "timeout": "30m",
             "config": {"url_env": SOURCE_URL_ENV,
                        "query": "SELECT unit_code, metric, hour, value FROM hourly_readings",
                        "time_column": "hour", "time_format": "timestamp", "start": start, "batch_rows": 50_000},
             "mapping": {"unit_code": "unit_code", "observed_at": "hour", "indicator": "metric", "value": "value"}}
    return Source(entry, plan.records, env={SOURCE_URL_ENV: common.sqlite_url(path)})
