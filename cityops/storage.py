"""Writing observations and reading them back, always through the viewer's scope.

Upserts are idempotent on (unit, indicator, observed_at); the current-value snapshot moves forward only, so
late or replayed records never hide a newer value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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
                  "unit_of_measure": indicator.unit_of_measure, "unit_of_measure_en": indicator.measure("en")}
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
OBSERVATION_KEY = OBSERVATION_COLUMNS[:3]


def upsert_observations(session: Session, rows: list[dict] | pd.DataFrame) -> UpsertResult:
    """Upsert rows {unit_id, indicator_id, observed_at, value, run_id} (dicts or a DataFrame); the caller
    commits.

    Rows must be unique on the key within one call (the runner de-duplicates a batch first, `last_per_key`).
    They are written in key order: sources deliver time by time (every unit's value for one hour, then the next
    hour), which would land consecutive rows on different pages of the key's B-tree; in key order each unit's
    new hours go into one page after the other. Measured on 1 M hourly rows in batches of 200,000: the upsert
    takes about half the time (bench/connector_types.py).
    """
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame.from_records(rows)
    if frame.empty:
        return UpsertResult(0, 0)
    if "run_id" not in frame:
        frame = frame.assign(run_id=None)
    frame = frame[OBSERVATION_COLUMNS]
    pairs, keys = _keys(frame)
    order = _in_order(keys)
    if not _is_identity(order):
        frame, pairs = frame.take(order), pairs[order]
    placeholder = _placeholder(session)
    connection = session.connection()
    written = 0
    # A slice at a time: the driver wants Python tuples (~200 bytes a row), and a 200,000-row batch of them at
    # once would be the largest thing in the process.
    for start in range(0, len(frame), DRIVER_ROWS):
        written += connection.exec_driver_sql(_UPSERT_OBSERVATION.format(p=placeholder),
                                              _driver_rows(frame.iloc[start:start + DRIVER_ROWS])).rowcount
    # In key order, a (unit, indicator)'s newest row is the last of its run.
    connection.exec_driver_sql(_ADVANCE_CURRENT.format(p=placeholder), _driver_rows(frame[_last_of_runs(pairs)]))
    return UpsertResult(written, len(frame) - written)


DRIVER_ROWS = 50_000


def last_per_key(frame: pd.DataFrame, in_key_order: bool = True) -> tuple[pd.DataFrame, int]:
    """One row per (unit_id, indicator_id, observed_at) — the last delivered, as the table would keep it — and how
    many rows were repeats of an earlier one. In key order (as `upsert_observations` writes them) unless
    `in_key_order` is false: then rows without repeats come back as they are, not copied."""
    if frame.empty:
        return frame, 0
    _, keys = _keys(frame, pairs=False)
    order = _in_order(keys)
    keys = keys[order]  # the unsorted ones are let go
    kept = order[_last_of_runs(keys)]
    del keys, order
    if _is_identity(kept) or (not in_key_order and len(kept) == len(frame)):
        return frame, 0
    # A plain row number as the index: the positions of a 200,000-row batch would be one more column to hold.
    return frame.take(kept).reset_index(drop=True), len(frame) - len(kept)


def _keys(frame: pd.DataFrame, pairs: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """Each row's (unit_id, indicator_id) (unless `pairs` is false) and its whole key, comparable and ordered as
    the columns are: one int64 each where the three columns fit in one (any city's ids and a run's span of times
    do: sorting one column is several times faster than three), otherwise the columns side by side. Computed in
    place: a batch is 200,000 rows, and this runs at the peak of a run's memory."""
    columns = [frame[name].to_numpy() for name in OBSERVATION_KEY]
    if all(column.dtype.kind == "i" for column in columns):
        lows = [int(column.min()) for column in columns]
        spans = [int(column.max()) - low + 1 for column, low in zip(columns, lows)]
        if spans[0] * spans[1] * spans[2] < 2 ** 62:
            keys = np.subtract(columns[0], lows[0], dtype=np.int64)
            keys *= spans[1]
            keys += columns[1]
            keys -= lows[1]
            unit_indicator = keys.copy() if pairs else None
            keys *= spans[2]
            keys += columns[2]
            keys -= lows[2]
            return unit_indicator, keys
    return (np.stack(columns[:2], axis=1) if pairs else None), np.stack(columns, axis=1)


def _in_order(keys: np.ndarray) -> np.ndarray:
    """Positions of the rows in key order; rows with the same key stay in their own order."""
    if keys.ndim == 1:
        return np.argsort(keys, kind="stable")
    return np.lexsort(keys.T[::-1])


def _last_of_runs(keys: np.ndarray) -> np.ndarray:
    """Whether each row's key differs from the next row's (the last row of each run of one key)."""
    last = np.ones(len(keys), dtype=bool)
    if len(keys) > 1:
        differs = keys[1:] != keys[:-1]
        last[:-1] = differs if differs.ndim == 1 else differs.any(axis=1)
    return last


def _is_identity(order: np.ndarray) -> bool:
    return len(order) == 0 or (order[0] == 0 and bool((order[1:] - order[:-1] == 1).all()))


def _driver_rows(frame: pd.DataFrame) -> list[tuple]:
    """Plain Python ints and floats (drivers reject numpy scalars), None for a missing run id."""
    columns = [frame[name].tolist() for name in OBSERVATION_COLUMNS[:-1]]
    run_id = frame["run_id"]
    # Usually one run id for every row: plain ints, without the slow object-dtype path for missing ones.
    columns.append(run_id.astype("int64").tolist() if run_id.notna().all()
                   else run_id.astype(object).where(run_id.notna(), None).tolist())
    return list(zip(*columns))


def fetch_frame(session: Session, statement, columns: list[str], types: list[str] | None = None) -> pd.DataFrame:
    """Run a SELECT and return its rows as a DataFrame.

    Roll-ups read a million rows per indicator on a backfill; SQLAlchemy's Row objects would triple the cost,
    so the compiled statement runs on the driver's own cursor and pandas takes its plain tuples. With `types`
    (a numpy type per column, e.g. ["int64", "float64"]), the rows go straight into typed arrays, twice as fast
    again; NULL reads as NaN in a float column, and rows that do not fit the types are read as without them.
    """
    compiled = statement.compile(dialect=session.get_bind().dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    if compiled.positiontup is not None:
        params = [params[name] for name in compiled.positiontup]
    cursor = session.connection().connection.driver_connection.cursor()
    try:
        cursor.execute(str(compiled), params)
        if types is not None:
            try:
                # Straight from the cursor: each row's tuple is let go as soon as it is read.
                table = np.fromiter(cursor, dtype=list(zip(columns, types)))
            except (TypeError, ValueError, OverflowError):  # a NULL in an integer column, a text in a number one
                cursor.execute(str(compiled), params)  # read again, as it comes
            else:
                if not len(table):
                    return pd.DataFrame({name: pd.Series(dtype="object") for name in columns})
                return pd.DataFrame({name: table[name] for name in columns})
        rows = cursor.fetchall()
    finally:
        cursor.close()
    if not rows:
        return pd.DataFrame({name: pd.Series(dtype="object") for name in columns})
    return pd.DataFrame.from_records(rows, columns=columns)
