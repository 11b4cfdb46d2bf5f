"""The comparison panel's title. The children's order is cityops/ranking.py's; the rows are drawn by
layouts/comparison.py (units over threshold are alerts now: layouts/alerts.py)."""

from __future__ import annotations

from datetime import date

from dash import html

from cityops.catalog import Indicator
from cityops.hierarchy import Level
from cityops.time_range import TimeRange
from layouts.text import level_name, t
from layouts.trend import range_label


def children_title(indicator: Indicator, level: Level | None, count: int, time_range: TimeRange, language: str,
                   today: date) -> list:
    """"社区排名 · 12345热线诉求 · 近7天 · 共28个": which units, for what, the range their trends cover."""
    level_label = level_name(level, language, plural=True) if level is not None else ""
    title = t("compared_title", language, indicator=indicator.name(language), level=level_label,
              range=range_label(time_range, language, today))
    if not count:
        return [html.Span(title, className="heading-text")]
    # The words give way before the count (assets/style.css).
    return [html.Span(title, className="heading-text"),
            html.Span(" · " + t("compared_count", language, n=count), className="title-count")]
