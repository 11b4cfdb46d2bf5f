"""The trend chart: one unit and indicator over the selected time range, with threshold lines and breaches
shaded, optionally the same window one week earlier beside it; and the range control in the panel's title row."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html

from cityops.catalog import Direction, Indicator, RollupRule, Thresholds
from cityops.readings import still_filling
from cityops.status import Status
from cityops.time_range import CUSTOM, DAY, DEFAULT_RANGE, MAX_CUSTOM_DAYS, RANGES, WEEK, RangeProblem, TimeRange
from layouts.ids import RangeIds, TrendIds, trend_figure_id
from layouts.text import t
from layouts.theme import GRID, MUTED, STATUS_COLOURS, plotly_layout

GRAPH_CONFIG = {
    "displaylogo": False,
    "responsive": True,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"],
    "toImageButtonOptions": {"format": "png", "scale": 2, "filename": "onescreen-trend"},
}
LINE = "#8fb8ff"
SPREAD_FILL = "rgba(143, 184, 255, 0.16)"
PREVIOUS_LINE = MUTED
COMPARE = "compare"  # the comparison checkbox's one value


def trend_graph(figure: go.Figure | None = None) -> html.Div:
    """The trend's graph, in its holder. It is not in the first layout: a dcc.Graph loads plotly.js (~5 MB) when
    it mounts, so it is mounted once, after the rest of the screen has painted; refreshes then update its
    `figure` in place (see callbacks/loading.py)."""
    extra = {} if figure is None else {"figure": figure}
    return html.Div(id=TrendIds.GRAPH, className="trend-graph", children=dcc.Graph(
        id=trend_figure_id(), config=GRAPH_CONFIG, style={"height": "100%"}, **extra))


def trend_figure(series: pd.DataFrame, indicator: Indicator, thresholds: Thresholds | None, zone: str,
                 language: str, window: tuple[int, int], scale: float = 1.0, previous: pd.DataFrame | None = None,
                 bucket: int | None = None, revision: str = "", empty_text: str | None = None) -> go.Figure:
    """`series`: time, value, reported, expected (and, from readings.bucketed_trend, low and high: a bucket
    coarser than the indicator's interval draws them as a band around the mean). `previous`: the same window a
    week earlier, times already shifted onto this one, drawn dashed and muted. `empty_text`: what an empty chart
    says (default: no data in this range), e.g. that the indicator is not measured at the unit's level."""
    figure = go.Figure()
    tz = ZoneInfo(zone)
    values = series["value"].astype(float).tolist() if not series.empty else []
    if thresholds is not None:
        previous_values = previous["value"].astype(float).tolist() if previous is not None else []
        _threshold_bands(figure, thresholds, indicator.direction, values + previous_values, language, scale)
    times = _times(series, tz)
    unit = indicator.measure(language)
    number = "%{y:,." + str(indicator.decimals) + "f}"
    comparing = previous is not None
    label = (t("this_period", language) + " ") if comparing else ""
    hover = label + "<b>" + number + "</b> " + unit
    custom, extras = [], []
    spread = bucket is not None and bucket > indicator.interval_seconds and {"low", "high"} <= set(series.columns)
    if spread and not series.empty:
        _spread_band(figure, times, series)
        custom.append(series[["low", "high"]].astype(float).to_numpy())
        low_high = ("%{customdata[0]:,." + str(indicator.decimals) + "f}", "%{customdata[1]:,."
                    + str(indicator.decimals) + "f}")
        extras.append(t("trend_spread", language, low=low_high[0], high=low_high[1]))
    if not series.empty and (series["expected"].fillna(0) > 1).any():
        index = 2 * len(custom)
        custom.append(series[["reported", "expected"]].astype(float).round().to_numpy())
        extras.append("%{customdata[" + str(index) + "]:,}/%{customdata[" + str(index + 1) + "]:,} "
                      + t("completeness", language))
    figure.add_trace(go.Scatter(
        x=times, y=values, mode="lines", name=t("this_period", language), line=dict(color=LINE, width=2),
        connectgaps=False, customdata=_columns(custom),
        hovertemplate=hover + "".join("<br>" + extra for extra in extras) + "<extra></extra>"))
    if comparing:
        shown_at = [datetime.fromtimestamp(int(x) - WEEK, tz).strftime("%m-%d") for x in previous["time"]]
        figure.add_trace(go.Scatter(
            x=_times(previous, tz), y=previous["value"].astype(float).tolist(), mode="lines",
            name=t("previous_week", language), line=dict(color=PREVIOUS_LINE, width=1.6, dash="dash"),
            opacity=0.85, connectgaps=False, customdata=shown_at,
            hovertemplate=t("previous_week", language) + " (%{customdata}) " + number + " " + unit + "<extra></extra>"))
    filling = _filling_bucket(series, indicator, window[1])
    if filling is not None:
        # The line ends an hour before the title's as-of time: say why, above the plot's right end (inside it,
        # the note covered the line wherever it ran low).
        at, reported, expected = filling
        figure.add_annotation(
            text=t("trend_filling", language, time=datetime.fromtimestamp(at, tz).strftime("%H:%M"),
                   reported=f"{reported:,}", expected=f"{expected:,}"),
            showarrow=False, xref="paper", yref="paper", x=1, y=1, xanchor="right", yanchor="bottom",
            font=dict(color=MUTED, size=round(11 * scale)))
    empty = not [v for v in values if v == v]
    if empty:
        figure.add_annotation(text=empty_text or t("no_data_in_range", language), showarrow=False, xref="paper",
                              yref="paper", x=0.5, y=0.5, font=dict(color=MUTED, size=round(13 * scale)))
    start, end = (datetime.fromtimestamp(edge, tz) for edge in window)
    daily = bucket is not None and bucket >= DAY
    figure.update_layout(**plotly_layout(
        scale,
        # A date axis even without points: an empty chart showed a numeric axis from -1 to 6, its zero line white.
        xaxis=dict(type="date", range=[start, end], gridcolor=GRID, linecolor=GRID, zeroline=False,
                   tickformat="%m-%d" if (window[1] - window[0]) > 3 * DAY else "%m-%d\n%H:%M",
                   hoverformat="%Y-%m-%d" if daily else "%m-%d %H:%M"),
        yaxis=dict(gridcolor=GRID, zeroline=False, showticklabels=not empty or thresholds is not None,
                   title=dict(text=unit, font=dict(color=MUTED, size=round(12 * scale)))),
        hovermode="x unified", uirevision=revision or indicator.key, showlegend=comparing,
        # Above the plot on the left (the chart's toolbar takes the right); in trace order, this period first.
        legend=dict(orientation="h", x=0, xanchor="left", y=1.0, yanchor="bottom", bgcolor="rgba(0,0,0,0)",
                    traceorder="normal", font=dict(color=MUTED, size=round(11 * scale)))))
    if comparing or filling is not None:
        figure.update_layout(margin=dict(t=round(22 * scale)))  # room for the legend and the note above the plot
    return figure


def _filling_bucket(series: pd.DataFrame, indicator: Indicator, until: int) -> tuple[int, int, int] | None:
    """(start, reported, expected) of the last bucket when it was left out as still filling at `until`
    (cityops.readings.without_filling_bucket: a sum's value gone, its completeness kept), else None. A ratio
    nobody's denominator fed is empty too, with everyone in: that is no bucket still filling."""
    if series.empty or indicator.rollup != RollupRule.SUM or not {"reported", "expected"} <= set(series.columns):
        return None
    last = series.iloc[-1]
    if (pd.isna(last["value"]) and pd.notna(last["reported"]) and pd.notna(last["expected"]) and last["reported"] > 0
            and still_filling(int(last["time"]), indicator.interval_seconds, last["reported"], last["expected"],
                              until)):
        return int(last["time"]), int(round(float(last["reported"]))), int(round(float(last["expected"])))
    return None


def _times(series: pd.DataFrame | None, tz: ZoneInfo) -> list[datetime]:
    if series is None or series.empty:
        return []
    return [datetime.fromtimestamp(int(x), tz) for x in series["time"]]


def _columns(parts: list) -> list | None:
    """Side-by-side customdata columns for each point, or None when there are none."""
    return np.hstack(parts).tolist() if parts else None


def _spread_band(figure: go.Figure, times: list[datetime], series: pd.DataFrame) -> None:
    """The lowest and highest value within each bucket, as a faint band behind the mean: a breach that lasted
    an hour stays visible in a 30-day chart of 6-hour means."""
    common = dict(mode="lines", line=dict(width=0), connectgaps=False, hoverinfo="skip", showlegend=False)
    figure.add_trace(go.Scatter(x=times, y=series["low"].astype(float).tolist(), **common))
    figure.add_trace(go.Scatter(x=times, y=series["high"].astype(float).tolist(), fill="tonexty",
                                fillcolor=SPREAD_FILL, **common))


def _threshold_bands(figure: go.Figure, thresholds: Thresholds, direction: Direction, values, language,
                     scale: float) -> None:
    """Dotted threshold lines and a faint fill over the region that counts as a breach."""
    observed = [v for v in values if v == v] or [thresholds.warning]
    worse = direction == Direction.HIGHER_IS_WORSE
    for level, status in ((thresholds.warning, Status.WARNING), (thresholds.critical, Status.CRITICAL)):
        figure.add_hline(y=level, line=dict(color=STATUS_COLOURS[status], width=1.2, dash="dot"),
                         annotation_text=t("threshold_" + status.value, language), annotation_position="top left",
                         annotation_font=dict(color=STATUS_COLOURS[status], size=round(11 * scale)))
    top = max(max(observed), thresholds.critical) * 1.08
    bottom = min(min(observed), thresholds.critical) * 0.92 if not worse else None
    if worse:
        figure.add_hrect(y0=thresholds.warning, y1=thresholds.critical, fillcolor=STATUS_COLOURS[Status.WARNING],
                         opacity=0.06, line_width=0, layer="below")
        figure.add_hrect(y0=thresholds.critical, y1=top, fillcolor=STATUS_COLOURS[Status.CRITICAL], opacity=0.07,
                         line_width=0, layer="below")
    else:
        figure.add_hrect(y0=thresholds.critical, y1=thresholds.warning, fillcolor=STATUS_COLOURS[Status.WARNING],
                         opacity=0.06, line_width=0, layer="below")
        figure.add_hrect(y0=bottom, y1=thresholds.critical, fillcolor=STATUS_COLOURS[Status.CRITICAL], opacity=0.07,
                         line_width=0, layer="below")


# ------------------------------------------------------------------------------------------------
# The range, in words, and the control that picks it
# ------------------------------------------------------------------------------------------------


def range_label(time_range: TimeRange, language: str, today: date) -> str:
    """"近7天" / "last 7 days"; a custom range as its dates, "3月1日–3月15日" / "1 Mar – 15 Mar" (with the
    year when it is not this year's)."""
    if time_range.key != CUSTOM or time_range.first_day is None:
        return t("range_label_" + time_range.key, language)
    first, last = time_range.first_day, time_range.last_day or time_range.first_day
    with_year = first.year != today.year or last.year != today.year
    if first == last:
        return day_label(first, language, with_year)
    separator = "–" if language == "zh" else " – "
    return day_label(first, language, with_year) + separator + day_label(last, language, with_year)


def day_label(day: date, language: str, with_year: bool = False) -> str:
    month = day.month if language == "zh" else t("month_names", language).split()[day.month - 1]
    return t("range_day_year" if with_year else "range_day", language, year=day.year, month=month, day=day.day)


def problem_text(problem: RangeProblem, language: str) -> str:
    """What is wrong with a range asked for ("结束日期早于开始日期")."""
    return t("range_problem_" + problem.value, language, days=MAX_CUSTOM_DAYS)


def range_problem_text(time_range: TimeRange, language: str) -> str | None:
    """Why the range shown is not the one asked for ("日期无效，显示近7天"), or None."""
    if time_range.problem is None:
        return None
    return t("range_fallback", language, problem=problem_text(time_range.problem, language),
             range=t("range_label_" + time_range.key, language))


def trend_title(indicator_name: str, unit_name: str, time_range: TimeRange, language: str, today: date) -> list:
    """The panel's title: what, where, over which range (and "vs same period last week"), and, when the range
    asked for could not be shown, why, in the warning colour."""
    text = t("trend_title", language, indicator=indicator_name, unit=unit_name,
             range=range_label(time_range, language, today))
    if time_range.compare:
        text += " · " + t("compare_title", language)
    parts: list = [text]
    problem = range_problem_text(time_range, language)
    if problem:
        parts.append(html.Span(" · " + problem, className="range-problem"))
    # The words give way before the as-of mark callbacks/trend.py adds (assets/style.css).
    return [html.Span(parts, className="heading-text")]


def range_control(language: str, selected: str = DEFAULT_RANGE, compare: bool = False) -> html.Div:
    """Segmented presets (a radio group: arrow keys move between them), the custom dates (shown for "custom")
    and the previous-week toggle; callbacks/trend.py keeps them and the selection in step."""
    return html.Div(className="range-control", role="group", **{"aria-label": t("range_choice", language)}, children=[
        dcc.RadioItems(id=RangeIds.PRESETS, className="range-presets", inline=True, value=selected,
                       options=[{"label": t("range_button_" + key, language), "value": key} for key in RANGES]),
        html.Div(id=RangeIds.CUSTOM, className="range-custom", hidden=selected != CUSTOM, children=dcc.DatePickerRange(
            id=RangeIds.DATES, className="range-dates", display_format="YYYY-MM-DD", first_day_of_week=1,
            updatemode="bothdates", minimum_nights=0, number_of_months_shown=2,
            month_format="YYYY年M月" if language == "zh" else "MMMM YYYY",
            start_date_placeholder_text=t("range_start", language),
            end_date_placeholder_text=t("range_end", language))),
        dcc.Checklist(id=RangeIds.COMPARE, className="range-compare", inline=True, value=[COMPARE] if compare else [],
                      options=[{"label": t("compare_week", language), "value": COMPARE}]),
        html.Span(id=RangeIds.MESSAGE, className="range-message", role="status", **{"aria-live": "polite"}),
    ])
