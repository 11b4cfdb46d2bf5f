"""The comparison view (children ranked worst first, each with its trend) and the range control, without a
browser: the order, the one colour language, the sparklines, the callbacks on a real SQLite city with the
viewer's scope, and what the range control writes into the selection.

The city (tests/city_factory.py) has a week of hourly 12345 counts, constant per community:
    990101001001 6 (critical)   990101001002 1 (normal)      — street 990101001: 7, 2 of 2 reported
    990101002001 3 (warning)    990101002002 9, but silent for the last 5 hours (stale)
                                                             — street 990101002: 3, 1 of 2 reported
    district 990102's communities 0.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import sys
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from dash import no_update
from plotly.utils import PlotlyJSONEncoder
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).parent))

from city_factory import tiny_city  # noqa: E402
from cityops.boundaries import replace_units  # noqa: E402
from cityops.catalog import Direction, load_catalog  # noqa: E402
from cityops.db import migrate, session_scope  # noqa: E402
from cityops.hierarchy import Level  # noqa: E402
from cityops.rollup import process_backlog, queue_rollups  # noqa: E402
from cityops.scope import Viewer  # noqa: E402
from cityops.settings import Settings  # noqa: E402
from cityops.status import Status  # noqa: E402
from cityops.storage import sync_indicators, upsert_observations  # noqa: E402
from cityops.time_range import DAY, RangeProblem, resolve_range  # noqa: E402
from cityops.tree import load_tree  # noqa: E402
from dash_calls import in_callback  # noqa: E402

HOUR = 3600
ZONE = "Asia/Shanghai"
D1, D2 = "990101", "990102"
S11, S12 = "990101001", "990101002"
C_CRITICAL, C_NORMAL, C_WARNING, C_STALE = S11 + "001", S11 + "002", S12 + "001", S12 + "002"
COUNTS = {C_CRITICAL: 6.0, C_NORMAL: 1.0, C_WARNING: 3.0, C_STALE: 9.0}
CATALOG = load_catalog(Settings().catalog_path)
HOTLINE = CATALOG["hotline_complaints"]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from app import create_app

    folder = tmp_path_factory.mktemp("comparison")
    settings = replace(Settings(), database_url=f"sqlite:///{folder / 'db.sqlite'}", run_scheduler=False)
    migrate(settings.database_url)
    now = int(time.time())
    hours = range(now // HOUR * HOUR - 7 * DAY, now, HOUR)
    with session_scope(settings.database_url) as session:
        replace_units(session, tiny_city())
        ids = sync_indicators(session, CATALOG)
        units = dict(session.execute(text("SELECT code, id FROM units")).all())
        rows = [{"unit_id": ident, "indicator_id": ids["hotline_complaints"], "observed_at": at + 600,
                 "value": COUNTS.get(code, 0.0), "run_id": None}
                for code, ident in units.items() if len(code) == 12 for at in hours
                if not (code == C_STALE and at + 600 > now - 5 * HOUR) and at + 600 <= now]
        upsert_observations(session, rows)
        queue_rollups(session, CATALOG, ids, {"hotline_complaints": {row["observed_at"] for row in rows}})
        process_backlog(session, CATALOG, ids, load_tree(session), now)
    return create_app(settings)


def as_viewer(monkeypatch, code: str | None) -> None:
    """Every request from now on comes from a viewer limited to `code` (login decides this one day)."""
    import callbacks.context

    monkeypatch.setattr(callbacks.context, "current_viewer", lambda: Viewer("officer", root_code=code))


def markup_of(app, selection) -> str:
    from callbacks.comparison import show_comparison

    markup, _digest = in_callback(app, show_comparison, selection, 0, None)
    return markup


@dataclass
class Row:
    """A row of the markup as a person meets it: its attributes, the texts it shows, whether it draws a line."""

    attributes: dict
    texts: list = field(default_factory=list)
    sparkline: bool = False

    @property
    def classes(self) -> list[str]:
        return self.attributes.get("class", "").split()


class RowReader(HTMLParser):
    """The markup's rows (unit rows: data-code; the header and notes too), each with its texts in order."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Row] = []
        self.depth = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if "comparison-row" in attributes.get("class", "").split() or "comparison-note" in attributes.get("class", ""):
            self.rows.append(Row(attributes))
        elif tag == "svg" and self.rows:
            self.rows[-1].sparkline = True

    def handle_data(self, data):
        if self.rows and data.strip():
            self.rows[-1].texts.append(data)


