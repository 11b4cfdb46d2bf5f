"""Indicator values from another system's SQL database: one SELECT, read incrementally in time order.

A district's grid-management system, a hotline's ticket store, a sensor platform — any database SQLAlchemy can
reach — answers one configured SELECT. The connector wraps it as a subquery and reads only the rows at or after
the cursor, oldest first:

    SELECT * FROM (<query>) AS src WHERE <time_column> >= :since ORDER BY <time_column>

`>=` because `since` is inclusive: the rows of the cursor's own second are read again, which upserts make
harmless and which lets a query that aggregates an unfinished hour correct it on the next run. Rows stream
through a server-side cursor `batch_rows` at a time; each chunk is archived as CSV before it is read, and the
mapping turns the CSV into a batch whose cursor is its newest time, so the runner commits chunk by chunk.

`time_format` says what the time column holds:
- timestamp: a DB timestamp/datetime. One without a zone is in the deployment's zone; PostgreSQL sessions run in
  that zone, so `timestamp` and `timestamptz` columns both compare right against the cursor.
- epoch: seconds since 1970 (integer or real).
- text: ISO-8601 strings, in the deployment's zone unless they carry an offset. SQL compares them as text, so the
  query reads from the (UTC) date half a day before the cursor — which no offset can defeat — and the rows older
  than the cursor are dropped after reading. The texts must sort in time order (one format, one offset).
  SQLite keeps timestamps as text, so `timestamp` on SQLite is read the same way.
`time_format` applies to the mapping's `observed_at` column too when that is another column than `time_column`.

The source is only read: the query must be one SELECT (or WITH … SELECT); PostgreSQL sessions are read-only and
SQLite connections query-only. Still, give the connector a database account that can only read.

Example connectors.yaml entry (the URL holds a password, so it is read from the environment variable named by
`url_env`, e.g. GRID_DB_URL=postgresql://onescreen_reader:…@10.20.0.5/grid):

    - name: district-1-hotline
      type: sql_query
      levels: [community]
      schedule: {interval: 10m}
      config:
        url_env: GRID_DB_URL
        query: |
          SELECT c.code, date_trunc('hour', t.reported_at) AS hour, count(*) AS complaints
          FROM hotline_tickets t JOIN communities c ON c.id = t.community_id
          GROUP BY 1, 2
        time_column: hour
        time_format: timestamp          # or epoch (seconds), or text (ISO 8601)
        start: "2026-11-01T00:00:00+08:00"
        batch_rows: 50000
        timeout: 30
      mapping: {unit_code: code, observed_at: hour, values: {hotline_complaints: complaints}}

A long-form query (one value per row) maps `indicator:` and `value:` instead of `values:`.
"""

from __future__ import annotations

import csv
import io
import math
import re
from contextlib import contextmanager
from datetime import datetime, timezone
from itertools import chain
from pathlib import Path
from typing import Iterator, Sequence
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, event, exc, text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import NullPool

from connectors.base import (ConfigField, Connector, ConnectorContext, FatalError, Health, RecordBatch,
                             RetriableError, register)
from connectors.mapping import FieldMapping
from connectors.sql_source import is_fatal, parsed_url, reason_of, single_select, streaming_cursor
from connectors.validation import FUTURE_TOLERANCE_SECONDS

TIME_FORMATS = ("timestamp", "epoch", "text")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# ISO texts may carry any UTC offset from -12:00 to +14:00: no row at or after the cursor has a date (as
# written) before the UTC date half a day earlier.
_TEXT_MARGIN_SECONDS = 12 * 3600
# What csv writes for NULL and NaN. Other texts ("NA", "None", "NULL") are values a source really sent.
_NA_TEXTS = ["", "nan", "NaN", "-nan"]



