"""A small SensorThings v1.1 server on 127.0.0.1 (port 0, a thread), for tests of what the runner does with a
source delivering series: whole datastreams, one after the other.

It serves the Datastreams (with their Thing and ObservedProperty) and each one's Observations
(`$filter=phenomenonTime ge <time>`, `$orderby=phenomenonTime asc`), both paged by `$top`/`$skip` with absolute
`@iot.nextLink`s. test_connector_sensorthings.py has the complete one (failures, tokens, every option of the type).
"""

from __future__ import annotations

import json
import re
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlencode, urlsplit

ROOT_PATH = "/FROST-Server/v1.1"


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class SensorThings:
    """The dataset: one datastream per (street code, indicator key), each with its (epoch, value) observations."""

    def __init__(self, base: str):
        self.base = base
        self.root = base + ROOT_PATH
        self.datastreams: list[dict] = []
        self.observations: dict[int, list[dict]] = {}

    def series(self, street_code: str, indicator: str, readings: list[tuple[int, float]]) -> None:
        ident = len(self.datastreams) + 1
        self.datastreams.append({
            "@iot.id": ident, "name": f"{indicator} at {street_code}", "properties": {"onescreen_indicator": indicator},
            "Thing": {"@iot.id": ident, "name": street_code, "properties": {"street_code": street_code}},
            "ObservedProperty": {"@iot.id": ident, "name": indicator, "definition": f"urn:test:{indicator}"}})
        self.observations[ident] = [{"@iot.id": ident * 100_000 + n, "phenomenonTime": iso(at), "result": value}
                                    for n, (at, value) in enumerate(sorted(readings))]

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, dict]:
        if path == ROOT_PATH + "/Datastreams":
            return 200, self._page(self.datastreams, path, query)
        found = re.fullmatch(re.escape(ROOT_PATH) + r"/Datastreams\((\d+)\)/Observations", path)
        if not found or int(found.group(1)) not in self.observations:
            return 404, {"code": 404, "message": "Not a valid path"}
        chosen = self.observations[int(found.group(1))]
        since = re.fullmatch(r"phenomenonTime ge (\S+)", query.get("$filter", ""))
        if since:
            chosen = [o for o in chosen if _epoch(o["phenomenonTime"]) >= _epoch(since.group(1))]
        return 200, self._page(chosen, path, query)

    def _page(self, entities: list, path: str, query: dict[str, str]) -> dict:
        top, skip = int(query.get("$top", 100)), int(query.get("$skip", 0))
        body: dict = {"value": entities[skip:skip + top]}
        if skip + top < len(entities):
            body["@iot.nextLink"] = f"{self.base}{path}?{urlencode({**query, '$skip': skip + top}, quote_via=quote)}"
        return body


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        status, document = self.server.dataset.answer(parts.path, query)
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextmanager
def sensorthings_server():
    """A running server; yields its (initially empty) SensorThings dataset."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.dataset = SensorThings(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server.dataset
    finally:
        server.shutdown()
        server.server_close()
