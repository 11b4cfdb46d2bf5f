"""Reads that change only with the data, done once per data version (cityops/response_cache.py DataVersion)
rather than by every request: above all what every callback reads first (`request_basics`)."""

from __future__ import annotations

import threading
from typing import Callable

from sqlalchemy.orm import Session

from cityops.db import session_scope
from cityops.response_cache import DataVersion


class VersionMemo:
    """Python values computed once per data version and key, in this process: for reads every request or every
    screen repeats (the unit tree, a wall's "alerts after event N in my scope", the map's snapshot of an indicator
    and open alerts per scope), which change only with the data. Only the current version's values are kept."""

    def __init__(self) -> None:
        self._token: str | None = None
        self._entries: dict = {}
        self._lock = threading.Lock()

    def get(self, version: DataVersion | PinnedVersion | None, key, compute: Callable):
        if version is None:
            return compute()
        token = version.token()
        with self._lock:
            if token != self._token:
                self._token, self._entries = token, {}
            if key in self._entries:
                return self._entries[key]
        value = compute()
        with self._lock:
            if token == self._token:
                self._entries[key] = value
        return value


class PinnedVersion:
    """A data version's token read once, for one request (callbacks/context.py viewer_request): what the request
    reads from VersionMemos is then all of one version, and the version is not looked up again for each read (a
    stat of SQLite's write-ahead log each time). A request's own writes change the version when its session ends,
    which is also when this request is over."""

    __slots__ = ("url", "_token")

    def __init__(self, version: DataVersion) -> None:
        self.url = version.url
        self._token = version.token()

    def token(self) -> str:
        return self._token


class LazySession:
    """A request's unit of work (cityops.db.session_scope), begun by the first query rather than by the request:
    most answers of a data version read only what is kept for it (`request_basics`, the map's snapshots) and send
    no statement, and opening, committing and closing a session they never use cost them ~15 µs.

    Call it for the session (the same one every time); used as a context manager, it ends the unit of work, if
    one was begun, as session_scope does: committed when the block ends normally, rolled back when it raises."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._unit_of_work = None
        self._session: Session | None = None
        self._ended = False

    def __call__(self) -> Session:
        if self._session is None:
            if self._ended:
                # A query after the request ended would begin a session nobody ends (a connection held).
                raise RuntimeError("the request is over: its session cannot be opened any more")
            self._unit_of_work = session_scope(self.database_url)
            self._session = self._unit_of_work.__enter__()
        return self._session

    @property
    def opened(self) -> bool:
        return self._session is not None

    def __enter__(self) -> "LazySession":
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        self._ended = True
        unit_of_work, self._unit_of_work, self._session = self._unit_of_work, None, None
        return bool(unit_of_work.__exit__(kind, error, traceback)) if unit_of_work is not None else False


class RequestBasics:
    """The indicator ids, the unit tree and a viewer's scope, read once per data version rather than by every
    request (three queries each time otherwise). In this process only: they are Python objects."""

    def __init__(self) -> None:
        self._memo = VersionMemo()

    def read(self, open_session: Callable[[], Session], catalog, viewer,
             version: DataVersion | PinnedVersion | None):
        """(indicator ids, tree, scope) for `viewer`; `open_session` gives the session to read them with, and
        is called only when they are read."""

        def read_them():
            from cityops.scope import viewer_scope
            from cityops.storage import indicator_ids
            from cityops.tree import load_tree

            session = open_session()
            tree = load_tree(session)
            return indicator_ids(session, catalog), tree, viewer_scope(session, viewer, tree)

        key = (version.url if version else None, tuple(catalog.keys), viewer.root_code)
        return self._memo.get(version, key, read_them)


request_basics = RequestBasics()
