"""Navigation: the selection in the URL (deep links, back and forward), the unit search and the language switch.

The URL and the selection mirror each other without a round trip for what the browser can decide alone:
- the selection changes (a click, the selector, a search, the playlist) → the browser writes the URL and its
  history (`reflect`, assets/navigation.js); a wall never writes it;
- the URL changes (a deep link on load, back, forward) → the browser compares it with the selection shown
  (`read`) and only when they differ asks the server (`open_view_from_url`), which checks the URL's every value
  against the viewer's scope and the catalog: a plain "/" costs no request at all.
`reflect` tells dcc.Location the URL it wrote through dash_clientside.set_props rather than as an output, as it
tells the indicator selector the selection's indicator: both are views of the selection whose own changes
come back into it (back/forward through `read`, the selector through callbacks/selection.py), and Dash allows no
loop of declared outputs across callbacks.
"""

from __future__ import annotations

from dash import ALL, Input, Output, State, callback, clientside_callback, no_update

from callbacks.context import Request, viewer_request
from callbacks.selection import select_clicked, with_unit
from cityops.time_range import today_in
from cityops.unit_search import search_units
from layouts.ids import HeaderIds, NavIds, PageIds, language_button_id, search_result_id
from layouts.navigation import same_view, search_results, selection_from_query
from layouts.page import default_indicator, initial_selection


def view_for_url(request: Request, search: str | None) -> dict:
    """The selection a URL asks for, as this viewer may see it (see layouts/navigation.py)."""
    def visible(code: str) -> bool:
        unit_id = request.tree.id_by_code.get(code)
        return unit_id is not None and request.scope.contains(request.tree, unit_id)

    defaults = initial_selection(default_indicator(request.catalog))
    return selection_from_query(search, defaults, visible, request.catalog,
                                today_in(request.settings.timezone, request.now))


@callback(
    Output(PageIds.SELECTION, "data", allow_duplicate=True),
    Output(NavIds.APPLIED, "data"),
    Input(NavIds.REQUEST, "data"),
    State(PageIds.SELECTION, "data"),
    prevent_initial_call=True,
)
def open_view_from_url(requested, selection):
    search = requested.get("search") if isinstance(requested, dict) else None
    if not isinstance(search, str):
        return no_update, no_update
    with viewer_request() as request:
        view = view_for_url(request, search)
        defaults = initial_selection(default_indicator(request.catalog))
    current = selection if isinstance(selection, dict) else {}
    # Told even when the view is already shown: the browser then corrects a URL that asked for what cannot be.
    applied = {"from": search, "selection": view}
    if same_view(current, view, defaults):
        return no_update, applied
    return {**current, **view}, applied


clientside_callback(
    "function(search, selection, defaults) { return window.onescreen.navigation.read(search, selection, defaults); }",
    Output(NavIds.REQUEST, "data"),
    Input(NavIds.URL, "search"),  # set by dcc.Location when it mounts, and on back/forward
    State(PageIds.SELECTION, "data"),
    State(NavIds.DEFAULTS, "data"),
    prevent_initial_call=True,
)

clientside_callback(
    "function(selection, applied, defaults, selector) {"
    " window.onescreen.navigation.reflect(selection, applied, defaults, selector); }",
    Input(PageIds.SELECTION, "data"),
    Input(NavIds.APPLIED, "data"),
    State(NavIds.DEFAULTS, "data"),
    State(HeaderIds.INDICATOR, "value", allow_optional=True),  # mounted once the map has painted
    prevent_initial_call=True,
)


# ------------------------------------------------------------------------------------------------
# Unit search
# ------------------------------------------------------------------------------------------------


@callback(
    Output(NavIds.SEARCH_RESULTS, "children"),
    Input(NavIds.SEARCH, "value"),
    prevent_initial_call=True,
)
def find_units(query):
    if not isinstance(query, str) or not query.strip():
        return []
    with viewer_request() as request:
        return search_results(search_units(request.tree, request.scope, query), query, request.language)


@callback(
    Output(PageIds.SELECTION, "data", allow_duplicate=True),
    Output(NavIds.SEARCH, "value"),
    Input(search_result_id(ALL), "n_clicks"),
    State(PageIds.SELECTION, "data"),
    prevent_initial_call=True,
)
def select_found_unit(_clicks, selection):
    # Results are drawn with n_clicks 0, which calls this too: only a click selects (select_clicked), and only
    # a unit the viewer may see.
    chosen = select_clicked(selection)
    if chosen is no_update:
        return no_update, no_update
    return chosen, ""


@callback(
    Output(PageIds.SELECTION, "data", allow_duplicate=True),
    Output(NavIds.SEARCH, "value", allow_duplicate=True),
    Input(NavIds.SEARCH, "n_submit"),
    State(NavIds.SEARCH, "value"),
    State(PageIds.SELECTION, "data"),
    prevent_initial_call=True,
)
def select_first_found(_submitted, query, selection):
    """Enter in the search box: the first unit found (the one listed first)."""
    with viewer_request() as request:
        found = search_units(request.tree, request.scope, query, limit=1).units
    if not found:
        return no_update, no_update
    return with_unit(selection, found[0].code), ""


# ------------------------------------------------------------------------------------------------
# Language
# ------------------------------------------------------------------------------------------------

clientside_callback(
    "function(clicks) { window.onescreen.navigation.onLanguageClick(clicks); }",
    Input(language_button_id(ALL), "n_clicks"),
    prevent_initial_call=True,
)

