"""The real app, served as `onescreen.py serve` serves it, with what the screen benchmarks need to see inside it.

    DATABASE_URL=sqlite:///… .venv/bin/python bench/screen_server.py --port 8123 [--trivial] [--scheduler]

Added for the benchmarks only (the app itself is create_app's, unchanged):
- every statement sent to the database is counted by a SQLAlchemy event listener (`before_cursor_execute`);
- GET /bench/stats answers {"queries": n, "rss": bytes, "cache": {hits, computed, uncacheable}};
- each response carries `Server-Timing: app;dur=<ms>`, the time from the request's arrival to its response, and
  `X-Bench-Queries`, the statements its thread sent meanwhile;
- with --trivial, two more callbacks: one that only echoes its input (bench-echo.children ← bench-echo.n_clicks), the
  smallest thing Dash can answer; and one that does only what every callback of the screen must (bench-auth.children
  ← bench-auth.n_clicks): open the viewer's request (session, scope) and answer the scope's root. The baselines for
  the drill-down's server time;
- with --scheduler, the connector scheduler runs in the process, as `make run` runs it.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--trivial", action="store_true", help="register the trivial echo callback")
    parser.add_argument("--scheduler", action="store_true", help="run the connector scheduler in this process")
    args = parser.parse_args()

    import psutil
    from dash import Input, Output
    from flask import g, jsonify
    from sqlalchemy import event

    from app import create_app
    from callbacks.cached_callbacks import EXTENSION
    from cityops.db import engine_for
    from cityops.settings import Settings

    settings = Settings.from_env()
    handle = None
    if args.scheduler:
        from connectors.scheduler import start_scheduler

        handle = start_scheduler(settings, first_run_delay=5)
    app = create_app(settings)
    if args.trivial:
        from callbacks.context import viewer_request

        def authorized(_clicks):
            with viewer_request() as request:
                return request.scope.root_code

        app.callback(Output("bench-echo", "children"), Input("bench-echo", "n_clicks"))(lambda clicks: clicks)
        app.callback(Output("bench-auth", "children"), Input("bench-auth", "n_clicks"))(authorized)

    counted = {"queries": 0}
    lock = threading.Lock()
    per_thread = threading.local()

    @event.listens_for(engine_for(settings.database_url), "before_cursor_execute")
    def _count(*_args):
        with lock:
            counted["queries"] += 1
        per_thread.queries = getattr(per_thread, "queries", 0) + 1

    server = app.server

    @server.before_request
    def _started():
        g.bench_started = time.perf_counter()
        per_thread.queries = 0

    @server.after_request
    def _timed(response):
        started = g.get("bench_started")
        if started is not None:
            response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.3f}"
            response.headers["X-Bench-Queries"] = str(getattr(per_thread, "queries", 0))
        return response

    @server.route("/bench/stats")
    def _stats():
        cache = server.extensions.get(EXTENSION)
        counts = cache.counts.__dict__ if cache is not None else {}
        with lock:
            queries = counted["queries"]
        return jsonify(queries=queries, rss=psutil.Process(os.getpid()).memory_info().rss, cache=counts)

    try:
        app.run(host="127.0.0.1", port=args.port, debug=False, threaded=True)
    finally:
        if handle:
            handle.shutdown()


if __name__ == "__main__":
    main()
