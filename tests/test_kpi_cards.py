"""KPI cards as built (pure): the figure with every digit and, from six digits on, its compact form for walls;
the change beside the name, so the number has the card's whole width; a sparkline that stretches to its card."""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest

from cityops.hierarchy import Level
from cityops.readings import Reading
from cityops.status import Status
from layouts.kpi import kpi_card
from layouts.text import format_compact

NOW = 1_795_000_000


@pytest.mark.parametrize("value, zh, en", [
    (99_999, None, None),             # five digits read well as they are
    (100_000, "10.0万", "100k"),
    (125_757, "12.6万", "126k"),
    (770_412, "77.0万", "770k"),
    (-125_757, "-12.6万", "-126k"),
    (1_234_567, "123万", "1.23M"),
    (999_600, "100万", "1.00M"),      # rounds up into three digits (zh) or into the next scale (en)
    (99_996_000, "1.00亿", "100M"),   # 9,999.6万 is said as 1.00亿
    (123_400_000, "1.23亿", "123M"),
    (1_230_000_000, "12.3亿", "1.23B"),
    (None, None, None),
])
def test_compact_figures_say_large_numbers_as_people_do(value, zh, en):
    assert format_compact(value, "zh") == zh
    assert format_compact(value, "en") == en


def texts_by_class(node, found=None) -> dict[str, list[str]]:
    """Each className's texts, from a component tree as Dash would send it."""
    found = {} if found is None else found
    if isinstance(node, list):
        for child in node:
            texts_by_class(child, found)
    elif isinstance(node, dict) and "props" in node:
        props = node["props"]
        children = props.get("children")
        for name in str(props.get("className") or "").split():
            found.setdefault(name, []).append(flat_text(children))
        texts_by_class(children, found)
    return found


def flat_text(node) -> str:
    if isinstance(node, (str, int, float)):
        return str(node)
    if isinstance(node, list):
        return "".join(flat_text(child) for child in node)
    if isinstance(node, dict):
        return flat_text(node.get("props", {}).get("children"))
    return ""


def card(catalog, value, previous, language="zh"):
    indicator = catalog["population_inflow"]
    reading = Reading("population_inflow", value, NOW - 60, Status.NORMAL, reported=20, expected=20,
                      previous=previous)
    built = kpi_card(indicator, reading, [1.0, 3.0, 2.0], Level.CITY, language, "Asia/Shanghai", NOW,
                     selected=False)
    return json.loads(json.dumps(built.to_plotly_json(), default=lambda c: c.to_plotly_json()))


def test_a_six_digit_figure_carries_its_compact_form_and_the_change_sits_by_the_name(catalog):
    built = card(catalog, 770_412.0, 896_169.0)
    texts = texts_by_class(built)
    assert texts["kpi-number"] == ["770,412"] and "has-compact" in texts
    assert texts["figure-compact"] == ["12.6万", "77.0万"]  # the change (by the name), then the number
    assert texts["kpi-change-figure"] == ["125,757"]
    head = texts["kpi-head"][0]
    assert head.startswith(catalog["population_inflow"].name("zh")) and "▼ 125,757" in head
    assert "kpi-change" not in texts_by_class(next(
        child for child in built["props"]["children"] if "kpi-trendline" in str(child["props"].get("className"))))
    english = texts_by_class(card(catalog, 770_412.0, 896_169.0, "en"))
    assert english["figure-compact"] == ["126k", "770k"]


def test_a_shorter_figure_has_no_compact_form(catalog):
    texts = texts_by_class(card(catalog, 19_854.0, 27_408.0))
    assert texts["kpi-number"] == ["19,854"] and "figure-compact" not in texts and "has-compact" not in texts
    assert texts["kpi-change-figure"] == ["7,554"]


def test_the_sparkline_stretches_to_its_card_with_an_even_line(catalog):
    built = card(catalog, 19_854.0, 27_408.0)
    spark = [child for child in built["props"]["children"] if "kpi-trendline" in str(child["props"].get("className"))]
    source = unquote(spark[0]["props"]["children"][0]["props"]["src"])
    assert 'preserveAspectRatio="none"' in source and 'vector-effect="non-scaling-stroke"' in source


def test_the_unit_of_measure_is_written_in_the_screen_s_language(catalog):
    assert texts_by_class(card(catalog, 19_854.0, 27_408.0))["kpi-unit"] == ["人/时"]
    assert texts_by_class(card(catalog, 19_854.0, 27_408.0, "en"))["kpi-unit"] == ["people/h"]


def built_card(catalog, key, reading, level, language="zh", owner_name=None):
    built = kpi_card(catalog[key], reading, [40.0, 46.0], level, language, "Asia/Shanghai", NOW, selected=False,
                     owner_name=owner_name)
    return json.loads(json.dumps(built.to_plotly_json(), default=lambda c: c.to_plotly_json()))


def test_a_value_measured_above_the_unit_is_shown_with_whose_it_is(catalog):
    """A community's AQI card shows its street's reading, naming the street (never as the community's own)."""
    street = Reading("aqi", 46.0, NOW - 300, Status.NORMAL, reported=1, expected=1, previous=45.0, measured=False,
                     owner_id=7)
    built = built_card(catalog, "aqi", street, Level.COMMUNITY, owner_name="新宁街道")
    texts = texts_by_class(built)
    assert texts["kpi-number"] == ["46"] and texts["kpi-unit"] == ["AQI"] and texts["kpi-change-figure"] == ["1"]
    assert texts["kpi-owner"] == ["↑ 新宁街道"] and "kpi-asof" in texts and "kpi-completeness" not in texts
    assert "inherited" in built["props"]["className"].split() and "not-measured" not in built["props"]["className"]
    assert built["props"]["title"].startswith("社区/村级不单独统计：显示所属的新宁街道的数值\n")
    english = built_card(catalog, "aqi", street, Level.COMMUNITY, "en", owner_name="Xinning Subdistrict")
    assert english["props"]["title"].startswith("Not measured per Community: the value of Xinning Subdistrict")
    # Where nothing the viewer may see stands for it, the card says the indicator is not measured there.
    alone = built_card(catalog, "aqi", Reading("aqi", None, None, Status.NO_DATA, measured=False), Level.COMMUNITY)
    assert "not-measured" in alone["props"]["className"] and "kpi-number" not in texts_by_class(alone)
    assert texts_by_class(alone)["kpi-meta"] == ["社区/村级不统计"]
