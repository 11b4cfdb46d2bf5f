"""A drill-down on the map answers from what is read once per data version — each scope's snapshot of the
indicator shown, its open alerts, the unit tree's indexes — and must say what the per-request queries say: the
same children, values and statuses, only inside the viewer's scope, with staleness decided when the map is drawn
and a write seen at once."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import orjson
import pandas as pd
import pytest
from dash import no_update
from sqlalchemy import event, text

sys.path.insert(0, str(Path(__file__).parent))

from city_factory import simulated_tiny_city  # noqa: E402
from cityops.hierarchy import Level  # noqa: E402
from cityops.latest_readings import children_in_scope, children_latest, latest_readings  # noqa: E402
from cityops.readings import children_readings, source_of  # noqa: E402
from cityops.scope import OutOfScope, Viewer, scope_of_unit, viewer_scope  # noqa: E402
from cityops.tree import load_tree  # noqa: E402
from readings_city import C, CITY, D1, D2, NOW, S12, S22, pinned_catalog, populate  # noqa: E402,F401
from dash_calls import in_callback  # noqa: E402

HOUR = 3600


@pytest.fixture(scope="module")
def db(tmp_path_factory, catalog, city_db_factory):  # noqa: F811 - the pinned catalog of test_scope_and_readings
    from cityops.db import migrate

    url = f"sqlite:///{(tmp_path_factory.mktemp('drill') / 'drill.db').as_posix()}"
    migrate(url)
    city = city_db_factory(url, catalog)
    populate(city)
    return city


def as_rows(frame: pd.DataFrame) -> list[tuple]:
    """children_readings' rows as the map's children compare (as_map_rows): missing values as None."""
    def plain(value):
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else value

    return [tuple(plain(row[name]) for name in ("unit_id", "code", "value", "observed_at", "status"))
            for row in frame.to_dict("records")]


def as_map_rows(latest) -> list[tuple]:
    """children_latest's columns as rows."""
    return [(child.id, child.code, value, observed, status) for child, value, observed, status
            in zip(latest.children, latest.values, latest.observed_at, latest.statuses)]


def snapshot_for(session, scope, catalog, db, key, parent, unit_ids=None):  # noqa: F811
    tree = load_tree(session)
    children = tree.child_ids(parent)
    source = source_of(catalog[key], Level(tree.row(children[0]).level)) if children else None
    return None if source is None else latest_readings(session, scope, db.indicator_ids[key], source, unit_ids)


# ------------------------------------------------------------------------------------------------
# The unit tree's indexes
# ------------------------------------------------------------------------------------------------


def test_the_tree_indexes_answer_as_the_frame_does(db):
    with db.session() as session:
        tree = load_tree(session)
    frame = tree.frame
    for unit_id in [*frame.index, 99_999]:
        expected = frame[frame["parent_id"] == unit_id]
        assert tree.child_ids(unit_id) == tuple(expected.index)
        assert tree.child_rows(unit_id) == tuple(tree.row(child) for child in expected.index)
        pd.testing.assert_frame_equal(tree.children(unit_id), expected)
    for unit_id, row in frame.iterrows():
        unit = tree.row(unit_id)
        assert (unit.code, unit.level, unit.lft, unit.rgt, unit.population) == \
            (row["code"], row["level"], row["lft"], row["rgt"], row["population"])
        assert unit.parent_id == (None if pd.isna(row["parent_id"]) else int(row["parent_id"]))
        assert unit.bounds == [[row["min_lat"], row["min_lon"]], [row["max_lat"], row["max_lon"]]]
    # Each caller gets its own copy of a parent's rows: a change to one never reaches the next caller.
    mine = tree.children(db.unit_ids[D1])
    mine["code"] = "changed"
    mine.loc[mine.index[0], "population"] = -1
    assert set(tree.children(db.unit_ids[D1])["code"]) == {"990101001", "990101002"}
    assert (tree.children(db.unit_ids[D1])["population"] > 0).all()


# ------------------------------------------------------------------------------------------------
# Children's readings from a kept snapshot
# ------------------------------------------------------------------------------------------------


