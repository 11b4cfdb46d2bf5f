"""Alert badges: how many open alerts lie under a unit (on the map, in the KPI heading) or concern an indicator
(on its KPI card), coloured by the worst severity among them, with the overdue ones counted apart.

Pure builders. A badge says nothing when nothing is open: no "0" badges cluttering a calm screen. Colours are the
screen's one language (critical when any open alert is critical, warning otherwise; assets/alert-badges.css).
The strings are few and only these badges use them, so they live here rather than in layouts/text.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from dash import html

TEXT = {
    "heading": ("⚠ {open} 未结", "⚠ {open} open"),
    "heading_overdue": (" · {overdue} 超时", " · {overdue} overdue"),
    "overdue_mark": ("超时 {overdue}", "{overdue} overdue"),
    "summary": ("告警 {open} 未结", "alerts: {open} open"),
    "summary_overdue": (" · {overdue} 超时", " · {overdue} overdue"),
    "card_title": ("{open} 条未结告警（{critical} 条严重，{overdue} 条超时）",
                   "{open} open alerts ({critical} critical, {overdue} overdue)"),
}


def badge_text(key: str, language: str, **values) -> str:
    zh, en = TEXT[key]
    return (zh if language == "zh" else en).format(**values)


@dataclass(frozen=True)
class AlertTally:
    """Open alerts under one unit or for one indicator: how many, how many overdue, how many critical."""

    open: int = 0
    overdue: int = 0
    critical: int = 0

    @property
    def severity(self) -> str | None:
        """The badge's colour: the worst severity among the open alerts (None: nothing open, no badge)."""
        if self.open <= 0:
            return None
        return "critical" if self.critical > 0 else "warning"


def tally_of(counts: pd.DataFrame, key) -> AlertTally:
    """The tally for one row of an alert-count frame (queries.alert_counts, badges.indicator_alert_counts);
    a key without a row has nothing open."""
    if key not in counts.index:
        return AlertTally()
    row = counts.loc[key]
    return AlertTally(int(row["open"]), int(row["overdue"]), int(row["critical"]))


def summary_text(tally: AlertTally, language: str) -> str:
    """One line for a tooltip: 'alerts: 3 open · 1 overdue'."""
    text = badge_text("summary", language, open=tally.open)
    if tally.overdue:
        text += badge_text("summary_overdue", language, overdue=tally.overdue)
    return text


def map_badges(tallies: dict[str, AlertTally], language: str) -> dict:
    """Per unit code, what the map's label draws as its badge (assets/map.js): count `n`, overdue `d`, severity
    `s`, the overdue mark `o` and the tooltip line `t`. Units with nothing open are left out."""
    badges = {}
    for code, tally in tallies.items():
        if tally.severity is None:
            continue
        badges[code] = {"n": tally.open, "d": tally.overdue, "s": tally.severity,
                        "o": badge_text("overdue_mark", language, overdue=tally.overdue) if tally.overdue else "",
                        "t": summary_text(tally, language)}
    return badges


def heading_badge(tally: AlertTally, language: str) -> html.Span | None:
    """The KPI heading's count for the unit viewed: '⚠ 3 open · 1 overdue' (None when nothing is open)."""
    if tally.severity is None:
        return None
    parts = [html.Span(badge_text("heading", language, open=tally.open), className="alert-heading-open")]
    if tally.overdue:
        parts.append(html.Span(badge_text("heading_overdue", language, overdue=tally.overdue),
                               className="alert-heading-overdue"))
    return html.Span(parts, className=f"alert-heading alert-{tally.severity}",
                     **{"data-open": tally.open, "data-overdue": tally.overdue})


def overdue_mark(overdue: int, language: str) -> list[html.Span]:
    """'超时 2' / '2 overdue' with the word in a span of its own: a wall's card, short of room, shows the count
    alone in the overdue colours (assets/wall.css), and the unit's heading says what that count is."""
    before, _, after = TEXT["overdue_mark"][0 if language == "zh" else 1].partition("{overdue}")
    return [*([html.Span(before, className="overdue-word")] if before else []),
            html.Span(str(overdue), className="overdue-count"),
            *([html.Span(after, className="overdue-word")] if after else [])]


def card_badge(tally: AlertTally, language: str, owner: str | None = None) -> html.Span | None:
    """A KPI card's small badge: the number of open alerts for its indicator under the unit viewed, in the worst
    severity's colour, and how many are overdue, as on the map (None when nothing is open). `owner`: the ancestor
    whose value the card shows (a community's AQI card, its street's) and whose alerts these are, named first."""
    if tally.severity is None:
        return None
    parts = [html.Span(f"⚠ {tally.open}", className="alert-badge-count")]
    if tally.overdue:
        parts.append(html.Span(overdue_mark(tally.overdue, language), className="alert-badge-overdue"))
    return html.Span(parts, className=f"alert-badge alert-card-badge alert-{tally.severity}",
                     title=(f"{owner}{'：' if language == 'zh' else ': '}" if owner else "")
                     + badge_text("card_title", language, open=tally.open, critical=tally.critical,
                                  overdue=tally.overdue),
                     **{"data-open": tally.open, "data-overdue": tally.overdue})
