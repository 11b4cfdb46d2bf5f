"""The header: city, title, breadcrumb, indicator selector, clock, data freshness and source health."""

from __future__ import annotations

import dash_mantine_components as dmc
from dash import html

from cityops.catalog import Catalog
from cityops.hierarchy import Level
from cityops.status import Status
from layouts.ids import HeaderIds, crumb_id
from layouts.text import level_name, t
from layouts.theme import status_colour


def indicator_options(catalog: Catalog, language: str) -> list[dict]:
    """Indicators grouped by the level they are measured at, so a leader sees where each number comes from."""
    groups = []
    for level in (Level.DISTRICT, Level.STREET, Level.COMMUNITY):
        items = [{"value": i.key, "label": f"{i.name(language)} ({i.unit_of_measure})"}
                 for i in catalog if i.level == level]
        if items:
            label = f"{level_name(level, language)}级" if language == "zh" else f"Measured per {level.label_en.lower()}"
            groups.append({"group": label, "items": items})
    return groups


def build_header(city_name: str, catalog: Catalog, indicator_key: str, language: str) -> html.Header:
    return html.Header(className="screen-header", children=[
        html.Div(className="brand", children=[
            html.Div(city_name, className="brand-city"),
            html.Div(t("title", language), className="brand-title"),
        ]),
        html.Nav(id=HeaderIds.BREADCRUMB, className="breadcrumb", **{"aria-label": "breadcrumb"}),
        dmc.Select(id=HeaderIds.INDICATOR, data=indicator_options(catalog, language), value=indicator_key,
                   allowDeselect=False, searchable=True, className="indicator-select", maxDropdownHeight=480,
                   comboboxProps={"zIndex": 2000}, **{"aria-label": t("indicator", language)}),
        html.Div(className="freshness", children=[
            html.Div(id=HeaderIds.CLOCK, className="clock"),
            html.Div(id=HeaderIds.LAST_UPDATE, className="last-update"),
            html.Div(id=HeaderIds.SOURCES, className="sources"),
        ]),
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
        children.append(html.Span(className=f"source-count source-{key}", children=[
            html.Span("●", style={"color": status_colour(status)}), f" {counts.get(key, 0)} {zh if language == 'zh' else en}"]))
    return children
