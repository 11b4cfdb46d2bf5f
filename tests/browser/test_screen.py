"""The flows a person clicks through on the one screen, in Debian's chromium."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import select

from cityops.catalog import load_catalog
from cityops.db import session_scope
from cityops.hierarchy import Level
from cityops.models import Unit
from cityops.readings import unit_readings
from cityops.scope import Viewer, viewer_scope
from cityops.storage import indicator_ids
from layouts.text import format_value

pytestmark = pytest.mark.browser


def units_named(settings, level: Level, parent_code: str | None = None) -> dict[str, str]:
    """code → Chinese name of the units at a level (optionally under one parent), straight from the database."""
    with session_scope(settings.database_url) as session:
        query = select(Unit.code, Unit.name_zh).where(Unit.level == int(level))
        if parent_code is not None:
            parent_id = session.scalar(select(Unit.id).where(Unit.code == parent_code))
            query = query.where(Unit.parent_id == parent_id)
        return dict(session.execute(query).all())


def drill_into_first_district(screen, settings) -> str:
    """Click a district on the map; return the code of the district the breadcrumb then shows."""
    districts = units_named(settings, Level.DISTRICT)
    screen.polygons().nth(0).click()
    screen.page.wait_for_function("document.querySelectorAll('.breadcrumb [data-code]').length === 2")
    code = screen.page.locator(".breadcrumb .crumb-current").get_attribute("data-code")
    assert code in districts
    # The panels are redrawn for the district; a click on a card being replaced would be lost.
    name = screen.page.locator(".breadcrumb .crumb-current").inner_text()
    screen.page.wait_for_function(f"document.getElementById('kpi-heading').innerText.startsWith({name!r})")
    return code


def test_first_screen_draws_every_district_without_console_errors(screen, screen_settings):
    screen.open()
    districts = units_named(screen_settings, Level.DISTRICT)
    screen.page.wait_for_function(f"document.querySelectorAll('path.leaflet-interactive').length === {len(districts)}")
    assert screen.polygons().count() == len(districts)
    # Polygons are filled with a status colour, not Leaflet's default blue.
    fills = {screen.polygons().nth(i).get_attribute("fill") for i in range(screen.polygons().count())}
    assert fills and "#3388ff" not in fills
    assert screen.page.locator(".brand-city").inner_text() == screen_settings.city_name_zh
    # The map paints first now; the cards arrive by their own callback, possibly a moment later.
    indicators = len(load_catalog(screen_settings.catalog_path).kpis())
    screen.page.wait_for_function(f"document.querySelectorAll('.kpi-card').length === {indicators}")
    assert screen.page.locator(".kpi-card").count() == indicators
    # The charts mount last (they load plotly.js); the screenshot shows the whole screen.
    screen.page.wait_for_function("document.querySelectorAll('.main-svg').length >= 2", timeout=30_000)
    screen.screenshot("screen-1920x1080")
    screen.assert_no_console_errors()


def test_clicking_a_district_shows_its_streets_and_the_breadcrumb_goes_back(screen, screen_settings):
    screen.open()
    city_code = screen.page.locator(".breadcrumb .crumb-current").get_attribute("data-code")
    district = drill_into_first_district(screen, screen_settings)
    streets = units_named(screen_settings, Level.STREET, district)
    screen.page.wait_for_function(f"document.querySelectorAll('path.leaflet-interactive').length === {len(streets)}")
    assert screen.breadcrumb()[-1] == units_named(screen_settings, Level.DISTRICT)[district]
    screen.screenshot("screen-district")

    screen.page.locator(f'.breadcrumb button[data-code="{city_code}"]').click()
    districts = units_named(screen_settings, Level.DISTRICT)
    screen.page.wait_for_function("document.querySelectorAll('.breadcrumb [data-code]').length === 1")
    screen.page.wait_for_function(f"document.querySelectorAll('path.leaflet-interactive').length === {len(districts)}")
    screen.assert_no_console_errors()


MAP_COVER = """() => {
    const meets = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5
        && b.top < a.bottom - 0.5;
    const map = document.querySelector('.leaflet-container').getBoundingClientRect();
    const legend = document.querySelector('.legend').getBoundingClientRect();
    const shapes = [...document.querySelectorAll('path.leaflet-interactive')].map(path => path.getBoundingClientRect());
    return {legendOverMap: meets(map, legend), legendRows: document.querySelectorAll('.legend-row').length,
            covered: shapes.filter(shape => meets(shape, legend)).length,
            outside: shapes.filter(shape => shape.left < map.left - 1 || shape.right > map.right + 1
                                   || shape.top < map.top - 1 || shape.bottom > map.bottom + 1).length};
}"""


def test_the_legend_hides_no_part_of_the_map(screen, screen_settings):
    """The legend sits under the map, not over it: a box in its corner hid the communities a street's map drew there
    (they could be neither seen nor clicked). Every unit is drawn inside the map, at the city and a level down."""
    screen.open()
    for step in ("city", "district"):
        if step == "district":
            district = drill_into_first_district(screen, screen_settings)
            streets = units_named(screen_settings, Level.STREET, district)
            screen.page.wait_for_function(
                f"document.querySelectorAll('path.leaflet-interactive').length === {len(streets)}")
            screen.page.wait_for_timeout(400)  # the map's fit to the new level is animated
        cover = screen.page.evaluate(MAP_COVER)
        assert cover == {"legendOverMap": False, "legendRows": 5, "covered": 0, "outside": 0}, (step, cover)
    screen.assert_no_console_errors()


def test_kpi_card_shows_the_value_in_the_database(screen, screen_settings):
    screen.open()
    catalog = load_catalog(screen_settings.catalog_path)
    with session_scope(screen_settings.database_url) as session:
        scope = viewer_scope(session, Viewer())
        readings = unit_readings(session, scope, catalog, indicator_ids(session, catalog), scope.root_id,
                                 int(time.time()))
    for key in ("hotline_complaints", "aqi", "grid_overdue_rate"):
        indicator, reading = catalog[key], readings[key]
        assert reading.value is not None
        card = screen.page.locator(f'.kpi-card[data-indicator="{key}"]')
        card.locator(".kpi-number").wait_for()
        assert card.locator(".kpi-number").inner_text() == format_value(reading.value, indicator.decimals)
        assert card.locator(".kpi-unit").inner_text() == indicator.unit_of_measure
        assert re.search(r"\d{2}:\d{2}", card.locator(".kpi-asof").inner_text())
    screen.assert_no_console_errors()


def test_a_communitys_street_level_indicators_show_the_streets_values_named(screen, screen_settings):
    """AQI is measured per street: a community's card and trend show its street's, saying so (they were seven grey
    "not measured" cards and an empty chart), and the value is the street's in the database."""
    catalog = load_catalog(screen_settings.catalog_path)
    with session_scope(screen_settings.database_url) as session:
        community = session.scalars(select(Unit).where(Unit.level == int(Level.COMMUNITY)).order_by(Unit.code)).first()
        street = session.get(Unit, community.parent_id)
        code, street_name = community.code, street.name_zh
        scope = viewer_scope(session, Viewer())
        readings = unit_readings(session, scope, catalog, indicator_ids(session, catalog), street.id,
                                 int(time.time()))
    screen.open(f"/?unit={code}&indicator=aqi")
    card = screen.page.locator('.kpi-card[data-indicator="aqi"]')
    card.locator(".kpi-number").wait_for()
    assert card.locator(".kpi-number").inner_text() == format_value(readings["aqi"].value, catalog["aqi"].decimals)
    assert card.locator(".kpi-owner").inner_text() == f"↑ {street_name}"
    assert "inherited" in card.get_attribute("class") and street_name in card.get_attribute("title")
    screen.page.wait_for_function(f"document.getElementById('trend-title').innerText.includes({street_name!r})")
    screen.page.wait_for_selector("#trend-graph .main-svg")
    assert screen.page.locator(".kpi-card.not-measured").count() == 0  # every indicator has someone's value here
    assert "社区/村级不统计" in screen.page.locator(".legend").inner_text()  # the map's communities: none coloured
    screen.assert_no_console_errors()


