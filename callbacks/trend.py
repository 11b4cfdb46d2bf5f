"""The trend of the selected unit and indicator over the selected time range, with its thresholds and, when asked
for, the same period of the previous week; and the range control that changes the selection's range.

The graph is not in the first layout (mounting a dcc.Graph loads plotly.js): `mount_trend` puts it in the panel
once the rest of the screen has painted (see callbacks/loading.py), already holding its figure; from then on
`show_trend` updates that figure in place, in one answer with the title (before the graph is mounted, the title
alone: the graph is matched with dash.ALL, which may match nothing).
(Returning a new dcc.Graph as the panel's children on every refresh would remount it: Dash re-creates the
children of a changed `children` prop, so plotly would redraw from scratch and flicker.)
"""

from __future__ import annotations

import time

from dash import ALL, Input, Output, State, callback, ctx, no_update

from callbacks.context import current_language, resolve_view, screen_context, viewer_request
from cityops.hierarchy import Level
from cityops.readings import bucketed_trend, current_frame, standing_unit
from cityops.status import is_stale
from cityops.time_range import (
    CUSTOM, WEEK, bucket_at_least, parse_day, resolve_range, today_in, with_compare, with_custom, with_preset,
)
from layouts.ids import PageIds, RangeIds, TrendIds, trend_figure_id
from layouts.freshness import as_of_mark
from layouts.text import level_name, t
from layouts.theme import display_scale
from layouts.trend import COMPARE, problem_text, trend_figure, trend_graph, trend_title


def _shown_unit(request, view) -> int | None:
    """The unit whose trend the panel draws: the selected one, or its ancestor where the indicator is measured
    (a community's AQI is its street's, as on its card); None where the viewer may see no such unit."""
    return standing_unit(request.tree, request.scope, request.catalog[view.indicator_key], view.unit_id)


def _figure(request, view, selection, display):
    """The trend figure of the selection, for this viewer."""
    indicator = request.catalog[view.indicator_key]
    time_range = resolve_range(selection, request.now, request.settings.timezone)
    bucket = bucket_at_least(time_range.bucket, indicator.interval_seconds)
    shown = _shown_unit(request, view)
    unit_id = view.unit_id if shown is None else shown

    def read(window):
        return bucketed_trend(request.session, request.scope, request.catalog, request.ids, unit_id,
                              view.indicator_key, *window, bucket, time_range.utc_offset, tree=request.tree,
                              now=request.now)

    series = read(time_range.window)
    previous = read(time_range.previous_week).assign(time=lambda frame: frame["time"] + WEEK) \
        if time_range.compare else None
    level = Level(request.tree.row(unit_id).level)
    thresholds = indicator.thresholds_at(level)
    # A new range (or indicator) resets a zoom; a refresh of the same one keeps it.
    revision = f"{indicator.key}|{time_range.key}|{time_range.first_day}|{time_range.last_day}"
    # An indicator measured per street, for a community whose street the viewer may not see: the chart says
    # so, not "no data".
    empty_text = None if shown is not None else \
        t("not_measured", request.language, level=level_name(level, request.language))
    return trend_figure(series, indicator, thresholds, request.settings.timezone, request.language,
                        time_range.window, display_scale(display), previous, bucket, revision, empty_text)


def _title(request, view, selection) -> list:
    """Indicator · unit · range, and how fresh the unit's newest value is (a stopped source's trend says since
    when). The unit is the one drawn: a community's street for an indicator measured per street."""
    indicator = request.catalog[view.indicator_key]
    shown = _shown_unit(request, view)
    unit = request.tree.row(view.unit_id if shown is None else shown)
    name = unit.name_zh if request.language == "zh" else unit.name_en
    zone = request.settings.timezone
    time_range = resolve_range(selection, request.now, zone)
    title = trend_title(indicator.name(request.language), name, time_range, request.language,
                        today_in(zone, request.now))
    if shown is None:
        return title
    current = current_frame(request.session, request.scope, indicator, request.ids[indicator.key],
                            [shown], Level(unit.level), request.now)
    observed = current["observed_at"].dropna()
    if len(observed):
        newest = int(observed.max())
        title = [*title, " ", as_of_mark(newest, is_stale(newest, request.now, indicator.interval_seconds), zone,
                                        request.now, request.language)]
    return title


@callback(
    Output(TrendIds.BODY, "children"),
    Output(TrendIds.TITLE, "children", allow_duplicate=True),
    Output(TrendIds.MOUNTED_WITH, "data"),
    Input(PageIds.CHARTS_READY, "data"),
    State(PageIds.SELECTION, "data"),
    State(PageIds.DISPLAY, "data"),
    prevent_initial_call=True,
)
def mount_trend(_ready, selection, display):
    """The graph, with its figure and the title of the same selection, and a note of that selection: show_trend
    redraws both if the selection has moved on meanwhile."""
    with viewer_request() as request:
        view = resolve_view(request, selection)
        return (trend_graph(_figure(request, view, selection, display)), _title(request, view, selection),
                selection)


