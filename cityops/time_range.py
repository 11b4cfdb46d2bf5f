"""The trends' time range: a selection's "range", "start", "end" and "compare" resolved to a window in the
city's zone, and the size of the time buckets a chart of that window is drawn with.

Pure (no database, no Dash): the page's selection is untrusted input, so everything here validates it and
says why it fell back rather than raising. Presets are rolling windows ending now ("last 7 days"); a custom
range is whole days in the city's zone, from the start date's midnight to the end of the end date (or now,
for today).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

DAY = 86400
WEEK = 7 * DAY

PRESETS = {"24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
CUSTOM = "custom"
RANGES = (*PRESETS, CUSTOM)
DEFAULT_RANGE = "7d"
# A custom range longer than this is refused: a year and a month covers "this quarter against last year's".
MAX_CUSTOM_DAYS = 400

# Bucket sizes a chart may use, finest first. Each divides a day, so buckets start at local midnight and a week
# is a whole number of them (the previous week's buckets line up with this week's).
BUCKETS = (300, 900, 3600, 6 * 3600, DAY)
# At most this many points on the trend chart, and on a comparison row's sparkline: enough to show the shape,
# few enough that a 400-day range or 200 sparklines stay light to query, send and draw.
CHART_POINTS = 200
SPARK_POINTS = 48

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class RangeProblem(StrEnum):
    """Why the range asked for was not the one shown (the default is shown instead)."""

    UNKNOWN = "unknown"                    # not one of RANGES
    BAD_DATE = "bad_date"                  # a custom date missing or not a real YYYY-MM-DD date
    END_BEFORE_START = "end_before_start"
    IN_FUTURE = "in_future"                # the start date has not happened yet
    TOO_LONG = "too_long"                  # more than MAX_CUSTOM_DAYS


@dataclass(frozen=True)
class TimeRange:
    """A resolved range: what the charts show and how finely."""

    key: str                       # "24h", "7d", "30d" or "custom": the range shown
    start: int                     # epoch seconds, inclusive
    end: int                       # epoch seconds, exclusive (now, or the end date's end)
    bucket: int                    # seconds per point on the trend chart
    utc_offset: int                # the zone's offset at `start`: buckets of a day start at local midnight
    first_day: date | None = None  # a custom range's dates, both inclusive
    last_day: date | None = None
    compare: bool = False          # overlay the same window one week earlier
    problem: RangeProblem | None = None

    @property
    def window(self) -> tuple[int, int]:
        return self.start, self.end

    @property
    def previous_week(self) -> tuple[int, int]:
        """The same window one week earlier: what "compare" overlays, shifted forward by WEEK."""
        return self.start - WEEK, self.end - WEEK

    @property
    def spark_bucket(self) -> int:
        """The coarser bucket of a comparison row's sparkline over the same window."""
        return bucket_for(self.end - self.start, SPARK_POINTS)


def bucket_for(span_seconds: int, max_points: int = CHART_POINTS) -> int:
    """The finest bucket in BUCKETS that draws `span_seconds` in at most `max_points` points (the coarsest one
    for spans longer than that allows: 400 days are 400 daily points)."""
    for size in BUCKETS:
        if span_seconds / size <= max_points:
            return size
    return BUCKETS[-1]


def bucket_at_least(bucket: int, interval_seconds: int) -> int:
    """A bucket no finer than an indicator's own interval: daily figures drawn in hourly buckets would be a
    dotted line of single points with a gap between each."""
    if bucket >= interval_seconds:
        return bucket
    return next((size for size in BUCKETS if size >= interval_seconds), BUCKETS[-1])


def bucket_floor(at: int, bucket: int, utc_offset: int) -> int:
    """The start of the bucket holding `at`, buckets aligned on the zone's midnight."""
    return (at + utc_offset) // bucket * bucket - utc_offset