def test_kpi_cards_show_whole_names_and_keep_number_and_change_apart_in_english(screen):
    """English names are the longest; on a 1920×1080 browser each card shows its whole name, and its number,
    change and sparkline side by side without touching."""
    screen.page.set_viewport_size({"width": 1920, "height": 1080})
    screen.open("/?lang=en")
    screen.page.wait_for_function("document.querySelectorAll('.kpi-card .kpi-change').length > 3")
    layout = screen.page.evaluate("""() => [...document.querySelectorAll('.kpi-card:not(.not-measured)')].map(card => {
        const box = selector => { const el = card.querySelector(selector); return el && el.getBoundingClientRect(); };
        const name = card.querySelector('.kpi-name');
        const [value, change, spark] = [box('.kpi-value'), box('.kpi-change'), box('.kpi-spark')];
        const meets = (a, b) => a && b && a.width > 0 && b.width > 0 && a.left < b.right - 0.5
            && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
        return {name: name.innerText, cut: name.scrollWidth > name.clientWidth + 1,
                touching: meets(value, change) || meets(change, spark) || meets(value, spark)};
    })""")
    assert layout and [card["name"] for card in layout if card["cut"]] == []
    assert [card["name"] for card in layout if card["touching"]] == []
    screen.assert_no_console_errors()


