"""The ranking: the children of the unit on the map by value, worst first (units over threshold are alerts now:
layouts/alerts.py)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from dash import dcc

from cityops.catalog import Direction, Indicator
from cityops.hierarchy import Level
from layouts.ids import RankingIds
from layouts.text import level_name, t
from layouts.theme import STATUS_COLOURS, plotly_layout
from layouts.trend import GRAPH_CONFIG

CHILDREN_GRAPH_CONFIG = {**GRAPH_CONFIG, "toImageButtonOptions": {"format": "png", "scale": 2,
                                                                  "filename": "onescreen-ranking"}}


# More bars than this stop being readable in the panel; the worst are the ones that matter.
MAX_BARS = 12


def children_graph(figure: go.Figure | None = None) -> dcc.Graph:
    """The children's bar chart; like the trend's, mounted once after the rest of the screen (see trend_graph)."""
    extra = {} if figure is None else {"figure": figure}
    return dcc.Graph(id=RankingIds.CHILDREN, className="children-graph", config=CHILDREN_GRAPH_CONFIG,
                     style={"height": "100%"}, **extra)


def children_bar_figure(children: pd.DataFrame, indicator: Indicator, language: str,
                        scale: float = 1.0) -> go.Figure:
    """Horizontal bars, worst at the top, each in its status colour; clicking a bar drills into it."""
    frame = children.dropna(subset=["value"]).copy()
    descending = indicator.direction == Direction.HIGHER_IS_WORSE
    frame = frame.sort_values("value", ascending=not descending).head(MAX_BARS)
    names = frame["name_zh" if language == "zh" else "name_en"].tolist()
    figure = go.Figure(go.Bar(
        x=frame["value"].astype(float), y=names, orientation="h", customdata=frame[["code"]].to_numpy(),
        marker=dict(color=[STATUS_COLOURS[s] for s in frame["status"]]),
        hovertemplate="%{y}: <b>%{x:,." + str(indicator.decimals) + "f}</b> " + indicator.unit_of_measure
        + "<extra></extra>"))
    figure.update_layout(**plotly_layout(
        scale,
        margin=dict(l=8, r=12, t=4, b=24),
        yaxis=dict(autorange="reversed", automargin=True, gridcolor="rgba(0,0,0,0)", dtick=1),
        xaxis=dict(gridcolor="#1e2a3f", zeroline=False), bargap=0.25, uirevision=indicator.key))
    return figure


def children_title(indicator: Indicator, level: Level | None, count: int, language: str) -> str:
    level_label = level_name(level, language, plural=True) if level is not None else ""
    title = t("children_ranked", language, indicator=indicator.name(language), level=level_label)
    if count > MAX_BARS:
        title += f" · 前{MAX_BARS}/{count}" if language == "zh" else f" · worst {MAX_BARS} of {count}"
    return title