def utc_offset(zone: str, at: int) -> int:
    return int(datetime.fromtimestamp(at, ZoneInfo(zone)).utcoffset().total_seconds())


def today_in(zone: str, now: int) -> date:
    return datetime.fromtimestamp(now, ZoneInfo(zone)).date()


def parse_day(value) -> date | None:
    """A YYYY-MM-DD date, or None for anything else (other ISO forms included: the URL shows this one)."""
    if not isinstance(value, str) or not ISO_DATE.fullmatch(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def check_custom(first_day: date | None, last_day: date | None, today: date) -> RangeProblem | None:
    """Why two dates cannot be a custom range, or None when they can."""
    if first_day is None or last_day is None:
        return RangeProblem.BAD_DATE
    if last_day < first_day:
        return RangeProblem.END_BEFORE_START
    if first_day > today:
        return RangeProblem.IN_FUTURE
    if (min(last_day, today) - first_day).days + 1 > MAX_CUSTOM_DAYS:
        return RangeProblem.TOO_LONG
    return None


def resolve_range(selection: dict | None, now: int, zone: str) -> TimeRange:
    """The window, bucket and comparison a selection asks for; anything invalid falls back to the default range,
    naming the problem so the screen can say why."""
    selection = selection if isinstance(selection, dict) else {}
    compare = selection.get("compare") is True
    key = selection.get("range") or DEFAULT_RANGE  # none asked for: the default, nothing to explain
    if not isinstance(key, str):
        key = None
    if key in PRESETS:
        return _preset(key, now, zone, compare)
    if key != CUSTOM:
        return _preset(DEFAULT_RANGE, now, zone, compare, RangeProblem.UNKNOWN)
    today = today_in(zone, now)
    first_day, last_day = parse_day(selection.get("start")), parse_day(selection.get("end"))
    problem = check_custom(first_day, last_day, today)
    if problem is not None:
        return _preset(DEFAULT_RANGE, now, zone, compare, problem)
    last_day = min(last_day, today)  # a range reaching past today ends now
    tz = ZoneInfo(zone)
    start = int(datetime.combine(first_day, time(0), tz).timestamp())
    end = min(int(datetime.combine(last_day + timedelta(days=1), time(0), tz).timestamp()), now)
    return TimeRange(CUSTOM, start, end, bucket_for(end - start), utc_offset(zone, start), first_day, last_day,
                     compare)


def _preset(key: str, now: int, zone: str, compare: bool, problem: RangeProblem | None = None) -> TimeRange:
    start = now - PRESETS[key]
    return TimeRange(key, start, now, bucket_for(PRESETS[key]), utc_offset(zone, start), compare=compare,
                     problem=problem)


# ------------------------------------------------------------------------------------------------
# Changing the selection: what the range control writes (always a valid range)
# ------------------------------------------------------------------------------------------------


def with_preset(selection: dict | None, key: str) -> dict | None:
    """The selection showing a preset range (its custom dates kept, for going back to "custom"), or None
    for an unknown key."""
    if not isinstance(key, str) or key not in PRESETS:
        return None
    return {**(selection or {}), "range": key}


def with_custom(selection: dict | None, start, end, now: int, zone: str) -> tuple[dict | None, RangeProblem | None]:
    """The selection showing the dates start–end, or (None, why) when they are not a range that can be shown.
    Without dates yet, custom starts as the last 7 whole days up to today."""
    today = today_in(zone, now)
    if start is None and end is None:
        start, end = (today - timedelta(days=6)).isoformat(), today.isoformat()
    first_day, last_day = parse_day(start), parse_day(end)
    problem = check_custom(first_day, last_day, today)
    if problem is not None:
        return None, problem
    return {**(selection or {}), "range": CUSTOM, "start": first_day.isoformat(),
            "end": min(last_day, today).isoformat()}, None


def with_compare(selection: dict | None, compare) -> dict:
    return {**(selection or {}), "compare": compare is True}
