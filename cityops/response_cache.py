"""A response cache shared by every screen, so that N wall clients polling the same view cost one query.

What the screen reads changes only when data is written: an ingest, an alert evaluation or someone acting on an
alert. `DataVersion` says when that happened; an answer computed for a version is good for everyone asking the same
question (same callback, same inputs, same scope, same language) until the version moves or, because statuses age
with the clock (stale, overdue), until the refresh interval ends. Keys are built by the caller (the Dash hook,
callbacks/response_cache.py, and the geometry routes); this module stores entries, computes each key once at a time
(`get_or_compute`: concurrent askers wait for the first), and knows the version.

The data version is, without a query where it can be:
- writes made by this process (the in-process scheduler, alert actions): a SQLAlchemy listener counts every
  connection that wrote, when it goes back to the pool (its transaction is over, committed or not);
- writes made by another process (`onescreen.py scheduler`, another web worker, an import): for SQLite the size and
  time of the write-ahead log, which every commit appends to (a stat, no query; the app runs SQLite in WAL mode); for other databases one small query
  (finished connector runs, alert events, units), at most every VERSION_CHECK_SECONDS per process.
With Redis (ONESCREEN_CACHE_URL=redis://…) entries, the single-flight lock and the write counter are shared by all
web workers, so a deployment of several workers also computes each answer once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import threading
import time
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import orjson
from sqlalchemy import Engine, event, text

log = logging.getLogger(__name__)

VERSION_CHECK_SECONDS = 5.0    # how often another database's version is read (non-SQLite), per process
MEMORY_BYTES = 32 * 1024 * 1024  # the in-process store keeps at most this much (least recently used goes first)
FLIGHT_WAIT_SECONDS = 30.0     # a request waits this long for another's computation, then computes itself
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "UPSERT", "MERGE", "CREATE", "DROP", "ALTER")


# ------------------------------------------------------------------------------------------------
# Stored responses
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """A response as kept: status, headers, body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def pack(self) -> bytes:
        # Not pickle: a shared Redis must never be a way to run code in the web process.
        head = orjson.dumps([self.status, list(self.headers)])
        return struct.pack(">I", len(head)) + head + self.body

    @classmethod
    def unpack(cls, packed: bytes) -> "Stored":
        (length,) = struct.unpack(">I", packed[:4])
        status, headers = json.loads(packed[4:4 + length].decode("utf-8"))
        return cls(int(status), tuple((str(k), str(v)) for k, v in headers), packed[4 + length:])


def cache_key(*parts) -> str:
    """A short, stable key for JSON-able parts: their JSON text (keys sorted), hashed once.

    orjson writes the text in one call, ~4× faster than json.dumps with sorted keys (a drill-down's inputs:
    ~1 µs rather than ~4.6 µs); the json module takes what orjson refuses (an integer beyond 64 bits, nesting
    deeper than 254)."""
    try:
        text_form = orjson.dumps(parts, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        text_form = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                               default=str).encode("utf-8")
    return hashlib.sha256(text_form).hexdigest()[:40]


# ------------------------------------------------------------------------------------------------
# Stores
# ------------------------------------------------------------------------------------------------


class MemoryStore:
    """Entries in this process, bounded in bytes, each with an expiry."""

    shared = False

    def __init__(self, max_bytes: int = MEMORY_BYTES):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._swept = 0.0
        self._lock = threading.Lock()
        self._flights: dict[str, list] = {}  # key -> [lock, number of threads using it]

    def get(self, key: str) -> bytes | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            expires, value = found
            if expires < time.monotonic():
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return value

    def set(self, key: str, value: bytes, ttl: float) -> None:
        if len(value) > self.max_bytes // 4:
            return  # one huge answer must not push out everything else
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (time.monotonic() + ttl, value)
            self._bytes += len(value)
            self._evict()

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self._bytes -= len(value)

    def _evict(self) -> None:
        now = time.monotonic()
        # Expired entries first (every answer of a past refresh cycle: a wall running for days must not keep them),
        # looked for at most once a second; then the least recently used, down to the bound.
        if now - self._swept >= 1.0:
            self._swept = now
            for key in [key for key, (expires, _) in self._entries.items() if expires < now]:
                self._drop(key)
        while self._bytes > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))

    @property
    def size(self) -> tuple[int, int]:
        with self._lock:
            return len(self._entries), self._bytes

    @contextmanager
    def flight(self, key: str) -> Iterator[bool]:
        """Held by one thread per key at a time; yields True (this thread may compute)."""
        with self._lock:
            entry = self._flights.get(key)
            if entry is None:
                entry = self._flights[key] = [threading.Lock(), 0]
            entry[1] += 1
        acquired = entry[0].acquire(timeout=FLIGHT_WAIT_SECONDS)
        try:
            yield True
        finally:
            if acquired:
                entry[0].release()
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0:
                    self._flights.pop(key, None)

    def version(self) -> int:
        return 0

    def bump(self) -> None:
        pass


