"""Server memory: peak RSS of the real app at demo scale while a browser uses it, against a bare Dash server.

    .venv/bin/python bench/server_memory.py            # 2 page loads × 3 district round-trips
    .venv/bin/python bench/server_memory.py --quick    # 1 page load × 2 round-trips, 6 h of history

The app is `onescreen.py serve --skip-setup --no-scheduler` on the demo city (~6,000 communities) with 24 h of
simulator history; the baseline is the bare Dash app of bench/bare_dash.py, served the same way. Each server
runs alone, in its own subprocess, while headless chromium loads the screen and, on the app, clicks into a
district on the map and back to the city through the breadcrumb a few times (on the bare page it clicks the
div the same number of times). psutil samples the RSS of the server process and all its children every
100 ms from start-up until the load is over. Figure: peak RSS and the ratio app / bare. There is no target in
the issue for this one: it is reported for information and to catch regressions.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import headless  # noqa: E402
import common  # noqa: E402
from common import Figure, Report, Stopwatch  # noqa: E402

MB = 1024 * 1024

# A point inside the n-th polygon that a click would really land on (polygons can be concave, and labels or
# neighbours can cover their bounding box's centre).
POINT_INSIDE = """(index) => {
  const el = document.querySelectorAll('path.leaflet-interactive')[index];
  if (!el) return null;
  const box = el.getBoundingClientRect();
  for (let step = 0; step <= 8; step++) {
    for (const [fx, fy] of [[0.5, 0.5], [0.5 - step / 20, 0.5], [0.5 + step / 20, 0.5], [0.5, 0.5 - step / 20],
                            [0.5, 0.5 + step / 20], [0.5 - step / 20, 0.5 - step / 20], [0.5 + step / 20, 0.5 + step / 20]]) {
      const x = box.left + box.width * fx, y = box.top + box.height * fy;
      if (x < 0 || y < 0 || x >= innerWidth || y >= innerHeight) continue;
      if (document.elementFromPoint(x, y) === el) return [x, y];
    }
  }
  return null;
}"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", type=int, default=2, help="page loads per server (default %(default)s)")
    parser.add_argument("--clicks", type=int, default=3,
                        help="district round-trips per page load (default %(default)s)")
    parser.add_argument("--hours", type=float, default=24,
                        help="simulator history in the app's database, in hours (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a smaller run: 1 load × 2 round-trips, 6 h of history")
    args = parser.parse_args(argv)
    if args.quick:
        args.loads, args.clicks, args.hours = 1, 2, min(args.hours, 6)
    return args


