"""Importing real boundaries from GeoJSON: what loads, what is refused, and that a refusal changes nothing."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest
from shapely.geometry import shape
from sqlalchemy import select

import cityops.boundary_import as boundary_import
from cityops.boundary_import import BoundaryImportError, FieldMap, import_boundaries, read_units
from cityops.db import session_scope
from cityops.hierarchy import Level
from cityops.models import Unit

FIXTURES = Path(__file__).parent / "fixtures" / "boundaries"
CITY_NAMES = {"city_name_zh": "测试市", "city_name_en": "Testville"}
FULL_COUNTS = {"city": 1, "district": 2, "street": 4, "community": 8}


# ------------------------------------------------------------------------------------------------ fixtures


def rect(x0: float, y0: float, x1: float, y1: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def feature(geometry: dict | None, **properties) -> dict:
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def statistical_features() -> list[dict]:
    """A city of 0.4° × 0.2° split into 2 districts, each into 2 streets, each into 2 communities."""
    features = []
    for d, district_name in enumerate(("东区", "西区"), start=1):
        dx = 120.0 + 0.2 * (d - 1)
        district = f"9901{d:02d}"
        features.append(feature(rect(dx, 30.0, dx + 0.2, 30.2), code=district, name=district_name,
                                name_en=f"District {d}", population=6000))
        for s in (1, 2):
            sy = 30.0 + 0.1 * (s - 1)
            street = f"{district}{s:03d}"
            features.append(feature(rect(dx, sy, dx + 0.2, sy + 0.1), code=street, name=f"{district_name}第{s}街道",
                                    population=3000))
            for c in (1, 2):
                cx = dx + 0.1 * (c - 1)
                features.append(feature(rect(cx, sy, cx + 0.1, sy + 0.1), code=f"{street}{c:03d}",
                                        name=f"{district_name}{s}街{c}社区", population=1000 * c))
    return features


def collection(features: list[dict]) -> dict:
    return {"type": "FeatureCollection", "features": features}


def write(path: Path, document, *, encoding: str = "utf-8") -> Path:
    text = document if isinstance(document, str) else json.dumps(document, ensure_ascii=False)
    path.write_bytes(text.encode(encoding))
    return path


def find(features: list[dict], code: str) -> dict:
    return next(f for f in features if f["properties"].get("code") == code)


def stored_units(url: str) -> list[tuple]:
    with session_scope(url) as session:
        return sorted((u.code, u.name_zh, u.level, u.parent_id, u.population) for u in session.scalars(select(Unit)))


def units_by_code(url: str) -> dict[str, Unit]:
    with session_scope(url) as session:
        return {u.code: u for u in session.scalars(select(Unit))}


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/t.db"


@pytest.fixture
def loaded(tmp_path: Path, url: str) -> str:
    """A database holding the statistical city; returns its URL."""
    path = write(tmp_path / "city.geojson", collection(statistical_features()))
    assert import_boundaries(url, [path], FieldMap(), **CITY_NAMES) == FULL_COUNTS
    return url


# ------------------------------------------------------------------------------------------------ loading


def test_statistical_codes_load_with_the_city_synthesised(tmp_path: Path, url: str):
    path = write(tmp_path / "city.geojson", collection(statistical_features()))
    counts = import_boundaries(url, [path], FieldMap(), **CITY_NAMES)
    assert counts == FULL_COUNTS

    units = units_by_code(url)
    assert len(units) == 15
    city = units["990100"]  # 4-digit prefix of the districts + "00"
    assert (city.level, city.parent_id, city.name_zh, city.name_en) == (0, None, "测试市", "Testville")
    assert city.population == 12000  # the sum of the districts
    assert (city.min_lon, city.min_lat, city.max_lon, city.max_lat) == pytest.approx((120.0, 30.0, 120.4, 30.2))
    city_shape = shape(json.loads(city.geometry))
    assert city_shape.is_valid and city_shape.area == pytest.approx(0.08)

    assert units["990101"].parent_id == city.id
    assert units["990102"].parent_id == city.id
    assert units["990101002"].parent_id == units["990101"].id
    assert units["990102001002"].parent_id == units["990102001"].id
    assert units["990102001002"].level == int(Level.COMMUNITY)
    assert units["990101"].name_zh == "东区" and units["990101"].name_en == "District 1"
    assert units["990101001001"].name_zh == "东区1街1社区"
    assert units["990101001001"].name_en == "东区1街1社区"  # no English name: the Chinese one
    assert units["990101001002"].population == 2000


def test_city_population_is_the_sum_of_the_districts(tmp_path: Path):
    features = statistical_features()
    find(features, "990101")["properties"]["population"] = 1200
    find(features, "990102")["properties"]["population"] = "3,400"
    path = write(tmp_path / "city.geojson", collection(features))
    records = read_units([path], FieldMap(), "9999", "测试市", "Testville")
    city = next(r for r in records if r.level == Level.CITY)
    assert (city.code, city.population, city.parent_code) == ("9999", 4600, None)
    assert next(r for r in records if r.code == "990101").parent_code == "9999"


def test_a_second_import_replaces_the_first(tmp_path: Path, loaded: str):
    features = [f for f in statistical_features() if not f["properties"]["code"].startswith("990102")]
    path = write(tmp_path / "smaller.geojson", collection(features))
    counts = import_boundaries(loaded, path, FieldMap(), **CITY_NAMES)
    assert counts == {"city": 1, "district": 1, "street": 2, "community": 4}
    assert "990102" not in units_by_code(loaded)


def test_a_city_feature_in_the_file_is_used(tmp_path: Path, url: str):
    features = [feature(rect(120.0, 30.0, 120.4, 30.2), code=990100.0, name="真实市", name_en="Real City")]
    features += statistical_features()
    for f in features:
        f["properties"]["code"] = int(f["properties"]["code"])  # integer codes become text codes
    path = write(tmp_path / "city.geojson", collection(features))
    assert import_boundaries(url, [path], FieldMap(), **CITY_NAMES) == FULL_COUNTS
    units = units_by_code(url)
    assert units["990100"].name_zh == "真实市" and units["990100"].parent_id is None
    assert units["990100"].population == 12000  # no population property on the city: sum of its districts
    assert units["990101001001"].parent_id == units["990101001"].id


def test_zero_padded_twelve_digit_codes(tmp_path: Path):
    features = statistical_features()
    for f in features:
        f["properties"]["code"] = f["properties"]["code"].ljust(12, "0")
    path = write(tmp_path / "padded.geojson", collection(features))
    records = {r.code: r for r in read_units([path], FieldMap(), None, "测试市", "Testville")}
    assert records["990100000000"].level == Level.CITY
    assert records["990101000000"].level == Level.DISTRICT
    assert records["990101001000"].parent_code == "990101000000"
    assert records["990101001002"].parent_code == "990101001000"


def arbitrary_features(level_words: dict[int, str] | None = None) -> list[dict]:
    """The same city with codes like PD-01 / PD-01-S1 / PD-01-S1-C1 and an explicit parent column."""
    features = []
    for f in statistical_features():
        props = f["properties"]
        code = props["code"]
        mine = [f"PD-{code[4:6]}", f"-S{code[6:9].lstrip('0')}", f"-C{code[9:12].lstrip('0')}"][:len(code) // 3 - 1]
        own, parent = "".join(mine), "".join(mine[:-1])
        new = {"id": own, "title": props["name"], "up": parent, "people": props["population"]}
        if level_words:
            new["kind"] = level_words[len(code)]
        features.append(feature(f["geometry"], **new))
    return features


ARBITRARY_FIELDS = FieldMap(code="id", name_zh="title", name_en=None, parent="up", population="people")


@pytest.mark.parametrize("words", [{6: "区", 9: "街道", 12: "社区"}, {6: 1, 9: "2", 12: "community"},
                                   {6: "district", 9: "镇", 12: "村"}])
def test_arbitrary_codes_with_parent_and_level_columns(tmp_path: Path, url: str, words):
    path = write(tmp_path / "pudong.geojson", collection(arbitrary_features(words)))
    fields = FieldMap(code="id", name_zh="title", name_en=None, parent="up", level="kind", population="people")
    counts = import_boundaries(url, [path], fields, city_code="PD", **CITY_NAMES)
    assert counts == FULL_COUNTS
    units = units_by_code(url)
    assert units["PD"].parent_id is None
    assert units["PD-01"].parent_id == units["PD"].id
    assert units["PD-02-S1-C2"].parent_id == units["PD-02-S1"].id
    assert units["PD-02-S1-C2"].level == int(Level.COMMUNITY)


def test_arbitrary_codes_take_their_level_from_the_depth(tmp_path: Path):
    path = write(tmp_path / "pudong.geojson", collection(arbitrary_features()))
    records = {r.code: r for r in read_units([path], ARBITRARY_FIELDS, None, "测试市", "Testville")}
    assert records["city"].level == Level.CITY  # no statistical codes: the city is called "city"
    assert records["PD-01"].level == Level.DISTRICT and records["PD-01"].parent_code == "city"
    assert records["PD-01-S2"].level == Level.STREET
    assert records["PD-01-S2-C1"].level == Level.COMMUNITY


def test_arbitrary_codes_with_a_city_feature_and_dangling_district_parents(tmp_path: Path):
    # The only parent-less unit is the city.
    features = [feature(rect(120.0, 30.0, 120.4, 30.2), id="SH", title="上海", up=None)] + arbitrary_features()
    for f in features[1:]:
        if f["properties"]["up"] == "":
            f["properties"]["up"] = "SH"
    path = write(tmp_path / "a.geojson", collection(features))
    records = {r.code: r for r in read_units([path], ARBITRARY_FIELDS, None, "测试市", "Testville")}
    assert records["SH"].level == Level.CITY and records["SH"].name_zh == "上海"
    assert records["PD-02"].parent_code == "SH"
    # Without the city feature, the one code all districts point to names the synthesised city.
    path = write(tmp_path / "b.geojson", collection(features[1:]))
    records = {r.code: r for r in read_units([path], ARBITRARY_FIELDS, None, "测试市", "Testville")}
    assert records["SH"].level == Level.CITY and records["SH"].name_zh == "测试市"


def test_datav_style_properties(tmp_path: Path):
    """Aliyun DataV GeoAtlas: integer adcodes, a level word, the parent as {"adcode": ...}, no city feature."""
    features = []
    for f in statistical_features():
        code = f["properties"]["code"]
        if len(code) == 12:
            continue
        level, parent = ("district", 990100) if len(code) == 6 else ("street", int(code[:6]))
        features.append(feature(f["geometry"], adcode=int(code), name=f["properties"]["name"], level=level,
                                parent={"adcode": parent}, childrenNum=2))
    path = write(tmp_path / "datav.json", collection(features))
    fields = FieldMap(code="adcode", level="level", parent="parent", population=None)
    records = {r.code: r for r in read_units([path], fields, None, "测试市", "Testville")}
    assert records["990100"].level == Level.CITY and records["990100"].name_zh == "测试市"
    assert records["990102"].parent_code == "990100"
    assert records["990102002"].parent_code == "990102" and records["990102002"].level == Level.STREET


def test_city_names_default_to_the_settings(tmp_path: Path, url: str, monkeypatch):
    monkeypatch.setenv("ONESCREEN_CITY_NAME_ZH", "默认市")
    monkeypatch.setenv("ONESCREEN_CITY_NAME_EN", "Default City")
    path = write(tmp_path / "city.geojson", collection(statistical_features()))
    import_boundaries(url, [path], FieldMap())
    city = units_by_code(url)["990100"]
    assert (city.name_zh, city.name_en) == ("默认市", "Default City")


def test_several_files_one_per_level(tmp_path: Path, url: str):
    features = statistical_features()
    paths = []
    for length, name in ((6, "districts"), (9, "streets"), (12, "communities")):
        chosen = [f for f in features if len(f["properties"]["code"]) == length]
        paths.append(write(tmp_path / f"{name}.geojson", collection(chosen)))
    assert import_boundaries(url, paths, FieldMap(), **CITY_NAMES) == FULL_COUNTS


def test_a_utf8_byte_order_mark_is_tolerated(tmp_path: Path, url: str):
    path = tmp_path / "bom.geojson"
    write(path, collection(statistical_features()), encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert import_boundaries(url, [path], FieldMap(), **CITY_NAMES) == FULL_COUNTS
    assert units_by_code(url)["990102"].name_zh == "西区"


def test_a_child_slightly_outside_its_parent_is_tolerated(tmp_path: Path):
    features = statistical_features()
    # 0.0005° beyond the street's 0.1° edge: 0.5 % of the community lies outside.
    find(features, "990101001001")["geometry"] = rect(119.9995, 30.0, 120.1, 30.1)
    path = write(tmp_path / "city.geojson", collection(features))
    assert len(read_units([path], FieldMap(), None, "测试市", "Testville")) == 15


def test_the_sample_fixture_loads(url: str):
    counts = import_boundaries(url, [FIXTURES / "sample_statistical.geojson"], FieldMap(), **CITY_NAMES)
    assert counts == FULL_COUNTS


def test_progress_bar(tmp_path: Path, capsys):
    path = write(tmp_path / "city.geojson", collection(statistical_features()))
    read_units([path], FieldMap(), None, "测试市", "Testville", progress=True)
    assert "Reading boundaries" in capsys.readouterr().err


def test_six_thousand_features_validate_in_seconds(tmp_path: Path):
    """10 districts × 20 streets × 30 communities, with 40-vertex edges so the overlays do real work."""
    features = []
    for d in range(10):
        district = f"9901{d + 1:02d}"
        features.append(_dense(district, d, 0, 1, 60, "区"))
        for s in range(20):
            street = f"{district}{s + 1:03d}"
            features.append(_dense(street, d, s * 3, 1, 3, "街道"))
            for c in range(30):
                # Slightly bigger than their street cell, as digitised layers are: exercises the overlay.
                features.append(_dense(f"{street}{c + 1:03d}", d + c / 30, s * 3, 1 / 30, 3, "社区", grow=1e-6))
    path = write(tmp_path / "big.geojson", collection(features))
    started = time.perf_counter()
    records = read_units([path], FieldMap(), None, "测试市", "Testville")
    elapsed = time.perf_counter() - started
    assert len(records) == 1 + 10 + 200 + 6000
    assert elapsed < 20, f"validating 6,211 units took {elapsed:.1f} s"


def _dense(code: str, x: float, y: float, width: float, height: float, suffix: str, grow: float = 0.0) -> dict:
    import shapely

    x0, y0 = 100 + x * 0.01 - grow, 30 + y * 0.001 - grow
    x1, y1 = 100 + (x + width) * 0.01 + grow, 30 + (y + height) * 0.001 + grow
    polygon = shapely.segmentize(shape(rect(x0, y0, x1, y1)), max_segment_length=max(x1 - x0, y1 - y0) / 10)
    return feature(shapely.geometry.mapping(polygon), code=code, name=code + suffix)


# ------------------------------------------------------------------------------------------------ refusals


def _bowtie(features):
    find(features, "990101002001")["geometry"] = {
        "type": "Polygon", "coordinates": [[[120.0, 30.1], [120.1, 30.2], [120.1, 30.1], [120.0, 30.2], [120.0, 30.1]]]}


def _unknown_parent(features):
    features.append(feature(rect(120.0, 30.0, 120.05, 30.05), code="990101009001", name="孤儿社区"))


def _duplicate(features):
    features.append(copy.deepcopy(find(features, "990102001")))


def _outside(features):
    find(features, "990101001002")["geometry"] = rect(121.0, 31.0, 121.1, 31.1)


def _missing_code(features):
    del find(features, "990102002001")["properties"]["code"]


def _point(features):
    find(features, "990102002002")["geometry"] = {"type": "Point", "coordinates": [120.3, 30.15]}


def _no_geometry(features):
    find(features, "990102002002")["geometry"] = None


def _negative_population(features):
    find(features, "990101002002")["properties"]["population"] = -5


def _wrong_level_parent(features):
    features.append(feature(rect(120.0, 30.0, 120.05, 30.05), code="990101001003", name="错层社区",
                            parent="990101"))


def _projected(features):
    find(features, "990102001001")["geometry"] = rect(13358338.0, 3503549.0, 13369470.0, 3516150.0)


REFUSALS = {
    # name: (change to the valid features, the feature's code (its name when the code is missing), phrases)
    "bowtie": (_bowtie, "990101002001", ["broken geometry", "Self-intersection", "ST_MakeValid"]),
    "unknown parent": (_unknown_parent, "990101009001", ["unknown parent 990101009"]),
    "duplicate code": (_duplicate, "990102001", ["duplicate code 990102001", "features[8]", "features[14]"]),
    "outside parent": (_outside, "990101001002", ["100.0% outside its parent 990101001"]),
    "missing code": (_missing_code, "西区2街1社区", ["no code", "'code' is missing", "its properties: name, population"]),
    "point": (_point, "990102002002", ["Point geometry", "Polygon and MultiPolygon"]),
    "no geometry": (_no_geometry, "990102002002", ["has no geometry"]),
    "negative population": (_negative_population, "990101002002", ["not a non-negative number"]),
    "projected": (_projected, "990102001001", ["not longitude/latitude", "EPSG:4326"]),
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_refused_imports_leave_the_previous_units(tmp_path: Path, loaded: str, name: str):
    change, code, phrases = REFUSALS[name]
    before = stored_units(loaded)
    features = statistical_features()
    change(features)
    path = write(tmp_path / "bad.geojson", collection(features))
    with pytest.raises(BoundaryImportError) as caught:
        import_boundaries(loaded, [path], FieldMap(), **CITY_NAMES)
    message = str(caught.value)
    assert str(path) in message
    assert code in message
    for phrase in phrases:
        assert phrase in message
    assert message.startswith("cannot import the boundaries, 1 problem found (nothing was imported):")
    assert stored_units(loaded) == before


def test_missing_code_names_the_name(tmp_path: Path):
    features = statistical_features()
    _missing_code(features)
    path = write(tmp_path / "bad.geojson", collection(features))
    with pytest.raises(BoundaryImportError, match=r"features\[12\] \(no code, name 西区2街1社区\)"):
        read_units([path], FieldMap(), None, "测试市", "Testville")


def test_parent_not_one_level_up(tmp_path: Path, loaded: str):
    before = stored_units(loaded)
    features = statistical_features()
    for f in features:
        code = f["properties"]["code"]
        f["properties"]["parent"] = {6: "", 9: code[:6], 12: code[:9]}[len(code)]
    _wrong_level_parent(features)
    path = write(tmp_path / "bad.geojson", collection(features))
    with pytest.raises(BoundaryImportError) as caught:
        import_boundaries(loaded, [path], FieldMap(parent="parent"), **CITY_NAMES)
    assert "990101001003" in str(caught.value)
    assert "is a community but its parent 990101 (东区, property 'parent') is a district" in str(caught.value)
    assert stored_units(loaded) == before


def test_invalid_json(tmp_path: Path, loaded: str):
    before = stored_units(loaded)
    text = json.dumps(collection(statistical_features()), ensure_ascii=False)[:-40]  # a truncated download
    path = write(tmp_path / "cut.geojson", text)
    with pytest.raises(BoundaryImportError, match=r"cut\.geojson: not valid JSON: .* at line 1 column \d+"):
        import_boundaries(loaded, [path], FieldMap(), **CITY_NAMES)
    assert stored_units(loaded) == before


@pytest.mark.parametrize("document, phrase", [
    ({"type": "Feature", "properties": {}, "geometry": None}, "not a GeoJSON FeatureCollection"),
    ([1, 2], "not a GeoJSON FeatureCollection"),
    ({"type": "FeatureCollection", "features": []}, "has no features"),
])
def test_not_a_feature_collection(tmp_path: Path, document, phrase):
    path = write(tmp_path / "odd.geojson", document)
    with pytest.raises(BoundaryImportError, match=phrase):
        read_units([path], FieldMap(), None, "测试市", "Testville")


def test_missing_file_and_gbk(tmp_path: Path):
    with pytest.raises(BoundaryImportError, match="file not found"):
        read_units([tmp_path / "nope.geojson"], FieldMap(), None, "测试市", "Testville")
    path = write(tmp_path / "gbk.geojson", collection(statistical_features()), encoding="gbk")
    with pytest.raises(BoundaryImportError, match="not UTF-8.*GBK"):
        read_units([path], FieldMap(), None, "测试市", "Testville")


def test_a_wrong_field_name_is_reported_once_per_file(tmp_path: Path):
    path = write(tmp_path / "city.geojson", collection(statistical_features()))
    with pytest.raises(BoundaryImportError) as caught:
        read_units([path], FieldMap(code="adcode"), None, "测试市", "Testville")
    assert caught.value.total == 1
    assert "no feature has the code property 'adcode'" in str(caught.value)
    assert "code, name, name_en, population" in str(caught.value)
    assert "--code-field" in str(caught.value)


def test_levels_cannot_be_guessed_without_a_parent_column(tmp_path: Path):
    path = write(tmp_path / "pudong.geojson", collection(arbitrary_features()))
    with pytest.raises(BoundaryImportError, match=r"PD-01.*cannot tell the level.*--parent-field"):
        read_units([path], FieldMap(code="id", name_zh="title"), None, "测试市", "Testville")


def test_a_parent_loop_is_reported(tmp_path: Path):
    features = arbitrary_features()
    find_id = {f["properties"]["id"]: f for f in features}
    find_id["PD-01"]["properties"]["up"] = "PD-01-S1-C1"
    path = write(tmp_path / "loop.geojson", collection(features))
    with pytest.raises(BoundaryImportError, match="go round in a circle"):
        read_units([path], ARBITRARY_FIELDS, None, "测试市", "Testville")


def test_many_problems_are_collected_in_one_error(tmp_path: Path):
    features = statistical_features()
    _bowtie(features)
    _point(features)
    _negative_population(features)
    for i in range(30):
        features.append(feature(rect(120.0, 30.0, 120.01, 30.01), code=f"990101{800 + i}001", name=f"孤{i}"))
    path = write(tmp_path / "bad.geojson", collection(features))
    with pytest.raises(BoundaryImportError) as caught:
        read_units([path], FieldMap(), None, "测试市", "Testville")
    error = caught.value
    assert len(error.problems) == boundary_import.MAX_LISTED_PROBLEMS
    assert error.total == 33  # 3 reading problems + 30 unknown parents
    assert "990101002001" in error.problems[0]  # in file order, whichever check found them
    assert "990101002002" in error.problems[1] and "990102002002" in error.problems[2]
    assert "and 13 more" in str(error)


def test_a_failure_while_writing_rolls_back(tmp_path: Path, loaded: str, monkeypatch):
    before = stored_units(loaded)
    real_replace_units = boundary_import.replace_units

    def replace_then_fail(session, records):
        real_replace_units(session, records)  # the units are deleted and inserted, then the write fails
        raise RuntimeError("disk full")

    monkeypatch.setattr(boundary_import, "replace_units", replace_then_fail)
    features = [f for f in statistical_features() if not f["properties"]["code"].startswith("990102")]
    path = write(tmp_path / "smaller.geojson", collection(features))
    with pytest.raises(RuntimeError, match="disk full"):
        import_boundaries(loaded, [path], FieldMap(), **CITY_NAMES)
    assert stored_units(loaded) == before
