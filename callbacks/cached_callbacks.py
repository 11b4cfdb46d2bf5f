"""The screen's refresh-driven callbacks answered from the shared response cache (cityops/response_cache.py).

`install_response_cache(app, settings)` wraps Dash's callback endpoint. A callback is answered from the cache when
the refresh interval is one of its inputs: those are the ones every screen calls every cycle, and they only read.
Anything else — an alert action, a click selecting a unit, the language switch — goes straight to Dash, every
time. A response that sets a cookie is never kept.

The key is the callback (its outputs, and which components its dash.ALL outputs matched), the values of its
inputs and states, which of them triggered it, the viewer's scope key and language, the data version and the
refresh cycle. Inputs that are only triggers — the
interval's tick count, the moment the map painted, an alert-changed stamp — differ from screen to screen but
change nothing in the answer: an input's value is left out of the key when the callback's parameter for it is
named with a leading underscore (the code's way of saying "not read") AND the function's code never reads it.
"""

from __future__ import annotations

import dis
import functools
import inspect
import logging
from dataclasses import dataclass

from dash import Dash
from flask import Response, current_app, g, request

from cityops.db import engine_for
from cityops.request_basics import PinnedVersion
from cityops.response_cache import ResponseCache, Stored, cache_for
from cityops.settings import Settings
from layouts.ids import PageIds

log = logging.getLogger(__name__)

EXTENSION = "onescreen_response_cache"
_PINNED = "onescreen_pinned_version"  # in flask.g: the data version a cached callback's key was made for
REFRESH_INPUT = (str(PageIds.REFRESH), "n_intervals")
# Headers of a kept answer worth sending again (not Date, not Content-Length: the server sets those).
KEPT_HEADERS = ("Content-Type", "Cache-Control", "ETag", "Content-Encoding", "Vary")
_KEPT_LOWER = frozenset(name.lower() for name in KEPT_HEADERS)


def current_cache() -> ResponseCache | None:
    """The app's response cache (None when it is off)."""
    return current_app.extensions.get(EXTENSION)


def current_data_version():
    """The app's data version (cityops/response_cache.py DataVersion), None when the cache is off: for reads kept
    once per version (cityops/request_basics.py). In a callback answered through the cache, the version its key
    was made for: what the answer reads is then of that version, and the version is looked up once (a stat of
    SQLite's write-ahead log), not again by the callback."""
    pinned = g.get(_PINNED)
    if pinned is not None:
        return pinned
    cache = current_cache()
    return cache.version if cache is not None else None


def viewer_key() -> str:
    """What makes one viewer's answers differ from another's: their scope (today everyone sees the whole city;
    with login, the unit a viewer is assigned to)."""
    from callbacks.context import current_viewer

    return current_viewer().root_code or "*"


@dataclass(frozen=True)
class CachedCallback:
    """How to key one cacheable callback: which input and state positions are triggers only."""

    ignored_inputs: frozenset[int]
    ignored_states: frozenset[int]

    def key_parts(self, body: dict) -> list:
        inputs = [None if position in self.ignored_inputs else _value(item)
                  for position, item in enumerate(body.get("inputs") or [])]
        states = [None if position in self.ignored_states else _value(item)
                  for position, item in enumerate(body.get("state") or [])]
        return [body.get("output"), _matched(body.get("outputs")), inputs, states,
                sorted(body.get("changedPropIds") or [])]


def _matched(outputs):
    """The components a callback's pattern-matching outputs (dash.ALL) matched on the asking page: its answer has
    one value for each, so a page that has not mounted them yet (the trend's graph comes after the map) must not
    be given the answer of one that has, nor the other way round."""
    if not isinstance(outputs, list):
        return None
    return [[entry.get("id") for entry in output if isinstance(entry, dict)] if isinstance(output, list) else None
            for output in outputs]


def _value(item):
    """An input's value (a list of them for pattern-matching inputs, with their ids)."""
    if isinstance(item, list):
        return [[entry.get("id"), entry.get("value")] for entry in item if isinstance(entry, dict)]
    return item.get("value") if isinstance(item, dict) else item


