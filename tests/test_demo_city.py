"""Invariants of the demo city: the hierarchy, the codes, the tiling of the map, populations and names.

The full default city is generated once for the module; determinism and other seeds use small cities.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from cityops import demo_names
from cityops.demo_city import city_summary, generate_city
from cityops.hierarchy import Level, UnitRecord

SMALL_CITY = dict(districts=4, streets=20, communities=200)
CODE_LENGTH = {Level.CITY: 6, Level.DISTRICT: 6, Level.STREET: 9, Level.COMMUNITY: 12}
KIND_SUFFIXES = {  # level → [(Chinese suffix, English suffix)]
    Level.DISTRICT: [("区", "District")],
    Level.STREET: [("街道", "Subdistrict"), ("镇", "Town")],
    Level.COMMUNITY: [("社区", "Community"), ("村", "Village")],
}
KM_PER_DEGREE_LAT = 110.574


@pytest.fixture(scope="module")
def city() -> list[UnitRecord]:
    return generate_city()


@pytest.fixture(scope="module")
def by_code(city) -> dict[str, UnitRecord]:
    return {unit.code: unit for unit in city}


@pytest.fixture(scope="module")
def children_of(city) -> dict[str, list[UnitRecord]]:
    children = defaultdict(list)
    for unit in city:
        if unit.parent_code is not None:
            children[unit.parent_code].append(unit)
    return dict(children)


# ------------------------------------------------------------------------------------------------
# Geometry checks shared by the full city and the property test
# ------------------------------------------------------------------------------------------------


def _family(units: list[UnitRecord]) -> list[tuple[UnitRecord, list[UnitRecord]]]:
    children = defaultdict(list)
    for unit in units:
        children[unit.parent_code].append(unit)
    return [(unit, children[unit.code]) for unit in units if children[unit.code]]


def protrusions(units: list[UnitRecord]) -> list[str]:
    """Children sticking out of their parent by more than a hair."""
    by_code = {unit.code: unit for unit in units}
    children = [unit for unit in units if unit.parent_code is not None]
    parents = [by_code[unit.parent_code] for unit in children]
    outside = shapely.area(shapely.difference([c.geometry for c in children], [p.geometry for p in parents]))
    parent_area = shapely.area([p.geometry for p in parents])
    return [child.code for child, out, area in zip(children, outside, parent_area) if out >= 1e-12 * area]


def overlaps(units: list[UnitRecord]) -> list[tuple[str, str, float]]:
    """Pairs of units of one level whose interiors overlap (siblings or not), found with an STRtree."""
    found = []
    for level in Level:
        same_level = [unit for unit in units if unit.level == level]
        geometries = np.array([unit.geometry for unit in same_level], dtype=object)
        left, right = shapely.STRtree(geometries).query(geometries, predicate="intersects")
        pairs = left < right
        left, right = left[pairs], right[pairs]
        shared = shapely.area(shapely.intersection(geometries[left], geometries[right]))
        smaller = np.minimum(shapely.area(geometries[left]), shapely.area(geometries[right]))
        for i, j, area, limit in zip(left, right, shared, smaller):
            if area >= 1e-12 * limit:
                found.append((same_level[i].code, same_level[j].code, float(area / limit)))
    return found


def tiling_errors(units: list[UnitRecord]) -> list[tuple[str, float]]:
    """Parents that their children's union does not cover exactly (gaps or spill), by relative error."""
    errors = []
    for parent, children in _family(units):
        union = shapely.union_all([child.geometry for child in children])
        mismatch = shapely.symmetric_difference(union, parent.geometry).area / parent.geometry.area
        area_sum_error = abs(sum(c.geometry.area for c in children) - parent.geometry.area) / parent.geometry.area
        if mismatch >= 1e-9 or area_sum_error >= 1e-9:
            errors.append((parent.code, max(mismatch, area_sum_error)))
    return errors


