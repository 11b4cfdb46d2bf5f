"""Drill-down: the map's callback answering a click into a unit, server time p95, against a trivial callback.

    .venv/bin/python bench/screen_drill.py             # every district, 48 streets, 16 communities
    .venv/bin/python bench/screen_drill.py --quick     # 16 districts, 16 streets, 6 h of history

The app runs as `onescreen.py serve` would (bench/screen_server.py: the same create_app, plus one trivial callback
that echoes its input, and a `Server-Timing` header with each response's server time). Headless chromium opens the
screen and clicks into a district once, to record the request the map's callback (`show_map`) receives on a
drill-down. That request is then sent for other units — each district from the city, streets from their district,
communities from their street, each unit once, so none is answered from the response cache — alternating with the
trivial callback over the same HTTP connection. Figure: p95 of show_map's server time / p95 of the trivial
callback's (target ≤ 3×). Also reported: against a callback that only opens the viewer's request (session, scope,
unit tree: what every callback of the screen does before anything else), and the medians.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import headless  # noqa: E402
import screen_traffic  # noqa: E402
from common import Figure, Report, Stopwatch  # noqa: E402

TARGET = 3.0


def trivial_request(name: str) -> dict:
    return {"output": f"{name}.children", "outputs": {"id": name, "property": "children"},
            "inputs": [{"id": name, "property": "n_clicks", "value": 1}], "changedPropIds": [f"{name}.n_clicks"],
            "state": []}


TRIVIAL = trivial_request("bench-echo")          # echoes its input: Dash's own cost
AUTHORIZING = trivial_request("bench-auth")      # opens the viewer's request (session, scope), as every callback must


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streets", type=int, default=48, help="streets drilled into (default %(default)s)")
    parser.add_argument("--communities", type=int, default=16, help="communities selected (default %(default)s)")
    parser.add_argument("--hours", type=float, default=24, help="simulator history (default %(default)s h)")
    parser.add_argument("--quick", action="store_true", help="a smaller run: 16 streets, no community, 6 h")
    args = parser.parse_args(argv)
    if args.quick:
        args.streets, args.communities, args.hours = 16, 0, min(args.hours, 6)
    return args


def drill_request(server: common.Server) -> dict:
    """The request show_map receives when a district is clicked on the map."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = headless.launch_chromium(playwright)
        try:
            page = headless.new_context(browser).new_page()
            captured = screen_traffic.capture(page)
            page.goto(server.url, timeout=60_000)
            page.wait_for_function(f"document.querySelectorAll('path.leaflet-interactive').length >= "
                                   f"{common.DEMO_DISTRICTS}", timeout=120_000)
            page.wait_for_timeout(1500)
            from server_memory import POINT_INSIDE

            point = page.evaluate(POINT_INSIDE, 3)
            page.mouse.click(*point)
            page.wait_for_function("document.querySelectorAll('.breadcrumb [data-code]').length === 2",
                                   timeout=60_000)
            page.wait_for_timeout(1000)
            return captured.last_for("map-units.url")
        finally:
            browser.close()


