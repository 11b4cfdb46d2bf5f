"""One engine per process, sessions per unit of work, and the schema brought up to date by Alembic."""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from cityops.settings import PROJECT_ROOT

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


@lru_cache(maxsize=8)
def engine_for(database_url: str) -> Engine:
    """The process-wide engine for a URL (created once; SQLite tuned for one writer and many readers)."""
    if database_url.startswith("sqlite:///"):
        _ensure_folder(database_url)
        engine = create_engine(database_url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _tune_sqlite(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            # WAL lets the screen read while the scheduler writes; NORMAL sync is durable across app crashes.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            # 16 MiB of page cache per connection: Dash runs callbacks in parallel, so the pool holds several
            # connections and a larger cache per connection multiplies into the server's memory.
            cursor.execute("PRAGMA cache_size=-16384")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(database_url, pool_pre_ping=True)


def _ensure_folder(database_url: str) -> None:
    """SQLite creates the file but not its folder (var/ does not exist in a fresh clone)."""
    path = database_url.removeprefix("sqlite:///")
    if database_url.startswith("sqlite:///") and path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=8)
def _session_factory(database_url: str) -> sessionmaker[Session]:
    return sessionmaker(engine_for(database_url), expire_on_commit=False)


@contextmanager
def session_scope(database_url: str) -> Iterator[Session]:
    """A transaction: committed when the block ends normally, rolled back when it raises."""
    session = _session_factory(database_url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(database_url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def migrate(database_url: str) -> None:
    """Create or upgrade the schema to the newest migration (idempotent)."""
    from alembic import command

    _ensure_folder(database_url)
    command.upgrade(alembic_config(database_url), "head")