def test_switching_indicator_recolours_without_fetching_geometry(screen, screen_settings):
    geometry_requests: list[str] = []
    screen.page.on("request", lambda request: "/geo/" in request.url and geometry_requests.append(request.url))
    screen.open()
    screen.page.wait_for_timeout(500)
    assert geometry_requests == []  # the first level's boundaries ride with the layout
    screen.page.locator('.kpi-card[data-indicator="aqi"]').click()
    screen.page.wait_for_function("document.querySelector('.kpi-card.selected')?.dataset.indicator === 'aqi'")
    screen.page.wait_for_function("document.querySelector('.map-panel .panel-title').innerText.includes('空气质量指数')")
    screen.page.wait_for_timeout(500)
    assert geometry_requests == [], geometry_requests
    # A new level is fetched by URL, once; switching indicators there fetches nothing again.
    drill_into_first_district(screen, screen_settings)
    screen.page.wait_for_timeout(500)
    assert sorted(url.rsplit("/", 1)[1] for url in geometry_requests) == ["children.pbf", "labels.geojson"]
    screen.page.locator('.kpi-card[data-indicator="hotline_complaints"]').click()
    screen.page.wait_for_function(
        "document.querySelector('.kpi-card.selected')?.dataset.indicator === 'hotline_complaints'")
    screen.page.wait_for_timeout(500)
    assert len(geometry_requests) == 2, geometry_requests
    screen.assert_no_console_errors()


def test_refresh_keeps_the_drill_down(screen, screen_settings):
    screen.open()
    district = drill_into_first_district(screen, screen_settings)
    streets = units_named(screen_settings, Level.STREET, district)
    refreshes = []
    screen.page.on("response", lambda response: "_dash-update-component" in response.url and refreshes.append(1))
    before = len(refreshes)
    # The test app refreshes every 5 s; wait for at least one refresh cycle to have run.
    screen.page.wait_for_timeout(6_500)
    assert len(refreshes) > before
    assert screen.page.locator(".breadcrumb .crumb-current").get_attribute("data-code") == district
    assert screen.polygons().count() == len(streets)
    assert screen.page.locator(".kpi-card .kpi-number").count() > 0  # panels never blanked
    # Dash's undo history (each tick of the clock and the refresh adds to it, for ever) is cut back here too, not
    # only on a wall (assets/wall.js): 500 entries are down to the last few within one trimming period.
    screen.page.evaluate("window.store.getState().history.past.push(...Array(500).fill({}))")
    screen.page.wait_for_function(
        "window.store.getState().history.past.length <= window.onescreen.historyKept + 3", timeout=12_000)
    screen.assert_no_console_errors()


