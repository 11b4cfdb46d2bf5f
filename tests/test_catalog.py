"""The indicator catalog: the shipped file loads, and every configuration mistake is named precisely.

Each error must name the file, the indicator (by key, or by position when it has no usable key) and the
problem, so that whoever edits data/indicators.yaml can fix it without reading code.
"""

from __future__ import annotations

import copy

import pytest
import yaml

from cityops.catalog import CatalogError, Direction, RollupRule, Thresholds, load_catalog, parse_duration
from cityops.hierarchy import Level
from cityops.settings import DATA_DIR

# ------------------------------------------------------------------------------------------------
# The shipped catalog
# ------------------------------------------------------------------------------------------------


def test_shipped_catalog_loads_with_every_rule_and_direction(catalog):
    assert len(catalog) >= 12
    assert {indicator.rollup for indicator in catalog} == set(RollupRule)
    assert {indicator.direction for indicator in catalog} == set(Direction)
    assert len(set(catalog.keys)) == len(catalog)
    assert catalog.source == DATA_DIR / "indicators.yaml"


def test_shipped_catalog_thresholds_cover_every_level_up_to_the_city(catalog):
    for indicator in catalog:
        assert set(indicator.thresholds) == {lv for lv in Level if lv <= indicator.level}, indicator.key
        for pair in indicator.thresholds.values():
            if indicator.direction == Direction.HIGHER_IS_WORSE:
                assert pair.warning < pair.critical, indicator.key
            else:
                assert pair.warning > pair.critical, indicator.key


def test_shipped_ratio_refers_to_reported_sums(catalog):
    rate = catalog["grid_overdue_rate"]
    assert rate.is_derived and rate.numerator == "grid_incidents_overdue"
    assert rate.denominator == "grid_incidents_open" and rate.scale == 100.0
    assert catalog.derived_from("grid_incidents_open") == [rate]
    assert rate not in catalog.reported() and catalog["grid_incidents_open"] in catalog.reported()
    assert len(catalog.reported()) == len(catalog) - sum(i.is_derived for i in catalog)


def test_shipped_values_are_parsed(catalog):
    """Structure only: the threshold numbers are tuned in the file and are not the catalog loader's business."""
    hotline = catalog["hotline_complaints"]
    assert hotline.level == Level.COMMUNITY and hotline.rollup == RollupRule.SUM
    assert hotline.interval_seconds == 3600
    # A sum's thresholds grow with the area it covers.
    pairs = [hotline.thresholds_at(level) for level in (Level.COMMUNITY, Level.STREET, Level.DISTRICT, Level.CITY)]
    assert all(isinstance(pair, Thresholds) for pair in pairs)
    assert [pair.warning for pair in pairs] == sorted(pair.warning for pair in pairs)
    assert len({pair.warning for pair in pairs}) == 4
    assert catalog["traffic_congestion"].interval_seconds == 300
    assert catalog["noise"].interval_seconds == 900
    assert catalog["garbage_sorting_compliance"].interval_seconds == 86400
    assert catalog["water_pressure"].decimals == 2
    aqi = catalog["aqi"]  # measured per street: thresholds for the street and above, none for communities
    assert set(aqi.thresholds) == {Level.CITY, Level.DISTRICT, Level.STREET}
    assert aqi.thresholds_at(Level.COMMUNITY) is None
    assert aqi.measured_at_or_above(Level.DISTRICT) and not aqi.measured_at_or_above(Level.COMMUNITY)
    assert "pm25" in catalog and "nonsense" not in catalog
    with pytest.raises(KeyError):
        catalog["nonsense"]


def test_shipped_district_count_is_kept_off_the_kpi_panel(catalog):
    """The district's own 12345 count exists to be checked against its communities' sum, not to be read twice."""
    own = catalog["hotline_complaints_district"]
    assert own.level == Level.DISTRICT and own.rollup == RollupRule.SUM and not own.kpi
    assert own.unit_of_measure == catalog["hotline_complaints"].unit_of_measure
    assert own.interval_seconds == catalog["hotline_complaints"].interval_seconds
    assert own in catalog.reported() and own not in catalog.kpis()
    assert [i.key for i in catalog.kpis()] == [i.key for i in catalog if i.key != "hotline_complaints_district"]