def bad_geometries(units: list[UnitRecord]) -> list[str]:
    return [
        unit.code for unit in units
        if unit.geometry.is_empty or not unit.geometry.is_valid
        or unit.geometry.geom_type not in ("Polygon", "MultiPolygon")
    ]


# ------------------------------------------------------------------------------------------------
# Counts, order and codes
# ------------------------------------------------------------------------------------------------


def test_counts_per_level_match_the_request(city):
    counts = city_summary(city)
    assert counts[Level.CITY] == 1
    assert counts[Level.DISTRICT] == 16
    assert abs(counts[Level.STREET] - 210) <= 2.1
    assert abs(counts[Level.COMMUNITY] - 6000) <= 60


def test_city_summary_counts_every_level():
    units = [UnitRecord("1", "a", "a", Level.DISTRICT, None, 0, shapely.Point(0, 0))] * 3
    assert city_summary(units) == {Level.CITY: 0, Level.DISTRICT: 3, Level.STREET: 0, Level.COMMUNITY: 0}


def test_units_come_city_first_then_level_by_level(city):
    assert city[0].level == Level.CITY
    levels = [unit.level for unit in city]
    assert levels == sorted(levels)
    position = {unit.code: index for index, unit in enumerate(city)}
    assert all(position[unit.parent_code] < position[unit.code] for unit in city[1:])


def test_city_record(city):
    head = city[0]
    assert (head.code, head.name_zh, head.name_en, head.parent_code) == ("990000", "海城市", "Haicheng", None)
    assert sum(unit.level == Level.CITY for unit in city) == 1


def test_codes_are_unique_and_follow_the_statistical_scheme(city, by_code):
    assert len(by_code) == len(city)
    for unit in city:
        assert unit.code.isdigit() and len(unit.code) == CODE_LENGTH[unit.level], unit.code
        if unit.level == Level.CITY:
            continue
        parent = by_code[unit.parent_code]
        assert parent.level == unit.level - 1, unit.code
        prefix = "9901" if unit.level == Level.DISTRICT else parent.code
        assert unit.code.startswith(prefix), (unit.code, parent.code)
    districts = sorted(unit.code for unit in city if unit.level == Level.DISTRICT)
    assert districts == [f"9901{number:02d}" for number in range(1, 17)]


def test_children_are_numbered_from_one_without_gaps(children_of):
    for parent_code, children in children_of.items():
        width = 2 if children[0].level == Level.DISTRICT else 3  # districts: 9901 + 2 digits
        suffixes = sorted(int(child.code[-width:]) for child in children)
        assert suffixes == list(range(1, len(children) + 1)), parent_code


def test_minimum_children_per_unit(city, children_of):
    for unit in city:
        if unit.level == Level.DISTRICT:
            assert len(children_of[unit.code]) >= 3, unit.code
        if unit.level == Level.STREET:
            assert len(children_of[unit.code]) >= 5, unit.code


# ------------------------------------------------------------------------------------------------
# Geometry
# ------------------------------------------------------------------------------------------------


def test_every_geometry_is_a_valid_nonempty_polygon(city):
    assert bad_geometries(city) == []


def test_city_is_about_100_by_80_km_around_shanghai(city):
    min_lon, min_lat, max_lon, max_lat = city[0].geometry.bounds
    assert abs((min_lon + max_lon) / 2 - 121.45) < 0.05
    assert abs((min_lat + max_lat) / 2 - 31.2) < 0.05
    km_per_degree_lon = 111.32 * math.cos(math.radians(31.2))
    assert 90 <= (max_lon - min_lon) * km_per_degree_lon <= 110
    assert 72 <= (max_lat - min_lat) * KM_PER_DEGREE_LAT <= 88
    assert isinstance(city[0].geometry, shapely.Polygon)  # one coastline, no islands


def test_coordinates_have_six_decimals(city):
    coordinates = shapely.get_coordinates([unit.geometry for unit in city])
    assert np.array_equal(np.round(coordinates, 6), coordinates)


def test_every_child_lies_inside_its_parent(city):
    assert protrusions(city) == []


