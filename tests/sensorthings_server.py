"""A SensorThings v1.1 server on 127.0.0.1 (http.server, port 0, in a thread) over an in-memory dataset the test
controls: for the sensorthings connector type's tests and for tests of what the runner does with a source
delivering series (whole datastreams, one after the other). Nothing is mocked.

It implements just enough of SensorThings v1.1: the service root; Datastreams with $expand, a simple $filter
("properties/<name> ne null"), $top, $skip, $count and @iot.nextLink; Datastreams(<id>)/Observations with
$filter=phenomenonTime ge <time> (an interval compares by its start), $orderby, $top, $skip and @iot.nextLink.
Next links are absolute, as FROST writes them. It records every request, refuses wrong tokens and fails requests
on demand.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

ROOT_PATH = "/FROST-Server/v1.1"
ENTITY_SETS = ("Things", "Locations", "HistoricalLocations", "Datastreams", "Sensors", "ObservedProperties",
               "Observations", "FeaturesOfInterest")


def epoch(time_text: str) -> int:
    return int(datetime.fromisoformat(time_text.replace("Z", "+00:00")).timestamp())


def iso(seconds: int) -> str:
    """An epoch as SensorThings servers write times (UTC, Z)."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    raw_query: str
    headers: dict[str, str]  # lower-case names


