"""50 wall screens polling against 1: database queries per refresh cycle and response time.

    .venv/bin/python bench/screen_wall_clients.py             # 50 vs 1 clients, 6 cycles of 10 s each
    .venv/bin/python bench/screen_wall_clients.py --quick     # 3 cycles, 6 h of history
    .venv/bin/python bench/screen_wall_clients.py --clients 20 --cycles 10 --refresh 30

The app runs as `onescreen.py serve` would (bench/screen_server.py: the same create_app, plus a count of every
statement sent to the database) on the demo city (~6,000 communities) with simulator history. Headless chromium
opens the wall (/wall, else the screen) once and records the callback requests one refresh sends (the panels',
and the wall's look for new alerts). Then N HTTP clients replay them — each its own screen: its own interval count,
its own moment the map painted, the digests of what it already shows, taken from its own responses — every refresh
period, each starting at a random moment of the period as walls switched on at different times do (50 chromiums
would not fit on this machine's 2 cores). The baseline is the same with one client, in the same run.
Figures: database statements per refresh cycle, N clients / 1 (target ≤ 1.1×: the shared response cache answers
the same question once), and the p95 of the clients' response times, N / 1 (target ≤ 2×).
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import headless  # noqa: E402
import screen_traffic  # noqa: E402
from common import Figure, Report, Stopwatch  # noqa: E402

QUERY_TARGET = 1.1
WALL_WATCH = "wall-watch.data"
LATENCY_TARGET = 2.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50, help="concurrent screens (default %(default)s)")
    parser.add_argument("--cycles", type=int, default=6, help="refresh cycles measured (default %(default)s)")
    parser.add_argument("--refresh", type=int, default=10, help="refresh period in seconds (default %(default)s)")
    parser.add_argument("--hours", type=float, default=24, help="simulator history (default %(default)s h)")
    parser.add_argument("--quick", action="store_true", help="a smaller run: 3 cycles, 6 h of history")
    args = parser.parse_args(argv)
    if args.quick:
        args.cycles, args.hours = 3, min(args.hours, 6)
    return args


def capture_wall(server: common.Server, refresh: int) -> tuple[list[dict], str]:
    """The callback requests one refresh of a wall sends, and the page they came from."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = headless.launch_chromium(playwright)
        try:
            for path in ("wall", ""):
                context = headless.new_context(browser)
                page = context.new_page()
                captured = screen_traffic.capture(page)
                page.goto(server.url + path, timeout=60_000)
                page.wait_for_function("document.querySelectorAll('path.leaflet-interactive').length > 0",
                                       timeout=120_000)
                try:
                    templates = screen_traffic.refresh_callbacks(page, captured, refresh, timeout=refresh * 3 + 30)
                    return templates, "/" + path
                except TimeoutError:
                    continue
                finally:
                    context.close()
        finally:
            browser.close()
    raise RuntimeError("no page refreshed: nothing to replay")