def test_units_of_a_level_do_not_overlap(city):
    assert overlaps(city) == []


def test_children_tile_their_parent(city):
    assert tiling_errors(city) == []


def test_core_units_are_smaller_than_peripheral_ones(city):
    """Codes are numbered from the core outwards, so the first districts are the central ones."""
    districts = sorted((unit for unit in city if unit.level == Level.DISTRICT), key=lambda unit: unit.code)
    central = np.mean([unit.geometry.area for unit in districts[:4]])
    outer = np.mean([unit.geometry.area for unit in districts[-4:]])
    assert central * 3 < outer
    communities = [unit for unit in city if unit.level == Level.COMMUNITY]
    areas = np.array([unit.geometry.area for unit in communities])
    assert np.percentile(areas, 90) > 10 * np.percentile(areas, 10)


# ------------------------------------------------------------------------------------------------
# Population
# ------------------------------------------------------------------------------------------------


def test_community_populations_are_plausible(city):
    populations = [unit.population for unit in city if unit.level == Level.COMMUNITY]
    assert all(isinstance(p, int) for p in populations)
    assert 1_500 <= min(populations) and max(populations) <= 12_000


def test_populations_sum_up_the_hierarchy(city, children_of):
    for unit in city:
        if unit.level != Level.COMMUNITY:
            assert unit.population == sum(child.population for child in children_of[unit.code]), unit.code
    assert city[0].population == sum(unit.population for unit in city if unit.level == Level.COMMUNITY)


def test_total_population_is_a_megacity(city):
    assert 20_000_000 <= city[0].population <= 26_000_000


def test_urban_communities_are_denser_than_villages(city):
    def density(suffix):
        return np.median([u.population / u.geometry.area for u in city
                          if u.level == Level.COMMUNITY and u.name_zh.endswith(suffix)])

    assert density("社区") > 5 * density("村")


# ------------------------------------------------------------------------------------------------
# Names
# ------------------------------------------------------------------------------------------------


def _split_kind(unit: UnitRecord) -> tuple[str, str, str, str]:
    """(Chinese stem, English stem, Chinese suffix, English suffix) of a unit's names."""
    for suffix_zh, suffix_en in KIND_SUFFIXES[unit.level]:
        if unit.name_zh.endswith(suffix_zh) and unit.name_en.endswith(" " + suffix_en):
            return unit.name_zh[: -len(suffix_zh)], unit.name_en[: -len(suffix_en) - 1], suffix_zh, suffix_en
    raise AssertionError(f"{unit.code}: {unit.name_zh} / {unit.name_en} is not a {unit.level.name} name pair")


def test_names_are_bilingual_pairs_of_the_right_kind(city, by_code):
    for unit in city[1:]:
        stem_zh, stem_en, suffix_zh, _ = _split_kind(unit)
        assert stem_zh and stem_en, unit.code
        if unit.level == Level.COMMUNITY:  # communities in subdistricts, villages in towns
            street_kind = _split_kind(by_code[unit.parent_code])[2]
            assert (street_kind, suffix_zh) in {("街道", "社区"), ("镇", "村")}, unit.code


def test_both_kinds_of_street_and_community_exist(city):
    kinds = Counter((unit.level, _split_kind(unit)[2]) for unit in city[1:])
    for level in (Level.STREET, Level.COMMUNITY):
        for suffix_zh, _ in KIND_SUFFIXES[level]:
            assert kinds[(level, suffix_zh)] >= 0.2 * sum(n for (lv, _), n in kinds.items() if lv == level)


def _readings() -> dict[str, str]:
    """Every character of the name tables with its pinyin; a character never has two readings."""
    readings: dict[str, set[str]] = defaultdict(set)
    tables = (demo_names._PLACE_SYLLABLES, demo_names._DISTRICT_FIRST, demo_names._DISTRICT_SECOND,
              demo_names._SURNAMES, demo_names._VILLAGE_FEATURES)
    for table in tables:
        for character, reading in table:
            readings[character].add(reading)
    assert all(len(r) == 1 for r in readings.values()), {c: r for c, r in readings.items() if len(r) > 1}
    assert len(demo_names._PLACE_SYLLABLES) >= 40
    return {character: reading.pop() for character, reading in readings.items()}


