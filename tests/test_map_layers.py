"""The map's layers as the server serves them: boundaries as geobuf (scope-checked, cacheable, rounded per level
without losing a unit or a shared border) and the open-incident points (in scope only, nothing personal)."""

from __future__ import annotations

from dataclasses import replace

import base64
import gzip
import json
import time

import geobuf
import pytest
import shapely
from dash import no_update
from flask import Flask
from sqlalchemy import text

from callbacks.cached_callbacks import EXTENSION
from callbacks.context import CONFIG_KEY, ScreenContext, viewer_request
from callbacks.geometry import register_geometry_routes
from cityops.boundaries import MAP_DECIMALS, replace_units
from cityops.db import session_scope
from cityops.demo_city import generate_city
from cityops.geography import children_feature_collection, children_geobuf, children_geojson, map_decimals
from cityops.incident_layer import OverdueLimits, open_incident_points
from cityops.incidents import community_locator, incident_rows, upsert_incidents
from cityops.response_cache import cache_for
from cityops.db import engine_for
from cityops.scope import OutOfScope, scope_of_unit
from cityops.settings import Settings
from cityops.storage import sync_indicators
from cityops.tree import load_tree

HOUR = 3600
CITY_SHAPE = {"districts": 4, "streets": 20, "communities": 200}


@pytest.fixture(scope="module")
def city(tmp_path_factory, catalog):
    """A generated city (4 districts, 20 streets, 200 communities: real, warped shapes) in SQLite."""
    from cityops.db import migrate

    folder = tmp_path_factory.mktemp("map-layers")
    settings = Settings(database_url=f"sqlite:///{folder / 'map.db'}", run_scheduler=False, refresh_seconds=5)
    migrate(settings.database_url)
    with session_scope(settings.database_url) as session:
        replace_units(session, generate_city(7, **CITY_SHAPE))
        sync_indicators(session, catalog)
    return settings


def server_for(settings: Settings, catalog, cache: str | None = "memory") -> Flask:
    """The geometry routes on their own Flask app, as create_app registers them (with or without the cache)."""
    server = Flask(__name__)
    server.config[CONFIG_KEY] = ScreenContext(settings, catalog)
    server.extensions[EXTENSION] = cache_for(engine_for(settings.database_url), cache, settings.refresh_seconds)
    register_geometry_routes(server)
    return server


def tree_of(settings):
    with session_scope(settings.database_url) as session:
        return load_tree(session)


def as_viewer(monkeypatch, root_code: str | None) -> None:
    from cityops.scope import Viewer

    monkeypatch.setattr("callbacks.context.current_viewer", lambda: Viewer("tester", root_code))