def texts(component) -> list[str]:
    """Every string a component tree (a panel title) shows, in order."""
    found: list[str] = []

    def walk(item):
        if isinstance(item, list):
            for child in item:
                walk(child)
        elif isinstance(item, dict):
            walk(item.get("props", {}).get("children"))
        elif isinstance(item, str):
            found.append(item)

    walk(json.loads(json.dumps(component, cls=PlotlyJSONEncoder)))
    return found


def read_rows(markup: str, units_only: bool = True) -> list[Row]:
    reader = RowReader()
    reader.feed(markup)
    return [row for row in reader.rows if not units_only or "data-code" in row.attributes]


def rows_of(app, selection) -> list[Row]:
    return read_rows(markup_of(app, selection))


# ------------------------------------------------------------------------------------------------
# The order
# ------------------------------------------------------------------------------------------------


def children_frame(rows: list[tuple]) -> pd.DataFrame:
    """(code, value, status) → a frame as readings.children_readings returns it."""
    return pd.DataFrame([{"unit_id": index, "code": code, "name_zh": code, "name_en": code, "level": 4,
                          "population": 1, "value": value, "observed_at": 1 if value is not None else None,
                          "reported": 1, "expected": 1, "status": status} for index, (code, value, status)
                         in enumerate(rows)])


def test_children_are_ranked_worst_first_in_the_indicators_direction():
    from cityops.ranking import ranked_children

    frame = children_frame([("a", 1.0, "normal"), ("b", 6.0, "critical"), ("c", None, "nodata"),
                            ("d", 9.0, "stale"), ("e", 3.0, "warning"), ("f", 3.0, "warning"), ("g", 2.0, "stale")])
    assert ranked_children(frame, HOTLINE)["code"].tolist() == ["b", "e", "f", "a", "d", "g", "c"]
    compliance = CATALOG["garbage_sorting_compliance"]
    assert compliance.direction == Direction.HIGHER_IS_BETTER
    frame = children_frame([("a", 95.0, "normal"), ("b", 72.0, "critical"), ("c", 85.0, "warning"),
                            ("d", 40.0, "stale"), ("e", None, "nodata")])
    assert ranked_children(frame, compliance)["code"].tolist() == ["b", "c", "a", "d", "e"]


# ------------------------------------------------------------------------------------------------
# Rows and sparklines
# ------------------------------------------------------------------------------------------------


def test_sparklines_share_one_scale_break_at_gaps_and_mark_the_warning_line():
    from layouts.comparison import SPARK_HEIGHT, sparkline_svg

    def line_of(svg: str) -> str:
        return re.search(r"class='spark-line' d='([^']*)'", svg).group(1)

    low_line = sparkline_svg([1.0, 1.0, 1.0], (0.0, 10.0))
    high_line = sparkline_svg([9.0, 9.0, 9.0], (0.0, 10.0))
    heights = [int(re.match(r"M0 (\d+)", line_of(svg)).group(1)) for svg in (low_line, high_line)]
    assert heights[0] > heights[1]  # on the shared scale, the larger value is drawn higher (smaller y)
    broken = sparkline_svg([1.0, 2.0, None, None, 3.0, 4.0], (0.0, 10.0))
    assert line_of(broken).count("M") == 2  # a gap, not a line across the missing buckets
    assert "spark-warning" in sparkline_svg([1.0, 9.0], (0.0, 10.0), line=5.0)
    assert "spark-warning" not in sparkline_svg([1.0, 9.0], (0.0, 10.0), line=50.0)  # off the scale: not drawn
    assert sparkline_svg([None, 1.0], (0.0, 1.0)) == "" and sparkline_svg([1.0, 2.0], None) == ""
    assert f"viewBox='0 0 200 {SPARK_HEIGHT}'" in broken


def test_names_from_boundary_files_are_shown_never_run():
    from layouts.comparison import comparison_markup
    from cityops.ranking import ranked_children

    frame = children_frame([('990101001001"><script>alert(1)</script>', 3.0, "warning")])
    frame["name_zh"] = "<img src=x onerror=alert(1)>社区"
    markup = comparison_markup(ranked_children(frame, HOTLINE), pd.DataFrame(), HOTLINE, None, "zh", ZONE, 0, None)
    assert "<script" not in markup and "<img" not in markup
    row = read_rows(markup)[0]
    assert row.texts[1] == "<img src=x onerror=alert(1)>社区"  # shown as the text it is
    assert row.attributes["data-code"] == '990101001001"><script>alert(1)</script>'