class RedisStore(MemoryStore):
    """Entries, the single-flight lock and the write counter in Redis, shared by every web worker.
    Threads of one process also wait for each other locally first (one of them asks Redis)."""

    shared = True

    def __init__(self, url: str, namespace: str):
        super().__init__()
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.namespace = f"onescreen:{namespace}:"
        self.url = url
        self._broken_since = 0.0

    def check(self) -> None:
        """Raise unless Redis answers (start-up: a configured cache that cannot be used stops the app)."""
        self.client.ping()

    def _guard(self, what: Callable, fallback=None):
        """A Redis that stopped answering must not stop the screen: the answer is then computed, uncached."""
        if self._broken_since and time.monotonic() - self._broken_since < 5:
            return fallback
        try:
            result = what()
            self._broken_since = 0.0
            return result
        except Exception as error:  # noqa: BLE001 - redis.RedisError and socket errors alike
            if not self._broken_since:
                log.warning("response cache: Redis at %s is not answering (%s); computing answers uncached",
                            self.url, error)
            self._broken_since = time.monotonic()
            return fallback

    def get(self, key: str) -> bytes | None:
        return self._guard(lambda: self.client.get(self.namespace + key))

    def set(self, key: str, value: bytes, ttl: float) -> None:
        self._guard(lambda: self.client.set(self.namespace + key, value, px=max(1, int(ttl * 1000))))

    @property
    def size(self) -> tuple[int, int]:
        return 0, 0

    @contextmanager
    def flight(self, key: str) -> Iterator[bool]:
        with super().flight(key):
            lock = self.namespace + "lock:" + key
            token = os.urandom(8).hex()
            if self._guard(lambda: self.client.set(lock, token, nx=True, px=int(FLIGHT_WAIT_SECONDS * 1000)),
                           fallback=True):
                try:
                    yield True
                finally:
                    self._guard(lambda: self.client.delete(lock) if self.client.get(lock) == token.encode()
                                else None)
                return
            # Another worker computes it: wait for its entry (or for its lock to go), then let the caller look.
            deadline = time.monotonic() + FLIGHT_WAIT_SECONDS
            while time.monotonic() < deadline:
                time.sleep(0.01)
                if self.get(key) is not None or not self._guard(lambda: self.client.exists(lock), fallback=0):
                    break
            yield True

    def version(self) -> int:
        value = self._guard(lambda: self.client.get(self.namespace + "version"))
        return int(value) if value else 0

    def bump(self) -> None:
        self._guard(lambda: self.client.incr(self.namespace + "version"))


# ------------------------------------------------------------------------------------------------
# The data version
# ------------------------------------------------------------------------------------------------

_local_writes: dict[str, int] = {}
_versions_by_url: dict[str, "weakref.WeakSet[DataVersion]"] = {}
_watched_engines: "weakref.WeakSet[Engine]" = weakref.WeakSet()
_writes_lock = threading.Lock()


def watch_writes(engine: Engine) -> None:
    """Count this process's writes to `engine`'s database (once per engine)."""
    if engine in _watched_engines:
        return
    _watched_engines.add(engine)
    url = engine.url.render_as_string(hide_password=False)

    @event.listens_for(engine, "after_cursor_execute")
    def _note_write(connection, _cursor, statement, _parameters, _context, _executemany):
        head = statement.lstrip()[:7].upper()
        if head.startswith(WRITES):
            connection.info["onescreen_wrote"] = True

    @event.listens_for(engine.pool, "checkin")
    def _count_write(_dbapi_connection, record):
        # Back in the pool: the transaction that wrote is over (committed, or rolled back: one needless refresh).
        if record is not None and record.info.pop("onescreen_wrote", False):
            writes_happened(url)


def writes_happened(url: str) -> None:
    """This process wrote to the database at `url`: every answer cached for it is out of date."""
    with _writes_lock:
        _local_writes[url] = _local_writes.get(url, 0) + 1
        versions = list(_versions_by_url.get(url, ()))
    for version in versions:
        version.store.bump()


