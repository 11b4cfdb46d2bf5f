"""Incidents (cityops.incidents): masking, placement in communities, upserts, open/overdue counts, the schema, and the
runner's handling of `Incident` items from any connector type (a small list type registered here).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from shapely.geometry import box
from sqlalchemy import text

from cityops.boundaries import replace_units
from cityops.hierarchy import Level, UnitRecord
from cityops.incident_masking import (mask_contact, mask_email, mask_incident, mask_incidents, mask_name, mask_other,
                                     mask_personal, mask_phone, mask_rows, mask_text, mask_value, scrub)
from cityops.incidents import (COLUMNS, CommunityLocator, InvalidIncident, Unplaced, community_locator,
                               count_open, incident_row, open_external_ids, upsert_incidents)
from cityops.models import Base
from cityops.tree import load_tree
from city_factory import tiny_city
from connectors.base import Connector, Health, Incident, IncidentBatch, IncidentCounts, register
from connectors.config import ConnectorInstance
from connectors.runner import run_connector

ZONE = "Asia/Shanghai"
SHANGHAI = ZoneInfo(ZONE)
NOW = int(datetime(2026, 11, 26, 10, 30, tzinfo=SHANGHAI).timestamp())
HOUR = 3600
A1, A2 = "990101001001", "990101001002"  # boxes (0,0)-(1,1) and (1,0)-(2,1)


# ------------------------------------------------------------------------------------------------
# Masking
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key, clear, masked", [
    ("phone", "13812345678", "138****5678"),
    ("mobile", "+86 138-1234-5678", "+86 138-****-5678"),
    ("tel", "021-6234 5678", "021-**** 5678"),
    ("phone", "12345", "***45"),
    ("email", "zhang.san@example.com", "z***@example.com"),
    ("contact_email", "not-an-address", "****ress"),
    ("name", "张三", "张*"),
    ("first_name", "欧阳修", "欧**"),
    ("last_name", "Zhang", "Z****"),
    ("device_id", "a1b2c3d4e5f6", "****e5f6"),
    ("account_id", "77", "****"),
    ("other", "13912345678", "139****5678"),      # a phone by its form
    ("other", "li@example.com", "l***@example.com"),  # an e-mail by its form
])
def test_personal_values_are_masked_by_kind_and_masking_a_mask_changes_nothing(key, clear, masked):
    assert mask_value(key, clear) == masked
    assert mask_value(key, masked) == masked
    assert clear not in masked


def test_mask_functions_on_their_own():
    assert mask_phone("13812345678") == "138****5678" and mask_email("a@b.cn") == "a***@b.cn"
    assert mask_name("李") == "李" and mask_other("1234567") == "****"
    assert mask_contact({"phone": 13812345678, "email": "", "name": None, "x": "  "}) == {"phone": "138****5678"}


def test_free_text_loses_given_values_mobile_numbers_and_email_addresses():
    given = [("张三", "张*"), ("Li", "L*")]
    assert mask_text("张三说: 打 13812345678, 或 +86 139 1234 5678, 写 a.b@example.com", given) == \
        "张*说: 打 138****5678, 或 +86 139 **** 5678, 写 a***@example.com"
    # Latin values only as whole words; numbers that are not mobiles stay.
    assert mask_text("Li lives on Lingling Road, order 20261126001", given) == \
        "L* lives on Lingling Road, order 20261126001"
    once = mask_text("call 13812345678 or a@b.cn")
    assert mask_text(once) == once


def test_scrub_drops_personal_keys_at_any_depth_and_masks_every_text():
    row = {"id": 7, "Phone": "13812345678", "notes": ["ring 13812345678"],
           "person": {"email": "x@y.cn", "title": "x@y.cn"}}
    assert scrub(row, contact={"phone": "13812345678"}, drop_keys=["phone", "EMAIL"]) == \
        {"id": 7, "notes": ["ring 138****5678"], "person": {"title": "x***@y.cn"}}


def test_mask_personal_keeps_personal_fields_masked_for_the_archive():
    row = {"service_request_id": "1", "PHONE": "13812345678", "first_name": "李雷", "email": None,
           "device_id": {"nested": "value"}, "description": "李雷 13812345678"}
    assert mask_personal(row, ["phone", "first_name", "email", "device_id"]) == {
        "service_request_id": "1", "PHONE": "138****5678", "first_name": "李*", "email": None, "device_id": "****",
        "description": "李* 138****5678"}
    assert mask_personal(mask_personal(row, ["phone", "first_name"]), ["phone", "first_name"]) == \
        mask_personal(row, ["phone", "first_name"])
    assert mask_personal(["13812345678"], ["phone"]) == ["138****5678"]


def test_mask_incident_masks_contact_and_everything_that_may_repeat_it():
    masked = mask_incident({"name": "王五", "phone": "13700001111"},
                           {"name": "王五", "text": "王五 13700001111", "id": 1}, "王五家门口", "王五来电")
    assert masked.contact == {"name": "王*", "phone": "137****1111"}
    assert masked.raw == {"text": "王* 137****1111", "id": 1}
    assert (masked.address, masked.description) == ("王*家门口", "王*来电")


# Rows of a page as a source sends them: plain ones, ones whose texts need masking (in any field, at a text's start
# or end, next to digits that make a number no mobile), personal fields, nested values, and what is not a row.
PAGE = [
    {"id": "SR1", "status": "open", "n": 3, "ok": True, "gone": None, "text": "路灯不亮"},
    {"id": "SR2", "text": "13812345678", "address": "a.b@example.com"},
    {"id": "SR3", "text": "打13812345678或 +86 139 1234 5678", "note": "x@y", "more": "@"},
    {"id": "SR4", "text": "订单 2138123456789 和 138****5678 和 z***@example.com 不是"},
    {"id": "SR5", "phone": "13700001111", "text": "13700001111"},
    {"id": "SR6", "notes": ["ring 13812345678"], "person": {"email": "x@y.cn"}},
    {"id": "SR7", "text": "a\x00b 13812345678\x00"},
    ["13812345678"], "13812345678", 7, None, {},
]


def test_a_page_of_rows_is_masked_as_each_row_alone():
    assert mask_rows(PAGE, ["phone"]) == [mask_personal(row, ["phone"]) for row in PAGE]
    assert mask_rows(PAGE[:1], ["phone"])[0] is PAGE[0]  # nothing to mask: the row itself
    assert mask_rows([], ["phone"]) == []


def _columns(incidents: list[tuple]) -> list[list]:
    """(contact, raw, address, description) tuples as the four columns mask_incidents takes."""
    return [list(column) for column in zip(*incidents)] if incidents else [[], [], [], []]


def test_a_page_needing_no_masking_comes_with_the_json_text_of_what_is_returned():
    import orjson

    from cityops.incident_masking import mask_rows_and_json

    plain = [{"id": "SR1", "address": "赵家宅 3 号", "n": 7}, {"id": "SR2", "tags": ["a", None]}]
    rows, searched = mask_rows_and_json(plain, ["phone"])
    assert rows == plain and searched == orjson.dumps(rows)
    for page in (PAGE, [{"id": "SR3", "memo": f"call {PHONE}"}], [{"id": 2 ** 70}]):  # masked, or no orjson text
        rows, searched = mask_rows_and_json(page, ["phone"])
        assert rows == mask_rows(page, ["phone"]) and searched is None


def test_a_page_of_incidents_is_masked_as_each_incident_alone():
    incidents = [({}, row if isinstance(row, dict) else None, row.get("address") if isinstance(row, dict) else None,
                  row.get("text") if isinstance(row, dict) else None) for row in PAGE]
    incidents += [({"phone": "13700001111"}, {"text": "13700001111"}, None, "call 13700001111"),
                  (None, {"a": "b"}, None, None), ({}, ["13812345678"], None, None), ({}, None, 12, {"x": 1})]
    masked = mask_incidents(*_columns(incidents))
    for position, item in enumerate(incidents):
        alone = mask_incident(*item)
        if position not in masked:  # nothing changed: what was given is what masking it gives
            assert alone == mask_incident({}, *item[1:]) and (alone.raw, alone.address, alone.description) == \
                item[1:] and item[0] == {}
        else:
            assert masked[position] == alone
    assert 0 not in masked and 1 in masked
    assert mask_incidents([], [], [], []) == {}


def test_rows_masked_by_mask_rows_are_not_searched_again_and_come_out_the_same():
    rows = mask_rows(PAGE, ["phone"])
    given = [({}, row, None, None) for row in rows if isinstance(row, dict)]

    def outcomes(results):
        return [(item[1], item[2], item[3]) if position not in results else
                (results[position].raw, results[position].address, results[position].description)
                for position, item in enumerate(given)]

    trusted = mask_incidents(*_columns(given), already_masked=rows)
    assert outcomes(trusted) == outcomes(mask_incidents(*_columns(given)))
    assert trusted == {}
    # A copy is not one of those rows: it is searched (and a row in clear is masked).
    assert mask_incidents([{}], [dict(PAGE[1])], [None], [None], already_masked=rows)[0].raw == rows[1]


def test_a_page_with_nothing_to_mask_outside_personal_fields_is_masked_as_each_row_alone():
    # Found by one search of the page's JSON: rows without personal fields come back as themselves.
    plain = [{"id": "SR1", "text": "路灯不亮", "n": 13812345, "at": "2026-11-26T10:00:00+08:00"},
             {"id": "SR2", "notes": ["nested", {"deep": "ok"}], "lat": 31.234567}, ["a list row"], "text", 7, None]
    with_personal = [*plain, {"id": "SR3", "phone": "13700001111", "text": "回电 13700001111"},
                     {"id": "SR4", "Name": "王五", "address": "王五家"}]
    for page in (plain, with_personal):
        masked = mask_rows(page, ["phone", "name"])
        assert masked == [mask_personal(row, ["phone", "name"]) for row in page]
        assert all(out is row for out, row in zip(masked, page) if not (isinstance(row, dict)
                                                                        and {"phone", "Name"} & set(row)))
    assert mask_rows(with_personal, ["phone", "name"])[-1] == {"id": "SR4", "Name": "王*", "address": "王*家"}
    # Numbers (not texts) that look like a mobile number only send the page the careful way: nothing changes.
    numbers = [{"id": "SR5", "n": 13812345678, "big": 10 ** 30, "text": "x"}]
    assert mask_rows(numbers, ["phone"]) == numbers


# ------------------------------------------------------------------------------------------------
# Placement
# ------------------------------------------------------------------------------------------------


def test_a_point_is_placed_in_the_community_holding_it_or_the_lower_id_on_a_border():
    locator = CommunityLocator([7, 3], [box(0, 0, 1, 1), box(1, 0, 2, 1)], box(0, 0, 2, 1))
    assert locator.place(0.5, 0.5) == 7 and locator.place(1.5, 0.2) == 3
    assert locator.place(1.0, 0.5) == 3  # on the shared border: both hold it, the lower id wins


def test_points_placed_together_are_placed_as_each_alone():
    locator = CommunityLocator([7, 3, 5], [box(0, 0, 1, 1), box(1, 0, 2, 1), box(2.001, 0, 3, 1)], box(0, 0, 3, 1))
    lons, lats = [0.5, 1.0, 1.5, 2.0002, 2.0005, 9.0, 0.5], [0.5, 0.5, 0.2, 0.5, 0.5, 9.0, 1.0]
    placed = locator.place_many(lons, lats)
    for lon, lat, result in zip(lons, lats, placed):
        if isinstance(result, Unplaced):
            with pytest.raises(Unplaced, match=re.escape(str(result))):
                locator.place(lon, lat)
        else:
            assert result == locator.place(lon, lat)
    assert placed[:3] == [7, 3, 3] and [type(p) for p in placed[4:6]] == [Unplaced, Unplaced]
    assert locator.place_many([], []) == []


_QUARTERS = st.integers(-4, 28).map(lambda quarter: quarter / 4)  # coordinates often exactly on an edge


@settings(max_examples=200, deadline=None)
@given(boxes=st.lists(st.one_of(st.tuples(_QUARTERS, _QUARTERS, st.integers(0, 8), st.integers(0, 8)),
                                st.just(None)), max_size=12),
       points=st.lists(st.tuples(st.one_of(_QUARTERS, st.floats(-2, 9)), st.one_of(_QUARTERS, st.floats(-2, 9))),
                       max_size=30))
def test_the_box_grid_finds_exactly_the_boxes_holding_each_point(boxes, points):
    from cityops.box_grid import BoxGrid

    bounds = np.array([[np.nan] * 4 if b is None else [b[0], b[1], b[0] + b[2] / 4, b[1] + b[3] / 4] for b in boxes],
                      dtype=float).reshape(-1, 4)
    x, y = (np.array([point[i] for point in points], dtype=float) for i in (0, 1))
    found = set(zip(*(found.tolist() for found in BoxGrid(bounds).candidates(x, y))))
    holding = {(p, b) for p in range(len(points)) for b, (x0, y0, x1, y1) in enumerate(bounds)
               if x0 <= x[p] <= x1 and y0 <= y[p] <= y1}  # NaN bounds hold nothing
    assert found == holding


@settings(max_examples=100, deadline=None)
@given(points=st.lists(st.tuples(_QUARTERS, _QUARTERS), min_size=1, max_size=40))
def test_points_on_borders_and_corners_placed_together_are_placed_as_each_alone(points):
    # A 3 × 2 city of unit squares (ids against their order, so the lower id is not the first found) with a hole.
    squares = [box(x, y, x + 1, y + 1) for y in range(2) for x in range(3) if (x, y) != (2, 1)]
    locator = CommunityLocator([9, 4, 7, 1, 5], squares, box(0, 0, 3, 2))
    lons, lats = [lon for lon, _ in points], [lat for _, lat in points]
    for lon, lat, placed in zip(lons, lats, locator.place_many(lons, lats)):
        try:
            alone = locator.place(lon, lat)
        except Unplaced as reason:
            alone = str(reason)
        assert (str(placed) if isinstance(placed, Unplaced) else placed) == alone


def test_a_point_in_a_gap_goes_to_the_nearest_community_within_the_tolerance():
    # A gap 0.001° (about 111 m) wide between two communities, at the equator.
    locator = CommunityLocator([1, 2], [box(0, 0, 1, 1), box(1.001, 0, 2, 1)], box(0, 0, 2, 1))
    assert locator.place(1.0002, 0.5) == 1       # 22 m from 1, 89 m from 2
    assert locator.place(1.0008, 0.5) == 2       # 89 m from 1, 22 m from 2
    with pytest.raises(Unplaced, match=r"inside the city but outside every community \(none within 50 m\)"):
        locator.place(1.0005, 0.5)               # 56 m from both


def test_the_tolerance_is_in_metres_whatever_the_latitude():
    # 0.0007° of longitude is 78 m at the equator but 39 m at 60° north.
    north = CommunityLocator([1], [box(0, 59.5, 1, 60.5)], box(0, 59.5, 2, 60.5))
    assert north.place(1.0007, 60.0) == 1
    equator = CommunityLocator([1], [box(0, -0.5, 1, 0.5)], box(0, -0.5, 2, 0.5))
    with pytest.raises(Unplaced):
        equator.place(1.0007, 0.0)


def test_a_point_outside_the_city_says_so_and_notices_swapped_coordinates():
    locator = CommunityLocator([1], [box(120, 30, 122, 32)], box(120, 30, 122, 32))
    with pytest.raises(Unplaced, match=r"^point \(0, 0\) is outside the city$"):
        locator.place(0, 0)
    with pytest.raises(Unplaced, match="lat and long look swapped"):
        locator.place(31, 121)


def test_the_stored_communities_are_located_and_the_locator_is_rebuilt_when_boundaries_change(sqlite_city_db):
    with sqlite_city_db.session() as session:
        locator = community_locator(session)
        assert community_locator(session) is locator  # built once per unit table
    ids = sqlite_city_db.unit_ids
    assert locator.place(0.5, 0.5) == ids[A1] and locator.place(3.5, 1.5) == ids["990102002002"]
    # Community A1 redrawn to (0,0)-(0.5,1): the rest of its old box now lies in no community.
    moved = [UnitRecord(r.code, r.name_zh, r.name_en, r.level, r.parent_code, r.population,
                        box(0, 0, 0.5, 1) if r.code == A1 else r.geometry) for r in tiny_city()]
    with sqlite_city_db.session() as session:
        replace_units(session, moved)
    with sqlite_city_db.session() as session:
        redrawn = community_locator(session)
    assert redrawn is not locator and redrawn.place(0.25, 0.5) == ids[A1]
    with pytest.raises(Unplaced, match="outside every community"):
        redrawn.place(0.75, 0.5)


# ------------------------------------------------------------------------------------------------
# Rows and upserts
# ------------------------------------------------------------------------------------------------


def row_of(locator, ident="r1", status="open", opened=NOW - 2 * HOUR, updated=None, lon=0.5, lat=0.5, now=NOW,
           contact=None, category="道路破损", run_id=1, **fields) -> dict:
    return incident_row(locator, source="src", external_id=ident, category=category, status=status,
                        source_status=fields.pop("source_status", status), opened_at=opened,
                        updated_at=opened if updated is None else updated, closed_at=fields.pop("closed_at", None),
                        lon=lon, lat=lat, address=fields.pop("address", None),
                        description=fields.pop("description", None), contact_masked=contact or {},
                        raw={"id": ident}, run_id=run_id, now=now)


def stored(db) -> dict[str, dict]:
    with db.session() as session:
        return {r._mapping["external_id"]: dict(r._mapping) for r in session.execute(text("SELECT * FROM incidents"))}


@pytest.fixture
def locator(city_db):
    with city_db.session() as session:
        return community_locator(session)


def test_incident_row_checks_the_id_status_and_point(city_db, locator):
    row = row_of(locator, ident=" 42 ", category="x" * 300, source_status="受理中")
    assert (row["external_id"], len(row["category"]), row["unit_id"], row["closed_at"]) == \
        ("42", 120, city_db.unit_ids[A1], None)
    assert row_of(locator, status="closed", updated=NOW - HOUR)["closed_at"] == NOW - HOUR
    odd = row_of(locator, address=12, description={"text": "路灯"})  # whatever a source sends, text is stored
    assert (odd["address"], odd["description"]) == ("12", '{"text": "路灯"}')
    assert row_of(locator, status="closed", closed_at=NOW - 90)["closed_at"] == NOW - 90
    for fields, reason in (({"ident": ""}, "no id"), ({"ident": "x" * 200}, "longer than 128"),
                           ({"status": "pending"}, "neither open nor closed"),
                           ({"lon": "east"}, "no readable location"), ({"lat": float("nan")}, "no readable location"),
                           ({"lon": 9, "lat": 9}, "outside the city")):
        with pytest.raises(InvalidIncident, match=reason):
            row_of(locator, **fields)


def test_upserts_keep_the_newest_state_and_count_what_changed_on_sqlite_and_postgresql(city_db, locator):
    with city_db.session() as session:
        first = upsert_incidents(session, [row_of(locator, contact={"phone": "138****5678"}),
                                           row_of(locator, ident="r2")])
    assert (first.written, first.unchanged) == (2, 0)
    with city_db.session() as session:
        # Closed later (without contact fields: the stored mask stays), and the same state delivered again.
        closed = upsert_incidents(session, [row_of(locator, status="closed", updated=NOW - HOUR, now=NOW + 60,
                                                   run_id=2),
                                            row_of(locator, ident="r2", now=NOW + 60, run_id=2)])
    assert (closed.written, closed.unchanged) == (1, 1)
    r1, r2 = stored(city_db)["r1"], stored(city_db)["r2"]
    assert (r1["status"], r1["closed_at"], r1["run_id"], r1["first_seen_at"], r1["last_seen_at"]) == \
        ("closed", NOW - HOUR, 2, NOW, NOW + 60)
    assert json.loads(r1["contact_masked"]) == {"phone": "138****5678"}
    assert (r2["run_id"], r2["last_seen_at"]) == (1, NOW + 60)
    with city_db.session() as session:
        # A late, older delivery changes nothing; a newer one reopens (closed_at cleared), the newest of a batch wins.
        late = upsert_incidents(session, [row_of(locator, status="open", updated=NOW - 90 * 60, now=NOW + 120)])
        reopened = upsert_incidents(session, [
            row_of(locator, status="open", updated=NOW - 10 * 60, now=NOW + 180, lon=1.5),
            row_of(locator, status="open", updated=NOW - 20 * 60, now=NOW + 180)])
    assert (late.written, reopened.written, reopened.unchanged) == (0, 1, 1)
    r1 = stored(city_db)["r1"]
    assert (r1["status"], r1["closed_at"], r1["updated_at"], r1["unit_id"]) == \
        ("open", None, NOW - 10 * 60, city_db.unit_ids[A2])
    with city_db.session() as session:
        assert sorted(open_external_ids(session, "src")) == ["r1", "r2"]
        assert open_external_ids(session, "other") == ()
        assert upsert_incidents(session, []).written == 0


def test_open_and_overdue_counts_per_community_with_zeros_and_category_limits(city_db, locator):
    ids = city_db.unit_ids
    rows = [row_of(locator, ident="fresh", opened=NOW - HOUR),
            row_of(locator, ident="old", opened=NOW - 100 * HOUR),
            row_of(locator, ident="lamp", opened=NOW - 2 * HOUR, category="路灯故障"),
            row_of(locator, ident="shut", opened=NOW - 100 * HOUR, status="closed"),
            row_of(locator, ident="east", opened=NOW - 80 * HOUR, lon=1.5)]
    with city_db.session() as session:
        upsert_incidents(session, rows)
        upsert_incidents(session, [{**row_of(locator, ident="elsewhere"), "source": "other"}])
        communities = [ids[A1], ids[A2], ids["990101002001"]]
        plain = count_open(session, "src", communities, NOW, 72 * HOUR)
        limited = count_open(session, "src", communities, NOW, 72 * HOUR, {"路灯故障": HOUR})
    assert plain.to_dict("index") == {ids[A1]: {"open": 3, "overdue": 1}, ids[A2]: {"open": 1, "overdue": 1},
                                      ids["990101002001"]: {"open": 0, "overdue": 0}}
    assert limited.loc[ids[A1]].to_dict() == {"open": 3, "overdue": 2}


def test_the_counts_and_the_open_ids_are_read_through_the_index_of_open_incidents(city_db, locator):
    from sqlalchemy import event

    from cityops.db import engine_for

    with city_db.session() as session:
        upsert_incidents(session, [row_of(locator, ident=f"r{i}", status=("open", "closed")[i % 2]) for i in range(9)])
    statements = []
    engine = engine_for(city_db.url)

    def kept(_connection, _cursor, statement, parameters, _context, _many):
        if "FROM incidents" in statement:
            statements.append((statement, parameters))

    with city_db.session() as session:
        event.listen(engine, "before_cursor_execute", kept)
        try:
            assert sorted(open_external_ids(session, "src")) == [f"r{i}" for i in range(0, 9, 2)]
            assert count_open(session, "src", [city_db.unit_ids[A1]], NOW, 72 * HOUR)["open"].tolist() == [5]
        finally:
            event.remove(engine, "before_cursor_execute", kept)
        sqlite = engine.dialect.name == "sqlite"
        if not sqlite:  # a handful of rows: without this PostgreSQL would rightly scan the table
            session.execute(text("SET LOCAL enable_seqscan = off"))
        connection = session.connection()
        assert len(statements) == 2
        for statement, parameters in statements:
            plan = connection.exec_driver_sql(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement,
                                              parameters).all()
            assert "ix_incidents_open_by_source" in repr(plan), plan


def test_the_migration_builds_the_incidents_table_the_models_describe(sqlite_url):
    from cityops.db import engine_for

    with engine_for(sqlite_url).connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in differences if "incidents" in repr(d)] == []


# ------------------------------------------------------------------------------------------------
# The runner with incidents from any type
# ------------------------------------------------------------------------------------------------


@register
class IncidentListConnector(Connector):
    """Yields config["items"]; counts into the catalog's incident indicators unless config["counts"] is False."""

    type_name = "test-incidents"
    yields_incidents = True

    def check(self) -> Health:
        return Health(True, "test")

    def fetch(self, since):
        self.config.setdefault("open_seen", []).append(self.context.open_incidents)
        yield from self.config["items"]
        if self.config.get("error") is not None:
            raise self.config["error"]

    def incident_counts(self) -> IncidentCounts | None:
        if self.config.get("counts") is False:
            return None
        return IncidentCounts("grid_incidents_open", "grid_incidents_overdue", 72 * HOUR, {})


