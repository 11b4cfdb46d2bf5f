"""Shared fixtures for the domain and connector tests: the shipped catalog, the tiny city and databases.

`db_url` runs a test once on SQLite (a fresh file per test) and once on the PostgreSQL server of this machine
(one throw-away database per session, emptied before every test). PostgreSQL is not optional: when it cannot be
reached the tests fail, so CI never passes without having run them.

Helpers are handed out as fixtures (never imported from this file), so other conftest files can coexist.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from city_factory import tiny_city
from sqlalchemy import create_engine, text

from cityops.boundaries import replace_units
from cityops.catalog import Catalog, load_catalog
from cityops.db import engine_for, migrate, session_scope
from cityops.hierarchy import UnitRecord
from cityops.models import Base
from cityops.settings import DATA_DIR
from cityops.storage import UpsertResult, sync_indicators, upsert_observations

# The maintenance database used to create and drop the per-session test database (trust auth, no password).
# A plain postgresql:// URL, as a deployment would write it: SQLAlchemy 2.1 maps it to psycopg 3, which
# requirements.txt pins, so the tests run the driver production runs.
POSTGRES_SERVER_URL = os.environ.get("ONESCREEN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

ZONE = "Asia/Shanghai"
# The tests' fixed clock: Thursday 2026-11-26 10:30 in Shanghai (02:30 UTC).
NOW = int(datetime(2026, 11, 26, 10, 30, tzinfo=ZoneInfo(ZONE)).timestamp())


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(DATA_DIR / "indicators.yaml")


@pytest.fixture
def now() -> int:
    return NOW


# ------------------------------------------------------------------------------------------------
# Databases
# ------------------------------------------------------------------------------------------------


def _migrated_sqlite(path) -> str:
    url = f"sqlite:///{path.as_posix()}"
    migrate(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """An empty SQLite database in a temporary file, schema built by Alembic."""
    return _migrated_sqlite(tmp_path / "onescreen.db")


@pytest.fixture(scope="session")
def postgres_database() -> str:
    """A fresh database `onescreen_test_<random>` on the local server, migrated by Alembic, dropped at the end."""
    name = f"onescreen_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_SERVER_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # noqa: BLE001 - failing to reach the server must fail the tests, never skip them
        admin.dispose()
        pytest.fail(f"PostgreSQL at {POSTGRES_SERVER_URL} is required for these tests and could not be used "
                    f"(set ONESCREEN_TEST_POSTGRES to another server): {type(error).__name__}: {error}",
                    pytrace=False)
    url = POSTGRES_SERVER_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        migrate(url)
        yield url
    finally:
        engine_for(url).dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_database) -> str:
    """The session's PostgreSQL database, emptied (all tables truncated, sequences reset) for this test."""
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with engine_for(postgres_database).begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str:
    """An empty, migrated database: SQLite in a temporary file, then PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")


# ------------------------------------------------------------------------------------------------
# A database holding a city
# ------------------------------------------------------------------------------------------------


@dataclass
class CityDb:
    """A migrated database with a city and the catalog registered, and shortcuts to write observations."""

    url: str
    catalog: Catalog
    indicator_ids: dict[str, int]   # catalog key → id
    unit_ids: dict[str, int]        # unit code → id

    def session(self):
        return session_scope(self.url)

    def rows(self, observations) -> list[dict]:
        """(unit code, indicator key, observed_at, value) tuples → storage rows."""
        return [{"unit_id": self.unit_ids[code], "indicator_id": self.indicator_ids[key], "observed_at": int(at),
                 "value": float(value), "run_id": None} for code, key, at, value in observations]

    def store(self, observations) -> tuple[UpsertResult, dict[str, set[int]]]:
        """Upsert observations in one transaction; returns the result and the touched key → times."""
        touched: dict[str, set[int]] = {}
        for _code, key, at, _value in observations:
            touched.setdefault(key, set()).add(int(at))
        with self.session() as session:
            result = upsert_observations(session, self.rows(observations))
        return result, touched


def build_city_db(url: str, catalog: Catalog, records: list[UnitRecord] | None = None) -> CityDb:
    with session_scope(url) as session:
        replace_units(session, tiny_city() if records is None else records)
        ids = sync_indicators(session, catalog)
        units = {code: ident for code, ident in session.execute(text("SELECT code, id FROM units"))}
    return CityDb(url, catalog, ids, units)


@pytest.fixture
def city_db(db_url, catalog) -> CityDb:
    """The tiny city (2 districts × 2 streets × 2 communities) in SQLite, then in PostgreSQL."""
    return build_city_db(db_url, catalog)


@pytest.fixture
def sqlite_city_db(sqlite_url, catalog) -> CityDb:
    """The tiny city in SQLite only, for tests whose subject is not the database."""
    return build_city_db(sqlite_url, catalog)


@pytest.fixture(scope="session")
def city_db_factory():
    """Build a CityDb on a given URL, optionally with other unit records than the tiny city."""
    return build_city_db
