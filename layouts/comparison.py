"""The comparison view: the children of the unit on the map, ranked worst first for the selected indicator, each
a row a leader can read at a glance: rank, name, its trend over the selected range, value with its unit in the
status colour, and how complete it is (or how fresh). A click on a row drills there.

Light at a street's 200 communities (and the 364 of the largest test street):
- The rows are HTML markup, built here and put in place by the browser in one step (callbacks/comparison.py),
  not Dash components. Dash 4 subscribes every component to the page's store: 364 rows of 8 components each
  kept the browser busy 6.5 s out of every 10 while the screen sat idle (the clock ticking, measured in
  chromium); as markup they cost nothing between redraws.
- Each sparkline is a few hundred bytes of inline SVG (no chart library, no request, no image to decode), drawn
  on one scale shared by every row, so their heights compare.
- Rows scrolled out of sight are not laid out (assets/comparison.css: content-visibility), and a refresh that
  finds the same rows sends nothing.
Every text and attribute is escaped: unit names come from imported boundary files.
"""

from __future__ import annotations

import math
from html import escape

import pandas as pd
from dash import dcc, html

from cityops.catalog import Indicator, Thresholds
from cityops.hierarchy import Level
from cityops.status import Status
from layouts.ids import ComparisonIds
from layouts.text import format_time, format_value, level_name, name_says_level, t

# A sparkline's drawing box (the image stretches to its column; strokes keep their width).
SPARK_WIDTH, SPARK_HEIGHT = 200, 40
# Below this share of units reporting, a roll-up's completeness is highlighted (as on the KPI cards).
COMPLETE_ENOUGH = 0.95


def comparison_view(language: str) -> html.Div:
    """The view's frame, mounted into the children panel once the charts may load (callbacks/comparison.py).
    MARKUP holds the rows, which the browser writes into ROWS; Dash never renders children there."""
    return html.Div(className="comparison", children=[
        dcc.Store(id=ComparisonIds.DIGEST),
        dcc.Store(id=ComparisonIds.CLICKED),
        dcc.Store(id=ComparisonIds.MARKUP, data=comparison_note(t("loading", language))),
        html.Div(id=ComparisonIds.ROWS, className="comparison-rows", role="list"),
    ])


def comparison_markup(ranked: pd.DataFrame, trends: pd.DataFrame, indicator: Indicator,
                      thresholds: Thresholds | None, language: str, zone: str, now: int,
                      selected_code: str | None) -> str:
    """The header and one row per child, in `ranked`'s order (layouts/ranking.py). `trends`: one row per unit id,
    one column per bucket (readings.children_trends)."""
    scale = _shared_scale(trends)
    # Roll-ups say how complete they are; units' own figures, how fresh.
    rolled_up = not ranked.empty and (pd.to_numeric(ranked["expected"], errors="coerce").fillna(1) > 1).any()
    headings = [("cmp-rank", "column_rank"), ("cmp-name", "column_unit"), ("cmp-spark", "column_trend"),
                ("cmp-value", "column_value"), ("cmp-meta", "column_reported" if rolled_up else "column_as_of")]
    parts = ["<div class='comparison-row comparison-head' role='presentation'>",
             *(f"<span class='{css}'>{escape(t(key, language))}</span>" for css, key in headings), "</div>"]
    lines = dict(zip(trends.index, trends.to_numpy().tolist()))  # once, not a pandas lookup per row
    line = thresholds.warning if thresholds is not None else None
    shared = shared_level_word(ranked, language)
    for rank, child in enumerate(ranked.itertuples(index=False), start=1):
        parts.append(comparison_row(rank, child, sparkline_svg(lines.get(child.unit_id, []), scale, line),
                                    indicator, language, zone, now, child.code == selected_code, shared))
    return "".join(parts)


def shared_level_word(ranked: pd.DataFrame, language: str) -> str | None:
    """The last word every English name in the list ends with when it is their level's word (" District" in a
    list of Songmen District, Jinpu District...): under a heading naming the level it tells nothing, and it took
    the room of the names themselves on a 1080p wall (Jinpu D…). None when the names differ there (Subdistrict and
    Town say something), in Chinese (names are short), or for a single row."""
    if language == "zh" or len(ranked) < 2:
        return None
    words = {str(name).rpartition(" ")[2] for name in ranked["name_en"]}
    if len(words) != 1 or not all(" " in str(name).strip() for name in ranked["name_en"]):
        return None
    (word,) = words
    levels = set(ranked["level"].astype(int))
    if len(levels) != 1 or not levels <= set(Level) or not name_says_level(word, Level(levels.pop()), "en"):
        return None
    return " " + word


