"""The data behind each panel, as a table an analyst can open: the same queries the panels draw from, for the
viewer's scope, the selected unit and indicator and the trends' time range, with headers in the viewer's language.

Every function takes the viewer's `Scope` and raises OutOfScope for a unit outside it (the readings functions
check it); callbacks resolve the page's selection against the scope first, so a forged unit exports the scope's
root instead. Values are the stored ones, unrounded; times are the city's wall-clock time (the zone is named in
the header); statuses, levels and indicator names are words in the viewer's language.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy.orm import Session

from cityops.alerts.queries import alert_list
from cityops.catalog import Catalog, Indicator
from cityops.hierarchy import Level
from cityops.readings import children_readings, standing_unit, trend, unit_readings
from cityops.scope import Scope
from cityops.time_range import TimeRange
from cityops.tree import UnitTree
from cityops.ranking import ranked_children  # the comparison view's own order
from layouts.text import level_name, status_text, t

# Every open alert of a subtree is exported, not only the screen's most urgent ones; a bound keeps one export
# from holding a worker for minutes in a city gone wrong everywhere at once.
MAX_ALERT_ROWS = 20_000


@dataclass(frozen=True)
class ExportContext:
    """What an export reads from, and for whom: the session, the viewer's scope, the catalog with its indicator
    ids, the unit tree, the time, the city's zone and the viewer's language."""

    session: Session
    scope: Scope
    catalog: Catalog
    ids: dict[str, int]
    tree: UnitTree
    now: int
    zone: str
    language: str

    def unit_name(self, unit_id: int) -> str:
        return str(self.tree.frame.at[unit_id, "name_zh" if self.language == "zh" else "name_en"])

    def unit_code(self, unit_id: int) -> str:
        return str(self.tree.frame.at[unit_id, "code"])


@dataclass(frozen=True)
class ExportView:
    """The selection, already checked against the scope: the unit viewed, the unit whose children the map and
    the ranking show (the unit itself, or a community's street), the indicator and the trends' time range."""

    unit_id: int
    map_parent_id: int
    indicator_key: str
    time_range: TimeRange


@dataclass(frozen=True)
class PanelTable:
    panel: str
    frame: pd.DataFrame           # headers in the viewer's language
    unit_id: int                  # the unit the data is about (for the map and the ranking: whose children)
    indicator_key: str | None     # None for the KPI cards (every indicator) and the alert list
    window: tuple[int, int] | None  # the trend's time range
    as_of: int | None             # the newest time in the data (None: no data)

    @property
    def rows(self) -> int:
        return len(self.frame)


def local_times(epochs, zone: str) -> pd.Series:
    """Epoch seconds (None for none) as the city's wall-clock times, which Excel and pandas read as dates."""
    series = pd.to_datetime(pd.Series(list(epochs), dtype="Float64"), unit="s", utc=True)
    return series.dt.tz_convert(zone).dt.tz_localize(None).dt.floor("s")


def _header(key: str, context: ExportContext, measure: str | None = None) -> str:
    """A column header: the word, with the unit of measure or the time zone it is in."""
    word = t(key, context.language)
    if measure:
        return f"{word} ({measure})"
    return word


def _time_header(key: str, context: ExportContext) -> str:
    return f"{t(key, context.language)} ({context.zone})"


def _newest(values) -> int | None:
    present = [int(v) for v in values if v is not None and not pd.isna(v)]
    return max(present) if present else None


def _number(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _count(value) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def kpi_table(context: ExportContext, view: ExportView) -> PanelTable:
    """The KPI cards: every indicator on the panel for the unit viewed, with unit of measure, status, as-of
    time, completeness and the previous period's value."""
    readings = unit_readings(context.session, context.scope, context.catalog, context.ids, view.unit_id,
                             context.now, tree=context.tree)
    name_column = "name_zh" if context.language == "zh" else "name_en"
    rows = []
    for indicator in context.catalog.kpis():
        reading = readings[indicator.key]
        rows.append({
            "key": indicator.key, "name": indicator.name(context.language), "value": reading.value,
            "measure": indicator.measure(context.language),
            "status": status_text(reading.status, context.language)
            if reading.measured or reading.owner_id is not None else t("export_not_measured", context.language),
            # A value measured above the unit's level (its street's AQI) says whose it is, as its card does.
            "value_of": "" if reading.owner_id is None else str(context.tree.frame.at[reading.owner_id, name_column]),
            "observed_at": reading.observed_at, "reported": reading.reported, "expected": reading.expected,
            "previous": reading.previous, "change": reading.change})
    raw = pd.DataFrame(rows, columns=["key", "name", "value", "measure", "status", "observed_at", "reported",
                                      "expected", "previous", "change", "value_of"])
    frame = pd.DataFrame({
        _header("col_indicator_key", context): raw["key"],
        _header("col_indicator", context): raw["name"],
        _header("col_value", context): raw["value"].map(_number),
        _header("col_unit_of_measure", context): raw["measure"],
        _header("col_status", context): raw["status"],
        _time_header("col_observed_at", context): local_times(raw["observed_at"], context.zone),
        _header("col_reported", context): raw["reported"].map(_count).astype("Int64"),
        _header("col_expected", context): raw["expected"].map(_count).astype("Int64"),
        _header("col_previous", context): raw["previous"].map(_number),
        _header("col_change", context): raw["change"].map(_number),
        _header("col_value_of", context): raw["value_of"],
    })
    return PanelTable("kpi", frame, view.unit_id, None, None, _newest(raw["observed_at"]))


def children_of(context: ExportContext, view: ExportView) -> pd.DataFrame:
    return children_readings(context.session, context.scope, context.catalog, context.ids, view.map_parent_id,
                             view.indicator_key, context.now, tree=context.tree)


def _children_frame(context: ExportContext, children: pd.DataFrame, indicator: Indicator) -> pd.DataFrame:
    name_column = "name_zh" if context.language == "zh" else "name_en"
    measure = indicator.measure(context.language)
    # Children below the level the indicator is measured at (a street's communities for AQI) have no value because
    # there is none to have, not because a source is silent: their status says so, as the screen's legend does.
    statuses = [t("export_not_measured", context.language) if not indicator.measured_at_or_above(Level(int(level)))
                else status_text(status, context.language)
                for level, status in zip(children["level"], children["status"])]
    return pd.DataFrame({
        _header("col_code", context): children["code"].astype(str),
        _header("col_name", context): children[name_column].astype(str),
        _header("col_level", context): [level_name(Level(int(v)), context.language) for v in children["level"]],
        _header("col_value", context, measure): children["value"].map(_number),
        _header("col_status", context): statuses,
        _time_header("col_observed_at", context): local_times(children["observed_at"], context.zone),
        _header("col_reported", context): children["reported"].map(_count).astype("Int64"),
        _header("col_expected", context): children["expected"].map(_count).astype("Int64"),
        _header("col_population", context): children["population"].map(_count).astype("Int64"),
    })


def map_table(context: ExportContext, view: ExportView) -> PanelTable:
    """The map: the children of the unit on the map, in code order, with the selected indicator's value and
    status (the colour each is drawn in)."""
    indicator = context.catalog[view.indicator_key]
    children = children_of(context, view).sort_values("code", kind="stable").reset_index(drop=True)
    frame = _children_frame(context, children, indicator)
    return PanelTable("map", frame, view.map_parent_id, view.indicator_key, None, _newest(children["observed_at"]))


def ranking_table(context: ExportContext, view: ExportView) -> PanelTable:
    """The ranking: every child in the comparison view's order (current values worst first, then stale ones,
    then those without a value), numbered where they have a value."""
    indicator = context.catalog[view.indicator_key]
    children = ranked_children(children_of(context, view), indicator)
    frame = _children_frame(context, children, indicator)
    ranks = pd.Series(range(1, len(children) + 1), dtype="Int64").where(children["value"].notna().to_numpy())
    frame.insert(0, _header("col_rank", context), ranks.to_numpy())
    return PanelTable("ranking", frame, view.map_parent_id, view.indicator_key, None,
                      _newest(children["observed_at"]))


def trend_table(context: ExportContext, view: ExportView) -> PanelTable:
    """The trend: every stored point of the unit and indicator in the time range (reported values, or roll-up
    buckets with how many reported), not the chart's coarser buckets."""
    indicator = context.catalog[view.indicator_key]
    window = view.time_range.window
    # The trend panel's unit: a community's AQI is its street's, and the file, its title and its record say so.
    owner = standing_unit(context.tree, context.scope, indicator, view.unit_id)
    unit_id = view.unit_id if owner is None else owner
    series = trend(context.session, context.scope, context.catalog, context.ids, unit_id, view.indicator_key,
                   *window, tree=context.tree)
    frame = pd.DataFrame({
        _time_header("col_time", context): local_times(series["time"], context.zone),
        _header("col_value", context, indicator.measure(context.language)): series["value"].map(_number),
        _header("col_reported", context): series["reported"].map(_count).astype("Int64"),
        _header("col_expected", context): series["expected"].map(_count).astype("Int64"),
    })
    return PanelTable("trend", frame, unit_id, view.indicator_key, window, _newest(series["time"]))


def alert_table(context: ExportContext, view: ExportView) -> PanelTable:
    """The alert list: every open alert in the unit's subtree, most urgent first (the panel's order)."""
    alerts = alert_list(context.session, context.scope, context.tree, view.unit_id, context.now,
                        limit=MAX_ALERT_ROWS)
    language = context.language
    names = {indicator.key: indicator.name(language) for indicator in context.catalog}
    measures = {indicator.key: indicator.measure(context.language) for indicator in context.catalog}
    name_column = "name_zh" if language == "zh" else "name_en"
    severity = {"warning": t("warning", language), "critical": t("critical", language)}
    phase = {"firing": t("alert_firing", language), "resolved": t("alert_recovered", language)}
    yes, no = t("export_yes", language), t("export_no", language)
    frame = pd.DataFrame({
        _header("col_alert_id", context): alerts["id"].astype("Int64"),
        _header("col_severity", context): [severity.get(s, s) for s in alerts["severity"]],
        _header("col_phase", context): [phase.get(p, p) for p in alerts["phase"]],
        _header("col_overdue", context): [yes if o else no for o in alerts["overdue"]],
        _header("col_code", context): alerts["code"].astype(str),
        _header("col_name", context): alerts[name_column].astype(str),
        _header("col_indicator", context): [names.get(k, k) if isinstance(k, str) else "" for k in alerts["indicator"]],
        _header("col_source", context): alerts["source"].fillna("").astype(str),
        _header("col_value", context): alerts["value"].map(_number),
        _header("col_line", context): alerts["line"].map(_number),
        _header("col_unit_of_measure", context): [measures.get(k, "") if isinstance(k, str) else ""
                                                  for k in alerts["indicator"]],
        _header("col_rule", context): alerts["rule"].astype(str),
        _time_header("col_started_at", context): local_times(alerts["started_at"], context.zone),
        _time_header("col_fired_at", context): local_times(alerts["fired_at"], context.zone),
        _time_header("col_last_breach_at", context): local_times(alerts["last_breach_at"], context.zone),
        _header("col_acknowledged_by", context): alerts["acknowledged_by"].fillna("").astype(str),
        _header("col_assignee", context): alerts["assignee"].fillna("").astype(str),
        _time_header("col_dispatch_due", context): local_times(alerts["dispatch_due"], context.zone),
        _time_header("col_handle_due", context): local_times(alerts["handle_due"], context.zone),
    })
    return PanelTable("alerts", frame, view.unit_id, None, None, context.now)


TABLES = {"kpi": kpi_table, "map": map_table, "trend": trend_table, "ranking": ranking_table,
          "alerts": alert_table}


def panel_table(context: ExportContext, view: ExportView, panel: str) -> PanelTable:
    """The data behind one panel (one of cityops.exports.DATA_PANELS)."""
    if panel not in TABLES:
        raise ValueError(f"no panel {panel!r}: one of {', '.join(TABLES)}")
    return TABLES[panel](context, view)