def targets(database: Path, streets: int, communities: int) -> list[tuple[str, str, str]]:
    """(unit code, the code of the unit whose children the map showed before, level) for each drill."""
    connection = sqlite3.connect(database)
    try:
        rows = connection.execute("SELECT u.code, p.code, u.level FROM units u JOIN units p ON p.id = u.parent_id "
                                  "ORDER BY u.level, u.code").fetchall()
    finally:
        connection.close()
    by_level: dict[int, list] = {}
    for code, parent, level in rows:
        by_level.setdefault(level, []).append((code, parent, {1: "district", 2: "street", 3: "community"}[level]))

    def spread(items, count):
        step = max(1, len(items) // max(1, count))
        return items[::step][:count]

    return by_level[1] + spread(by_level[2], streets) + spread(by_level.get(3, []), communities)


def with_unit(template: dict, code: str, shown: str) -> dict:
    """The drill request for `code`, sent by a map that showed the children of `shown`."""
    body = json.loads(json.dumps(template))
    for item in [*(body.get("inputs") or []), *(body.get("state") or [])]:
        if item.get("id") == "selection" and item.get("property") == "data":
            item["value"] = {**(item.get("value") or {}), "unit": code}
        elif item.get("id") == "map-units" and item.get("property") == "url":
            item["value"] = f"/geo/{shown}/children.pbf"
        elif item.get("id") == "map-labels" and item.get("property") == "hideout":
            item["value"] = None
    body["changedPropIds"] = ["selection.data"]
    return body


def main(argv=None) -> Report:
    args = parse_args(argv)
    clock = Stopwatch()
    folder = common.temp_dir("drill")
    database = common.demo_database(folder, hours=args.hours)
    server = screen_traffic.start_screen_server(common.sqlite_url(database), folder, trivial=True)
    drills, trivial, authorizing, by_level, statements = [], [], [], {}, []
    try:
        template = drill_request(server)
        client = screen_traffic.ReplayClient(server.url, [], painted=0.0)
        for _ in range(5):  # warm-up: connection, code paths
            client.post(TRIVIAL)
            client.post(AUTHORIZING)
        client.server_ms.clear()
        for code, parent, level in targets(database, args.streets, args.communities):
            # A community's map is its street's: drilled from the street it stays; from the district it loads.
            shown = parent
            status, data, _ = client.post(with_unit(template, code, shown))
            if status != 200:
                raise RuntimeError(f"show_map for {code} answered {status}: {data[:300]!r}")
            drills.append(client.server_ms[-1])
            statements.append(client.records[-1][2])
            by_level.setdefault(level, []).append(client.server_ms[-1])
            client.post(TRIVIAL)
            trivial.append(client.server_ms[-1])
            client.post(AUTHORIZING)
            authorizing.append(client.server_ms[-1])
        client.close()
    finally:
        common.stop_process(server.process)

    drill_p95, trivial_p95 = screen_traffic.percentile(drills, 0.95), screen_traffic.percentile(trivial, 0.95)
    ratio = drill_p95 / trivial_p95
    target, passed = common.at_most(ratio, TARGET)
    auth_p95 = screen_traffic.percentile(authorizing, 0.95)
    auth_ratio = drill_p95 / auth_p95
    figures = [
        Figure(f"drill-down: the map's callback (show_map), server time p95 over {len(drills)} units (vs a trivial "
               "callback)", f"{drill_p95:.1f} ms", f"{trivial_p95:.1f} ms", ratio, target, passed),
        Figure("… vs a callback doing only what every callback must (open the viewer's session and scope)",
               f"{drill_p95:.1f} ms", f"{auth_p95:.1f} ms", auth_ratio, "none (info)", None),
        Figure("… median (info)", f"{screen_traffic.percentile(drills, 0.5):.1f} ms",
               f"{screen_traffic.percentile(trivial, 0.5):.1f} ms",
               screen_traffic.percentile(drills, 0.5) / screen_traffic.percentile(trivial, 0.5), "none (info)", None),
    ]
    notes = [
        "p95 by level drilled into: " + ", ".join(
            f"{level} {screen_traffic.percentile(times, 0.95):.1f} ms ({len(times)})" for level, times in by_level.items()),
        f"database statements per drill: none in {statements.count(0)} of {len(statements)} drills, "
        f"{sum(statements)} in all (what a drill reads is kept once per data version and viewer's scope)",
        "server time: from the request's arrival in Flask to its response (bench/screen_server.py Server-Timing), "
        "each unit drilled once (never answered from the response cache); the trivial callback echoes its input",
        f"demo city (~6,000 communities), {args.hours:g} h of simulator history",
    ]
    report = Report("screen_drill", "Drill-down callback vs a trivial callback (server time)", figures, notes,
                    seconds=clock.seconds, quick=args.quick)
    report.publish()
    return report


if __name__ == "__main__":
    main()