def incident(ident, lon=0.5, lat=0.5, opened=NOW - HOUR, updated=None, status="open", **fields) -> Incident:
    return Incident(ident, "道路破损", status, status, opened, updated, lon=lon, lat=lat, **fields)


def run(db, items, now=NOW, batch_size=200_000, **config):
    inst = ConnectorInstance(name="grid", type="test-incidents", levels=(Level.COMMUNITY,), interval_seconds=600,
                             config={"items": items, **config})
    return run_connector(db.url, inst, db.catalog, timezone=ZONE, now=now, batch_size=batch_size), inst


def query(db, sql: str, **params) -> list:
    with db.session() as session:
        return session.execute(text(sql), params).all()


def test_the_runner_masks_clear_personal_data_from_any_type_before_storing_or_quarantining(sqlite_city_db):
    contact = {"phone": "13811112222", "name": "赵六"}
    raw = {"id": "x1", "phone": "13811112222", "name": "赵六", "memo": "赵六 asked to call 13811112222"}
    summary, _ = run(sqlite_city_db, [
        incident("x1", contact=contact, raw=raw, description="赵六: 13811112222", address="赵六家"),
        incident("x2", lon=7, lat=7, contact=contact, raw=raw),                # quarantined: outside
        incident("x3", lon=7, lat=7, contact=contact, description="13811112222"),  # quarantined, no raw
    ])
    assert (summary.accepted, summary.rejected) == (1, 2)
    ((masked, stored_raw, description, address),) = query(
        sqlite_city_db, "SELECT contact_masked, raw, description, address FROM incidents")
    assert json.loads(masked) == {"phone": "138****2222", "name": "赵*"}
    assert json.loads(stored_raw) == {"id": "x1", "memo": "赵* asked to call 138****2222"}
    assert (description, address) == ("赵*: 138****2222", "赵*家")
    quarantined = [json.loads(r) for (r,) in query(sqlite_city_db, "SELECT raw FROM quarantine ORDER BY id")]
    assert quarantined[0] == {"id": "x1", "memo": "赵* asked to call 138****2222"}
    assert quarantined[1]["contact"] == {"phone": "138****2222", "name": "赵*"}
    assert quarantined[1]["description"] == "138****2222" and quarantined[1]["external_id"] == "x3"
    dump = "\n".join(str(value) for table in ("incidents", "quarantine")
                     for row in query(sqlite_city_db, f"SELECT * FROM {table}") for value in row)
    assert "13811112222" not in dump and "赵六" not in dump