@callback(
    Output(trend_figure_id(ALL), "figure"),
    Output(TrendIds.TITLE, "children"),
    Input(PageIds.SELECTION, "data"),
    Input(PageIds.MAP_PAINTED, "data"),
    Input(PageIds.REFRESH, "n_intervals"),
    Input(PageIds.DISPLAY, "data"),
    Input(TrendIds.MOUNTED_WITH, "data"),
    prevent_initial_call=True,  # first drawn once the map has painted (see callbacks/loading.py)
)
def show_trend(selection, _map_painted, _tick, display, mounted_with=None):
    """The title, and the figure once the graph is mounted, in one answer: from two callbacks, a wall's playlist
    step (or a drill-down) showed the next view's title for half a second over the last one's chart.
    When the graph has just been mounted: nothing if it was mounted with the selection shown, else both again (a
    wall loading as its playlist moved on got the next step's title from here while the graph, on its way, was
    mounted with the last step's chart, which then stayed for the whole step)."""
    if ctx.triggered_id == TrendIds.MOUNTED_WITH and mounted_with == selection:
        return no_update, no_update
    graphs = len(ctx.outputs_list[0]) if ctx.outputs_list else 0
    with viewer_request() as request:
        view = resolve_view(request, selection)
        # Before the graph is mounted nothing would show a figure: none is read (the first screen's callbacks).
        figures = [_figure(request, view, selection, display)] * graphs if graphs else []
        return figures, _title(request, view, selection)


# ------------------------------------------------------------------------------------------------
# The range control
# ------------------------------------------------------------------------------------------------


@callback(
    Output(PageIds.SELECTION, "data", allow_duplicate=True),
    Output(RangeIds.PRESETS, "value"),
    Output(RangeIds.CUSTOM, "hidden"),
    Output(RangeIds.DATES, "start_date"),
    Output(RangeIds.DATES, "end_date"),
    Output(RangeIds.DATES, "max_date_allowed"),
    Output(RangeIds.COMPARE, "value"),
    Output(RangeIds.MESSAGE, "children"),
    Input(PageIds.SELECTION, "data"),
    Input(RangeIds.PRESETS, "value"),
    Input(RangeIds.DATES, "start_date"),
    Input(RangeIds.DATES, "end_date"),
    Input(RangeIds.COMPARE, "value"),
    prevent_initial_call=True,
)
def sync_range(selection, preset, start, end, compare):
    """One callback both ways, so the control and the selection cannot chase each other: a change of the
    control writes the selection (only ever a valid range), a change of the selection from elsewhere (a deep
    link, back/forward) sets the control. Dash does not call a callback again for its own outputs."""
    settings = screen_context().settings
    return range_update(selection, ctx.triggered_id, preset, start, end, compare, int(time.time()),
                        settings.timezone, current_language(settings))


def range_update(selection, trigger, preset, start, end, compare, now: int, zone: str, language: str) -> tuple:
    """What `sync_range` returns for one event: (selection or no_update, preset, custom hidden, start date,
    end date, latest date allowed, comparison value, message)."""
    selection = selection if isinstance(selection, dict) else {}
    today = today_in(zone, now).isoformat()
    chosen = no_update
    if trigger == RangeIds.PRESETS and preset == CUSTOM:
        # The dates last shown (in the picker, else in the selection), else the last 7 days.
        dates = (start, end) if parse_day(start) and parse_day(end) else (selection.get("start"), selection.get("end"))
        chosen = with_custom(selection, *dates, now, zone)[0] or with_custom(selection, None, None, now, zone)[0]
    elif trigger == RangeIds.PRESETS:
        chosen = with_preset(selection, preset) or no_update
    elif trigger == RangeIds.DATES and start and end:
        chosen, problem = with_custom(selection, start, end, now, zone)
        if chosen is None:
            # Not applied, and nothing lost: the picker keeps the dates picked, the message says what is wrong.
            return no_update, CUSTOM, False, no_update, no_update, today, no_update, problem_text(problem, language)
    elif trigger == RangeIds.COMPARE:
        chosen = with_compare(selection, isinstance(compare, list) and COMPARE in compare)
    # The control shows the range the charts show (a deep link's invalid dates: the default, the title says why).
    time_range = resolve_range(selection if chosen is no_update else chosen, now, zone)
    custom = time_range.key == CUSTOM
    return (chosen, time_range.key, not custom, time_range.first_day.isoformat() if custom else no_update,
            time_range.last_day.isoformat() if custom else no_update, today,
            [COMPARE] if time_range.compare else [], "")
