"""The baseline page for the browser benchmarks: a bare Dash app with one div, served like the real screen.

    python bench/bare_dash.py --port 8051
    python bench/bare_dash.py --port 8052 --map districts.geojson   # the map floor (see below)

With `--map`, the page is instead a plain dash-leaflet map drawing the given FeatureCollection (first_screen.py
passes the 16 districts the screen itself sends): what any Dash page showing these polygons costs, before
OneScreen adds anything (its header, panels, styles, callbacks).

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


def create_map_app(geojson_path: str):
    """A plain dash-leaflet page: one map fitted to the polygons, nothing else (Dash's defaults, no styles)."""
    import json

    os.environ.setdefault("DASH_DISABLE_VERSION_CHECK", "true")
    import dash_leaflet as dl
    from dash import Dash, html

    data = json.loads(open(geojson_path, encoding="utf-8").read())
    app = Dash(__name__, title="map floor", update_title=None, serve_locally=True, compress=False)
    app.layout = html.Div(dl.MapContainer(style={"height": "100vh"}, bounds=bounds(data), children=[
        dl.GeoJSON(data=data)]))
    return app


def bounds(feature_collection: dict) -> list[list[float]]:
    points = [point for feature in feature_collection["features"]
              for point in _points(feature["geometry"]["coordinates"])]
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    return [[min(lats), min(lons)], [max(lats), max(lons)]]


def _points(coordinates):
    if coordinates and isinstance(coordinates[0], (int, float)):
        yield coordinates
        return
    for part in coordinates:
        yield from _points(part)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default %(default)s)")
    parser.add_argument("--port", type=int, default=8051, help="port (default %(default)s)")
    parser.add_argument("--map", metavar="GEOJSON", help="serve a plain dash-leaflet map of this FeatureCollection")
    args = parser.parse_args()
    app = create_map_app(args.map) if args.map else create_bare_app()
    app.run(host=args.host, port=args.port, debug=False, threaded=True)


if __name__ == "__main__":
    main()