def test_unreadable_incidents_are_quarantined_with_their_reason(sqlite_city_db):
    summary, _ = run(sqlite_city_db, [
        incident("ok"),
        incident("p", problem="row 3 is not an object"),
        incident("t", opened="soon"),
        incident("n", opened=None),
        incident("f", updated=NOW + 3600),
        incident("s", status="pending"),
    ])
    assert (summary.status, summary.accepted, summary.rejected) == ("partial", 1, 5)
    reasons = [reason for (reason,) in query(sqlite_city_db, "SELECT reason FROM quarantine ORDER BY id")]
    assert reasons[0] == "row 3 is not an object" and "'soon' is not ISO 8601" in reasons[1]
    assert reasons[2] == "no opening time" and reasons[3].startswith("update time ")
    assert "is in the future" in reasons[3] and reasons[4] == "status 'pending' is neither open nor closed"


def test_the_runner_hands_open_incidents_to_the_type_and_counts_after_each_run(sqlite_city_db):
    _, first = run(sqlite_city_db, [incident("a"), incident("b", lon=1.5, opened=NOW - 100 * HOUR)])
    assert first.config["open_seen"] == [()]
    summary, second = run(sqlite_city_db, [incident("a", updated=NOW, status="closed")], now=NOW + 60)
    assert sorted(second.config["open_seen"][0]) == ["a", "b"] and summary.accepted == 1
    values = dict(query(sqlite_city_db, "SELECT u.code || ' ' || i.key, o.value FROM observations o "
                                        "JOIN units u ON u.id = o.unit_id JOIN indicators i ON i.id = o.indicator_id "
                                        "WHERE o.observed_at = :t AND u.code IN (:a, :b)", t=NOW - 30 * 60, a=A1, b=A2))
    assert values == {f"{A1} grid_incidents_open": 0, f"{A1} grid_incidents_overdue": 0,
                      f"{A2} grid_incidents_open": 1, f"{A2} grid_incidents_overdue": 1}


