"""The children ranked, as a chart image: the panel shows rows with sparklines (layouts/comparison.py), not a
plotly chart the browser could turn into an image, so its PNG or SVG is a bar chart drawn on the server — the
worst children first, in their status colours, in the reports' print style."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from cityops.catalog import Indicator
from cityops.exports.print_style import FONT_FAMILY, GRID, INK, MUTED, RULE, label_of
from cityops.status import Status
from layouts.text import format_value, t
from layouts.theme import STATUS_COLOURS

MAX_BARS = 30


def ranking_figure(ranked: pd.DataFrame, indicator: Indicator, *, title: str, footnote: str, language: str,
                   width: int, height: int) -> go.Figure:
    """Bars of the children with a value (at most MAX_BARS, worst first, as `ranked` orders them)."""
    shown = ranked.dropna(subset=["value"]).head(MAX_BARS)
    if len(ranked.dropna(subset=["value"])) > len(shown):
        title += f" · {t('report_worst_of', language, n=len(shown), m=len(ranked))}"
    names = [label_of(name, 18) for name in shown["name_zh" if language == "zh" else "name_en"]]
    values = shown["value"].astype(float).tolist()
    figure = go.Figure(go.Bar(
        x=values, y=names, orientation="h", hoverinfo="skip",
        marker=dict(color=[STATUS_COLOURS[Status(s)] for s in shown["status"]], line_width=0),
        text=[f"{format_value(v, indicator.decimals)}" for v in values], textposition="outside", cliponaxis=False,
        textfont=dict(size=12, color=INK)))
    figure.update_layout(
        width=width, height=height, paper_bgcolor="#ffffff", plot_bgcolor="#ffffff", showlegend=False,
        font=dict(family=FONT_FAMILY, color=INK, size=13), margin=dict(l=150, r=60, t=100, b=90),
        bargap=min(0.7, max(0.3, 1 - len(shown) / 15)),  # a few bars stay bars, not blocks
        title=dict(text=title, x=0.02, xanchor="left", y=0.96, font=dict(size=22, color=INK)),
        xaxis=dict(gridcolor=GRID, linecolor=RULE, zeroline=False, rangemode="tozero",
                   tickfont=dict(color=MUTED, size=12),
                   title=dict(text=indicator.measure(language), font=dict(color=MUTED, size=12))),
        yaxis=dict(autorange="reversed", showgrid=False, linecolor=RULE, tickfont=dict(size=13, color=INK)))
    figure.add_annotation(xref="paper", yref="paper", x=0, y=0, xanchor="left", yanchor="top", yshift=-52,
                          text=footnote, showarrow=False, font=dict(size=11, color=MUTED))
    if shown.empty:
        figure.add_annotation(xref="paper", yref="paper", x=0.5, y=0.5, text=t("no_data", language),
                              showarrow=False, font=dict(size=16, color=MUTED))
    return figure