# ------------------------------------------------------------------------------------------------
# Boundaries as geobuf
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cache", ["memory", "off"])
def test_the_geobuf_route_decodes_to_the_same_features_as_the_geojson(city, catalog, cache):
    server = server_for(city, catalog, cache)
    tree = tree_of(city)
    client = server.test_client()
    for code in (str(tree.frame.loc[tree.root_id, "code"]), str(tree.at_level(1)["code"].iloc[0]),
                 str(tree.at_level(2)["code"].iloc[-1])):
        response = client.get(f"/geo/{code}/children.pbf")
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "application/x-protobuf"
        assert "max-age" in response.headers["Cache-Control"] and response.headers["ETag"]
        decoded = geobuf.decode(response.data)
        reference = json.loads(client.get(f"/geo/{code}/children.geojson").data)
        assert [f["properties"] for f in decoded["features"]] == [f["properties"] for f in reference["features"]]
        assert [f["id"] for f in decoded["features"]] == [f["id"] for f in reference["features"]]
        for ours, theirs in zip(decoded["features"], reference["features"]):
            # The same shape, within the view's rounding.
            a, b = shapely.geometry.shape(ours["geometry"]), shapely.geometry.shape(theirs["geometry"])
            assert a.symmetric_difference(b).area <= 0.01 * b.area
        # A browser holding it asks with its tag and gets 304; gzip when accepted.
        assert client.get(f"/geo/{code}/children.pbf",
                          headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
        zipped = client.get(f"/geo/{code}/children.pbf", headers={"Accept-Encoding": "gzip"})
        assert zipped.headers["Content-Encoding"] == "gzip" and gzip.decompress(zipped.data) == response.data


def test_units_outside_the_viewers_scope_and_unknown_layers_answer_404(city, catalog, monkeypatch):
    server = server_for(city, catalog)
    tree = tree_of(city)
    district_a, district_b = (str(code) for code in tree.at_level(1)["code"].iloc[:2])
    client = server.test_client()
    assert client.get(f"/geo/{district_b}/children.pbf").status_code == 200  # the whole city may see it
    as_viewer(monkeypatch, district_a)
    for path in (f"/geo/{district_b}/children.pbf", f"/geo/{district_b}/labels.geojson",
                 f"/geo/{tree.frame.loc[tree.root_id, 'code']}/children.pbf", "/geo/999999/children.pbf",
                 f"/geo/{district_a}/children.exe", f"/geo/{district_a}/roads.pbf"):
        response = client.get(path)
        assert response.status_code == 404, path
    # The viewer's own district still answers, and the cached answer of the whole city's viewer is not theirs.
    assert client.get(f"/geo/{district_a}/children.pbf").status_code == 200


def test_each_view_keeps_every_unit_valid_and_its_borders_shared(city):
    """Rounded per level: every child is there, valid and not empty, and siblings still tile their parent."""
    tree = tree_of(city)
    with session_scope(city.database_url) as session:
        scope = scope_of_unit(tree, tree.root_id)
        for parent_id in tree.frame.index[tree.frame["level"] < 3]:
            children = tree.children(parent_id)
            decoded = geobuf.decode(children_geobuf(session, scope, parent_id))
            assert sorted(f["properties"]["code"] for f in decoded["features"]) == sorted(children["code"])
            shapes = shapely.from_geojson([json.dumps(f["geometry"]) for f in decoded["features"]])
            assert shapely.is_valid(shapes).all() and not shapely.is_empty(shapes).any()
            assert bool(shapely.coverage_is_valid(shapes)), f"siblings under {parent_id} no longer share borders"
            parent = shapely.from_geojson(session.scalar(
                text("SELECT geometry_simplified FROM units WHERE id = :id"), {"id": int(parent_id)}))
            assert abs(shapely.union_all(shapes).area - parent.area) <= 0.01 * parent.area


def test_coordinates_are_rounded_to_what_the_view_shows(city):
    assert (map_decimals(1.05), map_decimals(0.1), map_decimals(0.01), map_decimals(10)) == (4, 5, 5, 3)
    assert map_decimals(0) == map_decimals(float("nan")) == MAP_DECIMALS
    tree = tree_of(city)
    with session_scope(city.database_url) as session:
        scope = scope_of_unit(tree, tree.root_id)
        collection, decimals = children_feature_collection(session, scope, tree.root_id)
        extent = tree.frame.loc[tree.root_id]
        assert decimals == map_decimals(max(extent["max_lon"] - extent["min_lon"], extent["max_lat"] - extent["min_lat"]))
        coordinates = shapely.get_coordinates(shapely.from_geojson(
            [json.dumps(f["geometry"]) for f in collection["features"]]))
        assert (abs(coordinates * 10 ** decimals - (coordinates * 10 ** decimals).round()) < 1e-6).all()
        # Smaller than the GeoJSON it replaces, compressed as both travel.
        assert len(gzip.compress(children_geobuf(session, scope, tree.root_id))) < \
            len(gzip.compress(children_geojson(session, scope, tree.root_id).encode()))


# ------------------------------------------------------------------------------------------------
# Incident points
# ------------------------------------------------------------------------------------------------

NOW = int(time.time())


def incident(ident: str, point, *, opened_hours_ago: float, status="open", category="道路破损", phone=None):
    lon, lat = point
    return {"external_id": ident, "category": category, "status": status, "source_status": status,
            "opened_at": NOW - int(opened_hours_ago * HOUR), "updated_at": NOW - int(opened_hours_ago * HOUR),
            "closed_at": None, "lon": lon, "lat": lat, "address": f"{ident} 号", "description": "请致电 138****5678",
            "contact_masked": {"phone": phone} if phone else {}, "raw": {"id": ident}}


@pytest.fixture(scope="module")
def incidents(city):
    """Open incidents in two districts (one overdue in each, one of a category with its own limit), a closed one."""
    tree = tree_of(city)
    with session_scope(city.database_url) as session:
        communities = tree.at_level(3)
        first_of = {}
        for unit_id, row in communities.iterrows():
            district = tree.lineage(unit_id)[1]
            first_of.setdefault(district, (float(row["center_lon"]), float(row["center_lat"])))
        (district_a, point_a), (district_b, point_b) = list(first_of.items())[:2]
        rows = incident_rows(community_locator(session), [
            incident("a-new", point_a, opened_hours_ago=1, phone="138****5678"),
            incident("a-old", point_a, opened_hours_ago=100),
            incident("a-lamp", point_a, opened_hours_ago=30, category="路灯故障"),
            incident("a-closed", point_a, opened_hours_ago=200, status="closed"),
            incident("b-old", point_b, opened_hours_ago=80),
        ], source="city-311", run_id=None, now=NOW)
        upsert_incidents(session, rows)
    return district_a, district_b


LIMITS = OverdueLimits({"city-311": (72 * HOUR, {"路灯故障": 24 * HOUR})})


def test_incident_points_are_the_open_ones_in_the_unit_with_nothing_personal(city, incidents):
    district_a, district_b = incidents
    tree = tree_of(city)
    with session_scope(city.database_url) as session:
        city_scope = scope_of_unit(tree, tree.root_id)
        everything = open_incident_points(session, city_scope, tree, tree.root_id, NOW, LIMITS, "Asia/Shanghai")
        assert (everything.shown, everything.overdue, everything.left_out) == (4, 3, 0)
        in_a = open_incident_points(session, city_scope, tree, district_a, NOW, LIMITS, "Asia/Shanghai")
        by_id = {f["id"]: f["properties"] for f in in_a.collection["features"]}
        assert set(by_id) == {"city-311/a-new", "city-311/a-old", "city-311/a-lamp"}
        assert {ident: p["overdue"] for ident, p in by_id.items()} == \
            {"city-311/a-new": 0, "city-311/a-old": 1, "city-311/a-lamp": 1}  # the category's own 24 h
        for properties in by_id.values():
            assert set(properties) == {"category", "overdue", "opened", "address"}
        assert "138" not in json.dumps(in_a.collection, ensure_ascii=False)
        # A viewer of district A sees no point of district B, and cannot ask for B or the city at all.
        a_scope = scope_of_unit(tree, district_a)
        assert open_incident_points(session, a_scope, tree, district_a, NOW, LIMITS, "Asia/Shanghai").shown == 3
        for outside in (district_b, tree.root_id):
            with pytest.raises(OutOfScope):
                open_incident_points(session, a_scope, tree, outside, NOW, LIMITS, "Asia/Shanghai")


def test_the_incident_layer_is_sent_only_when_it_changed_and_not_at_all_when_hidden(city, catalog, incidents,
                                                                                    monkeypatch):
    from callbacks.map import incident_state

    district_a, _ = incidents
    server = server_for(city, catalog)
    tree = tree_of(city)
    selection = {"unit": str(tree.frame.loc[district_a, "code"]), "indicator": "hotline_complaints"}
    with server.test_request_context("/_dash-update-component", method="POST"):
        with viewer_request() as request:
            data, digest, counts = incident_state(request, selection, True, None)
            decoded = geobuf.decode(base64.b64decode(data))
            # The deployment's connectors.yaml has no limits for this source: the default 72 h, so one overdue.
            assert len(decoded["features"]) == 3 and counts == "3 起 · 超期 1"
            assert incident_state(request, selection, True, digest)[:2] == (no_update, no_update)
            assert incident_state(request, selection, False, digest)[:2] == (None, None)
            assert incident_state(request, selection, False, None)[:2] == (no_update, no_update)
            # A unit without open incidents clears the layer (no empty geobuf: the browser cannot read one).
            quiet = str(tree.at_level(1)["code"].iloc[-1])
            data, _, counts = incident_state(request, {"unit": quiet}, True, digest)
            # None of the deployment's sources delivers incidents (the simulator): "0 open" beside a card of
            # thousands of open grid incidents would read as a contradiction.
            assert data is None and counts == "未接入来源"
    # A viewer of another district asking for district A's unit gets their own root's points instead.
    other = str(tree.frame.loc[incidents[1], "code"])
    as_viewer(monkeypatch, other)
    with server.test_request_context("/_dash-update-component", method="POST"):
        with viewer_request() as request:
            data, _, _ = incident_state(request, selection, True, None)
            ids = {f["id"] for f in geobuf.decode(base64.b64decode(data))["features"]}
            assert ids == {"city-311/b-old"}


def test_with_an_incident_source_configured_a_quiet_unit_reads_zero_open(city, catalog, incidents, tmp_path):
    from callbacks.map import incident_state, overdue_limits

    connectors = tmp_path / "connectors.yaml"
    connectors.write_text("connectors:\n  - name: city-311\n    type: open311\n    levels: [community]\n"
                          "    schedule: {interval: 10m}\n    config: {url: 'http://127.0.0.1:9/open311/v2'}\n",
                          encoding="utf-8")
    server = server_for(replace(city, connectors_path=connectors), catalog)
    quiet = str(tree_of(city).at_level(1)["code"].iloc[-1])
    with server.test_request_context("/_dash-update-component", method="POST"):
        with viewer_request() as request:
            data, _, counts = incident_state(request, {"unit": quiet, "indicator": "hotline_complaints"}, True, None)
            assert overdue_limits().incident_sources == {"city-311"}
    assert data is None and counts == "0 起 · 超期 0"


def test_no_base_tiles_unless_a_tile_server_is_configured(catalog):
    from layouts.page import build_page

    def tile_layers(settings):
        found, stack = [], [build_page(settings, catalog)]
        while stack:
            node = stack.pop()
            if type(node).__name__ == "TileLayer":
                found.append(node)
            children = getattr(node, "children", None)
            stack.extend(children if isinstance(children, list) else [children] if children is not None else [])
        return found

    assert Settings().tile_url is None and tile_layers(Settings()) == []
    tiles = tile_layers(Settings(tile_url="http://gis.local/tiles/{z}/{x}/{y}.png"))
    assert [layer.url for layer in tiles] == ["http://gis.local/tiles/{z}/{x}/{y}.png"]
