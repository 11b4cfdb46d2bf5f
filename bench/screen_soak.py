"""Soak: one wall client for an hour; browser heap and server memory at the end against after the first 5 minutes.

    .venv/bin/python bench/screen_soak.py                   # 60 minutes (the issue's soak)
    .venv/bin/python bench/screen_soak.py --minutes 10      # a short run
    .venv/bin/python bench/screen_soak.py --quick           # 7 minutes, 6 h of history

The app runs as `make run` runs it — the connector scheduler in the web process, so the simulator delivers new data
every 5 minutes and the wall redraws what changed (bench/screen_server.py --scheduler) — on the demo city (~6,000
communities) with simulator history. Headless chromium shows the wall (/wall, else the screen) at 1920×1080 with
the deployment's refresh period (default 30 s). Memory is read every 15 s: the page's JavaScript heap after a
garbage collection (DevTools protocol: HeapProfiler.collectGarbage, then Performance.getMetrics JSHeapUsedSize),
and the server's RSS (psutil, the process and its children). Figures, for each (target ≤ 1.1×): the median of the
readings over the last playlist cycle / the median over the cycle after the first `--baseline` minutes (default 5).
A cycle (the wall's dwell × its entries, data/wall.yaml: 6 min) shows every view once, so both ends are measured
over the same views: the page's heap follows what it shows (a district's streets are more polygons than the city's
districts), and a window of one minute compares whichever views happen to be on screen then. Shorter soaks use
windows of half of what follows the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import headless  # noqa: E402
import screen_traffic  # noqa: E402
from common import Figure, Report, Stopwatch  # noqa: E402
from server_memory import RssSampler  # noqa: E402

TARGET = 1.1
MB = 1024 * 1024
READ_EVERY = 15.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=60, help="length of the soak (default %(default)s)")
    parser.add_argument("--baseline", type=float, default=5,
                        help="minutes after which the baseline is read (default %(default)s)")
    parser.add_argument("--refresh", type=int, default=30, help="refresh period, seconds (default %(default)s)")
    parser.add_argument("--hours", type=float, default=24, help="simulator history (default %(default)s h)")
    parser.add_argument("--no-scheduler", action="store_true", help="no new data during the soak")
    parser.add_argument("--quick", action="store_true", help="7 minutes, 6 h of history")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.hours = min(args.minutes, 7), min(args.hours, 6)
    if args.minutes < args.baseline + 2:
        parser.error(f"--minutes must be at least --baseline + 2 ({args.baseline + 2:g})")
    return args


def js_heap(cdp) -> int:
    cdp.send("HeapProfiler.collectGarbage")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return int(metrics["JSHeapUsedSize"])


def window(readings: list[tuple[float, int]], start: float, end: float) -> float:
    values = [value for at, value in readings if start <= at < end]
    if not values:
        raise RuntimeError(f"no reading between {start:.0f} s and {end:.0f} s")
    return float(statistics.median(values))


def playlist_cycle_seconds() -> float:
    """Seconds the wall takes to show every entry of its playlist once (the deployment's data/wall.yaml)."""
    from cityops.catalog import load_catalog
    from cityops.playlist import load_wall_config
    from cityops.settings import Settings

    settings = Settings.from_env()
    config = load_wall_config(settings.wall_path, load_catalog(settings.catalog_path))
    return float(config.dwell_seconds * len(config.playlist))


def comparison_windows(minutes: float, baseline: float, cycle_seconds: float) -> tuple[tuple[float, float], ...]:
    """(start, end) in seconds of the baseline window and of the final window: one playlist cycle each, or half
    of what follows the baseline when the soak is too short for two cycles."""
    length = min(cycle_seconds, (minutes - baseline) * 60 / 2)
    base_start, end = baseline * 60, minutes * 60
    return (base_start, base_start + length), (end - length, end + 1)


def main(argv=None) -> Report:
    args = parse_args(argv)
    clock = Stopwatch()
    from playwright.sync_api import sync_playwright

    folder = common.temp_dir("soak")
    database = common.demo_database(folder, hours=args.hours)
    server = screen_traffic.start_screen_server(common.sqlite_url(database), folder, refresh_seconds=args.refresh,
                                                scheduler=not args.no_scheduler)
    heap: list[tuple[float, int]] = []
    rss: list[tuple[float, int]] = []
    errors: list[str] = []
    sampler = RssSampler(server.process.pid, interval=READ_EVERY).start()
    page_path = "wall"
    try:
        with sync_playwright() as playwright:
            browser = headless.launch_chromium(playwright)
            try:
                page = headless.new_context(browser).new_page()
                page.on("console", lambda m: m.type == "error" and errors.append(m.text[:160]))
                page.on("pageerror", lambda e: errors.append(f"page error: {str(e)[:160]}"))
                cdp = page.context.new_cdp_session(page)
                cdp.send("Performance.enable")
                response = page.goto(server.url + page_path, timeout=60_000)
                if response is None or response.status != 200:
                    page_path = ""
                    page.goto(server.url, timeout=60_000)
                page.wait_for_function("document.querySelectorAll('path.leaflet-interactive').length > 0",
                                       timeout=120_000)
                started = time.monotonic()
                end = started + args.minutes * 60
                next_read = started
                while time.monotonic() < end:
                    page.wait_for_timeout(max(0, int((next_read - time.monotonic()) * 1000)))
                    at = time.monotonic() - started
                    heap.append((at, js_heap(cdp)))
                    rss.append((at, sampler.now()))
                    next_read += READ_EVERY
                    print(f"  {at / 60:5.1f} min: heap {heap[-1][1] / MB:6.1f} MB, server RSS "
                          f"{rss[-1][1] / MB:6.1f} MB", file=sys.stderr, flush=True)
                alive = page.locator("path.leaflet-interactive").count()
            finally:
                browser.close()
    finally:
        sampler.stop()
        common.stop_process(server.process)

    cycle = playlist_cycle_seconds()
    (base_start, base_end), (last_start, last_end) = comparison_windows(args.minutes, args.baseline, cycle)
    figures = []
    for name, readings in (("browser JS heap (after GC)", heap), ("server RSS", rss)):
        baseline, final = window(readings, base_start, base_end), window(readings, last_start, last_end)
        ratio = final / baseline
        target, passed = common.at_most(ratio, TARGET)
        figures.append(Figure(f"{name} at {args.minutes:g} min (vs after {args.baseline:g} min)",
                              f"{final / MB:.1f} MB", f"{baseline / MB:.1f} MB", ratio, target, passed))
    peak_heap, peak_rss = max(v for _, v in heap), max(v for _, v in rss)
    notes = [
        f"one wall client (/{page_path}) in headless chromium at 1920×1080 for {args.minutes:g} min, refresh every "
        f"{args.refresh} s, {'the scheduler delivering simulator data every 5 min' if not args.no_scheduler else 'no new data'}; "
        f"{len(heap)} readings, every {READ_EVERY:g} s; medians over {base_start / 60:g}–{base_end / 60:g} min and "
        f"over {last_start / 60:g}–{min(last_end, args.minutes * 60) / 60:g} min (the playlist cycle is "
        f"{cycle / 60:g} min)",
        "every 5 min (heap / RSS, MB): " + ", ".join(
            f"{at / 60:.0f}: {h / MB:.1f} / {r / MB:.0f}" for (at, h), (_, r) in zip(heap, rss)
            if int(at) % 300 < READ_EVERY),
        f"peaks: heap {peak_heap / MB:.1f} MB, server RSS {peak_rss / MB:.1f} MB; polygons on screen at the end: "
        f"{alive}; console errors during the soak: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""),
        f"demo city, {args.hours:g} h of history",
    ]
    report = Report("screen_soak", f"Soak of a wall client ({args.minutes:g} min)", figures, notes,
                    seconds=clock.seconds, quick=args.quick)
    report.publish()
    return report


if __name__ == "__main__":
    main()
