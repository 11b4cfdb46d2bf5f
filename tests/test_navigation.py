"""Navigation without a browser: the view state in the URL (written, read back, every bad value refused), the unit
search (names in both languages, codes, only within the viewer's scope), and the language a URL or cookie chooses."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest
from dash import no_update

sys.path.insert(0, str(Path(__file__).parent))

from city_factory import tiny_city  # noqa: E402
from cityops.boundaries import replace_units  # noqa: E402
from cityops.catalog import load_catalog  # noqa: E402
from cityops.db import migrate, session_scope  # noqa: E402
from cityops.demo_city import generate_city  # noqa: E402
from cityops.hierarchy import Level  # noqa: E402
from cityops.scope import scope_of_unit  # noqa: E402
from cityops.settings import Settings  # noqa: E402
from cityops.tree import load_tree  # noqa: E402
from cityops.unit_search import CODE_PREFIX, EXACT_CODE, NAME_PART, NAME_START, normalised, search_units  # noqa: E402
from layouts.navigation import query_values, same_view, search_results, selection_from_query, view_query  # noqa: E402
from layouts.page import initial_selection  # noqa: E402
from dash_calls import in_callback  # noqa: E402

DEFAULTS = initial_selection("hotline_complaints")
INDICATORS = {"hotline_complaints", "aqi", "pm25"}
TODAY = date(2026, 11, 26)
DISTRICT, STREET, COMMUNITY = "990101", "990101001", "990101001001"
OTHER_DISTRICT = "990102"


def everything_visible(code: str) -> bool:
    """The tiny city's units (tests/city_factory.py) are all the viewer's."""
    return code in {unit.code for unit in tiny_city()}


# ------------------------------------------------------------------------------------------------
# The view state in the URL
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("selection, query", [
    (DEFAULTS, ""),
    ({**DEFAULTS, "unit": DISTRICT}, "unit=990101"),
    ({**DEFAULTS, "unit": STREET, "indicator": "aqi", "range": "30d"}, "unit=990101001&indicator=aqi&range=30d"),
    ({**DEFAULTS, "range": "24h", "compare": True}, "range=24h&compare=1"),
    ({**DEFAULTS, "unit": COMMUNITY, "range": "custom", "start": "2026-11-01", "end": "2026-11-20"},
     "unit=990101001001&range=custom&start=2026-11-01&end=2026-11-20"),
])
def test_a_selection_is_written_in_the_url_and_read_back_unchanged(selection, query):
    assert view_query(selection, DEFAULTS) == query
    for search in (query, "?" + query, "?lang=en&" + query + "&mode=x"):
        assert selection_from_query(search, DEFAULTS, everything_visible, INDICATORS, TODAY) == selection


def test_the_url_leaves_out_what_the_first_screen_shows_and_keeps_keys_in_one_order():
    assert view_query({**DEFAULTS, "range": "7d", "compare": False}, DEFAULTS) == ""
    assert view_query(None, DEFAULTS) == "" and view_query("unit=1", DEFAULTS) == ""
    shuffled = "compare=1&range=30d&indicator=aqi&unit=990101"
    assert view_query(selection_from_query(shuffled, DEFAULTS, everything_visible, INDICATORS, TODAY), DEFAULTS) == \
        "unit=990101&indicator=aqi&range=30d&compare=1"
    # Codes from imported files may hold anything: they are escaped, and read back as they were.
    odd = {**DEFAULTS, "unit": "A&B=C/d ü(1)'!*~"}
    assert view_query(odd, DEFAULTS) == "unit=A%26B%3DC%2Fd%20%C3%BC(1)'!*~"
    assert selection_from_query(view_query(odd, DEFAULTS), DEFAULTS, lambda code: True, INDICATORS, TODAY) == odd


@pytest.mark.parametrize("search", [
    None, "", "?", "garbage", "%%%&&==", "?indicator=no_such_key", "?indicator=", "?range=1y", "?range=",
    "?range=custom", "?range=custom&start=2026-11-01", "?range=custom&start=2026-11-20&end=2026-11-01",
    "?range=custom&start=2026-02-30&end=2026-03-01", "?range=custom&start=20261101&end=20261120",
    "?range=custom&start=2026-11-01T00:00&end=2026-11-02", "?range=custom&start=2026-11-27&end=2026-11-28",
    "?range=custom&start=2020-01-01&end=2026-11-01", "?compare=0", "?compare=maybe", "?unit=",
    "?unit=" + "9" * 65, "?unit=110101", "?unit=<script>", "?unit=990101'--",
])
def test_unusable_values_in_a_url_give_the_first_screen(search):
    assert selection_from_query(search, DEFAULTS, everything_visible, INDICATORS, TODAY) == DEFAULTS


def test_each_unusable_value_falls_back_alone():
    search = "?unit=990101&indicator=bogus&range=custom&start=2026-11-05&end=2026-11-01&compare=yes"
    assert selection_from_query(search, DEFAULTS, everything_visible, INDICATORS, TODAY) == \
        {**DEFAULTS, "unit": DISTRICT, "compare": True}
    # The first of repeated keys counts.
    assert query_values("?unit=990101&unit=990102&indicator=aqi&indicator=pm25") == \
        {"unit": DISTRICT, "indicator": "aqi"}


def test_a_unit_the_viewer_may_not_see_opens_the_scope_root():
    only_district = lambda code: code.startswith(DISTRICT)  # noqa: E731
    assert selection_from_query(f"?unit={STREET}&indicator=aqi", DEFAULTS, only_district, INDICATORS, TODAY) == \
        {**DEFAULTS, "unit": STREET, "indicator": "aqi"}
    outside = selection_from_query(f"?unit={OTHER_DISTRICT}&indicator=aqi", DEFAULTS, only_district, INDICATORS,
                                   TODAY)
    assert outside == {**DEFAULTS, "indicator": "aqi"}


def test_same_view_compares_what_the_url_would_say():
    assert same_view(DEFAULTS, {**DEFAULTS, "start": "2026-01-01"}, DEFAULTS)  # a start without custom is no view
    assert not same_view(DEFAULTS, {**DEFAULTS, "unit": DISTRICT}, DEFAULTS)
    assert not same_view({**DEFAULTS, "unit": "bogus"}, DEFAULTS, DEFAULTS)


# ------------------------------------------------------------------------------------------------
# Unit search
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def city_tree(tmp_path_factory):
    """The generated city at browser-test size (4 districts, 20 streets, 200 communities), loaded as the app
    loads it."""
    url = f"sqlite:///{tmp_path_factory.mktemp('search') / 'city.db'}"
    migrate(url)
    with session_scope(url) as session:
        replace_units(session, generate_city(7, districts=4, streets=20, communities=200))
    with session_scope(url) as session:
        return load_tree(session)


def whole_city(tree):
    return scope_of_unit(tree, tree.root_id)


def test_normalising_folds_case_width_and_blanks():
    assert normalised("  Ｂｅｉ   CHENG ") == "bei cheng"
    assert normalised("９９０１") == "9901"


def test_search_finds_units_by_chinese_name_english_name_and_code(city_tree):
    frame = city_tree.frame
    street = frame[frame["level"] == int(Level.STREET)].iloc[3]
    part = search_units(city_tree, whole_city(city_tree), str(street["name_zh"])[:2], limit=500).units
    assert str(street["code"]) in [unit.code for unit in part]
    exact = search_units(city_tree, whole_city(city_tree), str(street["name_zh"])).units
    assert exact[0].code == str(street["code"]) and exact[0].level == Level.STREET
    parent = frame.loc[int(street["parent_id"])]
    assert (exact[0].parent_name("zh"), exact[0].parent_name("en")) == (parent["name_zh"], parent["name_en"])
    # English: any part, any case.
    word = str(street["name_en"]).split()[0]
    english = search_units(city_tree, whole_city(city_tree), word.upper()[1:], limit=500).units
    assert str(street["code"]) in [unit.code for unit in english]
    assert all(word.upper()[1:].casefold() in unit.name_en.casefold() or
               word.upper()[1:].casefold() in unit.name_zh.casefold() for unit in english)
    # Codes: the exact unit first, then its subtree by prefix, districts before streets before communities.
    by_code = search_units(city_tree, whole_city(city_tree), str(street["code"]), limit=50)
    assert by_code.units[0].code == str(street["code"]) and by_code.units[0].match == EXACT_CODE
    assert all(unit.code.startswith(str(street["code"])) for unit in by_code.units)
    assert by_code.total == 1 + int((frame["parent_id"] == street.name).sum())
    prefix = search_units(city_tree, whole_city(city_tree), "9901", limit=10)
    assert [unit.level for unit in prefix.units] == sorted(unit.level for unit in prefix.units)
    assert prefix.units[0].match == CODE_PREFIX and prefix.total == len(frame) - 1  # all but the city


def test_search_orders_name_starts_before_name_parts(city_tree):
    frame = city_tree.frame
    name = str(frame[frame["level"] == int(Level.COMMUNITY)].iloc[0]["name_zh"])
    found = search_units(city_tree, whole_city(city_tree), name[-1], limit=500).units
    kinds = [unit.match for unit in found]
    assert kinds == sorted(kinds) and set(kinds) <= {NAME_START, NAME_PART}


def test_search_stays_within_the_viewers_scope(city_tree):
    frame = city_tree.frame
    districts = frame[frame["level"] == int(Level.DISTRICT)]
    mine, theirs = districts.index[0], districts.index[1]
    scope = scope_of_unit(city_tree, int(mine))
    inside = search_units(city_tree, scope, "99", limit=10_000)
    assert inside.total == int(((frame["lft"] >= scope.lft) & (frame["lft"] <= scope.rgt)).sum())
    assert all(unit.code.startswith(str(frame.at[mine, "code"])) for unit in inside.units)
    # A unit outside is not found by its code nor by its own name; the viewer's root shows no parent.
    their_code, their_name = str(frame.at[theirs, "code"]), str(frame.at[theirs, "name_zh"])
    assert search_units(city_tree, scope, their_code).total == 0
    assert their_code not in [unit.code for unit in search_units(city_tree, scope, their_name, limit=500).units]
    root = search_units(city_tree, scope, str(frame.at[mine, "code"])).units[0]
    assert root.parent_name("zh") is None


@pytest.mark.parametrize("query", [None, "", "   ", 42, ["99"], "没有这个地方", "zzzz"])
def test_search_for_nothing_or_anything_absent_finds_nothing(city_tree, query):
    assert search_units(city_tree, whole_city(city_tree), query).units == []


def test_search_results_show_name_level_parent_and_how_many_more(city_tree):
    result = search_units(city_tree, whole_city(city_tree), "9901", limit=3)
    rows = search_results(result, "9901", "en")
    buttons = [row for row in rows if getattr(row, "id", None)]
    assert [button.id["code"] for button in buttons] == [unit.code for unit in result.units]
    text = json.dumps([row.to_plotly_json() for row in rows], default=lambda o: o.to_plotly_json(), ensure_ascii=False)
    assert "District" in text and result.units[0].name_en in text
    assert f"{result.total - 3} more" in text
    nothing = search_results(search_units(city_tree, whole_city(city_tree), "zzzz"), "zzzz", "zh")
    assert "没有找到“zzzz”" in json.dumps(nothing[0].to_plotly_json(), ensure_ascii=False)
    assert search_results(result, "  ", "zh") == []


# ------------------------------------------------------------------------------------------------
# The callbacks, as plain functions on the tiny city (2 districts × 2 streets × 2 communities)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from app import create_app

    folder = tmp_path_factory.mktemp("navigation")
    settings = replace(Settings(), database_url=f"sqlite:///{folder / 'db.sqlite'}", run_scheduler=False)
    migrate(settings.database_url)
    with session_scope(settings.database_url) as session:
        replace_units(session, tiny_city())
    return create_app(settings)


def test_opening_a_deep_link_selects_its_view_and_reports_what_it_opened(app):
    from callbacks.navigation import open_view_from_url

    selection, applied = in_callback(app, open_view_from_url, {"search": "?unit=990101&indicator=aqi&range=30d"},
                                     DEFAULTS)
    assert selection == {**DEFAULTS, "unit": DISTRICT, "indicator": "aqi", "range": "30d"}
    assert applied == {"from": "?unit=990101&indicator=aqi&range=30d", "selection": selection}
    # Back to the first screen's URL.
    back, _ = in_callback(app, open_view_from_url, {"search": ""}, selection)
    assert back == DEFAULTS


def test_a_deep_link_to_what_cannot_be_shown_opens_the_scope_root(app):
    from callbacks.navigation import open_view_from_url

    unknown, applied = in_callback(app, open_view_from_url, {"search": "?unit=110101&indicator=nope"},
                                   {**DEFAULTS, "unit": DISTRICT})
    assert unknown == DEFAULTS and applied["selection"] == DEFAULTS
    # Already showing that: the selection stays as it is, and the browser is told to correct the URL.
    same, applied = in_callback(app, open_view_from_url, {"search": "?unit=110101"}, DEFAULTS)
    assert same is no_update and applied == {"from": "?unit=110101", "selection": DEFAULTS}
    # Keys other helpers keep in the selection survive a URL.
    kept, _ = in_callback(app, open_view_from_url, {"search": "?unit=990101"}, {**DEFAULTS, "extra": 1})
    assert kept["extra"] == 1 and kept["unit"] == DISTRICT
    for forged in (None, "?unit=990101", {"search": 5}, {}):
        assert in_callback(app, open_view_from_url, forged, DEFAULTS) == (no_update, no_update)


def test_a_viewer_limited_to_a_district_cannot_open_another_by_url(app, monkeypatch):
    import callbacks.context as context
    from callbacks.navigation import open_view_from_url
    from cityops.scope import Viewer

    monkeypatch.setattr(context, "current_viewer", lambda: Viewer("district officer", DISTRICT))
    selection, _ = in_callback(app, open_view_from_url, {"search": f"?unit={OTHER_DISTRICT}001"}, DEFAULTS)
    assert selection is no_update  # the scope root (None), which is what is shown
    inside, _ = in_callback(app, open_view_from_url, {"search": f"?unit={STREET}"}, DEFAULTS)
    assert inside["unit"] == STREET


def test_searching_and_choosing_a_unit_selects_it_within_scope(app, monkeypatch):
    import callbacks.context as context
    from callbacks.navigation import find_units, select_first_found, select_found_unit
    from cityops.scope import Viewer

    rows = in_callback(app, find_units, "街道1001")
    assert [row.id["code"] for row in rows if getattr(row, "id", None)] == [STREET]
    assert in_callback(app, find_units, "") == [] and in_callback(app, find_units, None) == []
    clicked = [{"prop_id": json.dumps({"code": STREET, "type": "unit-search-result"}, separators=(",", ":"))
                + ".n_clicks", "value": 1}]
    assert in_callback(app, select_found_unit, [1], DEFAULTS, triggered=clicked) == ({**DEFAULTS, "unit": STREET}, "")
    drawn = [{**clicked[0], "value": 0}]  # results drawn with n_clicks 0: not a click
    assert in_callback(app, select_found_unit, [0], DEFAULTS, triggered=drawn) == (no_update, no_update)
    assert in_callback(app, select_first_found, 1, "community 01002", DEFAULTS) == \
        ({**DEFAULTS, "unit": "990101001002"}, "")
    assert in_callback(app, select_first_found, 1, "nowhere", DEFAULTS) == (no_update, no_update)
    assert in_callback(app, select_first_found, 1, None, DEFAULTS) == (no_update, no_update)
    assert in_callback(app, select_first_found, 1, "街道1001", "forged") == ({"unit": STREET}, "")

    monkeypatch.setattr(context, "current_viewer", lambda: Viewer("district officer", DISTRICT))
    outside = in_callback(app, find_units, "990102")
    assert len(outside) == 1 and "没有找到" in json.dumps(outside[0].to_plotly_json(), ensure_ascii=False)
    assert in_callback(app, select_first_found, 1, "街道2001", DEFAULTS) == (no_update, no_update)
    forged = [{**clicked[0], "prop_id": clicked[0]["prop_id"].replace(STREET, "990102001")}]
    assert in_callback(app, select_found_unit, [1], DEFAULTS, triggered=forged) == (no_update, no_update)


def test_the_language_comes_from_a_url_parameter_then_a_cookie(app):
    client = app.server.test_client()
    assert "海城市" in client.get("/_dash-layout").get_data(as_text=True)  # the deployment's default: zh
    response = client.get("/?unit=990101&lang=en")
    assert response.status_code == 200
    page = response.get_data(as_text=True)  # the page itself is in the language its URL chose, not only what follows
    assert '<html lang="en">' in page and "<title>Haicheng · OneScreen</title>" in page
    cookie = response.headers.get("Set-Cookie", "")
    assert cookie.startswith("onescreen-language=en;") and "SameSite=Lax" in cookie and "Path=/" in cookie
    layout = client.get("/_dash-layout").get_data(as_text=True)  # the client keeps the cookie
    assert "Haicheng" in layout and "海城市" not in layout and "Find a place or code" in layout
    # A language that does not exist changes nothing; zh switches back.
    assert "Set-Cookie" not in client.get("/?lang=fr").headers
    client.get("/?lang=zh")
    assert "搜索街道、社区或代码" in client.get("/_dash-layout").get_data(as_text=True)
