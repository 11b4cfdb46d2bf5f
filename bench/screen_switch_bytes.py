"""Bytes on an indicator switch against the bytes of the geometry the map shows, in headless chromium.

    .venv/bin/python bench/screen_switch_bytes.py            # at the city (16 districts) and in a street
    .venv/bin/python bench/screen_switch_bytes.py --quick    # 6 h of history

The app runs as `onescreen.py serve` would (bench/screen_server.py) on the demo city (~6,000 communities). Chromium
opens the screen; every response's bytes on the wire are read from the DevTools protocol (Network.loadingFinished:
encodedDataLength, headers included). At two views — the city's districts, and a street's communities (after two
clicks down) — the indicator is switched by clicking a KPI card, and everything received until the network is quiet
is counted: the bytes of geometry (any /geo/ response, any callback response carrying coordinates), the map's own
update (its callback response: colours in `hideout`, legend, title), and all of it (every panel redraws for the new
indicator). The baseline is the geometry of that view as the browser receives it (children.pbf, gzip).
Figure: geometry bytes received on the switch / geometry of the view (target ≤ 1%). Reported beside it, for
information: the map's update and everything received, against the same geometry.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import headless  # noqa: E402
import screen_traffic  # noqa: E402
from common import Figure, Report, Stopwatch  # noqa: E402
from server_memory import POINT_INSIDE  # noqa: E402

TARGET = 0.01
INDICATORS = ("aqi", "hotline_complaints", "garbage_sorting_compliance", "pm25")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=24, help="simulator history (default %(default)s h)")
    parser.add_argument("--quick", action="store_true", help="6 h of history")
    args = parser.parse_args(argv)
    if args.quick:
        args.hours = min(args.hours, 6)
    return args


class WireBytes:
    """Bytes received per request (CDP), with what each request was."""

    def __init__(self, page):
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("Network.enable")
        self.requests: dict[str, dict] = {}
        self.cdp.on("Network.requestWillBeSent", self._sent)
        self.cdp.on("Network.loadingFinished", self._finished)

    def _sent(self, event):
        request = event["request"]
        self.requests[event["requestId"]] = {"id": event["requestId"], "url": request["url"],
                                             "post": request.get("postData") or "", "bytes": None,
                                             "at": time.monotonic()}

    def _finished(self, event):
        if event["requestId"] in self.requests:
            self.requests[event["requestId"]]["bytes"] = int(event["encodedDataLength"])

    def mark(self) -> int:
        return len(self.requests)

    def since(self, mark: int) -> list[dict]:
        return [entry for entry in list(self.requests.values())[mark:] if entry["bytes"] is not None]


def settle(page, quiet_ms: int = 1500) -> None:
    tracker = headless.NetworkTracker(page)
    page.wait_for_timeout(200)
    tracker.wait_quiet(page, quiet_ms=quiet_ms)


def geometry_bytes(page, wire: WireBytes, code: str) -> int:
    """The view's geometry as the map fetches it (children.pbf, gzip), fetched once more by the page."""
    mark = wire.mark()
    page.evaluate(f"fetch('/geo/{code}/children.pbf', {{cache: 'no-store'}}).then(r => r.arrayBuffer())")
    page.wait_for_timeout(1000)
    found = [entry for entry in wire.since(mark) if "children.pbf" in entry["url"]]
    if not found:
        raise RuntimeError(f"no geometry response for {code}")
    return found[-1]["bytes"]


def carries_coordinates(wire: WireBytes, entry: dict) -> bool:
    """Whether a callback response carries geometry (GeoJSON coordinates or a geobuf payload)."""
    if "_dash-update-component" not in entry["url"]:
        return False
    try:
        body = wire.cdp.send("Network.getResponseBody", {"requestId": entry["id"]}).get("body", "")
    except Exception:  # noqa: BLE001 - a 204 (nothing to update) has no body
        return False
    return '"coordinates"' in body or '"map-units":{"data"' in body.replace(" ", "")