def test_a_failed_run_keeps_its_incidents_but_refreshes_no_counts(sqlite_city_db):
    from connectors.base import RetriableError

    summary, _ = run(sqlite_city_db, [incident("a"), incident("b")], batch_size=1,
                     error=RetriableError("the source went away"))
    assert (summary.status, summary.accepted) == ("partial", 2)
    assert len(stored(sqlite_city_db)) == 2
    assert query(sqlite_city_db, "SELECT count(*) FROM observations")[0][0] == 0


def test_a_type_without_counts_stores_incidents_only(sqlite_city_db):
    summary, _ = run(sqlite_city_db, [incident("a")], counts=False)
    assert summary.accepted == 1 and query(sqlite_city_db, "SELECT count(*) FROM observations")[0][0] == 0


def test_incidents_given_as_items_are_run_again_without_moving_the_cursor(sqlite_city_db):
    run(sqlite_city_db, [incident("a", updated=NOW - 60)])
    inst = ConnectorInstance(name="grid", type="test-incidents", levels=(Level.COMMUNITY,), interval_seconds=600,
                             config={"items": []})
    again = run_connector(sqlite_city_db.url, inst, sqlite_city_db.catalog, timezone=ZONE, now=NOW + 60,
                          items=[incident("b", lon=1.5, updated=NOW)])
    assert again.accepted == 1 and set(stored(sqlite_city_db)) == {"a", "b"}
    assert query(sqlite_city_db, "SELECT cursor FROM connector_cursors")[0][0] == str(NOW - 60)


