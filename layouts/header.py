"""The header: city, title, breadcrumb, unit search, indicator selector, clock, data freshness, source health and
the language switch."""

from __future__ import annotations

from dash import dcc, html

from cityops.catalog import Catalog
from cityops.hierarchy import Level
from cityops.status import Status
from layouts.ids import HeaderIds, crumb_id
from layouts.navigation import language_switch, unit_search
from layouts.text import level_name, t
from layouts.theme import status_colour


# Values of the group headers in the indicator selector: never an indicator key (those are snake_case).
GROUP_PREFIX = "§"


def indicator_options(catalog: Catalog, language: str) -> list[dict]:
    """Indicators grouped by the level they are measured at, so a leader sees where each number comes from.

    dcc.Dropdown has no option groups: each group opens with a disabled header option (styled as a heading in
    assets/style.css), whose value can never be an indicator key.
    """
    options = []
    for level in (Level.DISTRICT, Level.STREET, Level.COMMUNITY):
        items = [{"value": i.key, "label": f"{i.name(language)} ({i.measure(language)})"}
                 for i in catalog if i.level == level]
        if items:
            label = f"{level_name(level, language)}级" if language == "zh" else f"Measured per {level.label_en.lower()}"
            options.append({"value": f"{GROUP_PREFIX}{level.name.lower()}", "label": label, "disabled": True})
            options.extend(items)
    return options


def dropdown_labels(language: str) -> dict:
    if language == "zh":
        return {"search": "搜索指标", "no_options_found": "没有匹配的指标", "clear_search": "清除搜索",
                "clear_selection": "清除"}
    return {"search": "Search indicators", "no_options_found": "No indicator matches", "clear_search": "Clear search",
            "clear_selection": "Clear"}


def mounted_selector(catalog: Catalog, indicator_key: str, language: str) -> list:
    """The selector as mounted once the map has painted, with a note of the value it was mounted with: Dash calls
    the selector's callback as it appears, and that call must be told from a viewer's choice
    (callbacks/selection.py select_indicator)."""
    return [indicator_selector(catalog, indicator_key, language),
            dcc.Store(id=HeaderIds.INDICATOR_MOUNTED, data=indicator_key)]


def indicator_selector(catalog: Catalog, indicator_key: str, language: str) -> dcc.Dropdown:
    return dcc.Dropdown(id=HeaderIds.INDICATOR, options=indicator_options(catalog, language), value=indicator_key,
                        clearable=False, searchable=True, search_order="original", className="indicator-select",
                        maxHeight=720, labels=dropdown_labels(language))


def indicator_preview(catalog: Catalog, indicator_key: str, language: str) -> html.Div:
    """The closed selector's look (dcc.Dropdown's own classes, so its own styles), without its script."""
    indicator = catalog[indicator_key]
    return html.Div(className="dash-dropdown-wrapper indicator-preview", children=html.Div(
        className="dash-dropdown indicator-select", children=html.Span(
            className="dash-dropdown-grid-container dash-dropdown-trigger", children=[
                html.Span(className="dash-dropdown-value", children=html.Span(
                    className="dash-dropdown-value-item",
                    children=html.Span(f"{indicator.name(language)} ({indicator.measure(language)})"))),
                html.Span(className="dash-dropdown-trigger-icon indicator-preview-icon"),
            ])))


def build_header(city_name: str, catalog: Catalog, indicator_key: str, language: str) -> html.Header:
    return html.Header(className="screen-header", children=[
        html.Div(className="brand", children=[
            html.Div(city_name, className="brand-city"),
            html.Div(t("title", language), className="brand-title"),
        ]),
        html.Nav(id=HeaderIds.BREADCRUMB, className="breadcrumb", **{"aria-label": "breadcrumb"}),
        unit_search(language),
        html.Div(className="indicator-picker", title=t("indicator", language), children=[
            html.Span(t("indicator", language), className="indicator-label"),
            # The selector itself is mounted once the map has painted (callbacks/header.py): it loads a script
            # chunk and builds a popover, ~100 ms the polygons would wait for (bench/first_screen.py). Until
            # then the slot shows the selected indicator exactly as the closed selector does.
            html.Div(indicator_preview(catalog, indicator_key, language), id=HeaderIds.INDICATOR_SLOT,
                     className="indicator-slot"),
        ]),
        html.Div(className="freshness", children=[
            html.Div(id=HeaderIds.CLOCK, className="clock"),
            html.Div(id=HeaderIds.LAST_UPDATE, className="last-update"),
            # Opens the sources panel (callbacks/sources.py).
            html.Button(id=HeaderIds.SOURCES, className="sources", n_clicks=0, title=t("sources_title", language)),
        ]),
        language_switch(language),
    ])


def breadcrumb(lineage: list[tuple[str, str]], selected_code: str) -> list:
    """Clickable crumbs from the city down to the selected unit (the last one is plain text)."""
    items = []
    for position, (code, name) in enumerate(lineage):
        if position:
            items.append(html.Span("›", className="crumb-separator"))
        if code == selected_code:
            items.append(html.Span(name, className="crumb crumb-current", **{"aria-current": "page", "data-code": code}))
        else:
            items.append(html.Button(name, id=crumb_id(code), className="crumb", n_clicks=0, **{"data-code": code}))
    return items


def source_summary(counts: dict[str, int], language: str) -> list:
    """● 1 fresh ● 0 late ● 0 silent, coloured in the shared status language."""
    labels = {"fresh": ("正常", "fresh", Status.NORMAL), "late": ("延迟", "late", Status.WARNING),
              "silent": ("中断", "silent", Status.CRITICAL)}
    children = [html.Span(t("sources", language), className="sources-label")]
    for key, (zh, en, status) in labels.items():
        count = counts.get(key, 0)
        children.append(html.Span(className=f"source-count source-{key}", **{"data-count": str(count)}, children=[
            html.Span("●", style={"color": status_colour(status)}), f" {count} {zh if language == 'zh' else en}"]))
    return children
