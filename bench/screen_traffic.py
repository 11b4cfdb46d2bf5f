"""What the screen benchmarks share: the instrumented server (bench/screen_server.py), the callbacks a real page
sends (captured from chromium), and an HTTP client that replays them as one more screen would.

A replaying client keeps its own copy of every component property it has seen (from the captured requests, then
from each response), so each client sends what a screen in its state would send: its own interval count, its own
"map painted" moment, the digests of what it already shows.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import common

REFRESH_INTERVAL = "refresh-interval"
# What a screen polls on: the panels' refresh interval, and (walls only) the store passing its count on to the
# wall's look for new alerts (callbacks/wall.py).
POLL_PROPS = (f"{REFRESH_INTERVAL}.n_intervals", "wall-poll.data", "wall-poll.n_intervals")
CALLBACK_PATH = "/_dash-update-component"


def start_screen_server(database_url: str, folder: Path, *, trivial: bool = False, scheduler: bool = False,
                        refresh_seconds: int = 30, extra_env: dict | None = None) -> common.Server:
    port = common.free_port()
    log_path = folder / f"screen-{port}.log"
    env = {**common.server_env(database_url), "ONESCREEN_REFRESH_SECONDS": str(refresh_seconds),
           "ONESCREEN_SCHEDULER": "1" if scheduler else "0", **(extra_env or {})}
    command = [common.PYTHON, str(common.BENCH_DIR / "screen_server.py"), "--port", str(port)]
    command += ["--trivial"] if trivial else []
    command += ["--scheduler"] if scheduler else []
    process = common.start_process(command, env=env, log_path=log_path)
    url = f"http://127.0.0.1:{port}/"
    common.wait_for_http(url, process, log_path=log_path)
    return common.Server(process, url, log_path)


def stats(server: common.Server) -> dict:
    with urllib.request.urlopen(server.url + "bench/stats", timeout=30) as response:
        return json.loads(response.read())


def output_of(body: dict) -> str:
    return str(body.get("output", ""))


@dataclass
class Captured:
    """The callback requests a page sent, in order, with what triggered each."""

    bodies: list[dict] = field(default_factory=list)

    def triggered_by(self, prop_id: str) -> list[dict]:
        return [body for body in self.bodies if prop_id in (body.get("changedPropIds") or [])]

    def last_for(self, needle: str) -> dict:
        found = [body for body in self.bodies if needle in output_of(body)]
        if not found:
            raise RuntimeError(f"the page sent no callback with an output like {needle!r}; it sent "
                               f"{sorted({output_of(b)[:60] for b in self.bodies})}")
        return found[-1]


def capture(page) -> Captured:
    """Start recording the callback requests `page` sends."""
    captured = Captured()

    def on_request(request):
        if CALLBACK_PATH in request.url and request.method == "POST":
            try:
                captured.bodies.append(request.post_data_json)
            except Exception:  # noqa: BLE001 - a body that is not JSON is not a callback
                pass

    page.on("request", on_request)
    return captured


def polled(captured: Captured) -> list[dict]:
    return [body for body in captured.bodies if any(prop in (body.get("changedPropIds") or []) for prop in POLL_PROPS)]


def refresh_callbacks(page, captured: Captured, refresh_seconds: int, timeout: float = 120) -> list[dict]:
    """The callback requests of one refresh of `page` (those its polling intervals triggered), waiting for one."""
    before = len(polled(captured))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page.wait_for_timeout(250)
        if len(polled(captured)) > before:
            # The rest of that period's requests (intervals started at different moments fire at their own phase).
            page.wait_for_timeout((refresh_seconds + 2) * 1000)
            latest = {}
            for body in polled(captured)[before:]:
                latest[output_of(body)] = body
            return list(latest.values())
    raise TimeoutError(f"no refresh within {timeout:.0f} s (refresh every {refresh_seconds} s)")


class ReplayClient:
    """One more screen, over one keep-alive HTTP connection: replays callback requests with its own state."""

    def __init__(self, base_url: str, templates: list[dict], painted: float):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
        self.templates = templates
        self.props: dict[tuple[str, str], object] = {}
        for body in templates:
            for item in [*(body.get("inputs") or []), *(body.get("state") or [])]:
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    self.props[item["id"], item["property"]] = item.get("value")
        self.props["map-painted", "data"] = painted  # each screen painted at its own moment
        self.tick = 0
        self.times: list[float] = []        # seconds, each request as this client waited for it
        self.server_ms: list[float] = []    # the server's own time for each (Server-Timing)
        # (sent at, output, statements the server sent for it, seconds waited, server ms) for every request
        self.records: list[tuple[float, str, int, float, float]] = []

    def _filled(self, body: dict) -> dict:
        filled = json.loads(json.dumps(body))
        for item in [*(filled.get("inputs") or []), *(filled.get("state") or [])]:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                key = (item["id"], item["property"])
                if f"{key[0]}.{key[1]}" in POLL_PROPS:
                    item["value"] = self.tick
                elif key in self.props:
                    item["value"] = self.props[key]
        return filled

    def post(self, body: dict) -> tuple[int, bytes, float]:
        """Send one callback request: (status, body, seconds waited)."""
        payload = json.dumps(body).encode("utf-8")
        sent_at = time.time()
        started = time.perf_counter()
        for attempt in range(2):
            try:
                self.connection.request("POST", CALLBACK_PATH, payload, {"Content-Type": "application/json",
                                                                         "Accept-Encoding": "gzip"})
                response = self.connection.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, ConnectionError, OSError):
                self.connection.close()
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
                if attempt:
                    raise
        elapsed = time.perf_counter() - started
        timing = response.getheader("Server-Timing") or ""
        server_ms = float(timing.split("dur=")[1].split(";")[0]) if "dur=" in timing else float("nan")
        self.server_ms.append(server_ms)
        self.records.append((sent_at, output_of(body), int(response.getheader("X-Bench-Queries") or 0), elapsed,
                             server_ms))
        return response.status, (self._gunzip(response, data)), elapsed

    @staticmethod
    def _gunzip(response, data: bytes) -> bytes:
        if response.getheader("Content-Encoding") == "gzip":
            import gzip

            return gzip.decompress(data)
        if response.getheader("Content-Encoding") == "zstd":
            return b""  # not read back; the state it would set is the same for every client
        return data

    def refresh(self) -> None:
        """One refresh cycle: every template once, in order, as the page sends them."""
        self.tick += 1
        for template in self.templates:
            status, data, elapsed = self.post(self._filled(template))
            self.times.append(elapsed)
            if status == 200 and data:
                self._remember(data)
            elif status not in (200, 204):
                raise RuntimeError(f"{output_of(template)[:80]} answered {status}: {data[:300]!r}")

    def _remember(self, data: bytes) -> None:
        try:
            answer = json.loads(data)
        except ValueError:
            return
        for component, props in (answer.get("response") or {}).items():
            if isinstance(props, dict):
                for prop, value in props.items():
                    self.props[component, prop] = value

    def close(self) -> None:
        self.connection.close()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, int(round(fraction * (len(ordered) - 1)))))
    return ordered[index]
