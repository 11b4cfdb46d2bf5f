"""Reads that change only with the data, done once per data version (cityops/response_cache.py DataVersion)
rather than by every request: above all what every callback reads first (`request_basics`)."""

from __future__ import annotations

import threading
from typing import Callable

from cityops.response_cache import DataVersion


class VersionMemo:
    """Python values computed once per data version and key, in this process: for reads every request or every
    screen repeats (the unit tree, a wall's "alerts after event N in my scope", the map's snapshot of an indicator
    and open alerts per scope), which change only with the data. Only the current version's values are kept."""

    def __init__(self) -> None:
        self._token: str | None = None
        self._entries: dict = {}
        self._lock = threading.Lock()

    def get(self, version: DataVersion | None, key, compute: Callable):
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


class RequestBasics:
    """The indicator ids, the unit tree and a viewer's scope, read once per data version rather than by every
    request (three queries each time otherwise). In this process only: they are Python objects."""

    def __init__(self) -> None:
        self._memo = VersionMemo()

    def read(self, session, catalog, viewer, version: DataVersion | None):
        """(indicator ids, tree, scope) for `viewer`."""
        from cityops.scope import viewer_scope
        from cityops.storage import indicator_ids
        from cityops.tree import load_tree

        key = (version.url if version else None, tuple(catalog.keys), viewer.root_code)
        return self._memo.get(version, key, lambda: (indicator_ids(session, catalog), load_tree(session),
                                                     viewer_scope(session, viewer)))


request_basics = RequestBasics()
