"""Which of a printed map's labels it can hold without one covering another (the report's map).

A static figure has no browser to measure its text, so each label's box is estimated from its characters (a CJK
character is about one em wide, Liberation Sans' letters and digits about 0.56 em) and placed where plotly puts
the point: the map's box keeps the longitude:latitude aspect (`scaleanchor`) and shrinks in one direction,
centred (`constrain="domain"`). Labels are kept most important first, as on the screen (assets/map.js): the
worst status, then the larger unit; one that would touch a kept one is left out (its polygon keeps its colour).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cityops.exports.text_measure import is_wide

LATIN_EM = 0.56  # Liberation Sans' letters and digits, in ems: generous (0.53 let a name wrap, measured)
LINE_EM = 1.25   # a line of text, in ems


def text_width(text: str, size: float) -> float:
    """Estimated width in px of `text` set at `size` px."""
    return sum(size if is_wide(char) else size * LATIN_EM for char in text)


@dataclass(frozen=True)
class MapFrame:
    """Where plotly draws a map's axes: `px` per degree of longitude, the plot's top-left corner in px, and the
    ranges it shows (latitude's degrees drawn `ratio` times as long as longitude's)."""

    px: float
    left: float
    top: float
    x_low: float
    y_high: float
    ratio: float

    @classmethod
    def fit(cls, box: tuple[float, float, float, float], x_range: tuple[float, float],
            y_range: tuple[float, float], ratio: float) -> MapFrame:
        left, top, width, height = box
        x_span, y_span = x_range[1] - x_range[0], (y_range[1] - y_range[0]) * ratio
        px = min(width / x_span, height / y_span)
        return cls(px, left + (width - x_span * px) / 2, top + (height - y_span * px) / 2, x_range[0], y_range[1],
                   ratio)

    def point(self, x: float, y: float) -> tuple[float, float]:
        return self.left + (x - self.x_low) * self.px, self.top + (self.y_high - y) * self.ratio * self.px


def kept_labels(points: Mapping[str, tuple[float, float]], texts: Mapping[str, str],
                rank: Mapping[str, tuple], frame: MapFrame, size: float, gap: float = 2.0) -> list[str]:
    """The codes whose label (its text centred on its point) fits beside the labels of higher `rank`."""
    kept: list[str] = []
    boxes: list[tuple[float, float, float, float]] = []
    for code in sorted(points, key=lambda code: rank.get(code, ()), reverse=True):
        x, y = frame.point(*points[code])
        half_width, half_height = text_width(texts[code], size) / 2 + gap, size * LINE_EM / 2 + gap / 2
        box = (x - half_width, y - half_height, x + half_width, y + half_height)
        if any(box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3]
               for other in boxes):
            continue
        boxes.append(box)
        kept.append(code)
    return kept
