"""The report's print style: the page's size, fonts and colours, and the drawing every section of the page uses
(text, headings, rules, tables, status dots) in CSS pixels from the page's top left (cityops/exports/report_page.py
lays the sections out; cityops/exports/ranking_chart.py draws its chart in the same style)."""

from __future__ import annotations

import plotly.graph_objects as go

from cityops.exports.text_measure import is_wide
from cityops.status import Status
from layouts.theme import FONT_FAMILY as SCREEN_FONTS, STATUS_COLOURS

PAGE_WIDTH, PAGE_HEIGHT = 1123, 794
# Latin letters and digits from a TrueType face, Chinese from the screen's CJK face: chromium embeds a CFF font
# such as Noto Sans CJK as Type 3 glyphs whose digits lose their text (a PDF's "10.0 %" would copy and search
# as " . %"); Liberation Sans (Arial's metrics) comes with Debian's chromium.
FONT_FAMILY = '"Liberation Sans", Arimo, Arial, ' + SCREEN_FONTS
MARGIN = 34
INK, MUTED, RULE, GRID, ACCENT, SHADE = "#1b2533", "#5b6b82", "#c9d2de", "#e6ebf2", "#2f6bd6", "#f3f6fa"
STATUS_ORDER = (Status.NORMAL, Status.WARNING, Status.CRITICAL, Status.STALE, Status.NO_DATA)
NO_DATA_OUTLINE = "#9aa6b8"
MAP_LABEL_SIZE = 8.5
# Which names a crowded map keeps: the worst status first (cityops/exports/map_labels.py).
LABEL_RANK = {Status.CRITICAL: 4, Status.WARNING: 3, Status.STALE: 2, Status.NORMAL: 1}
SOURCES_PER_LINE, SOURCE_LINES = 3, 2
LEVEL_SUFFIXES = (" Community", " Village", " Subdistrict", " Street", " Town", " District", " County")
HEADING_CHAR_WIDTH = 7.4  # CSS px per column of a bold 12.5 px heading (a CJK character is two columns)


def paper_x(px: float) -> float:
    return px / PAGE_WIDTH


def paper_y(px: float) -> float:
    """Paper y of a distance from the top of the page."""
    return 1 - px / PAGE_HEIGHT


def paper_domain(left: float, top: float, width: float, height: float) -> dict:
    return {"x": [paper_x(left), paper_x(left + width)], "y": [paper_y(top + height), paper_y(top)]}


def draw_text(figure: go.Figure, left: float, top: float, text: str, size: float = 11, colour: str = INK,
          anchor: str = "left", bold: bool = False) -> None:
    figure.add_annotation(x=paper_x(left), y=paper_y(top), xref="paper", yref="paper", xanchor=anchor, yanchor="top",
                          text=f"<b>{text}</b>" if bold else text, showarrow=False, align=anchor,
                          font=dict(size=size, color=colour, family=FONT_FAMILY))


def draw_heading(figure: go.Figure, left: float, top: float, text: str) -> None:
    """A section heading with a short accent bar before it."""
    figure.add_shape(type="rect", xref="paper", yref="paper", x0=paper_x(left), x1=paper_x(left + 3), y0=paper_y(top + 15),
                     y1=paper_y(top + 1), fillcolor=ACCENT, line_width=0)
    draw_text(figure, left + 9, top, text, size=12.5, bold=True)


def draw_rule(figure: go.Figure, top: float, colour: str = RULE, width: float = 1) -> None:
    figure.add_shape(type="line", xref="paper", yref="paper", x0=paper_x(MARGIN), x1=paper_x(PAGE_WIDTH - MARGIN),
                     y0=paper_y(top), y1=paper_y(top), line=dict(color=colour, width=width))


def dot_colour(status: Status | str) -> str:
    status = Status(status)
    return NO_DATA_OUTLINE if status == Status.NO_DATA else STATUS_COLOURS[status]


def dot_of(status: Status | str) -> str:
    """The status mark of a table row (its colour goes in the cell's font): ● for a value, ○ for no data."""
    return "○" if Status(status) == Status.NO_DATA else "●"


def shortened(text: str, limit: int) -> str:
    """At most `limit` columns of text (CJK characters count two), cut with an ellipsis."""
    used, kept = 0, []
    for char in str(text):
        used += 2 if is_wide(char) else 1
        if used > limit:
            return "".join(kept) + "…"
        kept.append(char)
    return "".join(kept)


def label_of(name: str, limit: int = 14) -> str:
    """A child's name where space is short (map labels, bar labels): the heading already names the level, so
    an English name loses its level word ("Xitong Community" → "Xitong")."""
    name = str(name)
    for suffix in LEVEL_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return shortened(name, limit)


def draw_table(figure: go.Figure, box: tuple, headers: list[str], columns: list[list[str]], widths: list[float],
           aligns: list[str], row_height: float, colours: list | None = None) -> None:
    """A table in print style. `colours`: per column, one colour or one per row (the status dots)."""
    rows = len(columns[0]) if columns else 0
    figure.add_trace(go.Table(
        domain=paper_domain(*box), columnwidth=widths,
        # Bold by the font's weight: <b> markup makes plotly's table rows taller than asked (measured).
        header=dict(values=headers, fill_color=SHADE, line_color=RULE, align=aligns, height=22,
                    font=dict(size=10, color=MUTED, family=FONT_FAMILY, weight="bold")),
        cells=dict(values=columns, fill_color=[["#ffffff" if i % 2 == 0 else "#fafbfd" for i in range(rows)]],
                   line_color=GRID, align=aligns, height=row_height,
                   # The status dots in the CJK face, whose ● is the size of the screen's (Liberation's is small).
                   font=dict(size=10, color=colours or INK,
                             family=[SCREEN_FONTS if _dots_only(column) else FONT_FAMILY for column in columns]))))


def _dots_only(column: list[str]) -> bool:
    return bool(set(column) - {""}) and set(column) <= {"●", "○", ""}
