"""Time ranges for trends: presets, custom dates, bad input falling back with its reason, buckets, the zone; and
the bucketed trend read from the database over 30 days, with the previous week beside it.

The database part loads the tiny city with 37 days of hourly 12345 counts in every community: 3 an hour during
the last 7 days, 1 an hour before that, and community C0 silent for two whole days 12–13 days ago. So a street
(C0 + C1, a sum) reads 6 an hour this week, 2 before, and 1 of 2 reported (value 1) while C0 was silent.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from cityops.readings import without_filling_bucket
from cityops.rollup import refresh_rollups
from cityops.scope import OutOfScope, scope_of_unit
from cityops.time_range import (
    DAY, MAX_CUSTOM_DAYS, WEEK, RangeProblem, bucket_at_least, bucket_floor, bucket_for, resolve_range,
    with_compare, with_custom, with_preset,
)
from cityops.tree import load_tree

ZONE = "Asia/Shanghai"
SHANGHAI = ZoneInfo(ZONE)
NOW = int(datetime(2026, 11, 26, 10, 30, tzinfo=SHANGHAI).timestamp())  # Thursday 10:30, as tests/conftest.py
HOUR = 3600


def local(*args, zone=SHANGHAI) -> int:
    return int(datetime(*args, tzinfo=zone).timestamp())


# ------------------------------------------------------------------------------------------------
# Resolving a selection
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key, span, bucket", [("24h", DAY, 900), ("7d", 7 * DAY, HOUR), ("30d", 30 * DAY, 6 * HOUR)])
def test_presets_are_rolling_windows_ending_now(key, span, bucket):
    resolved = resolve_range({"range": key, "compare": True}, NOW, ZONE)
    assert (resolved.key, resolved.start, resolved.end, resolved.bucket) == (key, NOW - span, NOW, bucket)
    assert resolved.compare and resolved.problem is None and resolved.first_day is None
    assert resolved.previous_week == (NOW - span - WEEK, NOW - WEEK)
    assert resolved.utc_offset == 8 * HOUR


def test_no_selection_is_the_last_seven_days_without_comparison():
    for selection in (None, {}, "7d", {"unit": "990101"}):
        resolved = resolve_range(selection, NOW, ZONE)
        assert (resolved.key, resolved.window, resolved.compare, resolved.problem) == \
            ("7d", (NOW - 7 * DAY, NOW), False, None)


def test_a_custom_range_is_whole_days_in_the_citys_zone():
    resolved = resolve_range({"range": "custom", "start": "2026-03-01", "end": "2026-03-15"}, NOW, ZONE)
    # Midnight in Shanghai is 16:00 UTC the day before; the end date is included up to its last second.
    assert resolved.start == int(datetime(2026, 2, 28, 16, tzinfo=ZoneInfo("UTC")).timestamp())
    assert resolved.end == local(2026, 3, 16)
    assert (resolved.first_day, resolved.last_day) == (date(2026, 3, 1), date(2026, 3, 15))
    assert resolved.bucket == 6 * HOUR and resolved.problem is None  # 15 days: 60 points


def test_a_custom_range_ending_today_ends_now_and_one_reaching_past_today_is_cut_there():
    today = resolve_range({"range": "custom", "start": "2026-11-20", "end": "2026-11-26"}, NOW, ZONE)
    assert (today.start, today.end) == (local(2026, 11, 20), NOW)
    later = resolve_range({"range": "custom", "start": "2026-11-20", "end": "2027-01-31"}, NOW, ZONE)
    assert (later.window, later.last_day, later.problem) == (today.window, date(2026, 11, 26), None)


@pytest.mark.parametrize("start, end, problem", [
    ("2026-02-30", "2026-03-15", RangeProblem.BAD_DATE),      # no such day
    ("2026/03/01", "2026-03-15", RangeProblem.BAD_DATE),
    ("20260301", "2026-03-15", RangeProblem.BAD_DATE),        # ISO, but not the form the URL shows
    (None, "2026-03-15", RangeProblem.BAD_DATE),
    (20260301, "2026-03-15", RangeProblem.BAD_DATE),
    ("2026-03-01 00:00", "2026-03-15", RangeProblem.BAD_DATE),
    ("<script>", "2026-03-15", RangeProblem.BAD_DATE),
    ("2026-03-15", "2026-03-01", RangeProblem.END_BEFORE_START),
    ("2026-12-01", "2026-12-05", RangeProblem.IN_FUTURE),
    ("2025-01-01", "2026-11-26", RangeProblem.TOO_LONG),      # 695 days
])
def test_bad_custom_input_falls_back_to_the_default_and_says_why(start, end, problem):
    resolved = resolve_range({"range": "custom", "start": start, "end": end, "compare": True}, NOW, ZONE)
    assert (resolved.key, resolved.window, resolved.problem) == ("7d", (NOW - 7 * DAY, NOW), problem)
    assert resolved.compare  # what was valid in the selection is kept


def test_an_unknown_range_falls_back_too():
    for key in ("90d", 7, ["7d"], {"range": "7d"}):
        resolved = resolve_range({"range": key}, NOW, ZONE)
        assert (resolved.key, resolved.problem) == ("7d", RangeProblem.UNKNOWN)
    assert resolve_range({"range": None}, NOW, ZONE).problem is None  # nothing asked for: the default


def test_the_longest_custom_range_is_drawn_in_daily_points():
    first = date(2026, 11, 26).toordinal() - MAX_CUSTOM_DAYS + 1
    longest = resolve_range({"range": "custom", "start": date.fromordinal(first).isoformat(),
                             "end": "2026-11-26"}, NOW, ZONE)
    assert longest.problem is None and longest.bucket == DAY
    assert (longest.end - longest.start) / longest.bucket <= MAX_CUSTOM_DAYS
    one_more = resolve_range({"range": "custom", "start": date.fromordinal(first - 1).isoformat(),
                              "end": "2026-11-26"}, NOW, ZONE)
    assert one_more.problem == RangeProblem.TOO_LONG


def test_compare_is_on_only_when_the_selection_says_true():
    assert [resolve_range({"compare": value}, NOW, ZONE).compare for value in (True, "true", 1, None)] == \
        [True, False, False, False]


def test_days_follow_the_zone_across_a_daylight_saving_change():
    berlin = ZoneInfo("Europe/Berlin")  # clocks went forward on 2026-03-29: that day has 23 hours
    resolved = resolve_range({"range": "custom", "start": "2026-03-28", "end": "2026-03-29"}, NOW, "Europe/Berlin")
    assert (resolved.start, resolved.end) == (local(2026, 3, 28, zone=berlin), local(2026, 3, 30, zone=berlin))
    assert resolved.end - resolved.start == 47 * HOUR
    assert resolved.utc_offset == HOUR  # winter time at the start: buckets begin at Berlin's midnight


# ------------------------------------------------------------------------------------------------
# Buckets
# ------------------------------------------------------------------------------------------------


def test_buckets_keep_charts_and_sparklines_light():
    assert [bucket_for(span) for span in (DAY, 7 * DAY, 30 * DAY, 60 * DAY, 400 * DAY)] == \
        [900, HOUR, 6 * HOUR, DAY, DAY]
    assert [bucket_for(span, 48) for span in (DAY, 7 * DAY, 30 * DAY)] == [HOUR, 6 * HOUR, DAY]
    assert resolve_range({"range": "30d"}, NOW, ZONE).spark_bucket == DAY


def test_a_bucket_is_never_finer_than_the_indicators_interval():
    assert bucket_at_least(900, 300) == 900
    assert bucket_at_least(900, HOUR) == HOUR
    assert bucket_at_least(HOUR, DAY) == DAY
    assert bucket_at_least(900, 2 * HOUR) == 6 * HOUR  # the next bucket that holds one interval


def test_buckets_start_at_the_citys_midnight():
    assert bucket_floor(NOW, DAY, 8 * HOUR) == local(2026, 11, 26)
    assert bucket_floor(NOW, 6 * HOUR, 8 * HOUR) == local(2026, 11, 26, 6)
    assert bucket_floor(NOW, 900, 8 * HOUR) == local(2026, 11, 26, 10, 30)


# ------------------------------------------------------------------------------------------------
# What the range control writes
# ------------------------------------------------------------------------------------------------


def test_the_control_writes_only_valid_ranges_and_keeps_the_rest_of_the_selection():
    selection = {"unit": "990101", "indicator": "aqi", "range": "7d", "start": "2026-03-01", "end": "2026-03-15",
                 "compare": True}
    assert with_preset(selection, "30d") == {**selection, "range": "30d"}
    assert with_preset(selection, "90d") is None and with_preset(selection, ["7d"]) is None
    chosen, problem = with_custom(selection, "2026-10-01", "2026-10-31", NOW, ZONE)
    assert problem is None and chosen == {**selection, "range": "custom", "start": "2026-10-01", "end": "2026-10-31"}
    assert with_custom(selection, "2026-10-31", "2026-10-01", NOW, ZONE) == (None, RangeProblem.END_BEFORE_START)
    assert with_custom(selection, "2024-01-01", "2026-10-01", NOW, ZONE) == (None, RangeProblem.TOO_LONG)
    assert with_custom(selection, "2026-10-01", None, NOW, ZONE) == (None, RangeProblem.BAD_DATE)
    assert with_compare(selection, "yes")["compare"] is False and with_compare(None, True) == {"compare": True}


def test_custom_without_dates_starts_as_the_last_seven_whole_days():
    chosen, problem = with_custom({"range": "24h"}, None, None, NOW, ZONE)
    assert problem is None and chosen == {"range": "custom", "start": "2026-11-20", "end": "2026-11-26"}


# ------------------------------------------------------------------------------------------------
# The bucketed trend, read from the database
# ------------------------------------------------------------------------------------------------

CITY, D1, D2 = "990000", "990101", "990102"
S11 = "990101001"
C0, C1 = S11 + "001", S11 + "002"
COMMUNITIES = [s + c for s in ("990101001", "990101002", "990102001", "990102002") for c in ("001", "002")]
FIRST_HOUR = NOW // HOUR * HOUR - 37 * DAY
SILENT = (local(2026, 11, 13), local(2026, 11, 15))  # C0 reports nothing on 13 and 14 November


def hourly_count(code: str, at: int) -> float | None:
    if code == C0 and SILENT[0] <= at < SILENT[1]:
        return None
    return 3.0 if at >= NOW - 7 * DAY else 1.0


@pytest.fixture
def history(city_db):
    rows = [(code, "hotline_complaints", at, value) for at in range(FIRST_HOUR, NOW, HOUR) for code in COMMUNITIES
            if (value := hourly_count(code, at)) is not None]
    _, touched = city_db.store(rows)
    with city_db.session() as session:
        refresh_rollups(session, city_db.catalog, city_db.indicator_ids, load_tree(session), touched, NOW, 8 * HOUR)
    return city_db


def read_trend(db, code: str, window, bucket: int, scope_code: str = CITY, now: int | None = None) -> pd.DataFrame:
    from cityops.readings import bucketed_trend

    with db.session() as session:
        scope = scope_of_unit(load_tree(session), db.unit_ids[scope_code])
        return bucketed_trend(session, scope, db.catalog, db.indicator_ids, db.unit_ids[code], "hotline_complaints",
                              *window, bucket, 8 * HOUR, now=now)


def test_thirty_days_of_a_community_in_six_hour_buckets(history):
    resolved = resolve_range({"range": "30d"}, NOW, ZONE)
    series = read_trend(history, C0, resolved.window, resolved.bucket)
    # One row per 6-hour bucket from the one holding the window's start (10:30 → 06:00) to the one holding now.
    assert series["time"].tolist() == list(range(local(2026, 10, 27, 6), NOW, 6 * HOUR))
    by_time = series.set_index("time")
    assert by_time.loc[local(2026, 11, 1, 6), ["value", "low", "high"]].tolist() == [1.0, 1.0, 1.0]
    assert by_time.loc[local(2026, 11, 24), ["value", "low", "high"]].tolist() == [3.0, 3.0, 3.0]
    # The bucket the week turned in (06:00–12:00 on the 19th; of its hours only 11:00 is within the last 7
    # days): the mean, and the lowest and highest hour within it.
    turning = by_time.loc[local(2026, 11, 19, 6)]
    assert (turning["low"], turning["high"]) == (1.0, 3.0) and turning["value"] == pytest.approx((5 * 1 + 3) / 6)
    # The two silent days are gaps, never zeros.
    silent = by_time.loc[SILENT[0]:SILENT[1] - 1, "value"]
    assert len(silent) == 8 and silent.isna().all()


def test_thirty_days_of_a_street_roll_up_carry_their_completeness(history):
    resolved = resolve_range({"range": "30d"}, NOW, ZONE)
    series = read_trend(history, S11, resolved.window, resolved.bucket).set_index("time")
    assert series.loc[local(2026, 11, 24), ["value", "reported", "expected"]].tolist() == [6.0, 2.0, 2.0]
    assert series.loc[local(2026, 11, 1), ["value", "reported", "expected"]].tolist() == [2.0, 2.0, 2.0]
    assert series.loc[SILENT[0], ["value", "reported", "expected"]].tolist() == [1.0, 1.0, 2.0]  # C0 silent


def test_the_previous_week_lines_up_with_this_week_once_shifted(history):
    resolved = resolve_range({"range": "7d", "compare": True}, NOW, ZONE)
    this_week = read_trend(history, D1, resolved.window, resolved.bucket)
    previous = read_trend(history, D1, resolved.previous_week, resolved.bucket)
    assert (previous["time"] + WEEK).tolist() == this_week["time"].tolist()  # the same grid, a week apart
    # District 1 (four communities): 12 an hour this week; 4 an hour the week before, 3 while C0 was silent.
    # (The first bucket is the hour holding the window's start, 10:00 seven days ago: still last week's 4.)
    assert this_week["value"].iloc[0] == 4.0 and this_week["value"].iloc[1:].eq(12.0).all()
    silent = previous["time"].between(SILENT[0], SILENT[1] - 1)
    assert silent.sum() == 48 and previous["value"][silent].eq(3.0).all() and previous["value"][~silent].eq(4.0).all()


def test_a_day_long_window_of_hourly_figures_is_drawn_hour_by_hour(history):
    resolved = resolve_range({"range": "24h"}, NOW, ZONE)
    bucket = bucket_at_least(resolved.bucket, history.catalog["hotline_complaints"].interval_seconds)
    series = read_trend(history, C1, resolved.window, bucket)
    assert bucket == HOUR and len(series) == 25 and series["value"].eq(3.0).all()


def test_a_trend_outside_the_viewers_scope_is_refused(history):
    with pytest.raises(OutOfScope):
        read_trend(history, "990102001001", (NOW - DAY, NOW), HOUR, scope_code=D1)


def test_children_trends_hold_one_row_per_child_in_scope(history):
    from cityops.readings import children_trends

    resolved = resolve_range({"range": "30d"}, NOW, ZONE)

    def wide(scope_code: str, parent: str) -> pd.DataFrame:
        with history.session() as session:
            scope = scope_of_unit(load_tree(session), history.unit_ids[scope_code])
            return children_trends(session, scope, history.catalog, history.indicator_ids, history.unit_ids[parent],
                                   "hotline_complaints", *resolved.window, resolved.spark_bucket, 8 * HOUR)

    communities = wide(CITY, S11)
    c0, c1 = history.unit_ids[C0], history.unit_ids[C1]
    assert sorted(communities.index) == sorted([c0, c1])
    assert list(communities.columns) == list(range(local(2026, 10, 27), NOW, DAY))  # daily points over 30 days
    assert pd.isna(communities.loc[c0, local(2026, 11, 13)]) and communities.loc[c1, local(2026, 11, 13)] == 1.0
    assert communities.loc[c1, local(2026, 11, 25)] == 3.0
    streets = wide(D1, D1)
    assert len(streets) == 2 and streets.loc[history.unit_ids[S11], local(2026, 11, 25)] == 6.0
    with pytest.raises(OutOfScope):
        wide(D1, CITY)  # a district officer asking for the whole city's districts


# ------------------------------------------------------------------------------------------------
# The bucket still filling
# ------------------------------------------------------------------------------------------------

CURRENT_HOUR = NOW // HOUR * HOUR


@pytest.fixture
def filling_history(city_db):
    """Eight days of 3 complaints an hour in every community; in the current hour (10:00, NOW is 10:30) and in
    the same hour a week ago, C0 has not reported: street S11's sum is 3 of its usual 6, one of two in."""
    rows = [(code, "hotline_complaints", at, 3.0) for at in range(CURRENT_HOUR - 8 * DAY, NOW, HOUR)
            for code in COMMUNITIES if not (code == C0 and at in (CURRENT_HOUR, CURRENT_HOUR - WEEK))]
    _, touched = city_db.store(rows)
    with city_db.session() as session:
        refresh_rollups(session, city_db.catalog, city_db.indicator_ids, load_tree(session), touched, NOW, 8 * HOUR)
    return city_db


