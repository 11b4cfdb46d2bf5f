"""Callbacks as plain functions: what each returns for a selection, and that the page cannot widen its scope."""

from __future__ import annotations

import gzip
import json
import re
import sys
from pathlib import Path

import orjson
import pytest
from dash import no_update
from plotly.utils import PlotlyJSONEncoder

sys.path.insert(0, str(Path(__file__).parent))

from city_factory import CITY, simulated_tiny_city  # noqa: E402
from cityops.catalog import load_catalog  # noqa: E402
from cityops.settings import Settings  # noqa: E402
from dash_calls import in_callback  # noqa: E402

DISTRICT, STREET, COMMUNITY = "990101", "990101001", "990101001001"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from app import create_app

    return create_app(simulated_tiny_city(tmp_path_factory.mktemp("callbacks")))


def pattern_trigger(component_id: dict, prop: str, value) -> list[dict]:
    return [{"prop_id": json.dumps(component_id, separators=(",", ":"), sort_keys=True) + "." + prop, "value": value}]


def test_clicked_unit_code_ignores_redraws_and_reads_each_source():
    from callbacks.selection import clicked_unit_code
    from layouts.ids import MapIds

    assert clicked_unit_code({"type": "breadcrumb-crumb", "code": "990101"}, 0) is None  # a redraw, not a click
    assert clicked_unit_code({"type": "breadcrumb-crumb", "code": "990101"}, 1) == "990101"
    assert clicked_unit_code(MapIds.UNITS, {"properties": {"code": "990102"}}) == "990102"
    assert clicked_unit_code(MapIds.UNITS, "forged") is None


def test_selecting_a_unit_by_breadcrumb_and_refusing_unknown_codes(app):
    from callbacks.selection import select_unit

    selection = {"unit": STREET, "indicator": "aqi"}
    chosen = in_callback(app, select_unit, None, [1], selection,
                         triggered=pattern_trigger({"type": "breadcrumb-crumb", "code": DISTRICT}, "n_clicks", 1))
    assert chosen == {"unit": DISTRICT, "indicator": "aqi"}
    forged = in_callback(app, select_unit, None, [1], selection,
                         triggered=pattern_trigger({"type": "breadcrumb-crumb", "code": "110101"}, "n_clicks", 1))
    assert forged is no_update


def test_a_click_arriving_with_redrawn_crumbs_is_not_lost(app):
    """Dash may hand the map click and the breadcrumb's redraw (n_clicks 0) to one call, the redraw first."""
    from callbacks.selection import select_unit

    together = [*pattern_trigger({"type": "breadcrumb-crumb", "code": "990000"}, "n_clicks", 0),
                {"prop_id": "map-units.clickData", "value": {"properties": {"code": DISTRICT}}}]
    chosen = in_callback(app, select_unit, {"properties": {"code": DISTRICT}}, [0], {"unit": None},
                         triggered=together)
    assert chosen == {"unit": DISTRICT}
    redraw_only = in_callback(app, select_unit, None, [0], {"unit": None}, triggered=together[:1])
    assert redraw_only is no_update

def test_kpis_for_a_forged_unit_fall_back_to_the_scope_root(app):
    from callbacks.kpi import show_kpis

    cards, heading, digest = in_callback(app, show_kpis, {"unit": "not-a-unit", "indicator": "aqi"}, 0)
    assert heading[0].children == "小城市"
    assert len(cards) == len(load_catalog(Settings().catalog_path).kpis())  # `kpi: false` indicators get none
    # A refresh finding the same cards leaves the panel alone (a click on a card being replaced would be lost);
    # another selection draws them again.
    same = in_callback(app, show_kpis, {"unit": None, "indicator": "aqi"}, 1, None, None, digest)
    assert same == (no_update, no_update, no_update)
    other, _heading, other_digest = in_callback(app, show_kpis, {"unit": None, "indicator": "pm25"}, 2, None, None,
                                                digest)
    assert other_digest != digest and len(other) == len(cards)