# ------------------------------------------------------------------------------------------------
# A page of incidents (IncidentBatch): exactly what each incident alone gives
# ------------------------------------------------------------------------------------------------


PHONE, EMAIL = "13811112222", "zhao.liu@example.com"


def mixed_page() -> list[Incident]:
    """Good and bad incidents of every kind the runner judges, personal data in every field that may hold it."""
    contact = {"phone": PHONE, "name": "赵六"}
    return [
        incident("good", raw={"id": "good", "memo": "ok"}),
        incident("personal", contact=contact, raw={"id": "p", "phone": PHONE, "notes": [f"call {PHONE}"]},
                 description=f"赵六: {PHONE} {EMAIL}", address="赵六家"),
        incident("in-text", raw={"id": "t", "memo": f"mail {EMAIL}"}, description=f"回电 {PHONE}"),
        incident("badtime", opened="soon", raw={"id": "b", "memo": PHONE}),
        incident("", raw={"id": None}),                                       # no id
        incident("outside", lon=7, lat=7, contact=contact, description=PHONE),  # no raw: described
        incident("pending", status="pending"),
        incident("nowhere", lon=None),
        incident("future", updated=NOW + 3600),
        incident("problem", problem="row 9 is not an object", raw=[PHONE]),
        incident("closed", status="closed", opened="2026-11-26T01:00:00Z", updated=NOW - 60, lon=1.5),
        incident("good", updated=NOW - 30, raw={"id": "good", "memo": "again, newer"}),  # a repeat, newer
        incident("zoneless", opened="2026-11-26 09:00:00", lon="0.25", lat="0.75"),
    ]


