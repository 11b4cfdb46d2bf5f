"""The trend chart: one unit and indicator over time, with threshold lines and breaches shaded."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
import plotly.graph_objects as go
from dash import dcc

from cityops.catalog import Direction, Indicator
from cityops.catalog import Thresholds
from cityops.status import Status
from layouts.ids import TrendIds
from layouts.text import t
from layouts.theme import MUTED, STATUS_COLOURS, plotly_layout

GRAPH_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"],
    "toImageButtonOptions": {"format": "png", "scale": 2, "filename": "onescreen-trend"},
}


def trend_graph(figure: go.Figure | None = None) -> dcc.Graph:
    """The trend's graph. It is not in the first layout: a dcc.Graph loads plotly.js (~5 MB) when it mounts,
    so it is mounted once, after the rest of the screen has painted; refreshes then update its `figure` in
    place (see callbacks/loading.py)."""
    extra = {} if figure is None else {"figure": figure}
    return dcc.Graph(id=TrendIds.GRAPH, className="trend-graph", config=GRAPH_CONFIG, style={"height": "100%"},
                     **extra)


def trend_figure(series: pd.DataFrame, indicator: Indicator, thresholds: Thresholds | None, zone: str,
                 language: str, window: tuple[int, int], scale: float = 1.0) -> go.Figure:
    figure = go.Figure()
    tz = ZoneInfo(zone)
    times = [datetime.fromtimestamp(int(x), tz) for x in series["time"]] if not series.empty else []
    values = series["value"].astype(float).tolist() if not series.empty else []
    if thresholds is not None:
        _threshold_bands(figure, thresholds, indicator.direction, values, language, scale)
    hover = "%{x|%m-%d %H:%M}<br><b>%{y:,." + str(indicator.decimals) + "f}</b> " + indicator.unit_of_measure
    if not series.empty and (series["expected"] > 1).any():
        figure.add_trace(go.Scatter(
            x=times, y=values, mode="lines", line=dict(color="#8fb8ff", width=2), connectgaps=False,
            customdata=series[["reported", "expected"]].to_numpy(),
            hovertemplate=hover + "<br>%{customdata[0]:,}/%{customdata[1]:,} " + t("completeness", language)
            + "<extra></extra>"))
    else:
        figure.add_trace(go.Scatter(x=times, y=values, mode="lines", line=dict(color="#8fb8ff", width=2),
                                    hovertemplate=hover + "<extra></extra>"))
    start, end = (datetime.fromtimestamp(edge, tz) for edge in window)
    figure.update_layout(**plotly_layout(
        scale,
        xaxis=dict(range=[start, end], gridcolor="#1e2a3f", tickformat="%m-%d\n%H:%M", linecolor="#1e2a3f"),
        yaxis=dict(gridcolor="#1e2a3f", zeroline=False, title=dict(text=indicator.unit_of_measure,
                                                                 font=dict(color=MUTED, size=round(12 * scale)))),
        hovermode="x unified", uirevision=indicator.key))
    return figure


def _threshold_bands(figure: go.Figure, thresholds: Thresholds, direction: Direction, values, language,
                     scale: float) -> None:
    """Dotted threshold lines and a faint fill over the region that counts as a breach."""
    observed = [v for v in values if v == v] or [thresholds.warning]
    worse = direction == Direction.HIGHER_IS_WORSE
    for level, status in ((thresholds.warning, Status.WARNING), (thresholds.critical, Status.CRITICAL)):
        figure.add_hline(y=level, line=dict(color=STATUS_COLOURS[status], width=1.2, dash="dot"),
                         annotation_text=t("threshold_" + status.value, language), annotation_position="top left",
                         annotation_font=dict(color=STATUS_COLOURS[status], size=round(11 * scale)))
    top = max(max(observed), thresholds.critical) * 1.08
    bottom = min(min(observed), thresholds.critical) * 0.92 if not worse else None
    if worse:
        figure.add_hrect(y0=thresholds.warning, y1=thresholds.critical, fillcolor=STATUS_COLOURS[Status.WARNING],
                         opacity=0.06, line_width=0, layer="below")
        figure.add_hrect(y0=thresholds.critical, y1=top, fillcolor=STATUS_COLOURS[Status.CRITICAL], opacity=0.07,
                         line_width=0, layer="below")
    else:
        figure.add_hrect(y0=thresholds.critical, y1=thresholds.warning, fillcolor=STATUS_COLOURS[Status.WARNING],
                         opacity=0.06, line_width=0, layer="below")
        figure.add_hrect(y0=bottom, y1=thresholds.critical, fillcolor=STATUS_COLOURS[Status.CRITICAL], opacity=0.07,
                         line_width=0, layer="below")
