"""Navigation: the view state in the URL, the header's unit search and its language switch. Pure: no data reads.

The URL carries the selection (layouts/page.py `initial_selection`) as query parameters, leaving out what equals
the first selection, so a plain `/` is the first screen and a drill-down reads `/?unit=990101`:

    unit=<code>  indicator=<key>  range=24h|30d|custom  start=YYYY-MM-DD  end=YYYY-MM-DD (custom only)  compare=1

`view_query` writes them, `selection_from_query` reads them back, checking every value: a unit the viewer may not
see (or that does not exist) opens the viewer's whole scope, anything else unusable its default. The browser
writes the same query (assets/navigation.js `viewQuery`, kept identical and tested against this one).
"""

from __future__ import annotations

from collections.abc import Callable, Container
from datetime import date
from urllib.parse import parse_qsl, quote

from dash import dcc, html

from cityops.time_range import CUSTOM, RANGES, check_custom, parse_day
from cityops.unit_search import LONGEST_QUERY, SearchResult
from layouts.ids import NavIds, language_button_id, search_result_id
from layouts.text import level_name, t

VIEW_KEYS = ("unit", "indicator", "range", "start", "end", "compare")
LONGEST_CODE = 64
YES = ("1", "true", "yes", "on")
LANGUAGES = (("zh", "中"), ("en", "EN"))
URI_COMPONENT_SAFE = "!'()*"  # with letters, digits and -_.~: what encodeURIComponent leaves as it is


# ------------------------------------------------------------------------------------------------
# The view state in the URL
# ------------------------------------------------------------------------------------------------


def view_query(selection: dict | None, defaults: dict) -> str:
    """The query string (without "?") of a selection: only what differs from `defaults`, in VIEW_KEYS order."""
    selection = selection if isinstance(selection, dict) else {}
    pairs = []
    unit = selection.get("unit")
    if isinstance(unit, str) and unit:
        pairs.append(("unit", unit))
    indicator = selection.get("indicator")
    if isinstance(indicator, str) and indicator and indicator != defaults.get("indicator"):
        pairs.append(("indicator", indicator))
    period = selection.get("range")
    if period == CUSTOM:
        pairs.append(("range", CUSTOM))
        pairs.extend((key, selection[key]) for key in ("start", "end") if isinstance(selection.get(key), str))
    elif isinstance(period, str) and period and period != defaults.get("range"):
        pairs.append(("range", period))
    if selection.get("compare") is True:
        pairs.append(("compare", "1"))
    # Escaped as the browser's encodeURIComponent escapes (assets/navigation.js writes the same query).
    return "&".join(f"{key}={quote(value, safe=URI_COMPONENT_SAFE)}" for key, value in pairs)


def query_values(search: str | None) -> dict[str, str]:
    """The view's parameters in a query string ("?unit=..." or "unit=..."): the first value of each, others
    (lang, mode, anything unknown) ignored."""
    if not isinstance(search, str):
        return {}
    values: dict[str, str] = {}
    for key, value in parse_qsl(search.removeprefix("?"), keep_blank_values=False):
        if key in VIEW_KEYS and key not in values:
            values[key] = value
    return values


def selection_from_query(search: str | None, defaults: dict, unit_visible: Callable[[str], bool],
                         indicators: Container[str], today: date) -> dict:
    """The selection a URL asks for, every value checked: a unit `unit_visible` refuses becomes None (the
    viewer's scope root), an unknown indicator or range the default, a custom range needs dates the range
    control would accept (cityops/time_range.py check_custom: both YYYY-MM-DD, in order, not starting after
    `today`, not too long; else the default range), `compare` is on only when asked for plainly ("1", "true")."""
    values = query_values(search)
    unit = values.get("unit")
    if unit is not None and (len(unit) > LONGEST_CODE or not unit_visible(unit)):
        unit = None
    indicator = values.get("indicator")
    if indicator is None or indicator not in indicators:
        indicator = defaults["indicator"]
    period, start, end = values.get("range", defaults["range"]), None, None
    if period == CUSTOM:
        start, end = parse_day(values.get("start")), parse_day(values.get("end"))
        if check_custom(start, end, today) is not None:
            period, start, end = defaults["range"], None, None
    elif period not in RANGES:
        period = defaults["range"]
    return {"unit": unit, "indicator": indicator, "range": period,
            "start": start.isoformat() if start else None, "end": end.isoformat() if end else None,
            "compare": values.get("compare", "").lower() in YES}


def same_view(first: dict | None, second: dict | None, defaults: dict) -> bool:
    """Whether two selections show the same view (the URL would not change between them)."""
    return view_query(first, defaults) == view_query(second, defaults)


def url_state(defaults: dict) -> list:
    """The URL's part of the page: the location (read on load and on back/forward; written by
    assets/navigation.js, which keeps the browser's history itself, see callbacks/navigation.py) and its stores."""
    return [
        # refresh=False: a search written here never reloads the page (the history entry is already made).
        dcc.Location(id=NavIds.URL, refresh=False),
        dcc.Store(id=NavIds.DEFAULTS, data=defaults),
        dcc.Store(id=NavIds.REQUEST),
        dcc.Store(id=NavIds.APPLIED),
    ]


# ------------------------------------------------------------------------------------------------
# The header's unit search and language switch
# ------------------------------------------------------------------------------------------------


def unit_search(language: str) -> html.Div:
    """A search box; what it finds is listed under it while it has the focus (assets/navigation.css), and
    arrow keys move through the list (assets/navigation.js); Enter takes the first unit found."""
    return html.Div(className="unit-search", role="search", children=[
        html.Label(t("search_label", language), htmlFor=NavIds.SEARCH, className="visually-hidden"),
        dcc.Input(id=NavIds.SEARCH, type="search", value="", placeholder=t("search_placeholder", language),
                  autoComplete="off", spellCheck=False, debounce=False, maxLength=LONGEST_QUERY, n_submit=0,
                  className="unit-search-input"),
        html.Div(id=NavIds.SEARCH_RESULTS, className="unit-search-results", role="listbox",
                 **{"aria-label": t("search_label", language)}),
    ])


def search_results(result: SearchResult, query: str | None, language: str) -> list:
    """One button per unit found (name, level, parent, code), then how many more matched; or why nothing."""
    if not isinstance(query, str) or not query.strip():
        return []
    if not result.units:
        return [html.Div(t("search_none", language, query=query.strip()[:60]), className="search-empty")]
    rows = []
    for position, unit in enumerate(result.units):
        parent = unit.parent_name(language)
        rows.append(html.Button(
            id=search_result_id(unit.code), n_clicks=0, role="option", className="search-result",
            **{"data-code": unit.code, "aria-selected": "true" if position == 0 else "false"},
            children=[
                html.Span(unit.name(language), className="search-result-name"),
                html.Span(level_name(unit.level, language), className="search-result-level"),
                html.Span(t("search_in", language, parent=parent) if parent else "", className="search-result-parent"),
                html.Span(unit.code, className="search-result-code"),
            ]))
    if result.total > len(result.units):
        rows.append(html.Div(t("search_more", language, n=result.total - len(result.units)), className="search-more"))
    return rows


def language_switch(language: str) -> html.Div:
    """中 / EN: the viewer's language, kept in a cookie; the page reloads in it, at the same view."""
    return html.Div(className="language-switch", role="group", **{"aria-label": t("language_switch", language)},
                    children=[
                        html.Button(label, id=language_button_id(code), n_clicks=0, lang=code,
                                    className="language-option" + (" current" if code == language else ""),
                                    **{"aria-pressed": "true" if code == language else "false"})
                        for code, label in LANGUAGES])