def snapshot(db) -> dict:
    """Everything a run leaves that the way its incidents came (one by one, or as a page) must not change."""
    def rows(sql):
        return [tuple(row) for row in query(db, sql)]
    return {"incidents": rows("SELECT source, external_id, category, status, source_status, opened_at, updated_at, "
                              "closed_at, lon, lat, unit_id, address, description, contact_masked, raw, "
                              "first_seen_at, last_seen_at FROM incidents ORDER BY external_id"),
            "quarantine": rows("SELECT connector, reason, raw, source FROM quarantine ORDER BY id"),
            "cursor": rows("SELECT connector, cursor FROM connector_cursors"),
            "counts": rows("SELECT unit_id, indicator_id, observed_at, value FROM observations "
                           "ORDER BY unit_id, indicator_id, observed_at")}


def test_a_page_of_incidents_is_stored_and_quarantined_as_its_incidents_one_by_one(sqlite_city_db):
    page = [replace(item, source=f"pages/0001.json#{position}") for position, item in enumerate(mixed_page())]
    alone, _ = run(sqlite_city_db, page)
    one_by_one = snapshot(sqlite_city_db)
    with sqlite_city_db.session() as session:
        for table in ("incidents", "quarantine", "connector_cursors", "observations"):
            session.execute(text(f"DELETE FROM {table}"))
    together, _ = run(sqlite_city_db, [IncidentBatch.of(page[:5], source="pages/0001.json"),
                                       IncidentBatch.of(page[5:])])
    assert (alone.status, alone.fetched, alone.accepted, alone.rejected, alone.duplicates) == \
        (together.status, together.fetched, together.accepted, together.rejected, together.duplicates) == \
        ("partial", 13, 5, 7, 1)
    assert snapshot(sqlite_city_db) == one_by_one
    assert PHONE not in str(one_by_one) and EMAIL not in str(one_by_one) and "赵六" not in str(one_by_one)
    assert one_by_one["cursor"] == [("grid", str(NOW - 30))] and len(one_by_one["quarantine"]) == 7


