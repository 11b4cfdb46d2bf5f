"""Everything one report shows, read within the viewer's scope: the unit's KPIs, the map of its children, the
trend over the selected time range, the children ranked, the open alerts, and the stamp.

A report covers the view being looked at (the selected unit, indicator and time range) or the whole of the
viewer's scope (its root, with the same indicator and time range).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from cityops.alerts.queries import alert_counts, alert_list
from cityops.catalog import Indicator, Thresholds
from cityops.exports.panel_data import ExportContext, ExportView
from cityops.exports.stamp import Stamp, make_stamp
from cityops.geography import children_geojson
from cityops.hierarchy import Level
from cityops.readings import Reading, children_readings, standing_unit, trend, unit_readings, \
    without_filling_bucket
from cityops.time_range import bucket_at_least, bucket_floor, bucket_for
from cityops.ranking import ranked_children
from layouts.text import t

# What fits on the page: the alert list's most urgent rows and the ranking's worst bars.
REPORT_ALERTS = 12
REPORT_BARS = 10
# Trend points on the page: a 400-day range of 5-minute values is drawn from hourly-or-coarser means.
REPORT_TREND_POINTS = 400


@dataclass(frozen=True)
class ReportContent:
    city_name: str
    unit_id: int
    unit_name: str
    unit_code: str
    level: Level
    indicator: Indicator
    kpis: list[tuple[Indicator, Reading]]
    map_parent_id: int
    map_parent_name: str
    child_level: Level | None
    children: pd.DataFrame             # code, names, level, value, observed_at, status... in code order
    shapes: dict[str, list[list[tuple[float, float]]]]  # child code → outer rings of (lon, lat)
    centres: dict[str, tuple[float, float]]
    window: tuple[int, int]            # the time range, its end exclusive
    series: pd.DataFrame               # time, value (means per bucket when the range holds too many points)
    thresholds: Thresholds | None      # the indicator's lines at the unit's level (the trend's)
    ranked: pd.DataFrame               # the worst children first (REPORT_BARS of them)
    child_count: int
    alerts: pd.DataFrame               # the most urgent open alerts (REPORT_ALERTS of them)
    indicator_names: dict[str, str]    # every indicator's name in the report's language (for the alerts)
    owner_names: dict[int, str]        # the ancestors whose values stand for the unit's (Reading.owner_id)
    trend_unit_name: str               # whose trend is drawn: the unit, or its ancestor where it is measured
    trend_measured: bool               # False: nothing the viewer may see measures the indicator for the unit
    open_alerts: int
    overdue_alerts: int
    stamp: Stamp
    language: str
    zone: str


def outer_rings(geometry: dict) -> list[list[tuple[float, float]]]:
    """The outer ring of each polygon of a GeoJSON Polygon or MultiPolygon (holes are not drawn on the page)."""
    if geometry.get("type") == "Polygon":
        polygons = [geometry["coordinates"]]
    elif geometry.get("type") == "MultiPolygon":
        polygons = geometry["coordinates"]
    else:
        return []
    return [[(float(x), float(y)) for x, y, *_ in polygon[0]] for polygon in polygons if polygon]


def thinned_series(series: pd.DataFrame, window: tuple[int, int], interval: int, utc_offset: int) -> pd.DataFrame:
    """At most about REPORT_TREND_POINTS points: means per bucket (aligned on the city's midnight) when the
    range holds more values than a page can draw legibly."""
    if len(series) <= REPORT_TREND_POINTS:
        return series[["time", "value"]].reset_index(drop=True)
    bucket = bucket_at_least(bucket_for(window[1] - window[0], REPORT_TREND_POINTS), interval)
    starts = [bucket_floor(int(at), bucket, utc_offset) for at in series["time"]]
    means = series.assign(time=starts).groupby("time", as_index=False)["value"].mean()
    return means[["time", "value"]]


def report_content(context: ExportContext, view: ExportView, *, city_name: str, actor: str,
                   connector_intervals: dict[str, int]) -> ReportContent:
    """Read what the report of `view` shows, within `context.scope` (OutOfScope for units outside it)."""
    session, scope, catalog, ids, tree = context.session, context.scope, context.catalog, context.ids, context.tree
    language = context.language
    unit = tree.frame.loc[view.unit_id]
    level = Level(int(unit["level"]))
    indicator = catalog[view.indicator_key]
    readings = unit_readings(session, scope, catalog, ids, view.unit_id, context.now, tree=tree)
    kpis = [(kpi, readings[kpi.key]) for kpi in catalog.kpis()]

    children = children_readings(session, scope, catalog, ids, view.map_parent_id, view.indicator_key, context.now,
                                 tree=tree)
    children = children.sort_values("code", kind="stable").reset_index(drop=True)
    features = json.loads(children_geojson(session, scope, view.map_parent_id))["features"]
    shapes = {feature["properties"]["code"]: outer_rings(feature["geometry"]) for feature in features}
    frame = tree.frame
    centres = {str(row.code): (float(row.center_lon), float(row.center_lat))
               for row in frame.loc[children["unit_id"].astype(int)].itertuples()} if not children.empty else {}
    parent_level = Level(int(frame.at[view.map_parent_id, "level"]))

    time_range = view.time_range
    # The screen's trend panel draws a community's AQI as its street's: so does the report.
    owner = standing_unit(tree, scope, indicator, view.unit_id)
    trend_unit = view.unit_id if owner is None else owner
    series = trend(session, scope, catalog, ids, trend_unit, view.indicator_key, *time_range.window, tree=tree)
    series = without_filling_bucket(series, indicator, context.now, indicator.interval_seconds)
    series = thinned_series(series, time_range.window, indicator.interval_seconds, time_range.utc_offset)

    alerts = alert_list(session, scope, tree, view.unit_id, context.now, limit=REPORT_ALERTS)
    counts = alert_counts(session, scope, tree, [view.unit_id], context.now)

    as_of = max((reading.observed_at for _, reading in kpis if reading.observed_at), default=None)
    stamp = make_stamp(context, content=t("export_panel_report", language), unit_id=view.unit_id,
                       indicator_key=view.indicator_key, time_range=time_range, as_of=as_of, actor=actor,
                       connector_intervals=connector_intervals)
    return ReportContent(
        city_name=city_name, unit_id=view.unit_id, unit_name=context.unit_name(view.unit_id),
        unit_code=context.unit_code(view.unit_id), level=level, indicator=indicator, kpis=kpis,
        map_parent_id=view.map_parent_id, map_parent_name=context.unit_name(view.map_parent_id),
        child_level=parent_level.child, children=children, shapes=shapes, centres=centres,
        window=time_range.window, series=series,
        thresholds=indicator.thresholds_at(Level(tree.row(trend_unit).level)),
        ranked=ranked_children(children, indicator).dropna(subset=["value"]).head(REPORT_BARS),
        child_count=len(children), alerts=alerts,
        indicator_names={indicator.key: indicator.name(language) for indicator in catalog},
        owner_names={reading.owner_id: context.unit_name(reading.owner_id) for _, reading in kpis
                     if reading.owner_id is not None},
        trend_unit_name=context.unit_name(trend_unit), trend_measured=owner is not None,
        open_alerts=int(counts.at[view.unit_id, "open"]), overdue_alerts=int(counts.at[view.unit_id, "overdue"]),
        stamp=stamp, language=language, zone=context.zone)