def comparison_row(rank: int, child, spark: str, indicator: Indicator, language: str, zone: str, now: int,
                   selected: bool, shared_word: str | None = None) -> str:
    status = Status(child.status)
    full_name = child.name_zh if language == "zh" else child.name_en
    name = escape(full_name)
    shown = escape(full_name.removesuffix(shared_word)) if shared_word else name
    value = None if _missing(child.value) else float(child.value)
    if value is None:
        figure = f"<span class='cmp-missing'>{escape(t('no_data', language))}</span>"
    else:
        figure = (f"<span class='cmp-number'>{escape(format_value(value, indicator.decimals))}</span>"
                  f"<span class='cmp-unit'>{escape(indicator.measure(language))}</span>")
    picture = spark or "<span class='cmp-spark'></span>"
    meta_text, meta_class = _meta(child, status, language, zone, now)
    # Attributes in single quotes: the markup travels inside JSON, where each double quote costs a backslash.
    return (f"<button type='button' role='listitem' class='comparison-row status-{status.value}"
            f"{' selected' if selected else ''}' data-code='{escape(str(child.code))}' title='{name}'>"
            f"<span class='cmp-rank'>{rank}</span><span class='cmp-name'>{shown}</span>{picture}"
            f"<span class='cmp-value'>{figure}</span><span class='{meta_class}'>{escape(meta_text)}</span></button>")


def comparison_note(text: str) -> str:
    """What the view says instead of rows (loading, no children, not measured at their level)."""
    return f"<div class='comparison-note'>{escape(text)}</div>"


def not_measured_note(level, language: str) -> str:
    return comparison_note(t("not_measured", language, level=level_name(level, language)))


def _meta(child, status: Status, language: str, zone: str, now: int) -> tuple[str, str]:
    """A roll-up's completeness ("17/20"); a unit's own figure: when it was observed ("截至 …" once stale)."""
    observed = None if _missing(child.observed_at) else int(child.observed_at)
    if status == Status.STALE and observed is not None:
        return t("stale_since", language, time=format_time(observed, zone, now)), "cmp-meta"
    if _missing(child.expected) or int(child.expected) <= 1:
        return (format_time(observed, zone, now) if observed is not None else ""), "cmp-meta"
    reported, expected = int(child.reported or 0), int(child.expected)
    incomplete = reported < COMPLETE_ENOUGH * expected
    return f"{reported}/{expected}", "cmp-meta" + (" incomplete" if incomplete else "")


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _shared_scale(trends: pd.DataFrame) -> tuple[float, float] | None:
    """The lowest and highest value of every row: one scale, so a taller line is a larger number."""
    if trends.empty:
        return None
    low, high = trends.min(skipna=True).min(), trends.max(skipna=True).max()
    if pd.isna(low) or pd.isna(high):
        return None
    return float(low), float(high)


def sparkline_svg(values: list, scale: tuple[float, float] | None, line: float | None = None) -> str:
    """An inline SVG: a line over the buckets of the range on the shared scale, broken where a bucket has no data,
    with the warning line dashed when it falls inside the scale (strokes styled by assets/comparison.css). Inline,
    not an image: 364 rows of images were 364 SVG documents for the browser to parse on every redraw."""
    if scale is None or sum(1 for v in values if not _missing(v)) < 2:
        return ""
    low, high = scale
    span = (high - low) or 1.0
    step = SPARK_WIDTH / max(len(values) - 1, 1)

    def y(value: float) -> int:
        return round(SPARK_HEIGHT - 3 - (value - low) / span * (SPARK_HEIGHT - 6))

    path, pen_down = [], False
    for index, value in enumerate(values):
        if _missing(value):
            pen_down = False
            continue
        path.append(f"{'L' if pen_down else 'M'}{round(index * step)} {y(float(value))}")
        pen_down = True
    warning = f"<path class='spark-warning' d='M0 {y(line)}H{SPARK_WIDTH}'/>" \
        if line is not None and low < line < high else ""
    return (f"<svg class='cmp-spark' viewBox='0 0 {SPARK_WIDTH} {SPARK_HEIGHT}' preserveAspectRatio='none' "
            f"aria-hidden='true'>{warning}<path class='spark-line' d='{''.join(path)}'/></svg>")