@pytest.mark.parametrize("names, level, shown", [
    (["Songmen District", "Jinpu District"], Level.DISTRICT, ["Songmen", "Jinpu"]),  # the heading says Districts
    (["Chengbai Subdistrict", "Fenglin Town"], Level.STREET, ["Chengbai Subdistrict", "Fenglin Town"]),  # it tells
    (["Yuexin Community", "Yuanhua Community"], Level.COMMUNITY, ["Yuexin", "Yuanhua"]),
    (["Songmen District", "Jinpu District"], Level.STREET, ["Songmen District", "Jinpu District"]),  # not its word
    (["Riverside Park", "Lakeside Park"], Level.COMMUNITY, ["Riverside Park", "Lakeside Park"]),  # no level word
    (["District", "Jinpu District"], Level.DISTRICT, ["District", "Jinpu District"]),  # a name that is the word
    (["Songmen District"], Level.DISTRICT, ["Songmen District"]),               # one row: nothing shared to drop
])
def test_an_english_list_drops_the_level_word_every_name_ends_with(names, level, shown):
    from cityops.ranking import ranked_children
    from layouts.comparison import comparison_markup

    frame = children_frame([(f"c{index}", float(10 - index), "normal") for index in range(len(names))])
    frame["name_en"], frame["level"] = names, int(level)
    rows = read_rows(comparison_markup(ranked_children(frame, HOTLINE), pd.DataFrame(), HOTLINE, None, "en", ZONE,
                                       0, None))
    assert [row.texts[1] for row in rows] == shown
    assert [row.attributes["title"] for row in rows] == names  # the whole name on hover
    frame["name_zh"] = [f"{name}区" for name in names]
    zh = read_rows(comparison_markup(ranked_children(frame, HOTLINE), pd.DataFrame(), HOTLINE, None, "zh", ZONE, 0,
                                     None))
    assert [row.texts[1] for row in zh] == [f"{name}区" for name in names]


def test_two_hundred_rows_stay_light():
    """A street of 200 communities over 30 days (daily points): what one redraw sends."""
    from layouts.comparison import comparison_markup
    from cityops.ranking import ranked_children

    frame = children_frame([(f"c{index:03d}", float(index % 7), "normal") for index in range(200)])
    days = list(range(0, 30 * DAY, DAY))
    noise = random.Random(7)  # noisy lines, as real counts are: they compress less than a pattern would
    trends = pd.DataFrame([[noise.uniform(0, 12) for _day in range(30)] for _row in range(200)], columns=days)
    markup = comparison_markup(ranked_children(frame, HOTLINE), trends, HOTLINE,
                               HOTLINE.thresholds_at(Level.COMMUNITY), "zh", ZONE, int(time.time()), None)
    sent = json.dumps(markup).encode()
    # What goes over the wire (callback responses are compressed): under 100 bytes a row, sparkline included; and
    # what the browser parses: under 700 bytes a row.
    assert len(read_rows(markup)) == 200
    assert len(gzip.compress(sent)) < 200 * 100 and len(sent) < 200 * 700, (len(sent), len(gzip.compress(sent)))


# ------------------------------------------------------------------------------------------------
# The callbacks, on the city
# ------------------------------------------------------------------------------------------------


def test_a_street_ranks_its_communities_with_status_value_and_freshness(app):
    rows = rows_of(app, {"unit": S12, "indicator": "hotline_complaints", "range": "7d"})
    assert [row.attributes["data-code"] for row in rows] == [C_WARNING, C_STALE]  # a stale 9 after a current 3
    warning, stale = rows
    assert f"status-{Status.WARNING.value}" in warning.classes and f"status-{Status.STALE.value}" in stale.classes
    assert warning.texts[:4] == ["1", "社区02001", "3", "件/时"]
    assert stale.texts[:4] == ["2", "社区02002", "9", "件/时"] and stale.texts[-1].startswith("截至")
    assert all(row.sparkline for row in rows)  # each row draws its week