def test_a_page_with_a_cursor_of_its_own_moves_the_cursor_there(sqlite_city_db):
    run(sqlite_city_db, [IncidentBatch.of([incident("a", updated=NOW - 60)], source="p.json"),
                         IncidentBatch.of([incident("b", lon=9, lat=9)], source="q.json")])  # nothing stored
    assert query(sqlite_city_db, "SELECT cursor FROM connector_cursors")[0][0] == str(NOW - 60)
    run(sqlite_city_db, [dataclasses.replace(IncidentBatch.of([incident("c")], source="r.json"), cursor="page-7")],
        now=NOW + 60)
    assert query(sqlite_city_db, "SELECT cursor FROM connector_cursors")[0][0] == "page-7"


def test_pages_of_incidents_are_committed_every_incident_batch_rows(sqlite_city_db, monkeypatch):
    import connectors.runner

    monkeypatch.setattr(connectors.runner, "INCIDENT_BATCH_ROWS", 3)
    commits = []
    inst = ConnectorInstance(name="grid", type="test-incidents", levels=(Level.COMMUNITY,), interval_seconds=600,
                             config={"items": [IncidentBatch.of([incident(f"{page}-{n}", lon=0.1 + n / 10)
                                                                 for n in range(2)], source=f"{page}.json")
                                               for page in "abcd"]})
    summary = run_connector(sqlite_city_db.url, inst, sqlite_city_db.catalog, timezone=ZONE, now=NOW,
                            progress=lambda s: commits.append(s.accepted))
    assert summary.accepted == 8 and commits == [4, 8, 8]  # after b, after d (4 rows each), and the run's end