@register
class SqlQueryConnector(Connector):
    type_name = "sql_query"
    config_schema = (
        ConfigField("url", str, required=True, secret=True,
                    help="SQLAlchemy URL of the source database, e.g. postgresql://reader:…@host/db"),
        ConfigField("query", str, required=True, help="one SELECT (or WITH … SELECT); it is read as a subquery"),
        ConfigField("time_column", str, required=True, help="the query's column the incremental cursor follows"),
        ConfigField("time_format", str, default="timestamp",
                    help="timestamp (a DB timestamp), epoch (seconds: divide milliseconds in the query) or text "
                         "(ISO 8601)"),
        ConfigField("start", str, help="ISO time the first run reads from (default: every row)"),
        ConfigField("batch_rows", int, default=50_000, help="rows read, archived and validated together"),
        ConfigField("timeout", float, default=30.0,
                    help="seconds to connect and for each statement, where the driver supports it"),
    )
    ordered = True
    uses_mapping = True

    @classmethod
    def validate_config(cls, config: dict) -> None:
        _settings(config)

    def __init__(self, name: str, config: dict, context: ConnectorContext, mapping: FieldMapping | None = None):
        super().__init__(name, config, context, mapping)
        self.where = f"sql_query connector {name!r}"
        if mapping is None:
            raise FatalError(f"{self.where}: needs 'mapping:' naming the query's unit code, time and value "
                             f"columns, e.g. mapping: {{unit_code: code, observed_at: hour, indicator: metric, "
                             f"value: value}}")
        try:
            settings = _settings(config)
        except ValueError as error:
            raise FatalError(f"{self.where}: {error}") from None
        self.zone = ZoneInfo(context.timezone)
        self.url: URL = settings["url"]
        self.query: str = settings["query"]
        self.time_column: str = settings["time_column"]
        self.time_format: str = settings["time_format"]
        self.start = None if settings["start"] is None else _seconds_of_text(settings["start"], self.zone)
        self.batch_rows = int(settings["batch_rows"])
        self.timeout = float(settings["timeout"])

    # -- the contract ------------------------------------------------------------------------------------

    def check(self) -> Health:
        """Connects and plans the wrapped query without reading a row (LIMIT 0): healthy when the mapped columns
        are there and the time column compares with a cursor of the configured time_format."""
        try:
            engine = self._engine()
        except FatalError as error:
            return Health(False, str(error))
        try:
            with self._translated("connect"):
                connection = engine.connect()
            with connection, self._translated("query"):
                probe = text(self._sql(engine, bounded=True) + "\nLIMIT 0")
                columns = list(connection.execute(probe, {"since": self._bound(engine, self.context.now)}).keys())
            self._require(columns)
        except (FatalError, RetriableError) as error:
            return Health(False, str(error))
        finally:
            engine.dispose()
        return Health(True, f"{len(columns)} columns, time column {self.time_column}")

    def fetch(self, since: str | None) -> Iterator[RecordBatch]:
        floor = self._cursor_seconds(since) if since is not None else self.start
        engine = self._engine()
        try:
            with self._translated("connect", engine):
                connection = engine.connect()
            with connection, self._translated("query", engine), self._rows(engine, connection, floor) as (
                    columns, chunks):
                self._require(columns)
                for number, rows in enumerate(chunks, start=1):
                    payload = _csv_bytes(columns, rows)
                    reference = self.archived(f"rows-{number}.csv", payload, "text/csv")
                    table, seconds = self._read_chunk(payload)
                    if floor is not None:
                        # The SQL bound of text times is looser than the cursor (see the module docstring).
                        newer = ~(seconds < math.floor(floor))
                        table, seconds = table[newer], seconds[newer]
                    if len(table):
                        yield self._batch(table, seconds, reference, floor)
        finally:
            engine.dispose()

    def replay(self, label: str, payload: bytes) -> Iterator[RecordBatch]:
        if not label.endswith(".csv"):
            raise FatalError(f"{self.where}: {label!r} is not a chunk this type archived (rows-<n>.csv)")
        table, seconds = self._read_chunk(payload)
        # The runner hands over only the label, which does not name the run: no `source` beats a wrong one.
        yield self._batch(table, seconds, None, None)

    # -- talking to the source -----------------------------------------------------------------------------

    @property
    def _shown_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    def _engine(self) -> Engine:
        backend = self.url.get_backend_name()
        database = self.url.database
        if (backend == "sqlite" and database and database != ":memory:" and not database.startswith("file:")
                and not Path(database).is_file()):
            # sqlite3 would create an empty file and report a missing table: say what is really wrong.
            raise FatalError(f"{self.where}: no SQLite database at {database}; fix the path in the URL "
                             f"(from url_env)")
        try:
            engine = create_engine(self.url, poolclass=NullPool, connect_args=self._connect_args())
        except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as error:
            raise FatalError(f"{self.where}: cannot use {self._shown_url}: {error}; use a URL of an installed "
                             f"driver, e.g. postgresql://… or sqlite:///path") from None
        if backend == "sqlite":
            event.listen(engine, "connect", lambda connection, _record: connection.execute("PRAGMA query_only = ON"))
        return engine

    def _connect_args(self) -> dict:
        backend, driver, given = self.url.get_backend_name(), self.url.get_driver_name(), self.url.query
        seconds = max(1, math.ceil(self.timeout))
        if backend == "sqlite":
            return {"timeout": self.timeout}  # how long to wait for a writer's lock
        if backend == "postgresql" and driver in ("psycopg", "psycopg2"):
            # The session's zone is the deployment's, so naive timestamps compare with the cursor as the
            # validator reads them; read-only, so no query can write.
            options = " ".join(filter(None, [str(given.get("options") or ""), f"-c TimeZone={self.zone.key}",
                                             f"-c statement_timeout={int(self.timeout * 1000)}",
                                             "-c default_transaction_read_only=on"]))
            return {"options": options} | ({} if "connect_timeout" in given else {"connect_timeout": seconds})
        if backend in ("mysql", "mariadb") and driver in ("pymysql", "mysqldb"):
            return {"connect_timeout": seconds, "read_timeout": seconds}
        return {}

    def _sql(self, engine: Engine, bounded: bool) -> str:
        # Quoted the way the source names it (PostgreSQL folds unquoted names to lower case).
        column = engine.dialect.identifier_preparer.quote(self.time_column)
        where = f"\nWHERE {column} >= :since" if bounded else ""
        # New lines around the query: a trailing `-- comment` in it must not swallow the wrapper.
        return f"SELECT * FROM (\n{self.query}\n) AS src{where}\nORDER BY {column}"

    @contextmanager
    def _rows(self, engine: Engine, connection: Connection, floor: float | None):
        """(the query's column names, its rows `batch_rows` at a time), streamed from the source.

        Read from the driver's own cursor where this type knows how to make it stream (SQLite's cursors step
        through the result; psycopg's named cursors are PostgreSQL server-side cursors): SQLAlchemy's result rows
        would cost as much again as the driver's. Other drivers stream through SQLAlchemy."""
        sql = self._sql(engine, bounded=floor is not None)
        parameters = {} if floor is None else {"since": self._bound(engine, floor)}
        cursor = streaming_cursor(engine, connection.connection.dbapi_connection)
        if cursor is None:
            streaming = connection.execution_options(stream_results=True, yield_per=self.batch_rows)
            with streaming.execute(text(sql), parameters) as result:
                yield list(result.keys()), iter(lambda: result.fetchmany(self.batch_rows), [])
            return
        # The statement as SQLAlchemy would send it: the driver's parameter style, bound values processed.
        state = text(sql).compile(dialect=engine.dialect).construct_expanded_state(parameters)
        values = {name: state.processors[name](value) if name in state.processors else value
                  for name, value in state.parameters.items()}
        arguments = tuple(values[name] for name in state.positiontup) if state.positiontup is not None else values
        try:
            cursor.execute(state.statement, arguments)
            first = cursor.fetchmany(self.batch_rows)  # a named cursor describes its columns once it has fetched
            columns = [column[0] for column in cursor.description]
            rest = iter(lambda: cursor.fetchmany(self.batch_rows), [])
            yield columns, chain([first] if first else [], rest)
        finally:
            try:
                cursor.close()
            except engine.dialect.loaded_dbapi.Error:
                pass  # a cursor of a failed transaction: the connection is closed next anyway

    def _bound(self, engine: Engine, floor: float):
        """The cursor as a value of the time column's kind."""
        if self.time_format == "epoch":
            return math.floor(floor)
        if self.time_format == "text" or engine.dialect.name == "sqlite":
            return datetime.fromtimestamp(floor - _TEXT_MARGIN_SECONDS, timezone.utc).strftime("%Y-%m-%d")
        moment = datetime.fromtimestamp(math.floor(floor), self.zone)
        # PostgreSQL compares an aware time exactly with both column kinds; elsewhere columns are naive.
        return moment if engine.dialect.name == "postgresql" else moment.replace(tzinfo=None)

    def _cursor_seconds(self, since: str) -> float:
        try:
            return float(since)
        except ValueError:
            seconds = _seconds_of_text(since, self.zone)
        if not math.isfinite(seconds):
            raise FatalError(f"{self.where}: cursor {since!r} is neither epoch seconds nor an ISO time; "
                             f"run a backfill to set it again")
        return seconds

    @contextmanager
    def _translated(self, stage: str, engine: Engine | None = None):
        """Driver errors as the runner's families, with what an operator should do. Errors of a driver's cursor
        used directly are first wrapped as SQLAlchemy would wrap them."""
        try:
            yield
        except exc.DBAPIError as error:
            self._raise_translated(stage, error)
        except exc.SQLAlchemyError as error:
            raise FatalError(f"{self.where}: {self._shown_url}: {error}") from error
        except Exception as error:
            dbapi = getattr(engine.dialect, "loaded_dbapi", None) if engine is not None else None
            if dbapi is None or not isinstance(error, dbapi.Error):
                raise
            try:
                invalidated = bool(engine.dialect.is_disconnect(error, None, None))
            except Exception:  # noqa: BLE001 - a dialect that needs the connection to tell: not known lost
                invalidated = False
            self._raise_translated(stage, exc.DBAPIError.instance(None, None, error, dbapi.Error,
                                                                   connection_invalidated=invalidated))

    def _raise_translated(self, stage: str, error: exc.DBAPIError):
        reason = reason_of(error)
        if is_fatal(error, reason):
            if stage == "connect":
                raise FatalError(f"{self.where}: cannot connect to {self._shown_url}: {reason}. Check the URL "
                                 f"in the environment variable named by url_env (host, port, database, user, "
                                 f"password)") from error
            raise FatalError(f"{self.where}: the query failed on {self._shown_url}: {reason}. Fix config.query, "
                             f"time_column ({self.time_column}) or time_format ({self.time_format}), or the "
                             f"mapping, in connectors.yaml") from error
        doing = "cannot reach" if stage == "connect" else "reading failed from"
        raise RetriableError(f"{self.where}: {doing} {self._shown_url}: {reason}; retrying later") from error

    # -- chunks --------------------------------------------------------------------------------------------

    def _require(self, columns: Sequence[str]) -> None:
        wanted = dict.fromkeys([self.time_column, *self.mapping.columns()])
        missing = [name for name in wanted if name not in columns]
        if missing:
            raise FatalError(f"{self.where}: the query returns no column(s) {', '.join(missing)} (it returns "
                             f"{', '.join(columns) or 'none'}); fix the query, time_column or the mapping in "
                             f"connectors.yaml")

    def _read_chunk(self, payload: bytes) -> tuple[pd.DataFrame, pd.Series]:
        """An archived chunk as a table (codes and times as text, values as numbers where they are) and its
        time column in epoch seconds (NaN where unreadable). Fetch and replay both read chunks here."""
        as_text = [self.mapping.unit_code, self.mapping.observed_at, self.time_column]
        if self.mapping.indicator:
            as_text.append(self.mapping.indicator)
        table = pd.read_csv(io.BytesIO(payload), dtype=dict.fromkeys(as_text, str), na_values=_NA_TEXTS,
                            keep_default_na=False)
        self._require(list(table.columns))
        return table, self._seconds(table[self.time_column])

    def _seconds(self, values: pd.Series) -> pd.Series:
        if self.time_format == "epoch":
            return pd.to_numeric(values, errors="coerce").astype(float)
        # Each distinct text once: aggregated sources repeat one hour for thousands of units.
        codes, texts = pd.factorize(values)
        distinct = np.array([_seconds_of_text(value, self.zone) for value in texts] + [math.nan], dtype=float)
        return pd.Series(distinct[codes], index=values.index)  # code -1 (a NULL) picks the NaN at the end

    def _batch(self, table: pd.DataFrame, seconds: pd.Series, source: str | None, floor: float | None) -> RecordBatch:
        readable = table.copy()
        readable[self.time_column] = _observed(table[self.time_column], seconds)
        if self.mapping.observed_at != self.time_column:
            column = table[self.mapping.observed_at]
            readable[self.mapping.observed_at] = _observed(column, self._seconds(column))
        # Rows stamped in the future are quarantined and must be read again once they are not: the cursor
        # stops before them.
        reached = seconds[np.isfinite(seconds) & (seconds <= self.context.now + FUTURE_TOLERANCE_SECONDS)]
        cursor = (str(math.floor(reached.max())) if len(reached)
                  else str(math.floor(floor)) if floor is not None else None)
        return RecordBatch(frame=self.mapping.frame(readable), cursor=cursor, raw=table, source=source)


