"""Header: breadcrumb for the selection, data freshness and source health, and a clock that runs in the
browser (a clock needs no server round-trip)."""

from __future__ import annotations

from collections import Counter

from dash import Input, Output, State, callback, clientside_callback, html

from callbacks.context import current_language, resolve_view, screen_context, viewer_request
from cityops.readings import last_update
from cityops.sources import source_health
from cityops.status import is_stale
from layouts.header import breadcrumb, mounted_selector, source_summary
from layouts.ids import HeaderIds, PageIds
from layouts.freshness import as_of_mark
from layouts.page import default_indicator
from layouts.text import format_time, t


@callback(
    Output(HeaderIds.BREADCRUMB, "children"),
    Input(PageIds.SELECTION, "data"),
    Input(PageIds.MAP_PAINTED, "data"),
    prevent_initial_call=True,  # first drawn once the map has painted (see callbacks/loading.py)
)
def show_breadcrumb(selection, _map_painted=None):
    with viewer_request() as request:
        view = resolve_view(request, selection)
        names = request.tree.frame["name_zh" if request.language == "zh" else "name_en"]
        lineage = [unit_id for unit_id in request.tree.lineage(view.unit_id)
                   if request.scope.contains(request.tree, unit_id)]
        return breadcrumb([(str(request.tree.frame.at[i, "code"]), str(names.loc[i])) for i in lineage],
                          view.unit_code)


@callback(
    Output(HeaderIds.INDICATOR_SLOT, "children"),
    Input(PageIds.MAP_PAINTED, "data"),
    State(PageIds.SELECTION, "data"),
    prevent_initial_call=True,  # mounted once the map has painted (see layouts/header.py)
)
def show_indicator_selector(_map_painted, selection):
    context = screen_context()
    wanted = selection.get("indicator") if isinstance(selection, dict) else None
    key = wanted if isinstance(wanted, str) and wanted in context.catalog else default_indicator(context.catalog)
    return mounted_selector(context.catalog, key, current_language(context.settings))


@callback(
    Output(HeaderIds.LAST_UPDATE, "children"),
    Output(HeaderIds.SOURCES, "children"),
    Input(PageIds.REFRESH, "n_intervals"),
    Input(PageIds.MAP_PAINTED, "data"),
    prevent_initial_call=True,  # first drawn once the map has painted (see callbacks/loading.py)
)
def show_freshness(_tick, _map_painted=None):
    intervals = screen_context().connector_intervals
    with viewer_request() as request:
        updated = last_update(request.session)
        health = source_health(request.session, intervals, request.now)
        language, zone = request.language, request.settings.timezone
        if updated is None:
            freshness = [html.Span(t("last_update", language), className="label"), t("never", language)]
        else:
            minutes = max(0, (request.now - updated) // 60)
            ago = (f"{minutes} 分钟前" if language == "zh" else f"{minutes} min ago") if minutes else \
                ("刚刚" if language == "zh" else "just now")
            # Stale once even the most frequent source's newest data is older than its interval allows.
            stale = bool(intervals) and is_stale(updated, request.now, min(intervals.values()))
            when = as_of_mark(updated, True, zone, request.now, language, "value") if stale else \
                html.Span(format_time(updated, zone, request.now), className="value")
            freshness = [html.Span(t("last_update", language), className="label"), when,
                         html.Span(f" · {ago}", className="ago")]
        return freshness, source_summary(Counter(h.freshness for h in health), language)


# Neither runs before the map has painted (see callbacks/loading.py): every callback the page runs on load
# is work on the main thread the polygons would wait for.
clientside_callback(
    # Chart type follows the page's type (assets/style.css; on a wall assets/wall.css): 1 at a browser's 15 px.
    "function(_painted) { const px = parseFloat(getComputedStyle(document.documentElement).fontSize) || 15;"
    " return {scale: Math.round(Math.max(1, px / 15) * 4) / 4}; }",
    Output(PageIds.DISPLAY, "data"),
    Input(PageIds.MAP_PAINTED, "data"),
    prevent_initial_call=True,
)

clientside_callback(
    # In the page's language (app.py sets <html lang> to the viewer's).
    "function(_n, _painted, zone) {"
    " return window.onescreen.clock(zone, document.documentElement.lang.slice(0, 2)); }",
    Output(HeaderIds.CLOCK, "children"),
    Input(PageIds.CLOCK_TICK, "n_intervals"),
    Input(PageIds.MAP_PAINTED, "data"),
    State(PageIds.TIMEZONE, "data"),
    prevent_initial_call=True,
)