def test_map_sends_geometry_only_when_the_level_changes(app):
    from callbacks.map import show_map

    url, labels, data, labels_data, viewport, hideout, _labels_hideout, _legend, title, geometry_format = \
        in_callback(app, show_map, {"unit": CITY, "indicator": "aqi"}, 0, None)
    assert url == f"/geo/{CITY}/children.pbf" and labels == f"/geo/{CITY}/labels.geojson"
    assert geometry_format == "geobuf"
    assert data is None and labels_data is None  # a new level clears any inline geometry: the URL is fetched
    assert viewport["bounds"] == [[0.0, 0.0], [2.0, 4.0]]
    assert set(hideout["units"]) == {"990101", "990102"}
    # With how fresh the newest value is (as the JSON Dash sends: layouts/map_panel.py as_sent, legend_as_sent).
    title = orjson.loads(orjson.dumps(title))
    # The words in a span of their own: they give way before the as-of mark (assets/style.css).
    assert title[0]["props"]["className"] == "heading-text" and "空气质量指数" in title[0]["props"]["children"]
    assert "截至" in title[2]["props"]["children"]
    again = in_callback(app, show_map, {"unit": CITY, "indicator": "hotline_complaints"}, 1, url)
    assert all(part is no_update for part in again[:5])  # another indicator: same geometry, same view
    status_place, _value = again[5]["units"]["990101"]
    assert again[5]["states"][status_place] in {"normal", "warning", "critical", "stale", "nodata"}


def test_selecting_a_community_keeps_its_street_on_the_map(app):
    from callbacks.map import show_map

    url, _labels, _data, _labels_data, _viewport, hideout, _labels_hideout, _legend, _title, _format = in_callback(
        app, show_map, {"unit": COMMUNITY, "indicator": "hotline_complaints"}, 0, None)
    assert url == f"/geo/{STREET}/children.pbf"
    assert hideout["selected"] == COMMUNITY


def test_the_legend_says_why_an_indicator_measured_per_street_colours_no_community(app):
    from callbacks.map import show_map

    def legend_text(selection) -> list[str]:
        legend = orjson.loads(orjson.dumps(in_callback(app, show_map, selection, 0, None)[7]))
        return [part["props"]["children"] for row in legend for part in row["props"]["children"]
                if isinstance(part["props"].get("children"), str) and part["props"]["children"]]

    assert legend_text({"unit": COMMUNITY, "indicator": "aqi"}) == ["社区/村级不统计，按街道/镇统计"]
    assert legend_text({"unit": COMMUNITY, "indicator": "hotline_complaints"})[:2] == ["告警", "≥ 4 件/时"]
    assert "告警" in legend_text({"unit": DISTRICT, "indicator": "aqi"})  # streets are measured: the bands


def test_the_legend_states_whole_thresholds_without_decimals():
    """"≥ 90 %" rather than "≥ 90.0 %" (an English wall's legend ran onto a second line); a threshold that has
    decimals keeps them."""
    from cityops.catalog import Direction, Thresholds
    from layouts.map_panel import _legend

    def bands(thresholds, direction=Direction.HIGHER_IS_WORSE) -> list[str]:
        return [row.children[2].children for row in _legend(thresholds, "%", 1, direction, "en")][:3]

    assert bands(Thresholds(80.0, 90.0)) == ["≥ 90 %", "80–90 %", "< 80 %"]
    assert bands(Thresholds(7.5, 10.0)) == ["≥ 10 %", "7.5–10 %", "< 7.5 %"]
    assert bands(Thresholds(85.0, 70.0), Direction.HIGHER_IS_BETTER)[0] == "≤ 70 %"


