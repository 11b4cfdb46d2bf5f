"""First screen: time until the city's district polygons are painted, against a bare Dash page, in chromium.

    .venv/bin/python bench/first_screen.py            # 15 samples each after one warm-up
    .venv/bin/python bench/first_screen.py --quick    # 3 samples each, 6 h of history

The real app is started as `make run` would start it, on a prepared database (the demo city, ~6,000
communities, with 24 h of simulator history ingested through the connector runner):
`onescreen.py serve --skip-setup --no-scheduler --port P`. The baseline is a bare Dash app with one div
(bench/bare_dash.py), served the same way. For scale, a third page: a plain dash-leaflet map drawing the same 16
district polygons the screen sends (`bare_dash.py --map`), i.e. what any Dash page showing this map costs before
OneScreen adds its panels. All run as subprocesses while headless chromium (Debian's, through playwright) opens
each in a NEW browser context per sample, so the HTTP cache is cold every time.

Time is measured in the page: an init script watches the DOM and, once the condition holds, records
performance.now() (milliseconds since navigation start) in the next animation frame. The app's condition is
16 `path.leaflet-interactive` elements (the demo city's districts); the bare page's is its div. Samples
alternate between the two; the first of each is a warm-up (server-side caches) and is not counted.
Figure: median app / median bare (target ≤ 1.5×). Also: bytes received until the network is quiet (info).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import headless  # noqa: E402
import common  # noqa: E402
from common import Figure, Report, Stopwatch  # noqa: E402
from layouts.ids import MapIds  # noqa: E402  (common puts the project on the path)

TARGET = 1.5


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=15, help="timed page loads of each (default %(default)s)")
    parser.add_argument("--hours", type=float, default=24,
                        help="simulator history in the app's database, in hours (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a smaller run: 3 samples, 6 h of history")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.hours = 3, min(args.hours, 6)
    return args


def load_once(browser, url: str, selector: str, count: int) -> tuple[float, int]:
    """One cold page load: (ms from navigation start to painted, bytes received until the network is quiet)."""
    context = headless.new_context(browser)
    try:
        page = context.new_page()
        tracker = headless.NetworkTracker(page)
        page.add_init_script(headless.paint_probe(selector, count))
        page.goto(url, wait_until="commit", timeout=60_000)
        page.wait_for_function("window.__benchPainted !== undefined", timeout=120_000, polling=50)
        painted = float(page.evaluate("window.__benchPainted"))
        tracker.wait_quiet(page, quiet_ms=1000)
        return painted, tracker.bytes_received()
    finally:
        context.close()


def first_districts(app_url: str) -> dict:
    """The district polygons exactly as the screen sends them with its layout (the map's first GeoJSON)."""
    layout = json.loads(urllib.request.urlopen(app_url + "_dash-layout", timeout=60).read())
    found = []

    def walk(node):
        if isinstance(node, dict):
            props = node.get("props") or {}
            if node.get("type") == "GeoJSON" and props.get("id") == MapIds.UNITS and isinstance(props.get("data"),
                                                                                          dict):
                found.append(props["data"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(layout)
    if not found:
        raise RuntimeError("the screen's layout carries no first map (see callbacks/map.py first_map)")
    return found[0]


def main(argv=None) -> Report:
    args = parse_args(argv)
    clock = Stopwatch()
    from playwright.sync_api import sync_playwright
    from tqdm import tqdm

    folder = common.temp_dir("first-screen")
    database = common.demo_database(folder, hours=args.hours)
    app = common.start_app_server(common.sqlite_url(database), folder)
    bare = common.start_bare_server(folder)
    districts = folder / "districts.geojson"
    districts.write_text(json.dumps(first_districts(app.url)), encoding="utf-8")
    floor = common.start_bare_server(folder, map_geojson=districts)
    targets = {
        "app": (app.url, "path.leaflet-interactive", common.DEMO_DISTRICTS),
        "bare": (bare.url, "#bench-ready", 1),
        "map floor": (floor.url, "path.leaflet-interactive", common.DEMO_DISTRICTS),
    }
    times = {name: [] for name in targets}
    sizes = {name: [] for name in targets}
    with sync_playwright() as playwright:
        browser = headless.launch_chromium(playwright)
        try:
            for name, target in targets.items():
                load_once(browser, *target)  # warm-up: first request of each server
            order = list(targets)
            for sample in tqdm(range(args.samples), desc="page loads", unit="pair", file=sys.stderr, leave=False):
                for name in (order if sample % 2 == 0 else order[::-1]):
                    painted, received = load_once(browser, *targets[name])
                    times[name].append(painted)
                    sizes[name].append(received)
        finally:
            browser.close()
    common.stop_process(app.process)
    common.stop_process(bare.process)
    common.stop_process(floor.process)

    app_ms, bare_ms = common.median(times["app"]), common.median(times["bare"])
    ratio = app_ms / bare_ms
    target, passed = common.at_most(ratio, TARGET)
    floor_ms = common.median(times["map floor"])
    app_kb, bare_kb = common.median(sizes["app"]) / 1024, common.median(sizes["bare"]) / 1024
    figures = [
        Figure("first screen: navigation start → 16 district polygons painted (vs bare Dash div)",
               f"{app_ms:.0f} ms", f"{bare_ms:.0f} ms", ratio, target, passed),
        Figure("for scale: a plain dash-leaflet page drawing the same 16 polygons, nothing else (vs bare Dash div)",
               f"{floor_ms:.0f} ms", f"{bare_ms:.0f} ms", floor_ms / bare_ms, "none (info)", None),
        Figure("first screen vs that plain map page (what OneScreen's panels, styles and callbacks add)",
               f"{app_ms:.0f} ms", f"{floor_ms:.0f} ms", app_ms / floor_ms, "none (info)", None),
        Figure("bytes received for the first screen (until network quiet)",
               f"{app_kb:,.0f} KiB", f"{bare_kb:,.0f} KiB", app_kb / bare_kb, "none (info)", None),
    ]
    notes = [
        f"median of {args.samples} cold-cache page loads each (new browser context per load, alternating, after "
        f"one warm-up each); app samples {', '.join(f'{t:.0f}' for t in times['app'])} ms; bare samples "
        f"{', '.join(f'{t:.0f}' for t in times['bare'])} ms; map floor samples "
        f"{', '.join(f'{t:.0f}' for t in times['map floor'])} ms",
        f"app database: demo city with {args.hours:g} h of simulator history; server `onescreen.py serve "
        "--skip-setup --no-scheduler`; headless Debian chromium, 1920×1080",
        "bytes: encoded response bodies + headers of every request finished until no request was in flight for 1 s",
    ]
    report = Report("first_screen", "First screen time (app vs bare Dash page)", figures, notes,
                    seconds=clock.seconds, quick=args.quick)
    report.publish()
    return report


if __name__ == "__main__":
    main()