def test_the_map_reads_the_same_children_as_every_other_panel(db, catalog):  # noqa: F811
    """Every parent in each of three scopes, every indicator, now and three hours later (values gone stale), from
    the whole scope's snapshot and from one read for the children only: the same rows as children_readings."""
    with db.session() as session:
        tree = load_tree(session)
        scopes = [viewer_scope(session, Viewer()), viewer_scope(session, Viewer("officer", D1)),
                  scope_of_unit(tree, db.unit_ids[S12])]
        compared = 0
        for scope in scopes:
            parents = [unit for unit in tree.frame.index if scope.contains(tree, unit) and tree.child_ids(unit)]
            for key in catalog.keys:
                for parent in parents:
                    whole = snapshot_for(session, scope, catalog, db, key, parent)
                    narrow = snapshot_for(session, scope, catalog, db, key, parent, tree.child_ids(parent))
                    for now in (NOW, NOW + 3 * HOUR):
                        expected = as_rows(children_readings(session, scope, catalog, db.indicator_ids, parent, key,
                                                             now))
                        for latest in (whole, narrow):
                            got = as_map_rows(children_latest(tree, scope, catalog[key], latest, parent, now))
                            assert got == expected, (scope.root_code, key, parent, now)
                            compared += len(got)
    assert compared > 500


def test_a_kept_snapshot_goes_stale_as_time_passes(db, catalog):  # noqa: F811
    with db.session() as session:
        tree = load_tree(session)
        everyone = viewer_scope(session, Viewer())
        street = db.unit_ids[S22]
        latest = snapshot_for(session, everyone, catalog, db, "hotline_complaints", street)

    def statuses(now):
        children = children_latest(tree, everyone, catalog["hotline_complaints"], latest, street, now)
        return {child.code: status for child, status in zip(children.children, children.statuses)}

    # C[6] is 80 minutes old at NOW (interval 1 h, stale after 75 min); C[7] 20 minutes.
    assert statuses(NOW) == {C[6]: "stale", C[7]: "normal"}
    assert statuses(HOUR - 3000 + 4500) == {C[6]: "normal", C[7]: "normal"}
    assert statuses(NOW + 2 * HOUR) == {C[6]: "stale", C[7]: "stale"}


def test_a_snapshot_holds_and_serves_only_its_own_scope(db, catalog):  # noqa: F811
    with db.session() as session:
        tree = load_tree(session)
        everyone = viewer_scope(session, Viewer())
        district = viewer_scope(session, Viewer("officer", D1))
        ids = db.indicator_ids["hotline_complaints"]
        kept = latest_readings(session, district, ids, "reported")
        city_wide = latest_readings(session, everyone, ids, "reported")
    inside = {unit for unit in tree.frame.index if district.contains(tree, unit)}
    assert set(kept.unit_ids) <= inside and len(kept.unit_ids) == 4  # its four communities reported
    assert len(city_wide.unit_ids) == 8
    # A row asked of the district's snapshot for a unit elsewhere is no row at all.
    values, observed = kept.readings([db.unit_ids[C[4]], db.unit_ids[C[0]]])
    assert values[0] is None and observed[0] is None and observed[1] is not None
    with pytest.raises(ValueError, match="scope"):
        children_latest(tree, everyone, catalog["hotline_complaints"], kept, db.unit_ids[S22], NOW)
    for outside in (CITY, D2, S22, 99_999):
        with pytest.raises(OutOfScope):
            children_latest(tree, district, catalog["hotline_complaints"], kept, db.unit_ids.get(outside, outside),
                            NOW)
        with pytest.raises(OutOfScope):
            children_in_scope(tree, district, db.unit_ids.get(outside, outside))
    street = scope_of_unit(tree, db.unit_ids[S12])
    assert [unit.code for unit in children_in_scope(tree, street, db.unit_ids[S12])] == [C[2], C[3]]


# ------------------------------------------------------------------------------------------------
# The map's hideout
# ------------------------------------------------------------------------------------------------