class SensorThings:
    """An in-memory SensorThings service: Things, Datastreams (each on a Thing, with an ObservedProperty) and
    their Observations, as the test sets them; and what the server was asked."""

    def __init__(self, base: str):
        self.base = base
        self.root = base + ROOT_PATH
        self.things: dict[int, dict] = {}
        self.datastreams: list[dict] = []
        self.observations: dict[int | str, list[dict]] = {}
        self.seen: list[Seen] = []
        self.failures: list[tuple[str, int]] = []  # (path part, status): the next matching request fails once
        self.token: str | None = None  # when set: Authorization: Bearer <token> or X-API-Key: <token>
        self.link_base: str | None = None  # another scheme and host for next links (a misconfigured server)
        self._next_id = 1000
        self._lock = threading.Lock()

    # -- the dataset ---------------------------------------------------------------------------------

    def thing(self, ident: int, name: str, **properties) -> None:
        self.things[ident] = {"@iot.id": ident, "name": name, "description": name, "properties": properties}

    def datastream(self, ident: int | str, name: str, thing: int, observed: str, *, definition: str | None = None,
                   **properties) -> None:
        """A datastream on a Thing; its ObservedProperty is named `observed` (its definition, unless given, a URL
        naming the datastream)."""
        self.datastreams.append({"@iot.id": ident, "name": name, "description": name, "properties": properties,
                                 "unitOfMeasurement": {"name": "", "symbol": "", "definition": ""},
                                 "thing": thing, "observed": {"@iot.id": f"op-{ident}", "name": observed,
                                                              "definition": definition
                                                              or f"http://vocab.example/{ident}"}})
        self.observations.setdefault(ident, [])

    def observe(self, datastream: int | str, *readings: tuple[str, Any]) -> None:
        """Add (phenomenonTime, result) readings to a datastream."""
        for phenomenon, result in readings:
            self._next_id += 1
            self.observations[datastream].append({"@iot.id": self._next_id, "phenomenonTime": phenomenon,
                                                  "resultTime": phenomenon.rpartition("/")[2], "result": result})

    def series(self, street_code: str, indicator: str, readings: list[tuple[int, float]]) -> int:
        """One street's series of an indicator: a datastream (with a `onescreen_indicator` property) on a Thing of
        its own (with a `street_code` property), its ObservedProperty named for the indicator, holding the
        (epoch, value) readings in time order. Returns its id: 1, 2, ... in the order the series are made."""
        ident = 1 + max((key for key in self.observations if isinstance(key, int)), default=0)
        thing = 1 + max(self.things, default=0)
        self.thing(thing, street_code, street_code=street_code)
        self.datastream(ident, f"{indicator} at {street_code}", thing, indicator,
                        definition=f"urn:test:{indicator}", onescreen_indicator=indicator)
        self.observe(ident, *((iso(at), value) for at, value in sorted(readings)))
        return ident

    # -- requests ------------------------------------------------------------------------------------

    def answer(self, request: Seen) -> tuple[int, Any]:
        with self._lock:
            self.seen.append(request)
            for position, (part, status) in enumerate(self.failures):
                if part in request.path:
                    del self.failures[position]
                    return status, {"code": status, "type": "error", "message": "Service unavailable"}
        if self.token and request.headers.get("authorization") != f"Bearer {self.token}" \
                and request.headers.get("x-api-key") != self.token:
            return 401, {"code": 401, "type": "error", "message": "invalid credentials"}
        path, query = request.path, request.query
        if path.rstrip("/") == ROOT_PATH:
            return 200, {"value": [{"name": name, "url": f"{self.root}/{name}"} for name in ENTITY_SETS]}
        if path == ROOT_PATH + "/Datastreams":
            return self._datastreams(query)
        found = re.fullmatch(re.escape(ROOT_PATH) + r"/Datastreams\((\d+|'[^']*')\)/Observations", path)
        if found:
            key = found.group(1)
            return self._observations(key.strip("'") if key.startswith("'") else int(key), query)
        return 404, {"code": 404, "type": "error", "message": "Not a valid path"}

    def _datastreams(self, query: dict[str, str]) -> tuple[int, Any]:
        chosen = self.datastreams
        if query.get("$filter"):
            simple = re.fullmatch(r"properties/(\w+) ne null", query["$filter"])
            if not simple:
                return 400, {"code": 400, "type": "error", "message": f"Query is not valid: {query['$filter']}"}
            chosen = [d for d in chosen if d["properties"].get(simple.group(1)) is not None]
        expand = set(query.get("$expand", "").split(","))
        return 200, self._collection([self._entity(d, expand) for d in chosen], ROOT_PATH + "/Datastreams", query)

    def _entity(self, datastream: dict, expand: set[str]) -> dict:
        ident = datastream["@iot.id"]
        entity = {k: v for k, v in datastream.items() if k not in ("thing", "observed")}
        entity["@iot.selfLink"] = f"{self.root}/Datastreams({ident})"
        entity["Observations@iot.navigationLink"] = f"{self.root}/Datastreams({ident})/Observations"
        if "Thing" in expand:
            entity["Thing"] = self.things[datastream["thing"]]
        if "ObservedProperty" in expand:
            entity["ObservedProperty"] = datastream["observed"]
        return entity

    def _observations(self, ident: int | str, query: dict[str, str]) -> tuple[int, Any]:
        chosen = self.observations.get(ident, [])
        if query.get("$filter"):
            since = re.fullmatch(r"phenomenonTime ge (\S+Z)", query["$filter"])
            if not since:
                return 400, {"code": 400, "type": "error", "message": f"Query is not valid: {query['$filter']}"}
            chosen = [o for o in chosen if "phenomenonTime" in o and _start(o) >= epoch(since.group(1))]
        if query.get("$orderby") == "phenomenonTime asc":
            chosen = sorted(chosen, key=lambda o: ("phenomenonTime" not in o, _start(o)))
        return 200, self._collection(chosen, f"{ROOT_PATH}/Datastreams({ident})/Observations", query)

    def _collection(self, entities: list, path: str, query: dict[str, str]) -> dict:
        top, skip = int(query.get("$top", 100)), int(query.get("$skip", 0))
        body: dict[str, Any] = {}
        if query.get("$count") == "true":
            body["@iot.count"] = len(entities)
        body["value"] = entities[skip: skip + top]
        if skip + top < len(entities):
            # Absolute, as FROST writes them, from the server's own idea of its address.
            following = urlencode({**query, "$skip": skip + top}, quote_via=quote)
            body["@iot.nextLink"] = f"{self.link_base or self.base}{path}?{following}"
        return body

    def observation_requests(self) -> list[Seen]:
        return [r for r in self.seen if r.path.endswith("/Observations")]


def _start(observation: dict) -> int:
    """When an observation's phenomenon began (an interval compares by its start); 0 when it has no time."""
    phenomenon = observation.get("phenomenonTime")
    return epoch(phenomenon.partition("/")[0]) if phenomenon else 0


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        parts = urlsplit(self.path)
        request = Seen(parts.path, {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
                       parts.query, {k.lower(): v for k, v in self.headers.items()})
        status, document = self.server.sensorthings.answer(request)
        body = json.dumps(document, ensure_ascii=False).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            if status == 503:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@contextmanager
def sensorthings_server() -> Iterator[SensorThings]:
    """A running server; yields its (initially empty) dataset."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.sensorthings = SensorThings(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server.sensorthings
    finally:
        server.shutdown()
        server.server_close()