def test_the_screen_loads_nothing_from_the_internet(screen, screen_settings):
    hosts: set[str] = set()
    screen.page.on("request", lambda request: hosts.add(request.url.split("/")[2]))
    screen.open()
    screen.page.wait_for_timeout(1_000)
    assert hosts == {screen.base_url.split("/")[2]}, hosts  # no CDN, no web fonts, no tiles
    screen.assert_no_console_errors()


def test_charts_come_after_the_map_and_refreshes_update_them_in_place(screen, screen_settings):
    # Record when the polygons, the cards, the trend and the comparison rows first appear, from the page's clock.
    screen.page.add_init_script("""
        window.__firstSeen = {};
        new MutationObserver(() => {
            for (const [name, selector] of [["map", "path.leaflet-interactive"], ["kpi", ".kpi-card"],
                                            ["trend", "#trend-graph .main-svg"],
                                            ["rows", "#comparison-rows .comparison-row[data-code]"]]) {
                if (!(name in window.__firstSeen) && document.querySelector(selector)) {
                    window.__firstSeen[name] = performance.now();
                }
            }
        }).observe(document, {childList: true, subtree: true});
    """)
    screen.open()
    screen.page.wait_for_function("document.querySelector('#trend-graph .main-svg')"
                                  " && document.querySelector('#comparison-rows .comparison-row[data-code]')",
                                  timeout=30_000)
    seen = screen.page.evaluate("window.__firstSeen")
    assert seen["map"] < seen["kpi"] < seen["trend"] and seen["kpi"] < seen["rows"], seen
    assert screen.page.locator(".panel-placeholder").count() == 0  # every placeholder was replaced
    # Mark the drawn plot and the rows' frame; a refresh must update them, not replace them (a remount would
    # redraw and flicker).
    screen.page.evaluate("document.querySelectorAll('.js-plotly-plot, #comparison-rows')"
                         ".forEach(element => { element.__mark = 'kept'; })")
    updates = []
    screen.page.on("response", lambda response: "_dash-update-component" in response.url
                   and "trend-figure" in (response.request.post_data or "") and updates.append(1))
    screen.page.wait_for_timeout(6_500)  # the test app refreshes every 5 s
    assert updates, "no refresh reached the trend chart"
    marks = screen.page.evaluate("[...document.querySelectorAll('.js-plotly-plot, #comparison-rows')]"
                                 ".map(element => element.__mark)")
    assert marks == ["kept", "kept"], marks
    screen.assert_no_console_errors()


def test_indicator_selector_switches_indicator_without_fetching_geometry(screen, screen_settings):
    geometry_requests: list[str] = []
    screen.page.on("request", lambda request: "/geo/" in request.url and geometry_requests.append(request.url))
    screen.open()
    screen.page.locator(".kpi-card").first.wait_for()
    screen.page.locator("#header-indicator").click()
    options = screen.page.locator(".dash-dropdown-options [role=option]")
    options.first.wait_for()
    # Grouped by level: each group opens with a header that cannot be chosen.
    assert screen.page.locator(".dash-dropdown-options [role=option]:has(input:disabled)").count() >= 2
    screen.page.locator(".dash-dropdown-search").fill("空气")
    screen.page.locator(".dash-dropdown-options [role=option]", has_text="空气质量指数").click()
    screen.page.wait_for_function("document.querySelector('.map-panel .panel-title').innerText.includes('空气质量指数')")
    screen.page.wait_for_function("document.querySelector('.kpi-card.selected')?.dataset.indicator === 'aqi'")
    assert "空气质量指数" in screen.page.locator("#header-indicator").inner_text()
    screen.page.wait_for_timeout(500)
    assert geometry_requests == []  # the first level rides with the layout; recolouring fetches nothing
    screen.assert_no_console_errors()
