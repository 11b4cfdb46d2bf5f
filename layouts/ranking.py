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
    """"社区排名（28个） · 12345热线诉求 · 近7天": which units and how many, for what, the range their trends cover.
    Where the panel is narrow the range gives way first, then the indicator, each whole (the map's and the trend's
    titles say both; "Districts ranked · Incid… · 16 in all" said neither); which units are ranked and their count
    stay, in front, so nothing is left standing apart after the words that gave way (assets/style.css, as
    layouts/headings.py)."""
    level_label = level_name(level, language, plural=True) if level is not None else ""
    lead = [t("compared_title", language, level=level_label)]
    if count:
        lead.append(html.Span(t("compared_count", language, n=count), className="title-count"))
    return [html.Span(lead, className="heading-lead"),
            html.Span([html.Span(" · " + indicator.name(language)),
                       html.Span(" · " + range_label(time_range, language, today))], className="heading-words")]