def test_a_coarse_bucket_holding_the_hour_still_filling_is_the_mean_of_its_other_hours(filling_history):
    """The 30-day trend's last six-hour bucket (06:00–12:00) holds four whole hours and the filling one: drawn
    as the whole hours' 6 (not 5.4, nor left out for the six hours it takes to end); so the comparison rows."""
    from cityops.readings import children_trends

    resolved = resolve_range({"range": "30d"}, NOW, ZONE)
    series = read_trend(filling_history, S11, resolved.window, resolved.bucket).set_index("time")
    assert series.loc[local(2026, 11, 26, 6), "value"] == 6.0
    with filling_history.session() as session:
        tree = load_tree(session)
        rows = children_trends(session, scope_of_unit(tree, tree.root_id), filling_history.catalog,
                               filling_history.indicator_ids, filling_history.unit_ids[D1], "hotline_complaints",
                               *resolved.window, 6 * HOUR, 8 * HOUR)
    assert rows.loc[filling_history.unit_ids[S11], local(2026, 11, 26, 6)] == 6.0
    # Hour by hour, the filling hour is left out with its completeness kept (the chart says it is filling).
    hourly = read_trend(filling_history, S11, (NOW - DAY, NOW), HOUR).set_index("time")
    assert pd.isna(hourly.loc[CURRENT_HOUR, "value"]) and hourly.loc[CURRENT_HOUR, "reported"] == 1
    assert hourly.loc[CURRENT_HOUR - HOUR, "value"] == 6.0


