"""Selection is one state: map clicks, breadcrumb, alert rows, the comparison rows (callbacks/comparison.py), KPI
cards, the unit search and the URL (callbacks/navigation.py) and the selector all change the same store, and every
panel reads from it."""

from __future__ import annotations

from dash import ALL, Input, Output, State, callback, ctx, no_update

from callbacks.context import viewer_request
from layouts.ids import HeaderIds, MapIds, PageIds, crumb_id, kpi_card_id


def clicked_unit_code(trigger_id, value) -> str | None:
    """The unit code a click asked for, or None when the event was not a real click.

    Pattern-matched buttons fire once with n_clicks 0 when they are (re)drawn; that is not a click.
    """
    if isinstance(trigger_id, dict):
        if not value:
            return None
        return trigger_id.get("code")
    if trigger_id == MapIds.UNITS:
        return (value or {}).get("properties", {}).get("code") if isinstance(value, dict) else None
    return None


def with_unit(selection: dict | None, code: str) -> dict:
    return {**(selection if isinstance(selection, dict) else {}), "unit": code}


def select_clicked(selection: dict | None):
    """The selection with the unit the triggering click asked for, if the viewer may see it.

    Dash may hand one call several triggers at once: a click and the crumbs being redrawn in the
    same moment (with n_clicks 0). The click is looked for among all of them, not only the first."""
    ids = ctx.triggered_prop_ids
    code = next((found for trigger in ctx.triggered
                 if (found := clicked_unit_code(ids.get(trigger["prop_id"]), trigger["value"])) is not None), None)
    if code is None:
        return no_update
    with viewer_request() as request:
        unit_id = request.tree.id_by_code.get(code)
        if unit_id is None or not request.scope.contains(request.tree, unit_id):
            return no_update  # a unit outside the viewer's scope is never selected, whatever the page sent
    return with_unit(selection, code)


@callback(
    Output(PageIds.SELECTION, "data"),
    Input(MapIds.UNITS, "clickData"),
    Input(crumb_id(ALL), "n_clicks"),
    State(PageIds.SELECTION, "data"),
    prevent_initial_call=True,
)
def select_unit(_map_click, _crumbs, selection):
    return select_clicked(selection)


@callback(
    Output(HeaderIds.INDICATOR, "value"),
    Input(kpi_card_id(ALL), "n_clicks"),
    prevent_initial_call=True,
)
def indicator_from_card(_clicks):
    if not ctx.triggered or not ctx.triggered[0]["value"] or not isinstance(ctx.triggered_id, dict):
        return no_update
    return ctx.triggered_id["indicator"]


@callback(
    Output(PageIds.SELECTION, "data", allow_duplicate=True),
    Output(HeaderIds.INDICATOR, "value", allow_duplicate=True),
    Output(HeaderIds.INDICATOR_MOUNTED, "data"),
    Input(HeaderIds.INDICATOR, "value"),
    State(PageIds.SELECTION, "data"),
    State(HeaderIds.INDICATOR_MOUNTED, "data"),
    prevent_initial_call=True,
)
def select_indicator(indicator_key, selection, mounted_with):
    """A viewer's choice of indicator becomes the selection's. Also called as the selector is mounted, after the
    map has painted (Dash runs a callback whose input another one inserts), with the value it was mounted with:
    the indicator selected when the map painted. The selection may have moved on since (an address's indicator
    applied meanwhile, a drill-down): then the selector follows the selection, never the other way round, or a
    deep link's indicator would be undone."""
    selected = selection.get("indicator") if isinstance(selection, dict) else None
    mounting = mounted_with is not None and indicator_key == mounted_with
    used = None if mounted_with is not None else no_update  # the mount's call comes once
    if selected == indicator_key:
        return no_update, no_update, used
    if mounting:
        return no_update, selected if isinstance(selected, str) else no_update, used
    with viewer_request() as request:
        if not isinstance(indicator_key, str) or indicator_key not in request.catalog:
            return no_update, no_update, used
    return {**(selection or {}), "indicator": indicator_key}, no_update, used
