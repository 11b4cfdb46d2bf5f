"""Writing observations and reading them back, always through the viewer's scope.

Upserts are idempotent on (unit, indicator, observed_at); the current-value snapshot moves forward only, so
late or replayed records never hide a newer value.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Table, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cityops.catalog import Catalog
from cityops.models import Indicator


def _dialect_insert(session: Session, table: Table):
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"upsert is implemented for SQLite and PostgreSQL, not {name}")


def sync_indicators(session: Session, catalog: Catalog) -> dict[str, int]:
    """Give every catalog key a stable small id (existing ids are kept; names follow the catalog)."""
    existing = {key: ident for ident, key in session.execute(select(Indicator.id, Indicator.key))}
    next_id = max(existing.values(), default=0) + 1
    for indicator in catalog:
        values = {"name_zh": indicator.name_zh, "name_en": indicator.name_en,
                  "unit_of_measure": indicator.unit_of_measure}
        if indicator.key in existing:
            session.query(Indicator).filter(Indicator.key == indicator.key).update(values)
        else:
            session.execute(insert(Indicator).values(id=next_id, key=indicator.key, **values))
            existing[indicator.key] = next_id
            next_id += 1
    return {key: existing[key] for key in catalog.keys}


def indicator_ids(session: Session, catalog: Catalog) -> dict[str, int]:
    """Catalog key → id, registering keys the database has not seen yet (a catalog edited since start-up)."""
    known = dict(session.execute(select(Indicator.key, Indicator.id)).all())
    if any(key not in known for key in catalog.keys):
        return sync_indicators(session, catalog)
    return known


@dataclass(frozen=True)
class UpsertResult:
    written: int      # inserted or changed
    unchanged: int    # already stored with the same value: a duplicate delivery


# Ingest is the hot path (millions of rows on a backfill), so these two statements go to the driver as plain
# SQL with positional parameters: SQLAlchemy's per-row parameter processing would cost more than the insert.
# The ON CONFLICT form is shared by SQLite (3.24+) and PostgreSQL.
_UPSERT_OBSERVATION = (
    "INSERT INTO observations (unit_id, indicator_id, observed_at, value, run_id) VALUES ({p}, {p}, {p}, {p}, {p}) "
    "ON CONFLICT (unit_id, indicator_id, observed_at) DO UPDATE SET value = excluded.value, run_id = excluded.run_id "
    # Skipping identical rows makes a replay a no-op and lets rowcount count real changes only.
    "WHERE observations.value <> excluded.value"
)
_ADVANCE_CURRENT = (
    "INSERT INTO current_values (unit_id, indicator_id, observed_at, value, run_id) VALUES ({p}, {p}, {p}, {p}, {p}) "
    "ON CONFLICT (unit_id, indicator_id) DO UPDATE SET value = excluded.value, observed_at = excluded.observed_at, "
    "run_id = excluded.run_id WHERE current_values.observed_at < excluded.observed_at "
    # The same time again moves the snapshot only when its value was corrected, so a replay stays a no-op here too.
    "OR (current_values.observed_at = excluded.observed_at AND current_values.value <> excluded.value)"
)


def _placeholder(session: Session) -> str:
    return "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"


OBSERVATION_COLUMNS = ["unit_id", "indicator_id", "observed_at", "value", "run_id"]


def upsert_observations(session: Session, rows: list[dict] | pd.DataFrame) -> UpsertResult:
    """Upsert rows {unit_id, indicator_id, observed_at, value, run_id} (dicts or a DataFrame); the caller
    commits.

    Rows must be unique on the key within one call (the runner de-duplicates a batch first).
    """
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(rows)
    if frame.empty:
        return UpsertResult(0, 0)
    if "run_id" not in frame:
        frame = frame.assign(run_id=None)
    frame = frame[OBSERVATION_COLUMNS]
    placeholder = _placeholder(session)
    connection = session.connection()
    written = connection.exec_driver_sql(_UPSERT_OBSERVATION.format(p=placeholder), _driver_rows(frame)).rowcount
    latest = frame.sort_values("observed_at", kind="stable").drop_duplicates(["unit_id", "indicator_id"], keep="last")
    connection.exec_driver_sql(_ADVANCE_CURRENT.format(p=placeholder), _driver_rows(latest))
    return UpsertResult(written, len(frame) - written)


def _driver_rows(frame: pd.DataFrame) -> list[tuple]:
    """Plain Python ints and floats (drivers reject numpy scalars), None for a missing run id."""
    columns = [frame[name].tolist() for name in OBSERVATION_COLUMNS[:-1]]
    run_id = frame["run_id"]
    # Usually one run id for every row: plain ints, without the slow object-dtype path for missing ones.
    columns.append(run_id.astype("int64").tolist() if run_id.notna().all()
                   else run_id.astype(object).where(run_id.notna(), None).tolist())
    return list(zip(*columns))


def fetch_frame(session: Session, statement, columns: list[str]) -> pd.DataFrame:
    """Run a SELECT and return its rows as a DataFrame.

    Roll-ups read a million rows per indicator on a backfill; SQLAlchemy's Row objects would triple the cost,
    so the compiled statement runs on the driver's own cursor and pandas takes its plain tuples.
    """
    compiled = statement.compile(dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    if compiled.positiontup is not None:
        params = [params[name] for name in compiled.positiontup]
    cursor = session.connection().connection.driver_connection.cursor()
    try:
        cursor.execute(str(compiled), params)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    if not rows:
        return pd.DataFrame({name: pd.Series(dtype="object") for name in columns})
    return pd.DataFrame.from_records(rows, columns=columns)