class RssSampler:
    """Samples the RSS of a process and all its descendants every `interval` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 0.1):
        import psutil

        self.process = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        import psutil

        total = 0
        for process in [self.process, *self.process.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return total

    def _run(self):
        import psutil

        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), self._rss()))
            except psutil.NoSuchProcess:
                return
            self._stop.wait(self.interval)

    def start(self) -> "RssSampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def now(self) -> int:
        return self._rss()

    @property
    def peak(self) -> int:
        return max(rss for _, rss in self.samples)


def drive_app(browser, url: str, loads: int, clicks: int) -> int:
    """Load the screen and go into a district and back `clicks` times, `loads` times; returns clicks made."""
    made = 0
    for load in range(loads):
        context = headless.new_context(browser)
        try:
            page = context.new_page()
            tracker = headless.NetworkTracker(page)
            page.goto(url, timeout=60_000)
            page.wait_for_function(f"document.querySelectorAll('path.leaflet-interactive').length >= "
                                   f"{common.DEMO_DISTRICTS}", timeout=120_000)
            tracker.wait_quiet(page)
            city = page.locator(".breadcrumb .crumb-current").get_attribute("data-code")
            for click in range(clicks):
                point = page.evaluate(POINT_INSIDE, (load * clicks + click) * 5 % common.DEMO_DISTRICTS)
                if point is None:
                    raise RuntimeError("found no clickable point inside a district polygon")
                page.mouse.click(*point)
                page.wait_for_function("document.querySelectorAll('.breadcrumb [data-code]').length === 2",
                                       timeout=60_000)
                page.wait_for_function("document.querySelectorAll('path.leaflet-interactive').length > 0")
                tracker.wait_quiet(page)
                page.locator(f'.breadcrumb button[data-code="{city}"]').click()
                page.wait_for_function("document.querySelectorAll('.breadcrumb [data-code]').length === 1",
                                       timeout=60_000)
                page.wait_for_function(f"document.querySelectorAll('path.leaflet-interactive').length >= "
                                       f"{common.DEMO_DISTRICTS}", timeout=60_000)
                tracker.wait_quiet(page)
                made += 1
        finally:
            context.close()
    return made


def drive_bare(browser, url: str, loads: int, clicks: int) -> int:
    """The same page loads and the same number of clicks (on the only div) on the bare page."""
    made = 0
    for _load in range(loads):
        context = headless.new_context(browser)
        try:
            page = context.new_page()
            tracker = headless.NetworkTracker(page)
            page.goto(url, timeout=60_000)
            page.locator("#bench-ready").wait_for()
            tracker.wait_quiet(page)
            for _click in range(clicks):
                for _ in range(2):  # there and back
                    page.locator("#bench-ready").click()
                    tracker.wait_quiet(page)
                made += 1
        finally:
            context.close()
    return made


def measure(kind: str, start, drive, browser, args, folder: Path) -> dict:
    """Start one server, sample its memory through start-up and the load, stop it."""
    server = start()
    sampler = RssSampler(server.process.pid).start()
    try:
        time.sleep(1.0)
        idle = sampler.now()
        started = time.monotonic()
        clicks = drive(browser, server.url, args.loads, args.clicks)
        seconds = time.monotonic() - started
        time.sleep(0.5)
        after = sampler.now()
    finally:
        sampler.stop()
        common.stop_process(server.process)
    print(f"{kind}: idle {idle / MB:.0f} MB, peak {sampler.peak / MB:.0f} MB, after load {after / MB:.0f} MB "
          f"({clicks} round-trips in {seconds:.0f} s, {len(sampler.samples)} samples)", file=sys.stderr)
    return {"idle": idle, "peak": sampler.peak, "after": after, "clicks": clicks, "seconds": seconds,
            "samples": len(sampler.samples)}


def main(argv=None) -> Report:
    args = parse_args(argv)
    clock = Stopwatch()
    from playwright.sync_api import sync_playwright

    folder = common.temp_dir("memory")
    database = common.demo_database(folder, hours=args.hours)
    url = common.sqlite_url(database)
    results = {}
    with sync_playwright() as playwright:
        browser = headless.launch_chromium(playwright)
        try:
            results["bare"] = measure("bare", lambda: common.start_bare_server(folder), drive_bare, browser, args,
                                      folder)
            results["app"] = measure("app", lambda: common.start_app_server(url, folder), drive_app, browser, args,
                                     folder)
        finally:
            browser.close()

    app, bare = results["app"], results["bare"]
    figures = [
        Figure(f"server peak RSS under load ({args.loads} loads × {args.clicks} district round-trips)",
               f"{app['peak'] / MB:.0f} MB", f"{bare['peak'] / MB:.0f} MB", app["peak"] / bare["peak"],
               "none (info)", None),
        Figure("server RSS after start-up, before any page load",
               f"{app['idle'] / MB:.0f} MB", f"{bare['idle'] / MB:.0f} MB", app["idle"] / bare["idle"],
               "none (info)", None),
        Figure("server RSS growth from start-up to peak",
               f"{(app['peak'] - app['idle']) / MB:.0f} MB", f"{(bare['peak'] - bare['idle']) / MB:.0f} MB",
               (app["peak"] - app["idle"]) / max(1, bare["peak"] - bare["idle"]), "none (info)", None),
    ]
    notes = [
        "no target in the issue: reported for information and to catch regressions",
        f"RSS of the server process and its children, sampled every 100 ms by psutil ({app['samples']} samples "
        f"app, {bare['samples']} bare); app database: demo city with {args.hours:g} h of simulator history",
        f"load: {args.loads} cold page loads (new browser context each), each followed by {args.clicks} clicks "
        "into a district on the map and back through the breadcrumb (bare page: as many loads and clicks on its div); "
        f"app load took {app['seconds']:.0f} s, bare {bare['seconds']:.0f} s",
    ]
    report = Report("server_memory", "Server memory (app vs bare Dash server)", figures, notes,
                    seconds=clock.seconds, quick=args.quick)
    report.publish()
    return report


if __name__ == "__main__":
    main()