def test_geometry_route_serves_children_and_hides_unknown_units(app):
    client = app.server.test_client()
    response = client.get(f"/geo/{DISTRICT}/children.geojson", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    features = response.get_json()["features"]
    assert sorted(f["properties"]["code"] for f in features) == ["990101001", "990101002"]
    assert "private" in response.headers["Cache-Control"] and response.headers["ETag"]
    cached = client.get(f"/geo/{DISTRICT}/children.geojson", headers={"If-None-Match": response.headers["ETag"]})
    assert cached.status_code == 304
    assert client.get("/geo/110101/children.geojson").status_code == 404
    assert client.get(f"/geo/{DISTRICT}/secrets.geojson").status_code == 404
    labels = client.get(f"/geo/{DISTRICT}/labels.geojson", headers={"Accept-Encoding": "identity"}).get_json()
    assert {f["geometry"]["type"] for f in labels["features"]} == {"Point"}


def _component(tree, component_id):
    """The component with this id in a layout as Dash serialises it (nested dicts and lists)."""
    if isinstance(tree, dict):
        if tree.get("props", {}).get("id") == component_id:
            return tree
        children = tree.get("props", {}).get("children")
        return _component(children, component_id) if children is not None else None
    if isinstance(tree, list):
        return next((found for item in tree if (found := _component(item, component_id)) is not None), None)
    return None


def test_the_first_layout_carries_the_map_and_the_page_hints_what_it_needs(app):
    client = app.server.test_client()
    layout = client.get("/_dash-layout").get_json()
    units = _component(layout, "map-units")["props"]
    assert units["url"] == f"/geo/{CITY}/children.pbf"
    # The first level's boundaries and labels ride with the layout: the first paint waits for no request.
    assert sorted(f["properties"]["code"] for f in units["data"]["features"]) == ["990101", "990102"]
    labels = _component(layout, "map-labels")["props"]
    assert labels["url"] == f"/geo/{CITY}/labels.geojson"
    assert {f["geometry"]["type"] for f in labels["data"]["features"]} == {"Point"}
    assert set(units["hideout"]["units"]) == {"990101", "990102"}  # coloured from the first paint
    assert _component(layout, "map")["props"]["bounds"] == [[0.0, 0.0], [2.0, 4.0]]
    assert _component(layout, "trend-graph") is None  # the charts (and plotly.js) come after the map
    page = client.get("/").get_data(as_text=True)
    for hint in ("/_dash-layout", "/_dash-dependencies", "/_dash-component-suites/dash_leaflet/async-GeoJSON.js"):
        assert f'<link rel="preload" href="{hint}"' in page
    # Neither the polyfill nor dash_table's bundle is sent, and no layout (the page's and every callback's
    # components, as Dash validates them) has a component that would need them.
    assert "polyfill@" not in page and "/dash_table/" not in page
    assert "dash_table" not in json.dumps(app.validation_layout.to_plotly_json(), cls=PlotlyJSONEncoder)


def test_the_screens_own_styles_and_scripts_come_as_one_file_each_in_dashs_order(app):
    from callbacks.asset_bundle import asset_files
    from cityops.settings import PROJECT_ROOT

    client = app.server.test_client()
    page = client.get("/").get_data(as_text=True)
    assert "/assets/" not in page  # no file of assets/ is asked for on its own
    stylesheets = re.findall(r'<link rel="stylesheet" href="(/bundle/screen\.[0-9a-f]{16}\.css)">', page)
    scripts = re.findall(r'<script src="([^"]+)"></script>', page)
    assert len(stylesheets) == 1
    bundle_script = next(src for src in scripts if src.startswith("/bundle/"))
    # After the component libraries (the screen's functions name dash-leaflet's), before Dash's renderer starts.
    names = [src.rsplit("/", 1)[-1] for src in scripts]
    position = scripts.index(bundle_script)
    assert any(name.startswith("dash_leaflet") for name in names[:position])
    assert names[position + 1].startswith("dash_renderer")
    for url, kind in ((stylesheets[0], "css"), (bundle_script, "js")):
        plain = client.get(url, headers={"Accept-Encoding": "identity"})
        assert plain.status_code == 200 and plain.mimetype == ("text/css" if kind == "css" else "text/javascript")
        assert "immutable" in plain.headers["Cache-Control"]
        body = plain.get_data(as_text=True)
        # Every file, whole and in Dash's order (sorted; the vendored runtime last), so the cascade is unchanged.
        files = asset_files(PROJECT_ROOT / "assets", kind)
        offsets = [body.index(path.read_text(encoding="utf-8").strip()) for path in files]
        assert offsets == sorted(offsets) and len(files) >= 4
        compressed = client.get(url, headers={"Accept-Encoding": "gzip"})
        assert compressed.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(compressed.get_data()).decode() == body
        again = client.get(url, headers={"If-None-Match": plain.headers["ETag"]})
        assert again.status_code == 304
    assert client.get("/bundle/screen.0000000000000000.css").status_code == 404


def test_the_server_gives_freed_memory_back_after_responses(app):
    names = [function.__name__ for function in app.server.after_request_funcs[None]]
    assert "release_after_sending" in names  # cityops/memory.py; tests/test_memory.py shows it works


def test_the_indicator_selector_comes_after_the_map_showing_the_selected_indicator(app):
    from callbacks.header import show_indicator_selector

    layout = app.server.test_client().get("/_dash-layout").get_json()
    assert _component(layout, "header-indicator") is None  # a preview until the map has painted
    slot = json.dumps(_component(layout, "header-indicator-slot"), ensure_ascii=False)
    assert "12345热线诉求 (件/时)" in slot
    selector, mounted = in_callback(app, show_indicator_selector, 1, {"unit": None, "indicator": "aqi"})
    assert (selector.id, selector.value) == ("header-indicator", "aqi")
    assert (mounted.id, mounted.data) == ("header-indicator-mounted", "aqi")  # for select_indicator (below)
    assert any(option["value"] == "pm25" for option in selector.options)
    # Whatever the page sends, the selector shows a catalog indicator.
    for forged in ({"indicator": "no_such_key"}, {"indicator": ["aqi"]}, None, "aqi"):
        assert in_callback(app, show_indicator_selector, 1, forged)[0].value == "hotline_complaints"


def test_mounting_the_selector_never_undoes_a_drill_down_or_a_deep_link(app):
    """The selector mounts after the map has painted and Dash then calls select_indicator with the value it was
    mounted with: that must not write back a selection that has changed meanwhile (a drill-down, an address's
    indicator applied after the map painted: the deep link's indicator was undone); the selector follows the
    selection instead. A viewer's choice becomes the selection's, also a choice of the mount's value later."""
    from callbacks.selection import select_indicator

    drilled = {"unit": DISTRICT, "indicator": "hotline_complaints"}
    assert in_callback(app, select_indicator, "hotline_complaints", drilled, "hotline_complaints") == (
        no_update, no_update, None)
    # Mounted holding the default while the address's indicator was being applied: the selector takes it.
    linked = {"unit": DISTRICT, "indicator": "aqi"}
    assert in_callback(app, select_indicator, "hotline_complaints", linked, "hotline_complaints") == (
        no_update, "aqi", None)
    # The viewer's choices, the mount's call used.
    assert in_callback(app, select_indicator, "aqi", drilled, None) == (
        {"unit": DISTRICT, "indicator": "aqi"}, no_update, no_update)
    assert in_callback(app, select_indicator, "hotline_complaints", linked, None) == (
        {"unit": DISTRICT, "indicator": "hotline_complaints"}, no_update, no_update)
    assert in_callback(app, select_indicator, ["aqi"], drilled, None) == (no_update, no_update, no_update)


def test_scripts_are_compressed_once_and_callback_responses_every_time(app):
    import re

    client = app.server.test_client()
    script = re.search(r'src="(/_dash-component-suites/dash_leaflet/[^"]+\.js)"', client.get("/").get_data(as_text=True))
    first = client.get(script.group(1), headers={"Accept-Encoding": "gzip"})
    assert first.headers["Content-Encoding"] == "gzip" and len(first.data) < 200_000
    cache = app.server.extensions["compress"].cache
    assert client.get(script.group(1), headers={"Accept-Encoding": "gzip"}).data == first.data
    assert any(script.group(1) in key for key in cache._store)
    layout = client.get("/_dash-layout", headers={"Accept-Encoding": "gzip"})
    assert layout.headers["Content-Encoding"] == "gzip"
    assert not any("_dash-layout" in key for key in cache._store)  # per request, never kept
