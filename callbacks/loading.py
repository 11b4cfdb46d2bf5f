"""The order the first screen loads in: the map's polygons, then the other panels, then the charts.

Each stage waits until the one before has painted, so that its requests and rendering do not delay it:
- the map arrives with the layout (see callbacks/map.py); the browser sets PageIds.MAP_PAINTED once its
  polygons are on screen (assets/map.js, watchFirstPaint: no Dash callback runs before the polygons have painted,
  as each one's dispatches re-run every mounted component's store selector, ~30 ms on this screen);
- the KPI cards, rankings, breadcrumb, freshness and titles are first drawn on MAP_PAINTED; the browser sets
  PageIds.CHARTS_READY once the KPI cards are on screen;
- the two charts are mounted on CHARTS_READY (mounting a dcc.Graph loads and parses plotly.js, ~5 MB, which
  would hold the page's main thread for a second before anything after it could be drawn).
Each wait gives up after a few seconds, so a stage that fails never keeps the next one away.
"""

from __future__ import annotations

from dash import Input, Output, clientside_callback

from layouts.ids import PageIds

clientside_callback(
    "function(_mapPainted) { return window.onescreen.painted('.kpi-card', 3000); }",
    Output(PageIds.CHARTS_READY, "data"),
    Input(PageIds.MAP_PAINTED, "data"),
    prevent_initial_call=True,
)