def test_a_district_ranks_its_streets_with_their_completeness(app):
    markup = markup_of(app, {"unit": D1, "indicator": "hotline_complaints"})
    rows = read_rows(markup)
    assert [row.attributes["data-code"] for row in rows] == [S11, S12]
    assert rows[0].texts[2:] == ["7", "件/时", "2/2"] and rows[1].texts[2:] == ["3", "件/时", "1/2"]
    assert "<span class='cmp-meta incomplete'>1/2</span>" in markup  # half the communities silent: highlighted
    assert read_rows(markup, units_only=False)[0].texts[-1] == "上报"  # the column says what the figure is


def test_a_community_shows_its_siblings_with_itself_marked(app):
    rows = rows_of(app, {"unit": C_NORMAL, "indicator": "hotline_complaints"})
    assert [row.attributes["data-code"] for row in rows] == [C_CRITICAL, C_NORMAL]
    assert ["selected" in row.classes for row in rows] == [False, True]
    assert "status-critical" in rows[0].classes


def test_an_indicator_not_measured_at_the_childrens_level_says_so(app):
    rows = read_rows(markup_of(app, {"unit": S11, "indicator": "aqi"}), units_only=False)
    assert [row.texts for row in rows] == [["社区/村级不统计"]]  # AQI is measured per street, not per community


def test_a_refresh_finding_the_same_rows_sends_nothing(app):
    from callbacks.comparison import show_comparison

    selection = {"unit": D1, "indicator": "hotline_complaints"}
    _markup, digest = in_callback(app, show_comparison, selection, 0, None)
    assert in_callback(app, show_comparison, selection, 1, digest) == (no_update, no_update)
    other, other_digest = in_callback(app, show_comparison, {**selection, "range": "30d"}, 2, digest)
    assert other_digest != digest  # the sparklines follow the range


def test_the_view_never_leaves_the_viewers_scope(app, monkeypatch):
    as_viewer(monkeypatch, D2)
    rows = rows_of(app, {"unit": D1, "indicator": "hotline_complaints"})
    assert {row.attributes["data-code"][:6] for row in rows} == {D2}  # a unit outside: the scope's own instead


def test_a_row_click_drills_there_only_within_scope(app, monkeypatch):
    from callbacks.comparison import select_compared_unit

    selection = {"unit": D1, "indicator": "aqi", "range": "30d", "compare": True}
    assert in_callback(app, select_compared_unit, {"code": S11}, selection) == {**selection, "unit": S11}
    for forged in ({"code": "110101"}, {"code": ["990101"]}, None, "990101001"):
        assert in_callback(app, select_compared_unit, forged, selection) is no_update
    assert in_callback(app, select_compared_unit, {"code": D1}, selection) is no_update  # already there
    as_viewer(monkeypatch, D2)
    assert in_callback(app, select_compared_unit, {"code": S11}, selection) is no_update


def test_titles_follow_the_range(app):
    from callbacks.ranking import show_children_title
    from callbacks.trend import mount_trend

    title = in_callback(app, show_children_title, {"unit": D1, "indicator": "hotline_complaints", "range": "30d"})
    assert texts(title) == ["街道/镇排名", "（2个）", " · 12345热线诉求", " · 近30天"]
    _graph, trend, _mounted_with = in_callback(app, mount_trend, None, {"unit": D1, "indicator": "hotline_complaints",
                                                         "range": "custom", "start": "2026-03-01",
                                                         "end": "2026-03-15", "compare": True}, None)
    # The title ends with how fresh the unit's newest value is.
    assert texts(trend)[0] == "12345热线诉求 · 区1 · 3月1日–3月15日 · 对比上周同期" and texts(trend)[-1].startswith("截至")
    _graph, bad, _mounted_with = in_callback(app, mount_trend, None, {"unit": D1, "indicator": "hotline_complaints",
                                                       "range": "custom", "start": "2026-03-15", "end": "2026-03-01"},
                              None)
    assert texts(bad)[:2] == ["12345热线诉求 · 区1 · 近7天", " · 结束日期早于开始日期，显示近7天"]


