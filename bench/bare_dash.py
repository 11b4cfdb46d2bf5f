"""The baseline page for the browser benchmarks: a bare Dash app with one div, served like the real screen.

    python bench/bare_dash.py --port 8051

Same Dash version, same Flask threaded server, same serve_locally; nothing else. first_screen.py waits for
#bench-ready to render; server_memory.py measures this process's memory under the same clicks.
"""

from __future__ import annotations

import argparse
import os


def create_bare_app():
    os.environ.setdefault("DASH_DISABLE_VERSION_CHECK", "true")
    from dash import Dash, html

    app = Dash(__name__, title="bare", update_title=None, serve_locally=True, compress=False)
    app.layout = html.Div("OneScreen benchmark baseline", id="bench-ready", className="bench-ready")
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=8051, help="port (default %(default)s)")
    args = parser.parse_args()
    create_bare_app().run(host=args.host, port=args.port, debug=False, threaded=True)


if __name__ == "__main__":
    main()