def test_a_coarse_bucket_holding_only_the_hour_still_filling_keeps_its_completeness(filling_history):
    """Two-hour points, the last (10:00–12:00) holding only the hour still filling: empty, with that hour's
    completeness, so the chart says it is filling rather than ending early without a word."""
    from layouts.trend import trend_figure

    series = read_trend(filling_history, S11, (NOW - DAY, NOW), 2 * HOUR).set_index("time")
    assert pd.isna(series.loc[CURRENT_HOUR, "value"])
    assert series.loc[CURRENT_HOUR, ["reported", "expected"]].tolist() == [1.0, 2.0]
    assert series.loc[CURRENT_HOUR - 2 * HOUR, "value"] == 6.0
    figure = trend_figure(series.reset_index(), filling_history.catalog["hotline_complaints"], None, ZONE, "en",
                          (NOW - DAY, NOW), bucket=2 * HOUR)
    assert [note.text for note in figure.layout.annotations] == ["10:00 onwards still filling (1/2 reported)"]


def test_last_week_s_hours_are_over_and_drawn_as_they_are(filling_history):
    """The "vs last week" line ends at the hour a week ago that one community missed: that hour is long over, so
    it is drawn (3), not taken for an hour still filling."""
    resolved = resolve_range({"range": "7d", "compare": True}, NOW, ZONE)
    previous = read_trend(filling_history, S11, resolved.previous_week, HOUR, now=NOW).set_index("time")
    assert previous.loc[CURRENT_HOUR - WEEK, "value"] == 3.0


