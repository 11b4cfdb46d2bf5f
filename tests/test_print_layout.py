"""The printed report's layout without a browser to measure it: which map labels a crowded map keeps, where plotly
draws a map whose aspect is kept, and table columns that hold their text on one line
(cityops/exports/map_labels.py, cityops/exports/report_page.py)."""

from __future__ import annotations

import pytest

from cityops.exports.map_labels import MapFrame, kept_labels, text_width
from cityops.exports.report_page import CELL_PADDING, _fit, _fitted_widths


def boxes_of(codes, points, texts, frame, size):
    for code in codes:
        x, y = frame.point(*points[code])
        half = text_width(texts[code], size) / 2
        yield code, (x - half, y - size * 0.6, x + half, y + size * 0.6)


def test_text_width_counts_a_cjk_character_as_a_whole_em():
    assert text_width("社区", 10) == pytest.approx(20)
    assert text_width("ab", 10) == pytest.approx(2 * 10 * 0.56)
    assert text_width("Caojing", 10) < text_width("曹泾社区", 10)


def test_the_map_frame_keeps_the_aspect_and_centres_the_plot_as_plotly_does():
    # A tall map (1° wide, 2° high, latitude drawn 1.2 times as long) in a wide box: the height decides.
    frame = MapFrame.fit((100, 50, 400, 240), (120.0, 121.0), (30.0, 32.0), 1.2)
    assert frame.px == pytest.approx(240 / (2 * 1.2))  # 100 px a degree of longitude
    assert frame.point(120.0, 32.0) == pytest.approx((100 + (400 - 100) / 2, 50))  # top-left, centred across
    assert frame.point(121.0, 30.0) == pytest.approx((350, 290))  # bottom-right: 100 px wide, 240 px high


def test_a_crowded_map_keeps_labels_apart_the_worst_first():
    frame = MapFrame.fit((0, 0, 200, 200), (0.0, 1.0), (0.0, 1.0), 1.0)  # 200 px a degree
    points = {"big-normal": (0.5, 0.5), "small-critical": (0.52, 0.51), "far": (0.1, 0.9), "near-far": (0.12, 0.9)}
    texts = {"big-normal": "Dahua", "small-critical": "Xiaoqiao", "far": "Beiyuan", "near-far": "Beixin"}
    rank = {"big-normal": (1, 9.0), "small-critical": (4, 0.1), "far": (1, 2.0), "near-far": (1, 1.0)}
    kept = kept_labels(points, texts, rank, frame, 8.5)
    # The critical unit's name wins over the larger normal one it would cover; of two alike, the larger stays.
    assert kept == ["small-critical", "far"]
    boxes = dict(boxes_of(kept, points, texts, frame, 8.5))
    (a, box_a), (b, box_b) = boxes.items()
    assert box_a[2] <= box_b[0] or box_b[2] <= box_a[0] or box_a[3] <= box_b[1] or box_b[3] <= box_a[1]
    # With room enough, every label stays.
    roomy = MapFrame.fit((0, 0, 4000, 4000), (0.0, 1.0), (0.0, 1.0), 1.0)
    assert sorted(kept_labels(points, texts, rank, roomy, 8.5)) == sorted(points)


def test_table_columns_hold_their_longest_text_and_the_names_are_cut_to_what_is_left():
    headers = ["Indicator", "Value", "", "Status", "Change", "As of 11-27", "Reported"]
    columns = [["Garbage-sorting compliance", "12345 hotline complaints", "PM2.5"],
               ["107,739 people/h", "250 cases/h", "38 μg/m³"], ["●", "●", "●"], ["normal", "warning", "stale"],
               ["-17,611", "+0.1", "0"], ["23:37", "23:37", "23:13"], ["5,959/6,000", "207/210", ""]]
    widths = _fitted_widths(headers, columns, 500)
    assert sum(widths) == pytest.approx(500)
    for width, header, column in list(zip(widths, headers, columns))[1:]:
        assert all(text_width(text, 10) + CELL_PADDING <= width + 1e-9 for text in [header, *column]), header
    names = [_fit(name, widths[0] - CELL_PADDING) for name in columns[0]]
    assert all(text_width(name, 10) <= widths[0] - CELL_PADDING for name in names)
    assert names[2] == "PM2.5" and names[0].endswith("…") and names[0].startswith("Garbage")
    assert _fit("田永镇下辖社区", 35) == "田永…"
