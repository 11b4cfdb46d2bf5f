"""Keeping a long-running process's memory where its data is: glibc's allocator, told to give back what is free.

A wall runs for days. The server's live data levels off once its caches are full, but glibc keeps freed memory in
its arenas (one per thread that ever allocated, up to eight per core): every 5-minute ingest builds and drops
~100 MB of frames, every request thread leaves its arena holding its high-water mark, and the process's size
(RSS) keeps what it ever needed rather than what it holds (bench/screen_soak.py). Two calls fix that:
fewer arenas from the start (`limit_arenas`), and the free memory returned to the system after the big jobs and
at most once a minute while serving (`release_free_memory`, `ReleaseEvery`).

Only glibc has these calls; elsewhere (musl, macOS) both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc malloc.h
DEFAULT_ARENAS = 2


def _libc():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim, libc.mallopt  # noqa: B018 - both must exist (glibc), else we do nothing
    except (OSError, AttributeError):
        return None
    return libc


LIBC = _libc()


def limit_arenas(count: int = DEFAULT_ARENAS) -> bool:
    """At most `count` malloc arenas for the threads this process starts from now on (call it before it starts
    any): request threads then share arenas instead of each keeping its own high-water mark."""
    if LIBC is None:
        return False
    return bool(LIBC.mallopt(M_ARENA_MAX, count))


def release_free_memory() -> bool:
    """Return the allocator's free memory to the system (glibc malloc_trim): what the process no longer
    holds stops counting in its size."""
    if LIBC is None:
        return False
    return bool(LIBC.malloc_trim(0))


class ReleaseEvery:
    """`release_free_memory` at most once per `seconds`, from whichever thread calls `maybe()` first after that
    (the web server calls it after requests: no thread of its own, nothing when the server is idle)."""

    def __init__(self, seconds: float = 60.0, clock=time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._last = clock()
        self.count = 0

    def maybe(self) -> bool:
        now = self._clock()
        if now - self._last < self.seconds or not self._lock.acquire(blocking=False):
            return False
        try:
            if now - self._last < self.seconds:
                return False
            self._last = now
            self.count += 1
            return release_free_memory()
        finally:
            self._lock.release()