def test_an_empty_trend_says_why_on_a_date_axis(app, monkeypatch):
    """A community's trend of a street-level indicator is its street's, named in the title; for a viewer who may
    not see that street, it says the indicator is not measured there; a range without values says so; all keep the
    range's dates on the axis (an empty chart fell back to a numeric axis, -1 to 6)."""
    from callbacks.trend import show_trend
    from layouts.ids import trend_figure_id

    def said(figure) -> list[str]:
        return [note.text for note in figure.layout.annotations if note.xref == "paper"]

    def trend(selection, graphs=1):
        # One mounted graph (the ALL output's one match), as the page sends it.
        return in_callback(app, show_trend, selection, None, 0, None,
                           outputs_list=[[{"id": trend_figure_id(), "property": "figure"}] * graphs,
                                         {"id": "trend-title", "property": "children"}])

    # The street has AQI in the catalog but none stored here: no data in the range, not "not measured".
    [street_level], title = trend({"unit": C_NORMAL, "indicator": "aqi", "range": "7d"})
    assert said(street_level) == ["此时间范围内无数据"] and street_level.layout.xaxis.type == "date"
    # The title comes with its figure (one answer: the title of the next view never shows over the last chart),
    # and alone before the graph is mounted. It names whose trend it is: the community's street.
    assert texts(title)[0] == "空气质量指数 · 街道1001 · 近7天"
    figures, alone = trend({"unit": C_NORMAL, "indicator": "aqi", "range": "7d"}, graphs=0)
    assert figures == [] and texts(alone) == texts(title)
    [street], street_title = trend({"unit": S11, "indicator": "aqi", "range": "7d"})
    assert texts(street_title) == texts(title)
    assert json.dumps(street.data, cls=PlotlyJSONEncoder) == json.dumps(street_level.data, cls=PlotlyJSONEncoder)
    [measured], _ = trend({"unit": C_NORMAL, "indicator": "hotline_complaints", "range": "7d"})
    assert said(measured) == [] and measured.layout.yaxis.showticklabels is True

    as_viewer(monkeypatch, C_NORMAL)  # may see the community only: its street's trend is not theirs to see
    [not_measured], title = trend({"unit": C_NORMAL, "indicator": "aqi", "range": "7d"})
    assert said(not_measured) == ["社区/村级不统计"] and texts(title)[0] == "空气质量指数 · 社区01002 · 近7天"
    assert not_measured.layout.xaxis.type == "date" and not_measured.layout.xaxis.zeroline is False
    assert not [value for trace in not_measured.data for value in (trace.y or ()) if value == value]


def test_a_graph_mounted_with_a_selection_since_replaced_is_redrawn(app):
    """A wall loading as its playlist moves on: the graph is mounted with the step it was asked for, the title
    has already moved to the next. The note of what the graph was mounted with brings both to the selection shown,
    and costs nothing when they agree."""
    from callbacks.trend import mount_trend, show_trend
    from layouts.ids import TrendIds, trend_figure_id

    before = {"unit": D1, "indicator": "hotline_complaints", "range": "7d"}
    now_shown = {"unit": D1, "indicator": "aqi", "range": "7d"}
    _graph, _title, mounted_with = in_callback(app, mount_trend, None, before, None)
    assert mounted_with == before
    mounted = [{"prop_id": f"{TrendIds.MOUNTED_WITH}.data", "value": mounted_with}]
    outputs = [[{"id": trend_figure_id(), "property": "figure"}], {"id": "trend-title", "property": "children"}]
    assert in_callback(app, show_trend, before, None, 0, None, mounted_with, triggered=mounted,
                       outputs_list=outputs) == (no_update, no_update)
    [figure], title = in_callback(app, show_trend, now_shown, None, 0, None, mounted_with, triggered=mounted,
                                  outputs_list=outputs)
    assert texts(title)[0].startswith("空气质量指数") and figure.layout.yaxis.title.text == "AQI"


def test_range_labels_in_both_languages():
    from datetime import date

    from layouts.trend import range_label

    def label(selection, language):
        return range_label(resolve_range(selection, NOW, ZONE), language, date(2026, 11, 26))

    NOW = 1795660200  # 2026-11-26 10:30 in Shanghai
    assert [label({"range": key}, "zh") for key in ("24h", "7d", "30d")] == ["近24小时", "近7天", "近30天"]
    assert [label({"range": key}, "en") for key in ("24h", "7d", "30d")] == \
        ["last 24 hours", "last 7 days", "last 30 days"]
    march = {"range": "custom", "start": "2026-03-01", "end": "2026-03-15"}
    assert (label(march, "zh"), label(march, "en")) == ("3月1日–3月15日", "1 Mar – 15 Mar")
    new_year = {"range": "custom", "start": "2025-12-20", "end": "2026-01-05"}
    assert label(new_year, "zh") == "2025年12月20日–2026年1月5日"
    assert label(new_year, "en") == "20 Dec 2025 – 5 Jan 2026"
    assert label({"range": "custom", "start": "2026-11-26", "end": "2026-11-26"}, "zh") == "11月26日"