def unread_parameters(function) -> set[str]:
    """The parameters of `function` whose values it never reads: named with a leading underscore, and no
    instruction of its code (nor of a nested function's, through a closure) loads them."""
    function = inspect.unwrap(function)
    code = function.__code__
    names = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    loaded = {instruction.argval for instruction in dis.get_instructions(code)
              if instruction.opname.startswith(("LOAD_FAST", "LOAD_DEREF", "LOAD_CLOSURE", "DELETE_FAST"))}
    # Python 3.12+ fuses two loads into one instruction whose argval is a pair of names.
    loaded |= {name for value in list(loaded) if isinstance(value, tuple) for name in value}
    return {name for name in names if name.startswith("_") and name not in loaded and name not in code.co_cellvars}


def cached_callback(entry: dict) -> CachedCallback | None:
    """How to key a callback of the app's callback map, or None when it must not be cached."""
    specs = entry.get("inputs") or []
    if not any((str(spec.get("id")), spec.get("property")) == REFRESH_INPUT for spec in specs):
        return None
    function = entry.get("callback")
    if function is None or inspect.iscoroutinefunction(inspect.unwrap(function)):
        return None
    try:
        parameters = list(inspect.signature(inspect.unwrap(function)).parameters)
        unread = unread_parameters(function)
    except (TypeError, ValueError, AttributeError):
        return CachedCallback(frozenset(), frozenset())
    inputs = len(specs)
    ignored = {position for position, name in enumerate(parameters) if name in unread}
    return CachedCallback(frozenset(p for p in ignored if p < inputs),
                          frozenset(p - inputs for p in ignored if p >= inputs))


def _stored(response: Response) -> tuple[Stored, bool]:
    # One pass over the headers: werkzeug's Headers answers `name in headers` for a name it lacks by raising and
    # catching an exception (~2 µs), and a response lacks most of KEPT_HEADERS.
    kept, sets_cookie = [], False
    for name, value in response.headers.items():
        lowered = name.lower()
        if lowered == "set-cookie":
            sets_cookie = True
        elif lowered in _KEPT_LOWER:
            kept.append((name, value))
    if sets_cookie or response.status_code not in (200, 204) or response.direct_passthrough:
        return Stored(response.status_code, (), b""), False
    return Stored(response.status_code, tuple(kept), response.get_data()), True


def _response(stored: Stored) -> Response:
    return Response(stored.body, status=stored.status, headers=list(stored.headers))


def install_response_cache(app: Dash, settings: Settings) -> ResponseCache | None:
    """Answer the app's refresh-driven callbacks from a shared cache (ONESCREEN_CACHE_URL; see
    cityops/response_cache.py). Returns the cache, also kept for the geometry routes (`current_cache`)."""
    cache = cache_for(engine_for(settings.database_url), settings.cache_url, settings.refresh_seconds)
    app.server.extensions[EXTENSION] = cache
    endpoint = f"{app.config.routes_pathname_prefix}_dash-update-component"
    dispatch = app.server.view_functions.get(endpoint)
    if cache is None or dispatch is None or inspect.iscoroutinefunction(dispatch):
        return cache
    from callbacks.context import current_language

    rules: dict[str, CachedCallback | None] = {}

    @functools.wraps(dispatch)
    def cached_dispatch(*args, **kwargs):
        body = request.get_json(silent=True)
        output = body.get("output") if isinstance(body, dict) else None
        entry = app.callback_map.get(output) if isinstance(output, str) else None
        if entry is None:
            return dispatch(*args, **kwargs)
        if output not in rules:
            rules[output] = cached_callback(entry)
        rule = rules[output]
        if rule is None:
            return dispatch(*args, **kwargs)
        version = PinnedVersion(cache.version)
        key = cache.key("callback", rule.key_parts(body), viewer_key(), current_language(settings), version=version)

        computed = []

        def compute() -> tuple[Stored, bool]:
            setattr(g, _PINNED, version)
            try:
                computed.append(app.server.make_response(dispatch(*args, **kwargs)))
            finally:
                g.pop(_PINNED, None)  # a test's app context may outlive the request: the pin must not
            return _stored(computed[0])

        stored = cache.get_or_compute(key, compute)
        # The request that computed the answer sends Dash's own response (with a cookie it sets, if any).
        return computed[0] if computed else _response(stored)

    app.server.view_functions[endpoint] = cached_dispatch
    return cache