class DataVersion:
    """A token that changes whenever the screen's data may have changed (see the module's docstring)."""

    def __init__(self, engine: Engine, store: MemoryStore, check_seconds: float = VERSION_CHECK_SECONDS):
        self.engine = engine
        self.store = store
        self.url = engine.url.render_as_string(hide_password=False)
        self.check_seconds = check_seconds
        self._files = _sqlite_files(engine)
        self._checked_at = -1e18
        self._external: tuple = ()
        self._lock = threading.Lock()
        watch_writes(engine)
        with _writes_lock:
            _versions_by_url.setdefault(self.url, weakref.WeakSet()).add(self)

    def token(self) -> str:
        # Shared stores count every worker's writes; a process's own count would split workers' keys apart.
        own = self.store.version() if self.store.shared else _local_writes.get(self.url, 0)
        return f"{own}:{self._external_version()}"

    def _external_version(self) -> str:
        if self._files:
            # In WAL mode every commit, from any process, appends to the log (a checkpoint starts it over, and the
            # next commit rewrites it): its time and size move with each. Empty or absent (before the first write,
            # after the last connection closed) are the same.
            try:
                stat = os.stat(self._files[-1])
                stamp = f"{stat.st_mtime_ns}/{stat.st_size}" if stat.st_size else "-"
            except FileNotFoundError:
                stamp = "-"
            return stamp
        with self._lock:
            if time.monotonic() - self._checked_at >= self.check_seconds:
                with self.engine.connect() as connection:
                    self._external = tuple(connection.execute(text(_VERSION_QUERY)).one())
                self._checked_at = time.monotonic()
            return hashlib.sha1(repr(self._external).encode()).hexdigest()[:12]


# What another process's writes change: a run finishing (ingests, incidents), an alert event (evaluations and
# people's actions), the units (an import). One row, from primary keys and small tables.
_VERSION_QUERY = (
    "SELECT (SELECT count(finished_at) FROM connector_runs), (SELECT max(id) FROM connector_runs), "
    "(SELECT max(id) FROM alert_events), (SELECT count(id) FROM units), (SELECT max(id) FROM units), "
    "(SELECT sum(rgt) FROM units)"
)


def _sqlite_files(engine: Engine) -> tuple[str, ...]:
    if engine.dialect.name != "sqlite":
        return ()
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return ()
    return (database, f"{database}-wal")


# ------------------------------------------------------------------------------------------------
# The cache
# ------------------------------------------------------------------------------------------------


@dataclass
class CacheCounts:
    hits: int = 0
    computed: int = 0
    uncacheable: int = 0


class ResponseCache:
    """Answers by key, computed once per key at a time, for the current data version."""

    def __init__(self, store: MemoryStore, version: DataVersion, refresh_seconds: int):
        self.store = store
        self.version = version
        self.refresh_seconds = max(1, int(refresh_seconds))
        self.counts = CacheCounts()
        self._counts_lock = threading.Lock()

    def cycle(self, now: float | None = None) -> int:
        """The refresh cycle `now` falls in: answers that depend on the clock are good for one cycle."""
        return int((time.time() if now is None else now) // self.refresh_seconds)

    def key(self, *parts, clock: bool = True, version=None) -> str:
        """The key of an answer to `parts` for the current data version (`version`: that version as a request
        pinned it, cityops/request_basics.py PinnedVersion) and, with `clock`, refresh cycle."""
        return cache_key((version or self.version).token(), self.cycle() if clock else None, *parts)

    def get_or_compute(self, key: str, compute: Callable[[], tuple[Stored, bool]], ttl: float | None = None) -> Stored:
        """The stored answer for `key`; else `compute()`, which returns (answer, whether it may be kept), computed
        by one request at a time per key (the others wait for it, then read it)."""
        ttl = 2 * self.refresh_seconds if ttl is None else ttl
        found = self.store.get(key)
        if found is not None:
            self._count("hits")
            return Stored.unpack(found)
        with self.store.flight(key):
            found = self.store.get(key)
            if found is not None:
                self._count("hits")
                return Stored.unpack(found)
            stored, keep = compute()
            if keep:
                self.store.set(key, stored.pack(), ttl)
                self._count("computed")
            else:
                self._count("uncacheable")
            return stored

    def _count(self, what: str) -> None:
        with self._counts_lock:
            setattr(self.counts, what, getattr(self.counts, what) + 1)


def cache_for(engine: Engine, cache_url: str | None, refresh_seconds: int) -> ResponseCache | None:
    """The cache a setting asks for: None or "memory" (this process), "redis://…" (shared), "off" (none).
    A Redis that cannot be reached stops start-up with the reason."""
    choice = (cache_url or "memory").strip()
    if choice == "off":
        return None
    if choice == "memory":
        store: MemoryStore = MemoryStore()
    elif choice.startswith(("redis://", "rediss://", "unix://")):
        namespace = hashlib.sha1(engine.url.render_as_string(hide_password=False).encode()).hexdigest()[:10]
        store = RedisStore(choice, namespace)
        try:
            store.check()
        except Exception as error:  # noqa: BLE001
            raise ValueError(f"ONESCREEN_CACHE_URL={choice!r}: Redis does not answer ({error}); start it, or "
                             "unset the variable to cache in each process") from None
    else:
        raise ValueError(f"ONESCREEN_CACHE_URL={choice!r}: use 'memory', 'off' or a redis:// URL")
    return ResponseCache(store, DataVersion(engine, store), refresh_seconds)