def _settings(config: dict) -> dict:
    """The config with its defaults, checked beyond field types: ValueError says what is wrong and the fix."""
    settings = {spec.name: spec.default for spec in SqlQueryConnector.config_schema} | dict(config)
    settings["url"] = parsed_url(settings["url"])
    settings["query"] = single_select(settings["query"])
    time_column = settings["time_column"]
    if not isinstance(time_column, str) or not _IDENTIFIER.fullmatch(time_column):
        raise ValueError(f"time_column {time_column!r} must be a plain column name (letters, digits, _): alias "
                         f"the expression in the query (… AS observed_at) and name the alias")
    if settings["time_format"] not in TIME_FORMATS:
        raise ValueError(f"time_format {settings['time_format']!r} is not one of {', '.join(TIME_FORMATS)}; "
                         f"set config.time_format in connectors.yaml")
    if settings["start"] is not None and not math.isfinite(_seconds_of_text(settings["start"], timezone.utc)):
        raise ValueError(f"start {settings['start']!r} is not an ISO time; write e.g. "
                         f"start: \"2026-11-01T00:00:00+08:00\"")
    if settings["batch_rows"] < 1 or settings["timeout"] <= 0:
        raise ValueError(f"batch_rows and timeout must be positive (now {settings['batch_rows']} and "
                         f"{settings['timeout']})")
    return settings


def _csv_bytes(columns: list[str], rows: Sequence) -> bytes:
    """Rows as CSV with a header: NULL as an empty field, times as ISO text (with their zone when they have one)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _seconds_of_text(value, zone: ZoneInfo) -> float:
    """Epoch seconds of an ISO text, read as the validator reads it (no offset: the configured zone)."""
    if not isinstance(value, str):
        return math.nan
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return math.nan
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.timestamp()


def _observed(original: pd.Series, seconds: pd.Series) -> pd.Series:
    """Whole epoch seconds for the validator's array path; a value that is not a time stays as it came, so the
    validator quarantines it with its own reason."""
    readable = np.isfinite(seconds)
    whole = np.trunc(seconds.where(readable, 0)).astype("int64")
    if readable.all():
        return whole
    mixed = original.astype(object).where(original.notna(), None)
    mixed[readable] = whole[readable].astype(object)
    return mixed
