"""The as-of mark: how fresh a panel's data is, in the same words and colours on every panel that shows data."""

from __future__ import annotations

from dash import html

from layouts.text import format_time, t


def as_of_mark(observed_at: int | None, stale: bool, zone: str, now: int, language: str,
               class_name: str = "") -> html.Span:
    """截至 10:40 — or, once the data is older than its indicator's expected interval allows (cityops.status
    is_stale), 数据过期 · 截至 10:40, hatched grey: the one stale mark of every panel that shows data (cards, map
    and trend titles, header), so a panel left behind by a stopped source says so, and since when
    (assets/wall.css: a panel whose title carries it is greyed at its edge)."""
    time = format_time(observed_at, zone, now)
    text = t("stale_as_of", language, time=time) if stale else t("as_of", language, time=time)
    return html.Span(text, className=f"as-of-mark{' stale' if stale else ''} {class_name}".strip(),
                     **{"data-stale": "true" if stale else "false"})