def test_the_hideout_sends_each_status_as_its_place_among_the_states_and_each_word_once(catalog):  # noqa: F811
    """Per child code [its status's place in "states", its value as shown]; the colour and the word of each state
    once (assets/map.js reads them back; the browser test tests/browser/test_map_layers.py checks the colours and
    tooltips it draws from them)."""
    import dataclasses

    from cityops.latest_readings import ChildrenLatest
    from cityops.status import Status
    from cityops.tree import UnitRow
    from layouts.map_panel import empty_hideout, map_hideout
    from layouts.text import status_text
    from layouts.theme import STATUS_COLOURS

    indicator = dataclasses.replace(catalog["aqi"], decimals=1, unit_of_measure="µg/m³")
    statuses = [Status.CRITICAL, Status.NORMAL, Status.STALE, Status.NO_DATA, Status.WARNING, Status.NORMAL]
    rows = [UnitRow(index, f"99010{index}", f"区{index}", f"District {index}", 1, 1, 10, 2 * index, 2 * index + 1,
                    0, 0, 0, 0, 1, 1) for index in range(len(statuses))]
    children = ChildrenLatest(rows, [1234.56, 3.0, 7.25, None, 151.0, 0.04], [1, 2, 3, None, 5, 6], statuses)
    for language in ("zh", "en"):
        hideout = map_hideout(children, indicator, "990102", language)
        assert {code: (hideout["states"][place], text) for code, (place, text) in hideout["units"].items()} == {
            "990100": ("critical", "1,234.6"), "990101": ("normal", "3.0"), "990102": ("stale", "7.2"),
            "990103": ("nodata", "—"), "990104": ("warning", "151.0"), "990105": ("normal", "0.0")}
        assert hideout["colours"] == {status.value: colour for status, colour in STATUS_COLOURS.items()}
        assert hideout["words"] == {status.value: status_text(status, language) for status in Status}
        assert (hideout["selected"], hideout["unit"], hideout["language"]) == ("990102", "µg/m³", language)
        # The page's map before its first answer reads the same shape, with no unit.
        assert {**empty_hideout(language), "units": hideout["units"], "selected": "990102",
                "unit": "µg/m³"} == hideout
        orjson.dumps(hideout)  # plain JSON values: Dash encodes the answer in one orjson call
    assert map_hideout(ChildrenLatest([], [], [], []), indicator, None, "zh")["units"] == {}


# ------------------------------------------------------------------------------------------------
# The map's callback
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from app import create_app

    return create_app(simulated_tiny_city(tmp_path_factory.mktemp("drill-app")))


class Statements:
    """Counts the statements the app sends to its database."""

    def __init__(self, engine):
        self.engine, self.count = engine, 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args):
        self.count += 1

    def close(self):
        event.remove(self.engine, "before_cursor_execute", self._seen)


def drill(app, unit: str, indicator: str = "hotline_complaints", shown: str = CITY):
    from callbacks.map import show_map

    return in_callback(app, show_map, {"unit": unit, "indicator": indicator}, 0, f"/geo/{shown}/children.pbf")


def test_drills_within_a_data_version_send_no_statement_and_a_write_is_seen_at_once(app):
    from cityops.db import engine_for, session_scope

    url = app.server.config["ONESCREEN"].settings.database_url
    drill(app, "990101")  # reads the streets' snapshot and the open alerts for this data version
    statements = Statements(engine_for(url))
    try:
        hideout = drill(app, "990102")[5]
        assert statements.count == 0
    finally:
        statements.close()
    street = "990102001"
    with session_scope(url) as session:  # a write in this process: a new data version
        session.execute(text("UPDATE current_rollups SET value = 4321, reported = expected WHERE unit_id = "
                             "(SELECT id FROM units WHERE code = :code) AND indicator_id = "
                             "(SELECT id FROM indicators WHERE key = 'hotline_complaints')"), {"code": street})
    assert hideout["units"][street][1] != "4,321"
    answer = drill(app, "990102")
    assert answer[5]["units"][street][1] == "4,321"
    # Plain JSON values only, no component object: Dash then encodes the answer in one orjson call rather than
    # having plotly's encoder walk all of it first.
    orjson.dumps([part for part in answer if part is not no_update])