def test_a_batch_says_what_is_missing_or_uneven():
    with pytest.raises(ValueError, match=r"missing \['status'"):
        IncidentBatch({"external_id": ["a"], "category": [None]})
    with pytest.raises(ValueError, match="differ in length"):
        IncidentBatch({**IncidentBatch.of([incident("a")]).columns, "lon": []})
    filled = IncidentBatch({name: ["x"] for name in IncidentBatch.REQUIRED}, source="p.json")
    assert filled.incident(0) == Incident("x", "x", "x", "x", "x", "x", source="p.json#0")


_GIVEN_TIMES = st.sampled_from([NOW - HOUR, NOW - 2 * HOUR + 0.5, "2026-11-26T09:00:00+08:00", "2026-11-26T09:00:00",
                                "2026-11-26T01:00:00Z", "2026-02-29T10:00:00+08:00", "soon", "", True, None,
                                NOW + 86400, datetime(2026, 11, 26, 9, tzinfo=SHANGHAI), datetime(2026, 11, 26, 9)])
_GIVEN_TEXTS = st.sampled_from([None, "plain", f"call {PHONE}", f"mail {EMAIL}", "赵六家", 42, ["x"]])


@st.composite
def _incidents(draw) -> Incident:
    """An incident as any type might yield it: contact or not, raw flat, nested, a list or none."""
    contact = draw(st.sampled_from([{}, {"phone": PHONE, "name": "赵六"}, {"email": EMAIL}, {"phone": ""}]))
    raw = draw(st.sampled_from([None, {"id": 1, "memo": "ok"}, {"id": 2, "memo": f"call {PHONE}", "phone": PHONE},
                                {"id": 3, "notes": [f"mail {EMAIL}"]}, [PHONE], "赵六 asked"]))
    lon, lat = draw(st.sampled_from([(0.5, 0.5), (1.5, 0.5), (1.0, 0.5), (9, 9), (None, 1), ("x", 1), (0.5, "1.5")]))
    return Incident(draw(st.sampled_from(["a", "b", " c ", "", "x" * 200])), draw(st.sampled_from(["道路破损", None])),
                    draw(st.sampled_from(["open", "closed", "pending"])), draw(st.sampled_from(["open", None])),
                    draw(_GIVEN_TIMES), draw(_GIVEN_TIMES), draw(_GIVEN_TIMES), lon, lat, draw(_GIVEN_TEXTS),
                    draw(_GIVEN_TEXTS), contact, raw, problem=draw(st.sampled_from([None, None, "", "unreadable"])))


# Texts of the usual length (pages where every time has it are read with array arithmetic), real moments or not.
_USUAL_TIMES = st.sampled_from(["2026-11-26T09:00:00+08:00", "2026-11-26 09:00:00-05:30", "2024-02-29T23:59:59+00:00",
                                "2026-02-29T10:00:00+08:00", "2026-11-26T24:00:00+08:00", "2026-11-26T09:00:00+08:60",
                                "2026-11-26T09:00:00*08:00", "２026-11-26T09:00:00+08:00", "0001-01-01T00:00:00+08:00",
                                "2026-13-01T09:00:00+08:00", str(NOW + 86400).rjust(25, "0")])


@st.composite
def _usual_incidents(draw) -> Incident:
    """An incident whose times are texts of the usual form's length (or no closing time)."""
    item = draw(_incidents())
    return replace(item, opened_at=draw(_USUAL_TIMES), updated_at=draw(_USUAL_TIMES),
                   closed_at=draw(st.one_of(st.none(), _USUAL_TIMES)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(page=st.one_of(st.lists(_incidents(), max_size=10), st.lists(_usual_incidents(), min_size=1, max_size=10)))
def test_any_page_of_incidents_gives_what_its_incidents_give_alone(sqlite_city_db, page):
    from connectors.incident_intake import IncidentIntake
    from connectors.runner import _quarantine_row
    from connectors.validation import Validator

    with sqlite_city_db.session() as session:
        tree = load_tree(session)
    validator = Validator.build(sqlite_city_db.catalog, sqlite_city_db.indicator_ids, tree, (Level.COMMUNITY,),
                                ZONE, NOW)
    intake = IncidentIntake(sqlite_city_db.url, "grid", validator, 1, NOW)
    rows, rejected, newest = intake.batch(IncidentBatch.of(page, source="page.json"))
    alone_rows, alone_rejected = [], []
    for position, item in enumerate(page):
        safe = intake.masked(replace(item, source=f"page.json#{position}"))
        try:
            alone_rows.append(intake.row(safe))
        except ValueError as reason:  # Rejected or InvalidIncident
            alone_rejected.append((str(reason), safe))
    assert [dict(zip(COLUMNS, row)) for row in rows] == alone_rows
    assert [_quarantine_row(1, "grid", reason, item, NOW) for reason, item in rejected] == \
        [_quarantine_row(1, "grid", reason, item, NOW) for reason, item in alone_rejected]
    assert newest == max((row["updated_at"] for row in alone_rows), default=None)