def switch(page, wire: WireBytes, indicator: str) -> dict:
    """Click the indicator's KPI card; the bytes received until the network is quiet, by kind."""
    mark = wire.mark()
    page.locator(f'.kpi-card[data-indicator="{indicator}"]').click()
    page.wait_for_function(f"document.querySelector('.kpi-card.selected')?.dataset.indicator === '{indicator}'",
                           timeout=60_000)
    settle(page)
    received = wire.since(mark)
    geometric = [e for e in received if "/geo/" in e["url"] or carries_coordinates(wire, e)]
    geometry = sum(e["bytes"] for e in geometric)
    map_update = sum(e["bytes"] for e in received if "_dash-update-component" in e["url"]
                     and "map-units.url" in e["post"])
    return {"geometry": geometry, "map": map_update, "all": sum(e["bytes"] for e in received),
            "requests": len(received), "geometry_urls": [e["url"].split("/geo/")[-1] for e in geometric]}


def drill(page, index: int) -> str:
    point = page.evaluate(POINT_INSIDE, index)
    if point is None:
        raise RuntimeError("no clickable point in the polygon")
    crumbs = page.locator(".breadcrumb [data-code]").count()
    page.mouse.click(*point)
    page.wait_for_function(f"document.querySelectorAll('.breadcrumb [data-code]').length === {crumbs + 1}",
                           timeout=60_000)
    settle(page)
    return page.locator(".breadcrumb .crumb-current").get_attribute("data-code")


def main(argv=None) -> Report:
    args = parse_args(argv)
    clock = Stopwatch()
    from playwright.sync_api import sync_playwright

    folder = common.temp_dir("switch-bytes")
    database = common.demo_database(folder, hours=args.hours)
    server = screen_traffic.start_screen_server(common.sqlite_url(database), folder, refresh_seconds=3600)
    views = {}
    try:
        with sync_playwright() as playwright:
            browser = headless.launch_chromium(playwright)
            try:
                page = headless.new_context(browser).new_page()
                wire = WireBytes(page)
                page.goto(server.url, timeout=60_000)
                page.wait_for_function(f"document.querySelectorAll('path.leaflet-interactive').length >= "
                                       f"{common.DEMO_DISTRICTS}", timeout=120_000)
                page.wait_for_function("document.querySelectorAll('.kpi-card').length > 0", timeout=60_000)
                settle(page)
                city = page.locator(".breadcrumb .crumb-current").get_attribute("data-code")
                views["the city's 16 districts"] = (city, [switch(page, wire, i) for i in INDICATORS[:2]])
                drill(page, 3)
                street = drill(page, 0)
                views["a street's communities"] = (street, [switch(page, wire, i) for i in INDICATORS[2:]])
                geometry = {name: geometry_bytes(page, wire, code) for name, (code, _) in views.items()}
            finally:
                browser.close()
    finally:
        common.stop_process(server.process)

    figures, notes = [], []
    for name, (code, switches) in views.items():
        worst = max(switches, key=lambda s: s["geometry"])
        ratio = worst["geometry"] / geometry[name]
        target, passed = common.at_most(ratio, TARGET)
        figures.append(Figure(f"{name}: geometry bytes received on an indicator switch (vs the view's geometry)",
                              f"{worst['geometry']:,} B", f"{geometry[name]:,} B", ratio, target, passed))
        biggest_map = max(s["map"] for s in switches)
        figures.append(Figure(f"{name}: the map's whole update on the switch (colours, legend, title)",
                              f"{biggest_map:,} B", f"{geometry[name]:,} B", biggest_map / geometry[name],
                              "none (info)", None))
        everything = max(s["all"] for s in switches)
        notes.append(f"{name} ({code}): geometry requests during the switches: "
                     f"{[s['geometry_urls'] for s in switches]}; everything received on a switch (every panel redraws for the new "
                     f"indicator) up to {everything:,} B in {max(s['requests'] for s in switches)} responses")
    notes.append("bytes on the wire from the DevTools protocol (encodedDataLength: compressed body and headers); "
                 f"the geometry is the view's children.pbf as the map fetches it; demo city, {args.hours:g} h of history")
    report = Report("screen_switch_bytes", "Bytes on an indicator switch vs the geometry", figures, notes,
                    seconds=clock.seconds, quick=args.quick)
    report.publish()
    return report


if __name__ == "__main__":
    main()
