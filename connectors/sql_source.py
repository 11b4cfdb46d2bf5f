"""The source database of a `sql_query` connector: its URL, its one SELECT, a cursor that streams, and what its
driver's errors mean (an operator must act, or a retry may help)."""

from __future__ import annotations

import re

from sqlalchemy import exc, make_url
from sqlalchemy.engine import URL, Engine

_LEADING_NOISE = re.compile(r"(\s+|--[^\n]*(\n|$)|/\*.*?\*/|\()*", re.S)

# Words in a driver's message that decide whether an operator must act or a retry may help; checked in
# this order, before the error's class decides.
_FATAL_SIGNS = ("password authentication failed", "authentication failed", "no password supplied",
                "does not exist", "access denied", "permission denied", "unable to open database file",
                "no such table", "no such column", "no such function", "syntax error", "unknown database",
                "unknown column", "read-only transaction", "readonly database")
_RETRIABLE_SIGNS = ("connection refused", "timeout", "timed out", "could not connect", "server closed",
                    "connection reset", "terminating connection", "database is locked", "too many connections",
                    "starting up", "shutting down", "could not translate host name", "network is unreachable")


def parsed_url(url: str | None) -> URL:
    if not url:
        raise ValueError("no source URL; set config.url_env to the name of an environment variable holding it, "
                         "e.g. url_env: GRID_DB_URL")
    try:
        return make_url(url)
    except exc.ArgumentError:
        # The text may hold a password: never repeat it.
        raise ValueError("the url (from url_env) is not a SQLAlchemy URL; write it as "
                         "dialect://user:password@host:port/database, e.g. postgresql://reader:…@10.0.0.5/grid"
                         ) from None


def single_select(query: str) -> str:
    statement = query.strip().rstrip(";").rstrip()
    if ";" in statement:
        raise ValueError("query holds more than one statement (a ';' before its end); give a single SELECT "
                         "(a ';' inside a text literal counts too: use chr(59) there)")
    body = statement[_LEADING_NOISE.match(statement).end():]
    opening = re.match(r"[A-Za-z]*", body).group(0).lower()
    if opening not in ("select", "with"):
        raise ValueError(f"query must be a SELECT (or WITH … SELECT), not {opening.upper() or repr(statement[:30])}: "
                         f"this connector only reads; put the SELECT whose rows carry unit, time and value in "
                         f"config.query")
    return statement


def streaming_cursor(engine: Engine, dbapi_connection):
    """A cursor of the driver that reads the result as it is fetched, or None for drivers this type leaves to
    SQLAlchemy."""
    backend, driver = engine.dialect.name, engine.dialect.driver
    if backend == "sqlite" and driver == "pysqlite":
        return dbapi_connection.cursor()
    if backend == "postgresql" and driver in ("psycopg", "psycopg2"):
        return dbapi_connection.cursor(name="onescreen_sql_query")  # a server-side cursor, in the transaction
    return None


def reason_of(error: exc.DBAPIError) -> str:
    """The driver's message without the SQL text SQLAlchemy appends: its first line and any hint."""
    lines = [" ".join(line.split()) for line in str(error.orig).splitlines() if line.strip()]
    kept = lines[:1] + [line for line in lines[1:] if line.upper().startswith(("HINT", "DETAIL"))]
    return " ".join(kept).rstrip(".") or type(error.orig).__name__


def is_fatal(error: exc.DBAPIError, reason: str) -> bool:
    lowered = reason.lower()
    if any(sign in lowered for sign in _FATAL_SIGNS):
        return True
    if error.connection_invalidated or any(sign in lowered for sign in _RETRIABLE_SIGNS):
        return False
    # A lost connection or a busy server is worth another try; a rejected query is not.
    return not isinstance(error, (exc.OperationalError, exc.InterfaceError, exc.InternalError))