def filling_series(reported: float, start: int) -> pd.DataFrame:
    return pd.DataFrame({"time": [start - HOUR, start], "value": [197.0, 5.0], "low": [190.0, 5.0],
                         "high": [205.0, 5.0], "reported": [5935.0, reported], "expected": [6000.0, 6000.0]})


@pytest.mark.parametrize("key, reported, until_after_start, drawn", [
    ("hotline_complaints", 436, 4 * 60, False),   # a sum, 7 % in, its hour four minutes old: left out
    ("hotline_complaints", 5300, 40 * 60, False),  # most in: still short by what the rest will report
    ("hotline_complaints", 6000, 40 * 60, True),  # every community in: drawn before the hour is over
    ("hotline_complaints", 436, HOUR, True),      # the hour is over: a fall with most of the city silent is news
    ("aqi", 20, 4 * 60, True),                    # a mean of what has come is already a fair reading
])
def test_a_sum_s_bucket_still_filling_is_not_drawn_as_a_fall(catalog, key, reported, until_after_start, drawn):
    start = NOW // HOUR * HOUR
    series = without_filling_bucket(filling_series(reported, start), catalog[key], start + until_after_start, HOUR)
    assert pd.notna(series["value"].iloc[-1]) is drawn
    assert pd.notna(series["low"].iloc[-1]) is drawn and pd.notna(series["high"].iloc[-1]) is drawn
    assert series["value"].iloc[0] == 197.0 and series["reported"].iloc[-1] == reported  # completeness kept


