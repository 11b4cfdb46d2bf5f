"""Run every benchmark, each in its own subprocess (so memory and caches start clean), and print one table.

    .venv/bin/python bench/run_all.py             # the full run (`make bench`), about 25 minutes (a 10-min soak)
    .venv/bin/python bench/run_all.py --quick     # smaller runs of each, about 15 minutes (a 7-min soak)
    .venv/bin/python bench/screen_soak.py         # the issue's one-hour soak, on its own
    .venv/bin/python bench/run_all.py ingest first_screen

Each figure is a ratio against a baseline measured in the same run, at city scale (~6,000 communities).
The combined table goes to stdout and to bench/results/summary.md; each benchmark also writes its own
bench/results/<name>.md. The demo databases are built once per run in a temporary folder and shared.
Exit status: 0 when every figure with a target passes, 1 when one fails, 2 when a benchmark crashed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

BENCHMARKS = {
    "ingest": "ingest through the connector runner vs raw executemany",
    "connector_types": "records/s through each connector type vs raw executemany, and peak memory as the source grows 10×",
    "latest_values": "latest value of every community, 28 d vs 7 d of history",
    "first_screen": "first screen in chromium vs a bare Dash page",
    "server_memory": "server peak RSS under a browser's load vs a bare Dash server",
    "alert_evaluation": "evaluating every alert rule after an ingest cycle vs the ingest itself",
    "screen_switch_bytes": "bytes on an indicator switch vs the geometry of the view, in chromium",
    "screen_drill": "the map's drill-down callback, server time p95 vs a trivial callback",
    "screen_wall_clients": "50 wall clients polling vs 1: database statements per cycle and p95 response",
    "screen_soak": "a wall client's browser heap and server RSS at the end vs after 5 minutes",
}
# Arguments a benchmark gets in every run_all run (the soak's full hour is run on its own, see its docstring).
EXTRA_ARGS = {"screen_soak": ["--minutes", "10"]}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="benchmarks to run, in order (default: all): " + ", ".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark (smaller runs)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    names = args.names or list(BENCHMARKS)
    cache = common.temp_dir("shared")
    env = {common.CACHE_ENV: str(cache)}
    rows, sections, outcomes = [], [], {}
    started = time.perf_counter()
    for position, name in enumerate(names, 1):
        print(f"\n[{position}/{len(names)}] {name}: {BENCHMARKS[name]}", flush=True)
        result_path = common.RESULTS_DIR / f"{name}.json"
        result_path.unlink(missing_ok=True)
        clock = time.perf_counter()
        command = [common.PYTHON, str(common.BENCH_DIR / f"{name}.py"), *EXTRA_ARGS.get(name, []),
                   *(["--quick"] if args.quick else [])]
        status = common.run_visible(command, env=env)
        seconds = time.perf_counter() - clock
        if status != 0 or not result_path.exists():
            outcomes[name] = "crashed"
            rows.append([name, f"crashed (exit {status})", "", "", "", "", "FAIL", f"{seconds:.0f} s"])
            continue
        report = json.loads(result_path.read_text(encoding="utf-8"))
        verdicts = [figure["verdict"] for figure in report["figures"]]
        outcomes[name] = "fail" if "FAIL" in verdicts else "pass"
        for figure in report["figures"]:
            ratio = "—" if figure["ratio"] is None else f"{figure['ratio']:.2f}×"
            rows.append([name, figure["figure"], figure["measured"], figure["baseline"], ratio, figure["target"],
                         figure["verdict"], f"{seconds:.0f} s"])
        sections.append((common.RESULTS_DIR / f"{name}.md").read_text(encoding="utf-8"))

    total = time.perf_counter() - started
    header = ["benchmark", "figure", "measured", "baseline", "ratio", "target", "result", "took"]
    print("\n== OneScreen benchmarks ==")
    print(common.text_table(rows, header))
    print(f"total {total / 60:.1f} min ({'quick' if args.quick else 'full'} run)")
    markdown = "\n".join([
        "## Benchmarks", "",
        f"`make bench` ({'quick' if args.quick else 'full'} run, {total / 60:.1f} min on {os.cpu_count()} CPU(s)); "
        "every figure is a ratio against a baseline measured in the same run, at city scale.", "",
        common.markdown_table(rows, header), "", *sections])
    common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    summary = common.RESULTS_DIR / "summary.md"
    summary.write_text(markdown, encoding="utf-8")
    print(f"written to {summary.relative_to(common.ROOT)}")
    if "crashed" in outcomes.values():
        return 2
    return 1 if "fail" in outcomes.values() else 0


if __name__ == "__main__":
    sys.exit(main())