# ------------------------------------------------------------------------------------------------
# The trend figure and the range control
# ------------------------------------------------------------------------------------------------


def test_the_trend_figure_follows_the_range_and_overlays_last_week(app):
    from callbacks.trend import show_trend
    from layouts.ids import trend_figure_id

    now = int(time.time())

    def figure(selection):
        figures, _title = in_callback(app, show_trend, {"unit": S11, "indicator": "hotline_complaints", **selection},
                                      None, 0, None,
                                      outputs_list=[[{"id": trend_figure_id(), "property": "figure"}],
                                                    {"id": "trend-title", "property": "children"}])
        return figures[0]

    day, month = figure({"range": "24h"}), figure({"range": "30d", "compare": True})
    span = [pd.Timestamp(edge).timestamp() for edge in month.layout.xaxis.range]
    assert round(span[1] - span[0]) == 30 * DAY and abs(span[1] - now) < 120
    day_span = [pd.Timestamp(edge).timestamp() for edge in day.layout.xaxis.range]
    assert round(day_span[1] - day_span[0]) == DAY
    assert [trace.name for trace in day.data] == ["本期"]
    lines = [trace for trace in month.data if trace.hoverinfo != "skip"]
    assert [trace.name for trace in lines] == ["本期", "上周同期"] and lines[1].line.dash == "dash"
    # 30 days of hourly counts in 6-hour buckets: a band of the lowest and highest hour around the mean.
    assert len([trace for trace in month.data if trace.hoverinfo == "skip"]) == 2
    assert month.layout.showlegend and not day.layout.showlegend
    # Street 990101001 reads 7 an hour every hour, this week and last.
    assert {round(v, 6) for v in lines[0].y if v == v} == {7.0}
    assert {round(v, 6) for v in lines[1].y if v == v} == {7.0}


def test_the_range_control_writes_only_valid_ranges():
    from callbacks.trend import range_update
    from layouts.ids import PageIds, RangeIds

    now, selection = 1795660200, {"unit": D1, "indicator": "aqi", "range": "7d", "start": None, "end": None,
                                  "compare": False}

    def update(trigger, preset="7d", start=None, end=None, compare=()):
        return range_update(selection, trigger, preset, start, end, list(compare), now, ZONE, "zh")

    chosen, preset, hidden, *_rest = update(RangeIds.PRESETS, "30d")
    assert chosen == {**selection, "range": "30d"} and (preset, hidden) == ("30d", True)
    chosen, preset, hidden, start, end, latest, compare, message = update(RangeIds.PRESETS, "custom")
    assert chosen == {**selection, "range": "custom", "start": "2026-11-20", "end": "2026-11-26"}
    assert (preset, hidden, start, end, latest, message) == ("custom", False, "2026-11-20", "2026-11-26",
                                                             "2026-11-26", "")
    chosen, *_rest = update(RangeIds.DATES, "custom", "2026-03-01", "2026-03-15")
    assert chosen["range"] == "custom" and (chosen["start"], chosen["end"]) == ("2026-03-01", "2026-03-15")
    refused = update(RangeIds.DATES, "custom", "2024-01-01", "2026-03-15")
    assert refused[0] is no_update and refused[3] is no_update  # not applied; the picker keeps what was picked
    assert refused[-1] == "时间范围不能超过400天"
    chosen, *_rest, compare, _message = update(RangeIds.COMPARE, compare=["compare"])
    assert chosen == {**selection, "compare": True} and compare == ["compare"]
    # The selection changed elsewhere (a deep link, back/forward): the control follows, writing nothing back.
    followed = range_update({**selection, "range": "custom", "start": "2026-03-01", "end": "2026-03-15",
                             "compare": True}, PageIds.SELECTION, "7d", None, None, [], now, ZONE, "zh")
    assert followed[:5] == (no_update, "custom", False, "2026-03-01", "2026-03-15") and followed[6] == ["compare"]
    broken = range_update({**selection, "range": "custom", "start": "nope"}, PageIds.SELECTION, "7d", None, None,
                          [], now, ZONE, "zh")
    assert broken[:3] == (no_update, "7d", True)  # shows what the charts show: the default
    assert resolve_range({"range": "custom", "start": "nope"}, now, ZONE).problem == RangeProblem.BAD_DATE