def test_staleness_is_decided_when_the_map_is_drawn(app, monkeypatch):
    import time

    def statuses(hideout):
        return {hideout["states"][place] for place, _value in hideout["units"].values()}

    fresh = drill(app, "990101")[5]
    assert statuses(fresh) != {"stale"}
    later = time.time() + 10 * 24 * HOUR  # no new data version: the same kept snapshot, ten days on
    monkeypatch.setattr("callbacks.context.time.time", lambda: later)
    aged = drill(app, "990101")[5]
    assert set(aged["units"]) == set(fresh["units"])
    assert statuses(aged) <= {"stale", "nodata"}
    assert [value for _place, value in aged["units"].values()] == [value for _place, value in fresh["units"].values()]


def test_each_viewer_scope_reads_its_own_snapshot(app, monkeypatch):
    from callbacks import map as map_callbacks

    kept = []
    real = map_callbacks.latest_readings

    def recorded(session, scope, *args, **kwargs):
        latest = real(session, scope, *args, **kwargs)
        kept.append(latest)
        return latest

    monkeypatch.setattr(map_callbacks, "latest_readings", recorded)
    whole_city = drill(app, "990102", indicator="aqi")  # the city's viewer: the city's snapshot is kept
    assert set(whole_city[5]["units"]) == {"990102001", "990102002"}
    kept.clear()
    monkeypatch.setattr("callbacks.context.current_viewer", lambda: Viewer("officer", "990101"))
    district = drill(app, "990101001", indicator="aqi", shown="990101")
    # The district's viewer asking for the city is shown their district; the city's other half never appears.
    city = drill(app, CITY, indicator="aqi", shown="990101001")
    assert set(district[5]["units"]) == {"990101001001", "990101001002"}
    assert set(city[5]["units"]) == {"990101001", "990101002"}
    assert kept and {latest.scope.root_code for latest in kept} == {"990101"}
    assert all(unit.startswith("990101") for latest in kept for unit in
               load_tree_codes(app, latest.unit_ids))


def load_tree_codes(app, unit_ids) -> list[str]:
    from cityops.db import session_scope

    with session_scope(app.server.config["ONESCREEN"].settings.database_url) as session:
        tree = load_tree(session)
    return [tree.row(unit_id).code for unit_id in unit_ids]


def test_without_the_response_cache_each_drill_reads_only_its_children_and_answers_the_same(app):
    from dataclasses import replace

    from app import create_app
    from cityops.db import engine_for

    settings = app.server.config["ONESCREEN"].settings
    uncached = create_app(replace(settings, cache_url="off"))  # no data version: nothing may be kept
    statements = Statements(engine_for(settings.database_url))
    try:
        for _ in range(2):
            before = statements.count
            answer = drill(uncached, "990102")
            assert statements.count > before
    finally:
        statements.close()
    assert answer[5] == drill(app, "990102")[5] and answer[6] == drill(app, "990102")[6]


def test_the_panels_read_the_requests_unit_tree_not_the_units_table_again(app):
    """Each panel's callback checks the viewer's scope on the request's unit tree (one per data version); the
    readings it asks for take that tree rather than looking the units table up again (~1 ms each)."""
    from dataclasses import replace

    from app import create_app
    from callbacks.comparison import show_comparison
    from callbacks.kpi import show_kpis
    from cityops.db import engine_for

    settings = app.server.config["ONESCREEN"].settings
    uncached = create_app(replace(settings, cache_url="off"))  # every answer computed, every reading made
    selection = {"unit": "990101", "indicator": "hotline_complaints", "range": "7d", "start": None, "end": None,
                 "compare": False}
    texts: list[str] = []

    def seen(_connection, _cursor, statement, *_args):
        texts.append(statement)

    engine = engine_for(settings.database_url)
    event.listen(engine, "before_cursor_execute", seen)
    try:
        cards = in_callback(uncached, show_kpis, selection, 0)
        comparison = in_callback(uncached, show_comparison, selection, 0)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert cards[0] and comparison and texts  # the panels were drawn from the database
    # With no data version kept, each request reads its tree once (scope included), and its readings reuse it.
    fingerprints = [statement for statement in texts if "sum(units.rgt)" in statement]
    assert len(fingerprints) == 2, fingerprints