def _pinyin(stem_zh: str, readings: dict[str, str]) -> str:
    """Pinyin orthography: syllables run together, an apostrophe before a, o, e; first letter capital."""
    word = ""
    for character in stem_zh:
        syllable = readings[character]
        word += ("'" if word and syllable[0] in "aoe" else "") + syllable
    return word[0].upper() + word[1:]


def test_english_names_are_the_pinyin_of_the_chinese(city):
    readings = _readings()
    for unit in city[1:]:
        stem_zh, stem_en, _, _ = _split_kind(unit)
        assert _pinyin(stem_zh, readings) == stem_en, (unit.code, unit.name_zh, unit.name_en)


def test_names_are_unique_within_their_parent(children_of):
    for parent_code, children in children_of.items():
        for language in ("name_zh", "name_en"):
            names = [getattr(child, language) for child in children]
            assert len(set(names)) == len(names), (parent_code, Counter(names).most_common(2))


def test_district_and_street_names_are_unique_citywide(city):
    stems = [_split_kind(unit)[:2] for unit in city if unit.level in (Level.DISTRICT, Level.STREET)]
    assert len({zh for zh, _ in stems}) == len(stems)
    assert len({en for _, en in stems}) == len(stems)


# ------------------------------------------------------------------------------------------------
# Determinism, other seeds and arguments
# ------------------------------------------------------------------------------------------------


def _fingerprint(units: list[UnitRecord]) -> list[tuple]:
    return [(u.code, u.name_zh, u.name_en, u.level, u.parent_code, u.population, u.geometry.wkb) for u in units]


def test_same_seed_gives_the_same_city():
    assert _fingerprint(generate_city(7, **SMALL_CITY)) == _fingerprint(generate_city(7, **SMALL_CITY))


def test_different_seeds_give_different_cities():
    first, second = generate_city(7, **SMALL_CITY), generate_city(8, **SMALL_CITY)
    assert first[0].geometry.wkb != second[0].geometry.wkb
    assert [u.name_zh for u in first[1:]] != [u.name_zh for u in second[1:]]


def test_generation_does_not_touch_global_random_state():
    state = np.random.get_state()[1].copy()
    generate_city(3, **SMALL_CITY)
    assert np.array_equal(np.random.get_state()[1], state)


@settings(max_examples=8, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32 - 1),
    districts=st.integers(1, 6),
    streets_per_district=st.integers(3, 6),
    communities_per_street=st.integers(5, 9),
)
def test_any_seed_and_size_gives_a_consistent_city(seed, districts, streets_per_district, communities_per_street):
    streets = districts * streets_per_district
    communities = streets * communities_per_street
    units = generate_city(seed, districts=districts, streets=streets, communities=communities)
    assert city_summary(units) == {Level.CITY: 1, Level.DISTRICT: districts, Level.STREET: streets,
                                   Level.COMMUNITY: communities}
    assert bad_geometries(units) == []
    assert protrusions(units) == []
    assert overlaps(units) == []
    assert tiling_errors(units) == []


@pytest.mark.parametrize("counts", [
    dict(districts=0, streets=20, communities=200),
    dict(districts=100, streets=400, communities=2000),
    dict(districts=4, streets=11, communities=200),
    dict(districts=4, streets=20, communities=99),
])
def test_impossible_counts_are_refused(counts):
    with pytest.raises(ValueError):
        generate_city(1, **counts)


def test_progress_bar_only_when_asked(capsys):
    generate_city(1, **SMALL_CITY)
    assert "Generating Haicheng" not in capsys.readouterr().err
    generate_city(1, **SMALL_CITY, progress=True)
    assert "Generating Haicheng" in capsys.readouterr().err
