"""KPI cards for the selected unit, refreshed in place (old values stay until new ones arrive), with the unit's
open alerts in the heading and each indicator's on its card (read after the map has painted, like the cards)."""

from __future__ import annotations

from dash import Input, Output, State, callback, no_update

from callbacks.context import resolve_view, viewer_request
from callbacks.redraw import digest_of
from cityops.alerts.badges import indicator_alert_counts
from cityops.alerts.queries import alert_counts
from cityops.hierarchy import Level
from cityops.readings import sparklines, unit_readings
from layouts.alert_badges import tally_of
from layouts.ids import AlertIds, KpiIds, PageIds
from layouts.kpi import kpi_card, kpi_heading

SPARKLINE_HOURS = 24


def owner_name(reading, names) -> str | None:
    return None if reading.owner_id is None else str(names.at[reading.owner_id])


@callback(
    Output(KpiIds.PANEL, "children"),
    Output(KpiIds.HEADING, "children"),
    Output(KpiIds.DIGEST, "data"),
    Input(PageIds.SELECTION, "data"),
    Input(PageIds.REFRESH, "n_intervals"),
    Input(PageIds.MAP_PAINTED, "data"),
    Input(AlertIds.CHANGED, "data"),  # an alert acted on: its badge changes now, not at the next refresh
    State(KpiIds.DIGEST, "data"),
    prevent_initial_call=True,  # first drawn once the map has painted (see callbacks/loading.py)
)
def show_kpis(selection, _tick, _map_painted=None, _alert_changed=None, shown=None):
    with viewer_request() as request:
        view = resolve_view(request, selection)
        readings = unit_readings(request.session, request.scope, request.catalog, request.ids, view.unit_id,
                                 request.now, tree=request.tree)
        spark = sparklines(request.session, request.scope, request.catalog, request.ids, view.unit_id,
                           request.now - SPARKLINE_HOURS * 3600, tree=request.tree, now=request.now)
        unit = request.tree.frame.loc[view.unit_id]
        level = Level(int(unit["level"]))
        by_indicator = indicator_alert_counts(request.session, request.scope, request.tree, request.ids,
                                              view.unit_id, request.now)
        in_unit = alert_counts(request.session, request.scope, request.tree, [view.unit_id], request.now)
        # A card showing an ancestor's value (a community's AQI: its street's) shows that ancestor's alerts on it:
        # a red card without a badge read as a breach nobody had been alerted to.
        by_owner = {owner: indicator_alert_counts(request.session, request.scope, request.tree, request.ids, owner,
                                                  request.now, own=True)
                    for owner in {reading.owner_id for reading in readings.values()} - {None}}
        names = request.tree.frame["name_zh" if request.language == "zh" else "name_en"]
        cards = [kpi_card(indicator, readings[indicator.key], spark[indicator.key], level, request.language,
                          request.settings.timezone, request.now, indicator.key == view.indicator_key,
                          tally_of(by_owner.get(readings[indicator.key].owner_id, by_indicator), indicator.key),
                          owner_name=owner_name(readings[indicator.key], names))
                 for indicator in request.catalog.kpis()]
        name = names.at[view.unit_id]
        heading = kpi_heading(name, tally_of(in_unit, view.unit_id), request.language)
    digest = digest_of([cards, heading])
    if digest == shown:
        return no_update, no_update, no_update  # the same cards: the panel is left as it is (see callbacks/redraw.py)
    return cards, heading, digest