@pytest.mark.parametrize("text, seconds", [("5m", 300), ("1h", 3600), ("1d", 86400), ("15 min", 900),
                                           ("30s", 30), (600, 600), ("2 hours", 7200)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0m", "5", "five minutes", "-5m", "1w", 0, -60, ""])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


# ------------------------------------------------------------------------------------------------
# Configuration errors, one YAML file each
# ------------------------------------------------------------------------------------------------

COUNT = {  # a valid community-level sum
    "key": "complaints", "name_zh": "投诉", "name_en": "Complaints", "unit": "件", "level": "community",
    "rollup": "sum", "direction": "higher_is_worse", "interval": "1h",
    "thresholds": {"community": {"warning": 3, "critical": 5}, "street": {"warning": 10, "critical": 20},
                   "district": {"warning": 50, "critical": 80}, "city": {"warning": 100, "critical": 200}},
}
SHARE = {  # a valid street-level weighted mean, higher is better
    "key": "coverage", "name_zh": "覆盖率", "name_en": "Coverage", "unit": "%", "level": "street",
    "rollup": "population_weighted_mean", "direction": "higher_is_better", "interval": "1d", "decimals": 1,
    "thresholds": {"warning": 90, "critical": 80},
}


def write(tmp_path, *entries, name="indicators.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"indicators": list(entries)}, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path


def variant(base, **changes):
    entry = copy.deepcopy(base)
    for name, value in changes.items():
        if value is DROP:
            del entry[name]
        else:
            entry[name] = value
    return entry


DROP = object()


def error_of(path) -> str:
    with pytest.raises(CatalogError) as raised:
        load_catalog(path)
    return str(raised.value)


def test_small_valid_catalog_loads(tmp_path):
    path = write(tmp_path, COUNT, SHARE)
    catalog = load_catalog(path)
    assert catalog.keys == ["complaints", "coverage"]
    assert catalog["coverage"].thresholds[Level.CITY] == Thresholds(90, 80)
    assert catalog["coverage"].level == Level.STREET


@pytest.mark.parametrize("field", ["key", "name_zh", "name_en", "unit", "level", "rollup", "direction",
                                   "thresholds", "interval"])
def test_missing_field(tmp_path, field):
    message = error_of(write(tmp_path, COUNT, variant(SHARE, **{field: DROP})))
    assert str(tmp_path / "indicators.yaml") in message
    assert "#2" in message
    if field != "key":
        assert "'coverage'" in message
    assert f"missing {field}" in message


def test_unknown_field_is_named_with_the_allowed_ones(tmp_path):
    message = error_of(write(tmp_path, variant(COUNT, treshold=5)))
    assert str(tmp_path / "indicators.yaml") in message
    assert "indicator 'complaints' (#1)" in message
    assert "unknown field(s) treshold" in message and "allowed:" in message and "thresholds" in message


@pytest.mark.parametrize("level, problem", [("province", "unknown level 'province'"),
                                            ("city", "level city has nothing to roll up from")])
def test_bad_level(tmp_path, level, problem):
    message = error_of(write(tmp_path, variant(SHARE, level=level)))
    assert str(tmp_path / "indicators.yaml") in message and "'coverage' (#1)" in message
    assert problem in message


def test_level_aliases_are_accepted(tmp_path):
    catalog = load_catalog(write(tmp_path, variant(SHARE, level="town"), variant(COUNT, key="per_village",
                                 level="village")))
    assert catalog["coverage"].level == Level.STREET
    assert catalog["per_village"].level == Level.COMMUNITY


def test_bad_rollup(tmp_path):
    message = error_of(write(tmp_path, COUNT, variant(SHARE, rollup="median")))
    assert str(tmp_path / "indicators.yaml") in message and "'coverage' (#2)" in message
    assert "rollup 'median' is not one of" in message and "population_weighted_mean" in message


def test_bad_direction(tmp_path):
    message = error_of(write(tmp_path, variant(SHARE, direction="lower_is_worse")))
    assert "'coverage' (#1)" in message and "direction 'lower_is_worse' is not one of" in message


def test_sum_with_a_single_threshold_pair(tmp_path):
    message = error_of(write(tmp_path, variant(COUNT, thresholds={"warning": 3, "critical": 5})))
    assert str(tmp_path / "indicators.yaml") in message and "'complaints' (#1)" in message
    assert "a sum grows with the area it covers" in message
    assert "city, district, street, community" in message


def test_sum_missing_a_level_of_thresholds(tmp_path):
    thresholds = {k: v for k, v in COUNT["thresholds"].items() if k != "district"}
    message = error_of(write(tmp_path, variant(COUNT, thresholds=thresholds)))
    assert "'complaints' (#1)" in message and "thresholds missing for level(s) district" in message


def test_thresholds_below_the_measured_level(tmp_path):
    thresholds = {"street": {"warning": 1, "critical": 2}, "district": {"warning": 1, "critical": 2},
                  "city": {"warning": 1, "critical": 2}, "community": {"warning": 1, "critical": 2}}
    message = error_of(write(tmp_path, variant(SHARE, thresholds=thresholds, direction="higher_is_worse")))
    assert "'coverage' (#1)" in message and "thresholds for community but the indicator is measured at street" \
        in message


@pytest.mark.parametrize("direction, warning, critical", [
    ("higher_is_worse", 5, 3), ("higher_is_worse", 4, 4), ("higher_is_better", 80, 90), ("higher_is_better", 85, 85),
])
def test_single_pair_in_the_wrong_order(tmp_path, direction, warning, critical):
    message = error_of(write(tmp_path, variant(SHARE, direction=direction,
                                               thresholds={"warning": warning, "critical": critical})))
    assert str(tmp_path / "indicators.yaml") in message and "'coverage' (#1)" in message
    if direction == "higher_is_worse":
        assert f"higher is worse, so warning ({warning}) must be below critical ({critical})" in message
    else:
        assert f"higher is better, so warning ({warning}) must be above critical ({critical})" in message


def test_per_level_pair_in_the_wrong_order_names_the_level(tmp_path):
    thresholds = copy.deepcopy(COUNT["thresholds"])
    thresholds["district"] = {"warning": 80, "critical": 50}
    message = error_of(write(tmp_path, variant(COUNT, thresholds=thresholds)))
    assert "'complaints' (#1): thresholds.district" in message and "must be below critical" in message


def test_higher_is_better_per_level_in_the_wrong_order(tmp_path):
    thresholds = {"street": {"warning": 90, "critical": 80}, "district": {"warning": 90, "critical": 80},
                  "city": {"warning": 70, "critical": 75}}
    message = error_of(write(tmp_path, variant(SHARE, thresholds=thresholds)))
    assert "'coverage' (#1): thresholds.city" in message and "must be above critical" in message


@pytest.mark.parametrize("thresholds, problem", [
    ({"warning": 3}, "give exactly 'warning' and 'critical'"),
    ({"warning": 3, "critical": 5, "alarm": 7}, "give exactly 'warning' and 'critical'"),
    ({"warning": "high", "critical": 5}, "warning must be a number"),
    ({"warning": 3, "critical": True}, "critical must be a number"),
    ([3, 5], "thresholds must be a mapping"),
])
def test_malformed_thresholds(tmp_path, thresholds, problem):
    message = error_of(write(tmp_path, variant(SHARE, direction="higher_is_worse", thresholds=thresholds)))
    assert "'coverage' (#1)" in message and problem in message


RATIO = {
    "key": "complaint_rate", "name_zh": "投诉率", "name_en": "Complaint rate", "unit": "%", "level": "community",
    "rollup": "ratio", "numerator": "complaints", "denominator": "households", "scale": 100,
    "direction": "higher_is_worse", "interval": "1h", "thresholds": {"warning": 10, "critical": 15},
}
HOUSEHOLDS = variant(COUNT, key="households", name_en="Households")


def test_valid_ratio(tmp_path):
    catalog = load_catalog(write(tmp_path, COUNT, HOUSEHOLDS, RATIO))
    assert catalog["complaint_rate"].is_derived and catalog["complaint_rate"].scale == 100.0
    assert [i.key for i in catalog.derived_from("households")] == ["complaint_rate"]


def test_ratio_with_an_unknown_indicator(tmp_path):
    message = error_of(write(tmp_path, COUNT, RATIO))
    assert str(tmp_path / "indicators.yaml") in message and "'complaint_rate'" in message
    assert "denominator 'households' is not an indicator in this catalog" in message


def test_ratio_of_a_non_sum(tmp_path):
    mean = variant(HOUSEHOLDS, rollup="mean", thresholds={"warning": 3, "critical": 5})
    message = error_of(write(tmp_path, COUNT, mean, RATIO))
    assert str(tmp_path / "indicators.yaml") in message and "'complaint_rate'" in message
    assert "denominator 'households' rolls up by mean; a ratio of sums needs sums" in message


def test_ratio_of_a_ratio(tmp_path):
    other = variant(RATIO, key="other_rate", numerator="complaint_rate")
    message = error_of(write(tmp_path, COUNT, HOUSEHOLDS, RATIO, other))
    assert "'other_rate'" in message and "numerator 'complaint_rate' is itself a ratio" in message


def test_ratio_of_an_indicator_at_another_level(tmp_path):
    street = variant(HOUSEHOLDS, level="street",
                     thresholds={k: v for k, v in COUNT["thresholds"].items() if k != "community"})
    message = error_of(write(tmp_path, COUNT, street, RATIO))
    assert "'complaint_rate'" in message and "denominator 'households' is measured at street" in message


def test_ratio_without_its_parts_and_parts_without_ratio(tmp_path):
    message = error_of(write(tmp_path, variant(RATIO, denominator=DROP)))
    assert "'complaint_rate' (#1)" in message and "needs 'numerator' and 'denominator'" in message
    message = error_of(write(tmp_path, variant(COUNT, numerator="households")))
    assert "'complaints' (#1)" in message and "only apply to rollup: ratio" in message


def test_duplicate_key(tmp_path):
    message = error_of(write(tmp_path, COUNT, SHARE, variant(SHARE, name_en="Coverage again")))
    assert str(tmp_path / "indicators.yaml") in message
    assert "indicator 'coverage' (#3): duplicate key" in message


@pytest.mark.parametrize("interval", ["5", "often", "0m", "-1h", "1 week"])
def test_bad_interval(tmp_path, interval):
    message = error_of(write(tmp_path, COUNT, variant(SHARE, interval=interval)))
    assert str(tmp_path / "indicators.yaml") in message and "'coverage' (#2)" in message
    assert "interval:" in message and "not a duration" in message


@pytest.mark.parametrize("key", ["Complaints", "1st", "x", "with-dash", 42])
def test_bad_key(tmp_path, key):
    message = error_of(write(tmp_path, variant(COUNT, key=key)))
    assert "#1" in message and "must be lower_snake_case" in message


@pytest.mark.parametrize("changes, problem", [
    ({"decimals": 7}, "decimals must be a whole number from 0 to 4"),
    ({"decimals": 1.5}, "decimals must be a whole number from 0 to 4"),
    ({"scale": 0}, "scale must be a positive number"),
    ({"scale": "100"}, "scale must be a positive number"),
    ({"name_en": "  "}, "name_en must be a non-empty text"),
    ({"kpi": "false"}, "kpi must be true or false"),
    ({"kpi": 0}, "kpi must be true or false"),
    ({"unit_en": "  "}, "unit_en must be the unit of measure written in English"),
    ({"unit_en": 5}, "unit_en must be the unit of measure written in English"),
    ({"short_en": " "}, "short_en must be the name in at most 16 characters"),
    ({"short_zh": "一二三四五六七八九十一二三四五六七"}, "short_zh must be the name in at most 16 characters"),
    ({"short_en": ["Open"]}, "short_en must be the name in at most 16 characters"),
])
def test_bad_optional_fields(tmp_path, changes, problem):
    message = error_of(write(tmp_path, variant(SHARE, **changes)))
    assert "'coverage' (#1)" in message and problem in message


def test_kpi_defaults_to_shown_and_false_leaves_the_panel(tmp_path):
    catalog = load_catalog(write(tmp_path, COUNT, variant(SHARE, kpi=False), variant(COUNT, key="checked", kpi=True)))
    assert catalog["complaints"].kpi and catalog["checked"].kpi and not catalog["coverage"].kpi
    assert [i.key for i in catalog.kpis()] == ["complaints", "checked"]
    assert catalog.keys == ["complaints", "coverage", "checked"]  # still in the catalog: stored, rolled up, judged


def test_unit_of_measure_in_each_language(tmp_path):
    catalog = load_catalog(write(tmp_path, variant(COUNT, unit_en=" cases "), SHARE))
    assert catalog["complaints"].measure("zh") == "件" and catalog["complaints"].measure("en") == "cases"
    assert catalog["coverage"].measure("zh") == catalog["coverage"].measure("en") == "%"  # reads the same: no unit_en


def test_short_names_for_walls_default_to_the_name(tmp_path):
    catalog = load_catalog(write(tmp_path, variant(COUNT, short_zh=" 诉求 ", short_en="Complaints"), SHARE))
    assert catalog["complaints"].short_name("zh") == "诉求" and catalog["complaints"].short_name("en") == "Complaints"
    assert catalog["coverage"].short_name("zh") == catalog["coverage"].name_zh  # none given: the name itself
    assert catalog["coverage"].short_name("en") == catalog["coverage"].name_en


def test_shipped_units_are_written_in_english_where_they_differ(catalog):
    for indicator in catalog:
        english = indicator.measure("en")
        # Chinese characters (件, 起, 人) would be unreadable on an English screen.
        assert not any("\u4e00" <= char <= "\u9fff" for char in english), (indicator.key, english)
    assert catalog["hotline_complaints"].measure("en") == "cases/h"
    assert catalog["hotline_complaints"].measure("zh") == "件/时"


def test_entry_that_is_not_a_mapping_is_named_by_position(tmp_path):
    message = error_of(write(tmp_path, COUNT, "coverage"))
    assert str(tmp_path / "indicators.yaml") in message and "indicator #2" in message
    assert "expected a mapping" in message


def test_not_yaml(tmp_path):
    path = tmp_path / "indicators.yaml"
    path.write_text("indicators:\n  - key: [unclosed\n    name_en: x\n", encoding="utf-8")
    message = error_of(path)
    assert str(path) in message and "not valid YAML" in message


@pytest.mark.parametrize("document", ["just text", "- key: a\n", "indicators: {key: a}\n", ""])
def test_yaml_without_an_indicators_list(tmp_path, document):
    path = tmp_path / "indicators.yaml"
    path.write_text(document, encoding="utf-8")
    message = error_of(path)
    assert str(path) in message and "expected a top-level 'indicators:' list" in message


def test_missing_file(tmp_path):
    message = error_of(tmp_path / "nowhere.yaml")
    assert str(tmp_path / "nowhere.yaml") in message and "file not found" in message


def test_error_in_a_later_entry_loads_nothing_and_names_that_entry(tmp_path):
    """Nothing half-loads: the first two entries are fine, the third is not, and the error is about the third."""
    message = error_of(write(tmp_path, COUNT, SHARE, variant(SHARE, key="third", rollup="avg")))
    assert "indicator 'third' (#3)" in message and "'complaints'" not in message