def run_clients(server: common.Server, templates: list[dict], clients: int, cycles: int, refresh: int,
                seed: int) -> dict:
    """`clients` screens, each refreshing every `refresh` seconds from a random phase; measured over `cycles`
    whole refresh periods of the server's clock (the periods its answers are cached for), after one period of
    warming up, so that every client is in its steady state and no window edge counts a period twice."""
    rng = random.Random(seed)
    replayers = [screen_traffic.ReplayClient(server.url, templates, painted=1.7e12 + rng.random() * 1e6)
                 for _ in range(clients)]
    offsets = [0.0] + [rng.uniform(0, refresh) for _ in range(clients - 1)]
    errors: list[BaseException] = []
    start = time.time() + 1.0
    window_start = (int((start + refresh) // refresh) + 1) * refresh  # a period boundary after the warm-up
    window_end = window_start + cycles * refresh
    stop = window_end + refresh

    def screen(client: screen_traffic.ReplayClient, offset: float) -> None:
        try:
            cycle = 0
            while start + offset + cycle * refresh < stop:
                wait = start + offset + cycle * refresh - time.time()
                if wait > 0:
                    time.sleep(wait)
                client.refresh()
                cycle += 1
        except BaseException as error:  # noqa: BLE001 - reported after the run
            errors.append(error)

    threads = [threading.Thread(target=screen, args=(client, offset), daemon=True)
               for client, offset in zip(replayers, offsets)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, window_start - time.time()))
    before = screen_traffic.stats(server)
    time.sleep(max(0.0, window_end - time.time()))
    after = screen_traffic.stats(server)
    for thread in threads:
        thread.join(timeout=2 * refresh + 600)
    for client in replayers:
        client.close()
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed; first: {errors[0]!r}")
    window = [record for client in replayers for record in client.records
              if window_start <= record[0] < window_end]
    by_output: dict[str, int] = {}
    for _sent, output, queries, _elapsed, _server in window:
        by_output[output] = by_output.get(output, 0) + queries
    times = [record[3] for record in window]
    server_ms = [record[4] for record in window]
    cache = {key: after["cache"].get(key, 0) - before["cache"].get(key, 0) for key in after["cache"]}
    return {"queries": after["queries"] - before["queries"], "requests": len(times),
            "p95": screen_traffic.percentile(times, 0.95), "median": screen_traffic.percentile(times, 0.5),
            "server_p95": screen_traffic.percentile(server_ms, 0.95), "cache": cache, "by_output": by_output}


def main(argv=None) -> Report:
    args = parse_args(argv)
    clock = Stopwatch()
    folder = common.temp_dir("wall-clients")
    database = common.demo_database(folder, hours=args.hours)
    server = screen_traffic.start_screen_server(common.sqlite_url(database), folder, refresh_seconds=args.refresh)
    try:
        templates, page = capture_wall(server, args.refresh)
        print(f"replaying {len(templates)} callbacks of one refresh of {page}: "
              f"{', '.join(sorted(screen_traffic.output_of(t)[:40] for t in templates))}", file=sys.stderr)
        one = run_clients(server, templates, 1, args.cycles, args.refresh, seed=1)
        many = run_clients(server, templates, args.clients, args.cycles, args.refresh, seed=2)
    finally:
        common.stop_process(server.process)

    # Statements of the requests sent within the window (each response says how many its thread sent).
    per_cycle_one = sum(one["by_output"].values()) / args.cycles
    per_cycle_many = sum(many["by_output"].values()) / args.cycles
    query_ratio = per_cycle_many / max(per_cycle_one, 1e-9)
    # The same, without the wall's look for new alerts (callbacks/wall.py watch_alerts): each wall asks it with
    # its own watermark and clock, so no answer is shared (see the notes).
    watch = [output for output in many["by_output"] if WALL_WATCH in output]
    panels_one = sum(n for o, n in one["by_output"].items() if o not in watch) / args.cycles
    panels_many = sum(n for o, n in many["by_output"].items() if o not in watch) / args.cycles
    panels_ratio = panels_many / max(panels_one, 1e-9)
    p_target, p_passed = common.at_most(panels_ratio, QUERY_TARGET)
    latency_ratio = many["p95"] / one["p95"]
    q_target, q_passed = common.at_most(query_ratio, QUERY_TARGET)
    l_target, l_passed = common.at_most(latency_ratio, LATENCY_TARGET)
    figures = [
        Figure(f"database statements per refresh cycle, {args.clients} wall clients (vs 1)",
               f"{per_cycle_many:.1f}", f"{per_cycle_one:.1f}", query_ratio, q_target, q_passed),
        Figure("… the screen's panels only (without the wall's per-wall look for new alerts)",
               f"{panels_many:.1f}", f"{panels_one:.1f}", panels_ratio, p_target, p_passed),
        Figure(f"p95 response time of the refresh callbacks, {args.clients} wall clients (vs 1)",
               f"{many['p95'] * 1000:.1f} ms", f"{one['p95'] * 1000:.1f} ms", latency_ratio, l_target, l_passed),
        Figure("median response time (info)", f"{many['median'] * 1000:.1f} ms", f"{one['median'] * 1000:.1f} ms",
               many["median"] / one["median"], "none (info)", None),
    ]
    notes = [
        f"{len(templates)} callbacks per refresh, captured from {page} in chromium; measured over {args.cycles} "
        f"whole refresh periods of {args.refresh} s after one of warm-up; {many['requests']} requests from "
        f"{args.clients} clients in the window, {one['requests']} from 1",
        f"all statements the server sent in the window (its own count): {many['queries'] / args.cycles:.1f} per "
        f"period with {args.clients} clients, {one['queries'] / args.cycles:.1f} with 1",
        f"server p95 (Server-Timing) {many['server_p95']:.1f} ms with {args.clients} clients, "
        f"{one['server_p95']:.1f} ms with 1; response cache with {args.clients}: {many['cache']}, with 1: "
        f"{one['cache']}",
        "statements per cycle by callback, " + ", ".join(
            f"{output.strip('.')[:28]}: {many['by_output'].get(output, 0) / args.cycles:.1f} vs "
            f"{one['by_output'].get(output, 0) / args.cycles:.1f}" for output in sorted(many["by_output"])),
        f"statements counted by a SQLAlchemy before_cursor_execute listener in the server process; demo city, "
        f"{args.hours:g} h of history; the response cache in memory (one process)",
    ]
    report = Report("screen_wall_clients", f"{args.clients} wall clients polling vs 1", figures, notes,
                    seconds=clock.seconds, quick=args.quick)
    report.publish()
    return report


if __name__ == "__main__":
    main()
