"""Leaders' drill-down in the browser: the view in the URL (deep links, back and forward, shared links), the unit
search, the language switch, and the screen on a 1024×768 tablet."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from cityops.db import session_scope
from cityops.hierarchy import Level
from cityops.models import Unit
from layouts.navigation import view_query
from layouts.page import initial_selection

# The alert tests' city: a community with a critical alert firing, on its own server (tests/browser/test_alerts.py).
from browser.test_alerts import alert_city  # noqa: E402, F401  (a fixture)

pytestmark = pytest.mark.browser


def units_at(settings, level: Level) -> list[tuple[str, str, str, str | None]]:
    """(code, name_zh, name_en, parent code) of every unit at a level, by code, straight from the database."""
    with session_scope(settings.database_url) as session:
        parents = dict(session.execute(select(Unit.id, Unit.code)).all())
        rows = session.execute(select(Unit.code, Unit.name_zh, Unit.name_en, Unit.parent_id)
                               .where(Unit.level == int(level)).order_by(Unit.code)).all()
        return [(code, zh, en, parents.get(parent)) for code, zh, en, parent in rows]


def current_crumb(screen) -> str | None:
    return screen.page.locator(".breadcrumb .crumb-current").get_attribute("data-code")


def wait_for_unit(screen, code: str | None, crumbs: int | None = None) -> None:
    """Until the breadcrumb ends at `code` and the KPI heading names the same unit (the panels followed)."""
    screen.page.wait_for_function(
        "code => document.querySelector('.breadcrumb .crumb-current')?.dataset.code === code", arg=code)
    name = screen.page.locator(".breadcrumb .crumb-current").inner_text()
    screen.page.wait_for_function("name => document.getElementById('kpi-heading')?.innerText.startsWith(name)",
                                  arg=name)
    if crumbs is not None:
        # Waited for, not read at once: the crumbs above the current one may be drawn a frame after it (seen once
        # after going back: the current crumb there, its parent's button not yet).
        screen.page.wait_for_function("n => document.querySelectorAll('.breadcrumb [data-code]').length === n",
                                      arg=crumbs, timeout=10_000)


REFRESHED = '"changedPropIds":["refresh-interval.n_intervals"]'


class Traffic:
    """The page's requests in flight, to reload or leave the page only when none would be cut off (the `screen`
    fixture counts an aborted request as an error)."""

    def __init__(self, page):
        self.page, self.open = page, set()
        page.on("request", lambda request: self.open.add(request))
        page.on("requestfinished", lambda request: self.open.discard(request))
        page.on("requestfailed", lambda request: self.open.discard(request))

    def settle(self) -> None:
        """Just after a refresh has been answered (the next is seconds away), once nothing is in flight."""
        with self.page.expect_response(lambda response: "_dash-update-component" in response.url
                                       and REFRESHED in (response.request.post_data or ""), timeout=20_000):
            pass
        while self.open:
            self.page.wait_for_timeout(50)


def search_of(screen) -> str:
    return screen.page.evaluate("window.location.search")


def history_length(screen) -> int:
    return screen.page.evaluate("window.history.length")


def test_a_deep_link_opens_its_view_and_a_bad_one_the_city(screen, screen_settings):
    district, name, _en, _parent = units_at(screen_settings, Level.DISTRICT)[1]
    link = f"/?unit={district}&indicator=aqi&range=30d"
    before = history_length(screen)  # the tab's blank page
    traffic = Traffic(screen.page)
    screen.open(link)
    wait_for_unit(screen, district, crumbs=2)
    screen.page.wait_for_function(
        "document.getElementById('map-title')?.innerText.includes('空气质量指数')")
    title = screen.page.locator("#map-title").inner_text()
    assert name in title and "空气质量指数" in title
    screen.page.wait_for_function("document.querySelector('.kpi-card.selected')?.dataset.indicator === 'aqi'")
    screen.page.wait_for_function("document.getElementById('header-indicator')?.innerText.includes('空气质量指数')")
    assert search_of(screen) == link[1:] and history_length(screen) == before + 1  # opening it pushed nothing
    screen.screenshot("deep-link")
    traffic.settle()

    # Codes nobody knows, indicators that do not exist, broken escapes: the city, and the URL says so (corrected
    # in place, keeping what is not the view's).
    screen.open("/?unit=110101&indicator=no_such_thing&range=1y&lang=xx&%E0%A4%A=1&start=%ZZ")
    city = units_at(screen_settings, Level.CITY)[0][0]
    wait_for_unit(screen, city, crumbs=1)
    screen.page.wait_for_function("window.location.search === '?lang=xx&%E0%A4%A=1'")
    assert history_length(screen) == before + 2  # the tab's two loads; the correction replaced, pushed nothing
    screen.assert_no_console_errors()


def test_a_deep_link_s_indicator_survives_the_selector_s_arrival(screen, screen_settings):
    """The indicator selector is mounted once the map has painted, holding the indicator selected then, while the
    address's own is being applied: it must follow the selection, not write its own back (a link's indicator was
    lost on about one load in two). Several loads, each judged once the selector is there and the page quiet."""
    district = units_at(screen_settings, Level.DISTRICT)[1][0]
    for _load in range(4):
        screen.open(f"/?unit={district}&indicator=aqi")
        screen.page.wait_for_function("document.getElementById('header-indicator')?.innerText.includes('空气质量指数')")
        screen.page.wait_for_timeout(800)  # what a selector writing back its own value would have changed by now
        shown = screen.page.evaluate("""() => [document.getElementById('map-title').innerText.startsWith('空气质量指数'),
            document.querySelector('.kpi-card.selected')?.dataset.indicator,
            document.getElementById('header-indicator').innerText.includes('空气质量指数'), window.location.search]""")
        assert shown == [True, "aqi", True, f"?unit={district}&indicator=aqi"], shown
    screen.assert_no_console_errors()


def test_drilling_down_makes_history_that_back_and_forward_walk(screen, screen_settings):
    screen.open()
    city = current_crumb(screen)
    start = history_length(screen)
    screen.polygons().nth(0).click()
    screen.page.wait_for_function("document.querySelectorAll('.breadcrumb [data-code]').length === 2")
    district = current_crumb(screen)
    wait_for_unit(screen, district)
    screen.page.wait_for_function(f"window.location.search === '?unit={district}'")
    streets = [code for code, _zh, _en, parent in units_at(screen_settings, Level.STREET) if parent == district]
    screen.page.wait_for_function(f"document.querySelectorAll('path.leaflet-interactive').length === {len(streets)}")
    screen.polygons().nth(0).click()
    screen.page.wait_for_function("document.querySelectorAll('.breadcrumb [data-code]').length === 3")
    street = current_crumb(screen)
    wait_for_unit(screen, street)
    # Another indicator from a KPI card is a step of its own.
    screen.page.locator('.kpi-card[data-indicator="aqi"]').click()
    screen.page.wait_for_function(f"window.location.search === '?unit={street}&indicator=aqi'")
    assert history_length(screen) == start + 3
    # Refreshes (every 5 s here) read data again for the same view and never add a step.
    refreshes = []
    screen.page.on("response", lambda response: "_dash-update-component" in response.url and refreshes.append(1))
    screen.page.wait_for_timeout(6_000)
    assert refreshes and history_length(screen) == start + 3

    screen.page.go_back()
    screen.page.wait_for_function("document.querySelector('.kpi-card.selected')?.dataset.indicator === "
                                  "'hotline_complaints'")
    assert current_crumb(screen) == street and search_of(screen) == f"?unit={street}"
    screen.page.go_back()
    wait_for_unit(screen, district, crumbs=2)
    screen.page.wait_for_function(f"document.querySelectorAll('path.leaflet-interactive').length === {len(streets)}")
    screen.page.go_back()
    wait_for_unit(screen, city, crumbs=1)
    assert search_of(screen) == ""
    screen.page.go_forward()
    wait_for_unit(screen, district, crumbs=2)
    screen.page.go_forward()
    screen.page.go_forward()
    wait_for_unit(screen, street, crumbs=3)
    screen.page.wait_for_function("document.querySelector('.kpi-card.selected')?.dataset.indicator === 'aqi'")
    screen.page.wait_for_function("document.getElementById('header-indicator')?.innerText.includes('空气质量指数')")
    assert history_length(screen) == start + 3  # walking the history added nothing to it
    screen.assert_no_console_errors()


def test_a_shared_link_opens_the_same_view_in_another_browser(screen, screen_settings, browser):
    screen.open()
    screen.polygons().nth(1).click()
    screen.page.wait_for_function("document.querySelectorAll('.breadcrumb [data-code]').length === 2")
    district = current_crumb(screen)
    screen.page.locator('.kpi-card[data-indicator="pm25"]').click()
    screen.page.wait_for_function(f"window.location.search === '?unit={district}&indicator=pm25'")
    shared = screen.page.url
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    try:
        other = context.new_page()
        errors = []
        other.on("console", lambda message: message.type == "error" and errors.append(message.text))
        other.goto(shared)
        other.wait_for_function(
            "code => document.querySelector('.breadcrumb .crumb-current')?.dataset.code === code", arg=district)
        other.wait_for_function("document.querySelector('.kpi-card.selected')?.dataset.indicator === 'pm25'")
        assert other.evaluate("window.location.search") == f"?unit={district}&indicator=pm25"
        assert errors == []
    finally:
        context.close()
    screen.assert_no_console_errors()


def test_the_comparison_rows_and_the_breadcrumb_drill_as_history_too(screen, screen_settings):
    screen.open()
    row = screen.page.locator(".comparison-row[data-code]").first
    row.wait_for(timeout=30_000)
    start = history_length(screen)
    district = row.get_attribute("data-code")
    row.click()
    wait_for_unit(screen, district, crumbs=2)
    screen.page.wait_for_function(f"window.location.search === '?unit={district}'")
    city = screen.page.locator(".breadcrumb button[data-code]").first.get_attribute("data-code")
    screen.page.locator(f'.breadcrumb button[data-code="{city}"]').click()
    screen.page.wait_for_function(f"window.location.search === '?unit={city}'")
    assert history_length(screen) == start + 2
    screen.page.go_back()
    wait_for_unit(screen, district, crumbs=2)
    screen.assert_no_console_errors()


def test_an_alert_row_drills_as_a_step_of_history(screen, alert_city):
    screen.base_url = alert_city.base_url
    screen.open()
    start = history_length(screen)
    screen.page.locator(f'.alert-row[data-alert="{alert_city.alert_id}"]').click()
    wait_for_unit(screen, alert_city.community)
    # The alert's indicator (12345 complaints) is the first screen's: the URL names the unit alone.
    screen.page.wait_for_function(f"window.location.search === '?unit={alert_city.community}'")
    assert history_length(screen) == start + 1
    screen.page.locator("#alert-drawer-close").click()
    screen.page.go_back()
    wait_for_unit(screen, screen.page.locator(".breadcrumb [data-code]").first.get_attribute("data-code"), crumbs=1)
    assert search_of(screen) == ""
    screen.assert_no_console_errors()


def test_the_browser_writes_the_url_exactly_as_the_server_reads_it(screen):
    """assets/navigation.js writes the query itself (no round trip on a drill-down); layouts/navigation.py reads
    it and corrects it. They must agree, or every step would cost a correction."""
    screen.open()
    defaults = initial_selection("hotline_complaints")
    selections = [defaults, {**defaults, "unit": "990101"}, {**defaults, "indicator": "aqi", "range": "30d"},
                  {**defaults, "unit": "A&B=C/d ü", "range": "24h", "compare": True},
                  {**defaults, "unit": "it's (1)!*~-_.", "indicator": "空气"},
                  {**defaults, "range": "custom", "start": "2026-11-01", "end": "2026-11-20", "compare": False},
                  {**defaults, "range": "7d", "start": "2026-11-01", "end": "2026-11-20"}, {}, None]
    for selection in selections:
        written = screen.page.evaluate(f"window.onescreen.navigation.viewQuery({json.dumps(selection)}, "
                                       f"{json.dumps(defaults)})")
        assert written == view_query(selection, defaults), selection
    screen.assert_no_console_errors()


def test_searching_by_chinese_name_or_code_drills_there(screen, screen_settings):
    screen.open()
    street, street_zh, _en, district = units_at(screen_settings, Level.STREET)[5]
    box = screen.page.locator("#unit-search")
    box.click()
    box.fill(street_zh)
    result = screen.page.locator(f'.search-result[data-code="{street}"]')
    result.wait_for()
    assert street_zh in result.inner_text() and "街道" in result.inner_text()
    district_zh = next(zh for code, zh, _en, _p in units_at(screen_settings, Level.DISTRICT) if code == district)
    assert district_zh in result.locator(".search-result-parent").inner_text()
    screen.screenshot("unit-search")
    result.click()
    wait_for_unit(screen, street, crumbs=3)
    screen.page.wait_for_function(f"window.location.search === '?unit={street}'")
    assert box.input_value() == ""

    # By code, with the keyboard only: type, down into the list, down again, Enter.
    community = units_at(screen_settings, Level.COMMUNITY)[-1][0]
    box.focus()
    screen.page.keyboard.type(community[:-1])  # a prefix: the community's siblings match too
    screen.page.locator(".search-result").nth(1).wait_for()
    screen.page.wait_for_function(
        "prefix => [...document.querySelectorAll('.search-result')].every(r => r.dataset.code.startsWith(prefix))",
        arg=community[:-1])
    codes = screen.page.locator(".search-result").evaluate_all("rows => rows.map(row => row.dataset.code)")
    screen.page.keyboard.press("ArrowDown")
    screen.page.keyboard.press("ArrowDown")
    assert screen.page.evaluate("document.activeElement.dataset.code") == codes[1]
    screen.page.keyboard.press("Enter")
    wait_for_unit(screen, codes[1], crumbs=4)

    # Enter in the box takes the first unit found: the exact code.
    box.focus()
    screen.page.keyboard.type(community)
    screen.page.wait_for_function("code => document.querySelector('.search-result')?.dataset.code === code",
                                  arg=community)
    screen.page.keyboard.press("Enter")
    wait_for_unit(screen, community, crumbs=4)
    screen.page.go_back()
    wait_for_unit(screen, codes[1], crumbs=4)
    screen.assert_no_console_errors()


def test_switching_to_english_and_back_keeps_the_view(screen, screen_settings):
    district, zh, en, _parent = units_at(screen_settings, Level.DISTRICT)[0]
    traffic = Traffic(screen.page)
    screen.open(f"/?unit={district}&indicator=aqi")
    wait_for_unit(screen, district)
    traffic.settle()
    screen.page.locator('.language-option[lang="en"]').click()
    screen.page.wait_for_function("document.querySelector('.screen')?.lang === 'en'")
    wait_for_unit(screen, district)
    assert screen.page.locator(".breadcrumb .crumb-current").inner_text() == en
    assert screen.page.locator(".brand-city").inner_text() == screen_settings.city_name_en
    screen.page.wait_for_function("document.getElementById('map-title')?.innerText.includes('Air quality')")
    assert search_of(screen) == f"?unit={district}&indicator=aqi"
    assert screen.page.locator("#unit-search").get_attribute("placeholder") == "Find a place or code"
    screen.page.wait_for_function("document.querySelectorAll('.main-svg').length >= 1", timeout=30_000)
    screen.screenshot("screen-english")
    traffic.settle()

    screen.page.locator('.language-option[lang="zh"]').click()
    screen.page.wait_for_function("document.querySelector('.screen')?.lang === 'zh'")
    wait_for_unit(screen, district)
    assert screen.page.locator(".breadcrumb .crumb-current").inner_text() == zh
    traffic.settle()

    # A link may choose the language too (?lang=en): the page is drawn in it, and it stays chosen.
    screen.open(f"/?unit={district}&lang=en")
    assert screen.page.locator(".screen").get_attribute("lang") == "en"
    wait_for_unit(screen, district)
    assert screen.page.locator(".breadcrumb .crumb-current").inner_text() == en
    traffic.settle()
    screen.open("/")
    assert screen.page.locator(".brand-city").inner_text() == screen_settings.city_name_en
    screen.assert_no_console_errors()


def sideways(screen) -> tuple[int, int]:
    """(how wide the page scrolls, how wide the window is)."""
    return screen.page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")


def test_a_1024x768_tablet_never_scrolls_sideways(screen, screen_settings):
    screen.page.set_viewport_size({"width": 1024, "height": 768})
    traffic = Traffic(screen.page)
    screen.open()
    screen.page.wait_for_function("document.querySelectorAll('.main-svg').length >= 1", timeout=30_000)
    width, inner = sideways(screen)
    assert width <= inner, (width, inner)
    screen.screenshot("tablet-1024x768")
    # Drilled, with the search open: still no sideways scroll.
    screen.polygons().nth(0).click()
    screen.page.wait_for_function("document.querySelectorAll('.breadcrumb [data-code]').length === 2")
    screen.page.locator("#unit-search").fill("99")
    screen.page.locator(".search-result").first.wait_for()
    width, inner = sideways(screen)
    assert width <= inner, (width, inner)
    screen.screenshot("tablet-search")
    # In English (longer words), three crumbs deep.
    street = units_at(screen_settings, Level.STREET)[-1][0]
    traffic.settle()
    screen.open(f"/?unit={street}&lang=en")
    wait_for_unit(screen, street, crumbs=3)
    screen.page.wait_for_function("document.querySelectorAll('.main-svg').length >= 1", timeout=30_000)
    width, inner = sideways(screen)
    assert width <= inner, (width, inner)
    screen.screenshot("tablet-english")
    screen.assert_no_console_errors()


def test_a_wall_changes_its_view_without_writing_the_url(screen, screen_settings):
    """The wall's playlist changes the selection every few seconds: never a history entry, never a URL change.
    What the browser does with a new selection (assets/navigation.js `reflect`) is asked directly, as the
    playlist's next step would ask it."""
    district = units_at(screen_settings, Level.DISTRICT)[2][0]
    defaults = initial_selection("hotline_complaints")
    step = {**defaults, "unit": district, "indicator": "aqi"}
    before = history_length(screen)
    traffic = Traffic(screen.page)
    for load, path in enumerate(("/wall", "/?mode=wall")):
        if load:
            traffic.settle()
        screen.page.goto(screen.base_url + path)
        screen.polygons().first.wait_for(timeout=30_000)
        screen.page.locator(".kpi-card").first.wait_for(timeout=30_000)
        screen.page.evaluate("([step, defaults]) => window.onescreen.navigation.reflect(step, null, defaults, null)",
                             [step, defaults])
        assert screen.page.evaluate("window.location.pathname + window.location.search") == path
        assert history_length(screen) == before + load + 1
    # The same step in a browser is a step of history.
    traffic.settle()
    screen.open("/")
    screen.page.evaluate("([step, defaults]) => window.onescreen.navigation.reflect(step, null, defaults, null)",
                         [step, defaults])
    assert search_of(screen) == f"?unit={district}&indicator=aqi" and history_length(screen) == before + 4
    screen.assert_no_console_errors()