def test_the_trend_says_the_hour_it_leaves_out_is_still_filling(catalog):
    """The line then ends an hour before the title's as-of time: the chart says why, in the viewer's language."""
    from layouts.trend import trend_figure

    start = NOW // HOUR * HOUR
    indicator = catalog["hotline_complaints"]

    def notes(reported, language="zh"):
        series = without_filling_bucket(filling_series(reported, start), indicator, start + 40 * 60, HOUR)
        figure = trend_figure(series, indicator, None, "Asia/Shanghai", language, (start - 6 * HOUR, start + 40 * 60))
        return [note.text for note in figure.layout.annotations]

    at = datetime.fromtimestamp(start, ZoneInfo("Asia/Shanghai")).strftime("%H:%M")
    assert notes(5300) == [f"{at} 起本时段汇总中（5,300/6,000 已上报）"]
    assert notes(5300, "en") == [f"{at} onwards still filling (5,300/6,000 reported)"]
    assert notes(6000) == []  # every community in: drawn, nothing to say
    # A ratio nobody's denominator fed is empty with everyone in (a community's overdue rate without open
    # incidents): no hour still filling.
    rate = catalog["grid_overdue_rate"]
    empty = pd.DataFrame({"time": [start - HOUR, start], "value": [4.0, float("nan")], "reported": [1.0, 1.0],
                          "expected": [1.0, 1.0]})
    figure = trend_figure(empty, rate, None, "Asia/Shanghai", "zh", (start - 6 * HOUR, start + 40 * 60))
    assert [note.text for note in figure.layout.annotations] == []
