"""KPI cards: one per indicator for the selected unit — value with its unit, change, sparkline, freshness — and,
when the indicator has open alerts under that unit, a badge with their count beside its name.

Indicators marked `kpi: false` in the catalog get no card (Catalog.kpis()): figures kept to cross-check others.
"""

from __future__ import annotations

from urllib.parse import quote

from dash import html

from cityops.catalog import Direction, Indicator
from cityops.hierarchy import Level
from cityops.readings import Reading
from cityops.status import Status
from layouts.alert_badges import AlertTally, card_badge, heading_badge
from layouts.headings import named_heading
from layouts.ids import kpi_card_id
from layouts.freshness import as_of_mark
from layouts.text import format_compact, format_time, format_value, level_name, t
from layouts.theme import STATUS_COLOURS


# Below this share of units reporting, the completeness is highlighted: a roll-up missing 1% is still sound.
COMPLETE_ENOUGH = 0.95


def sparkline_svg(values: list[float | None], colour: str, width: int = 120, height: int = 28) -> str:
    """A tiny inline SVG as a data URI: no chart library, no extra request, nothing that animates."""
    points = [v for v in values if v is not None]
    if len(points) < 2:
        return ""
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    step = width / (len(points) - 1)
    path = " ".join(f"{i * step:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}" for i, v in enumerate(points))
    # Stretched to the width its card gives it (time runs along x), the line keeping its weight.
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'preserveAspectRatio="none"><polyline fill="none" stroke="{colour}" stroke-width="1.6" '
           f'stroke-linejoin="round" vector-effect="non-scaling-stroke" points="{path}"/></svg>')
    return "data:image/svg+xml;charset=utf-8," + quote(svg)


def change_badge(indicator: Indicator, reading: Reading, language: str) -> html.Span:
    change = reading.change
    if change is None:
        return html.Span("", className="kpi-change")
    # The words apart from the figure: a wall, short of room, shows "▲ 3" beside the sparkline (assets/wall.css).
    words = html.Span(f" {t('vs_previous', language)}", className="kpi-change-words")
    if abs(change) < 10 ** -indicator.decimals / 2:
        return html.Span(["=", words], className="kpi-change change-flat")
    worse = (change > 0) == (indicator.direction == Direction.HIGHER_IS_WORSE)
    arrow = "▲" if change > 0 else "▼"
    return html.Span([f"{arrow} ", *figure(abs(change), indicator.decimals, language, "kpi-change-figure"), words],
                     className=f"kpi-change {'change-worse' if worse else 'change-better'}")


def figure(value: float, decimals: int, language: str, class_name: str) -> list[html.Span]:
    """The figure with every digit, and for six digits or more its compact form (77.0万), which a wall shows
    instead (assets/wall.css): each card keeps room for its change and sparkline."""
    compact = format_compact(value, language)
    full = html.Span(format_value(value, decimals), className=class_name + (" has-compact" if compact else ""))
    return [full, html.Span(compact, className="figure-compact", **{"aria-hidden": "true"})] if compact else [full]


def kpi_heading(unit_name: str, alerts: AlertTally, language: str) -> list:
    """The panel's heading: whose indicators these are, then the unit's open and overdue alerts, if any."""
    # The words give way before the name, and both before the count (layouts/headings.py): "Quanyang Subdistrict ·
    # key indicators ⚠ 2 open · 2 o…" lost what the 2 counted.
    return [*named_heading("kpis_of", language, "name", unit_name), heading_badge(alerts, language)]


def card_name(indicator: Indicator, language: str) -> str | list:
    """The name, and its short form for a wall (assets/wall.css shows one of them): across the room, "Open grid
    incid…" beside a badge and a change read worse than "Open incidents"."""
    name, short = indicator.name(language), indicator.short_name(language)
    if short == name:
        return name
    return [html.Span(name, className="kpi-name-full"),
            html.Span(short, className="kpi-name-short", **{"aria-hidden": "true"})]


def kpi_card(indicator: Indicator, reading: Reading, spark: list, level: Level, language: str, zone: str,
             now: int, selected: bool, alerts: AlertTally = AlertTally(), owner_name: str | None = None) -> html.Div:
    """One indicator's card. `owner_name`: the ancestor whose value a reading below the indicator's level holds
    (readings.standing_unit), named on the card so a street's AQI is never read as its community's own."""
    status = reading.status
    inherited = reading.owner_id is not None
    classes = f"kpi-card status-{status.value}" + (" selected" if selected else "")
    # The name keeps what room the badge and the change leave it (and ellipsis when that is too little): the
    # number below then has the card's whole width, however many digits it and its change have.
    name = html.Div(className="kpi-head", children=[
        html.Div(card_name(indicator, language), className="kpi-name", title=indicator.name(language)),
        card_badge(alerts, language, owner_name if inherited else None),
        change_badge(indicator, reading, language) if reading.value is not None else None,
    ])
    if not reading.measured and not inherited:
        return html.Div(id=kpi_card_id(indicator.key), n_clicks=0, className=classes + " not-measured",
                        **{"data-indicator": indicator.key, "data-status": status.value}, children=[
            name, html.Div(t("not_measured", language, level=level_name(level, language)), className="kpi-meta")])
    if reading.value is None:
        note = (t("no_data_since", language, time=format_time(reading.observed_at, zone, now))
                if reading.observed_at else t("no_data", language))
        value_line = html.Div(note, className="kpi-value kpi-missing")
    else:
        value_line = html.Div(className="kpi-value", children=[
            *figure(reading.value, indicator.decimals, language, "kpi-number"),
            html.Span(indicator.measure(language), className="kpi-unit"),
        ])
    meta = [as_of_mark(reading.observed_at, status == Status.STALE, zone, now, language, "kpi-asof")]
    if inherited:
        # Whose value it is takes the completeness's place: "16/16 reported" of a district says little on a street.
        meta.append(html.Span(["↑ ", owner_name], className="kpi-owner"))
    elif reading.expected and reading.expected > 1:
        meta.append(html.Span(t("reported", language, n=f"{reading.reported:,}", m=f"{reading.expected:,}"),
                              className="kpi-completeness"
                              + (" incomplete" if reading.reported < reading.expected * COMPLETE_ENOUGH else "")))
    spark_src = sparkline_svg(spark, STATUS_COLOURS[status if status != Status.NO_DATA else Status.STALE])
    description = indicator.description_zh if language == "zh" else indicator.description_en
    if inherited:
        classes += " inherited"
        description = t("measured_above", language, level=level_name(level, language), name=owner_name) \
            + "\n" + description
    return html.Div(id=kpi_card_id(indicator.key), n_clicks=0, className=classes, role="button",
                    **{"data-indicator": indicator.key, "data-status": status.value},
                    title=description, children=[
        name, value_line,
        html.Div(className="kpi-trendline", children=[
            html.Img(src=spark_src, className="kpi-spark", alt="") if spark_src else None,
        ]),
        html.Div(meta, className="kpi-meta"),
    ])
