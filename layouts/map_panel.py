"""The choropleth: children of the selected unit coloured by the selected indicator's status.

Geometry arrives by URL as geobuf (cacheable, fetched once per drill level; `format` says so); colours arrive
in `hideout` and are applied by a JavaScript style function (assets/map.js), so switching indicators sends no
geometry. The one exception is the first level a page shows: its boundaries ride with the layout as GeoJSON
(`data`, a few kB compressed, with the layer's default format), so the first paint waits for no request and no
decoder; the layer's `url` names them all the same.

Open incidents are a second layer of clustered points (incident_layer), toggled by a button on the map
(incident_toggle); their colours are the one colour language's: overdue critical, open warning.

Alert badges ride the same way: each child's open-alert count travels in the labels layer's `hideout`
(labels_hideout) and assets/map.js draws it beside the child's name, so a refresh re-badges the same points.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

import dash_leaflet as dl
import orjson
from dash import dcc, html
from dash.development.base_component import Component

from cityops.catalog import Direction, Indicator, Thresholds
from cityops.hierarchy import Level
from cityops.status import Status
from layouts.alert_badges import AlertTally, map_badges
from layouts.ids import IncidentIds
from layouts.text import format_threshold, format_value, level_name, status_text, t
from layouts.theme import STATUS_COLOURS

if TYPE_CHECKING:
    from cityops.latest_readings import ChildrenLatest

STYLE = {"variable": "onescreen.map.unitStyle"}
HOVER_STYLE = {"variable": "onescreen.map.hoverStyle"}
ON_EACH_FEATURE = {"variable": "onescreen.map.bindTooltip"}


POINT_TO_LABEL = {"variable": "onescreen.map.label"}
INCIDENT_POINT = {"variable": "onescreen.map.incidentPoint"}
INCIDENT_CLUSTER = {"variable": "onescreen.map.incidentCluster"}
INCIDENT_TOOLTIP = {"variable": "onescreen.map.incidentTooltip"}
# Boundaries fetched by URL are geobuf (callbacks/geometry.py); the first map's inline data is GeoJSON.
GEOMETRY_FORMAT = "geobuf"


class MapState(NamedTuple):
    """Everything the map shows for one selection, in the order of show_map's outputs; any field may be
    dash.no_update (unchanged)."""

    url: Any            # the children's boundaries (GeoJSON URL)
    labels_url: Any     # where their names are written
    data: Any           # the boundaries themselves, when sent inline (first level only), else None
    labels_data: Any    # the label points, likewise
    viewport: Any       # {"bounds": [[s, w], [n, e]], "options": {...}} to fit the new level
    hideout: Any        # each child's status and value as shown (see map_hideout)
    labels_hideout: Any  # the labels' language and alert badges (see labels_hideout); None: not read yet
    legend: Any
    title: Any
    format: Any         # the boundaries' format: "geojson" inline (first level only), GEOMETRY_FORMAT by URL


def geometry_url(unit_code: str) -> str:
    return f"/geo/{unit_code}/children.pbf"


def labels_url(unit_code: str) -> str:
    return f"/geo/{unit_code}/labels.geojson"


# A unit's status travels as its place in this list (assets/map.js reads it back through the hideout's "states"),
# and each status's colour and word once per hideout rather than once per unit.
HIDEOUT_STATES = tuple(Status)
_STATE_INDEX = {status: index for index, status in enumerate(HIDEOUT_STATES)}
_STATE_NAMES = [status.value for status in HIDEOUT_STATES]
_COLOURS = {status.value: colour for status, colour in STATUS_COLOURS.items()}


def empty_hideout(language: str = "zh") -> dict:
    return {"colours": _COLOURS, "states": _STATE_NAMES, "words": _words(language), "units": {}, "selected": None,
            "unit": "", "language": language}


@lru_cache(maxsize=8)
def _words(language: str) -> dict[str, str]:
    # Shared by every hideout (as _COLOURS and _STATE_NAMES): Dash only encodes them, nothing changes them.
    return {status.value: status_text(status, language) for status in HIDEOUT_STATES}


def map_hideout(children: ChildrenLatest, indicator: Indicator, selected_code: str | None, language: str) -> dict:
    """What the style and tooltip functions read (assets/map.js): per child code, [its status's place in "states",
    its value as shown]; the states' colours and words; the selected unit, the unit of measure and the language
    (the tooltip's name is the boundary's own, in that language)."""
    decimals = indicator.decimals
    texts = [format_value(value, decimals) for value in children.values]
    states = map(_STATE_INDEX.__getitem__, children.statuses)
    hideout = empty_hideout(language)
    hideout.update(units=dict(zip([child.code for child in children.children], zip(states, texts))),
                   selected=selected_code, unit=indicator.measure(language))
    return hideout


def labels_hideout(tallies: dict[str, AlertTally], language: str) -> dict:
    """What the label layer's point function reads: the language of the names, and per child code the alert
    badge to draw beside its name (children with no open alert have none)."""
    return {"language": language, "alerts": map_badges(tallies, language)}


def as_sent(value: Any) -> Any:
    """Components (alone or within lists and dicts) in the JSON form Dash sends them in; anything else as it is.
    The browser sees no difference; the server does: Dash encodes a response with orjson in one call when it holds
    plain values only, but one component object in it makes plotly's encoder walk the whole response in Python
    first (a drill-down's answer: ~0.18 ms instead of ~0.02 ms)."""
    if isinstance(value, Component):
        return as_sent(value.to_plotly_json())
    if isinstance(value, dict):
        return {key: as_sent(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_sent(item) for item in value]
    return value


def heading_text_as_sent(text: str) -> dict:
    """A panel title's words as the JSON Dash sends a span (see as_sent): they give way before the as-of mark
    that follows them (assets/style.css), which an English wall's map title had cut ("as of 08:0…")."""
    return {"type": "Span", "namespace": "dash_html_components", "props": {"children": text,
                                                                           "className": "heading-text"}}


def legend_as_sent(indicator: Indicator, level: Level | None, language: str) -> orjson.Fragment:
    """Threshold bands for the level on the map, then stale and no data: the same five states everywhere.

    As the JSON Dash sends (as_sent), encoded once per thresholds, unit and language (every drill-down sends a
    legend, and building its twenty components cost more than the rest of the map's answer) and handed over as an
    orjson Fragment, which Dash's encoder (orjson, see as_sent) writes out as it is: nothing to copy, decode or
    encode again (a copy in Python objects cost each drill ~15 µs)."""
    if level is not None and not indicator.measured_at_or_above(level):
        # Every polygon would read "no data": the legend says why instead (the cards and trend show the ancestor's).
        return orjson.Fragment(_not_measured_text(level, indicator.level, language))
    return orjson.Fragment(_legend_text(indicator.thresholds_at(level) if level is not None else None,
                                        indicator.measure(language), indicator.decimals, indicator.direction, language))


@lru_cache(maxsize=32)
def _not_measured_text(level: Level, measured_at: Level, language: str) -> bytes:
    note = t("map_not_measured", language, level=level_name(level, language),
             measured=level_name(measured_at, language))
    return orjson.dumps(as_sent([html.Div(className="legend-row legend-note", children=[
        html.Span(className=f"legend-swatch swatch-{Status.NO_DATA.value}"),
        html.Span(note, className="legend-state")])]))


@lru_cache(maxsize=256)
def _legend_text(thresholds: Thresholds | None, unit: str, decimals: int, direction: Direction,
                 language: str) -> bytes:
    return orjson.dumps(as_sent(_legend(thresholds, unit, decimals, direction, language)))


def _legend(thresholds: Thresholds | None, unit: str, decimals: int, direction: Direction, language: str) -> list:
    rows = []
    if thresholds:
        w = format_threshold(thresholds.warning, decimals)
        c = format_threshold(thresholds.critical, decimals)
        worse = direction == Direction.HIGHER_IS_WORSE
        bands = [
            (Status.CRITICAL, f"{'≥' if worse else '≤'} {c} {unit}"),
            (Status.WARNING, f"{w}–{c} {unit}"),
            (Status.NORMAL, f"{'<' if worse else '>'} {w} {unit}"),
        ]
    else:
        bands = [(Status.NORMAL, "")]
    bands += [(Status.STALE, ""), (Status.NO_DATA, "")]
    for status, band in bands:
        rows.append(html.Div(className=f"legend-row legend-{status.value}", children=[
            html.Span(className=f"legend-swatch swatch-{status.value}"),
            html.Span(status_text(status, language), className="legend-state"),
            html.Span(band, className="legend-band"),
        ]))
    return rows  # one line under the map, its bands self-explanatory: no "Legend" heading


def incident_hideout(language: str) -> dict:
    """What the incident layer's point, cluster and tooltip functions read: colours and words."""
    return {"colours": {"overdue": STATUS_COLOURS[Status.CRITICAL], "open": STATUS_COLOURS[Status.WARNING]},
            # Templates, filled in the browser: {time}, {count}, {overdue} are left for assets/map.js.
            "text": {"overdue": t("incident_overdue", language), "open": t("incident_open", language),
                     "opened": t("incident_opened", language, time="{time}"),
                     "cluster": t("incident_cluster", language, count="{count}", overdue="{overdue}")}}


def incident_layer(language: str) -> dl.GeoJSON:
    """Open incidents in the unit on the map, clustered (a cluster is red when any of its incidents is overdue);
    a click on a cluster zooms to it. The points arrive as geobuf in `data` (callbacks/map.py show_incidents)."""
    return dl.GeoJSON(id=IncidentIds.LAYER, format=GEOMETRY_FORMAT, cluster=True, zoomToBoundsOnClick=True,
                      superClusterOptions={"radius": 56, "maxZoom": 17}, pointToLayer=INCIDENT_POINT,
                      clusterToLayer=INCIDENT_CLUSTER, onEachFeature=INCIDENT_TOOLTIP,
                      hideout=incident_hideout(language))


def incident_toggle(language: str) -> html.Div:
    """The button over the map showing or hiding the incident layer, with its counts; the choice is kept in the
    browser (a wall keeps it across reloads)."""
    colours = incident_hideout(language)["colours"]
    return html.Div(className="map-layer-controls", children=[
        dcc.Store(id=IncidentIds.SHOWN, storage_type="local", data=True),
        dcc.Store(id=IncidentIds.DIGEST),
        html.Button(id=IncidentIds.TOGGLE, className="map-layer-toggle layer-on",
                    title=t("incidents_layer_hint", language), children=[
            html.Span(className="incident-swatch", style={"background": colours["overdue"]}),
            html.Span(className="incident-swatch", style={"background": colours["open"]}),
            html.Span(t("incidents_layer", language), className="map-layer-name"),
            html.Span(id=IncidentIds.COUNT, className="map-layer-count"),
        ]),
    ])
