"""The map's layers in chromium: open incidents as clustered points (coloured overdue/open, a tooltip with nothing
personal, a toggle), and drilling down still works with boundaries fetched as geobuf."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from cityops.db import session_scope
from cityops.hierarchy import Level
from cityops.incidents import community_locator, incident_rows, upsert_incidents
from cityops.tree import load_tree
from layouts.ids import PageIds

pytestmark = pytest.mark.browser

HOUR = 3600
SOURCE = "browser-311"


@pytest.fixture
def incidents(screen_settings):
    """Twelve open incidents in the first district's first street (four of them overdue) and one closed; removed
    afterwards, so the other browser tests see the map as before."""
    now = int(time.time())
    with session_scope(screen_settings.database_url) as session:
        tree = load_tree(session)
        district = tree.at_level(Level.DISTRICT).index[0]
        street = tree.children(district).index[0]
        communities = tree.children(street)
        fields = []
        for number in range(13):
            row = communities.iloc[number % len(communities)]
            hours = 100 if number % 3 == 0 else 2  # 0, 3, 6, 9 (and the closed 12) are past the 72 h default
            fields.append({
                "external_id": f"b{number}", "category": "井盖缺失" if number % 2 else "路灯故障",
                "status": "closed" if number == 12 else "open", "source_status": None,
                "opened_at": now - hours * HOUR, "updated_at": now - hours * HOUR, "closed_at": None,
                "lon": float(row["center_lon"]) + 0.0004 * (number % 4), "lat": float(row["center_lat"]),
                "address": f"海城路 {number} 号", "description": "联系 138****0000",
                "contact_masked": {"phone": "139****1234"}, "raw": {"id": number}})
        upsert_incidents(session, incident_rows(community_locator(session), fields, source=SOURCE, run_id=None,
                                                now=now))
        code = str(tree.frame.loc[district, "code"])
    yield {"open": 12, "overdue": 4, "district": code}
    with session_scope(screen_settings.database_url) as session:
        session.execute(text("DELETE FROM incidents WHERE source = :source"), {"source": SOURCE})


def cluster_counts(page) -> tuple[int, int]:
    """(incidents, overdue ones) in the clusters and single points on the map now."""
    return page.evaluate("""() => {
        let count = 0, overdue = 0;
        document.querySelectorAll('.incident-cluster').forEach(c => {
            count += Number(c.dataset.count); overdue += Number(c.dataset.overdue); });
        document.querySelectorAll('.incident-dot').forEach(d => {
            count += 1; overdue += d.classList.contains('incident-overdue') ? 1 : 0; });
        return [count, overdue];
    }""")


def test_incident_clusters_render_toggle_and_the_map_still_drills_with_geobuf(screen, incidents):
    geometry = []
    screen.page.on("response", lambda response: "/geo/" in response.url and geometry.append(
        (response.url.rsplit("/", 1)[1], response.headers.get("content-type"), response.status)))
    screen.open()
    page = screen.page
    page.wait_for_function("document.querySelectorAll('.incident-cluster, .incident-dot').length > 0")
    assert cluster_counts(page) == [incidents["open"], incidents["overdue"]]
    assert page.locator(".incident-cluster.incident-overdue").count() >= 1  # a cluster holding overdue ones is red
    assert "12" in page.locator("#incident-count").inner_text() and "4" in page.locator("#incident-count").inner_text()

    # Into the cluster: it zooms to its points; a point's tooltip tells category, state, time, address only.
    page.locator(".incident-cluster-marker").first.click()
    page.wait_for_function("document.querySelectorAll('.incident-dot').length > 0", timeout=10_000)
    page.wait_for_timeout(400)  # the zoom animation
    page.locator(".incident-marker").first.hover()
    tooltip = page.locator(".incident-tooltip").first
    tooltip.wait_for()
    words = tooltip.inner_text()
    assert ("井盖缺失" in words or "路灯故障" in words) and ("超期" in words or "办理中" in words)
    assert "海城路" in words and "受理于" in words and "139" not in words and "138" not in words
    screen.screenshot("map-incidents")

    # The toggle hides the points and shows them again.
    page.locator("#incident-toggle").click()
    page.wait_for_function("document.querySelectorAll('.incident-cluster, .incident-dot').length === 0")
    assert "layer-off" in page.locator("#incident-toggle").get_attribute("class")
    page.locator("#incident-toggle").click()
    page.wait_for_function("document.querySelectorAll('.incident-cluster, .incident-dot').length > 0")

    # Drilling down: the district's streets arrive as geobuf and are drawn; the points follow the district.
    page.locator(".breadcrumb [data-code]").first.wait_for()
    district_polygon = page.evaluate("""(code) => {
        for (const el of document.querySelectorAll('path.leaflet-interactive')) {
            const box = el.getBoundingClientRect();
            for (const [fx, fy] of [[0.5, 0.5], [0.3, 0.3], [0.7, 0.7], [0.3, 0.7], [0.7, 0.3]]) {
                const x = box.left + box.width * fx, y = box.top + box.height * fy;
                if (document.elementFromPoint(x, y) === el) return [x, y];
            }
        }
        return null;
    }""", incidents["district"])
    assert district_polygon is not None
    page.mouse.click(*district_polygon)
    page.wait_for_function("document.querySelectorAll('.breadcrumb [data-code]').length === 2")
    drilled = page.locator(".breadcrumb .crumb-current").get_attribute("data-code")
    page.wait_for_function("document.querySelector('.map-panel .panel-title').innerText.length > 0")
    page.wait_for_function("document.querySelectorAll('path.leaflet-interactive').length > 0")
    page.wait_for_timeout(500)
    fetched = {name: (kind, status) for name, kind, status in geometry}
    assert fetched.get("children.pbf") == ("application/x-protobuf", 200), geometry
    assert drilled and all(name != "children.geojson" for name, _, _ in geometry)
    if drilled == incidents["district"]:
        page.wait_for_function("document.querySelectorAll('.incident-cluster, .incident-dot').length > 0")
    else:
        page.wait_for_function("document.querySelectorAll('.incident-cluster, .incident-dot').length === 0")
    screen.screenshot("map-incidents-district")
    screen.assert_no_console_errors()


# Inside the polygon `index` of the map (path.leaflet-interactive), a point where it is the topmost element.
POINT_INSIDE = """(index) => {
    const el = document.querySelectorAll('path.leaflet-interactive')[index];
    const box = el.getBoundingClientRect();
    for (let step = 0; step <= 8; step++) {
        for (const [fx, fy] of [[0.5, 0.5], [0.5 - step / 20, 0.5], [0.5 + step / 20, 0.5], [0.5, 0.5 - step / 20],
                                [0.5, 0.5 + step / 20], [0.5 - step / 20, 0.5 - step / 20]]) {
            const x = box.left + box.width * fx, y = box.top + box.height * fy;
            if (document.elementFromPoint(x, y) === el) return [x, y];
        }
    }
    return null;
}"""


def shown_units(screen) -> dict[str, tuple[str, str]]:
    """Each polygon on the map as the browser draws it: its tooltip's name -> (its fill, its tooltip's text)."""
    page = screen.page
    # All points first: a hovered polygon is brought to the front, which reorders the paths.
    points = [page.evaluate(POINT_INSIDE, index) for index in range(screen.polygons().count())]
    assert None not in points, "a polygon has no uncovered point"
    shown = {}
    for x, y in points:
        page.mouse.move(x, y)
        tooltip = page.locator(".leaflet-tooltip.unit-tooltip:visible").first
        tooltip.wait_for()
        # A refresh redrawing the layer under the pointer may leave the same unit's tooltip on its way out for a
        # moment; two different units' would be a pointer describing two places.
        names = {name.strip() for name in page.locator(".leaflet-tooltip.unit-tooltip b").all_text_contents()}
        assert len(names) == 1, names
        fill = page.evaluate("([x, y]) => document.elementFromPoint(x, y).getAttribute('fill')", [x, y])
        shown[tooltip.locator("b").inner_text()] = (fill, tooltip.inner_text())
        page.mouse.move(1, 1)  # off the map: the tooltip closes before the next polygon's opens
        page.wait_for_function("document.querySelectorAll('.leaflet-tooltip.unit-tooltip').length === 0")
    return shown


VARIED = "aqi"  # the indicator whose districts' roll-ups `varied_districts` sets


@pytest.fixture
def varied_districts(screen_settings):
    """The districts' current roll-ups of VARIED set to one critical, one warning, one normal but stale and one
    with nobody reporting (no data), so the map shows every colour it can; put back afterwards."""
    from cityops.catalog import Direction, load_catalog

    indicator = load_catalog(screen_settings.catalog_path)[VARIED]
    thresholds = indicator.thresholds_at(Level.DISTRICT)
    worse = 1 if indicator.direction == Direction.HIGHER_IS_WORSE else -1
    gap = abs(thresholds.critical - thresholds.warning)
    now = int(time.time())
    fresh, stale = now - 60, now - 3 * indicator.interval_seconds
    wanted = [(thresholds.critical + worse * gap, fresh, 1), (thresholds.warning + worse * gap / 2, fresh, 1),
              (thresholds.warning - worse * gap, stale, 1), (thresholds.warning - worse * gap, fresh, 0)]
    where = "WHERE unit_id = :unit AND indicator_id = (SELECT id FROM indicators WHERE key = :key)"
    with session_scope(screen_settings.database_url) as session:
        districts = [int(unit) for unit in load_tree(session).at_level(Level.DISTRICT).index]
        kept = [session.execute(text(f"SELECT value, latest_observed_at, reported FROM current_rollups {where}"),
                                {"unit": unit, "key": VARIED}).one() for unit in districts]
        for unit, (value, observed, reporting) in zip(districts, wanted):
            session.execute(text(f"UPDATE current_rollups SET value = :value, latest_observed_at = :observed, "
                                 f"reported = CASE WHEN :reporting = 1 THEN expected ELSE 0 END {where}"),
                            {"value": value, "observed": observed, "reporting": reporting, "unit": unit,
                             "key": VARIED})
    yield
    with session_scope(screen_settings.database_url) as session:
        for unit, (value, observed, reported) in zip(districts, kept):
            session.execute(text(f"UPDATE current_rollups SET value = :value, latest_observed_at = :observed, "
                                 f"reported = :reported {where}"),
                            {"value": value, "observed": observed, "reported": reported, "unit": unit,
                             "key": VARIED})


@pytest.mark.parametrize("language", ["zh", "en"])
def test_each_unit_is_filled_and_described_as_its_reading_says(screen, screen_settings, varied_districts, language):
    """The map's hideout (each unit's status as a place in a list of states, and its value as shown; the states'
    colours and words once) decoded by assets/map.js: every polygon of the city (one district in each status) and
    of a district is filled with its status's colour, and its tooltip gives its own name, its value and its status
    word in the page's language — what the ranking and comparison panels read for the same units
    (readings.children_readings)."""
    from cityops.catalog import load_catalog
    from cityops.readings import children_readings
    from cityops.scope import Viewer, viewer_scope
    from cityops.storage import indicator_ids
    from layouts.text import format_value, status_text
    from layouts.theme import STATUS_COLOURS

    catalog = load_catalog(screen_settings.catalog_path)

    def expected(unit_id: int) -> dict[str, tuple[str, str, str]]:
        """name in `language` -> (colour, value as shown, status word) of the children of `unit_id`."""
        with session_scope(screen_settings.database_url) as session:
            rows = children_readings(session, viewer_scope(session, Viewer()), catalog,
                                     indicator_ids(session, catalog), unit_id, VARIED, int(time.time()))
        return {(row["name_en"] if language == "en" else row["name_zh"]):
                (STATUS_COLOURS[row["status"]],
                 format_value(None if row["value"] is None or row["value"] != row["value"] else row["value"],
                              catalog[VARIED].decimals),
                 status_text(row["status"], language)) for row in rows.to_dict("records")}

    def check(unit_id: int) -> set[str]:
        truth = expected(unit_id)
        # The page opens on the first map (the default indicator's colours), then takes the address's indicator:
        # its colours come with the map's title.
        screen.page.wait_for_function("name => document.querySelector('.map-panel .panel-title')?.innerText"
                                      ".startsWith(name)", arg=catalog[VARIED].name(language))
        shown = shown_units(screen)
        assert set(shown) == set(truth)
        for name, (fill, tooltip) in shown.items():
            colour, value, word = truth[name]
            assert fill == colour, (name, fill, colour)
            assert value in tooltip and tooltip.rstrip().endswith(word), (name, tooltip, value, word)
        return {colour for colour, _value, _word in truth.values()}

    with session_scope(screen_settings.database_url) as session:
        tree = load_tree(session)
        city, district = tree.root_id, int(tree.at_level(Level.DISTRICT).index[1])
        district_code, streets = tree.row(district).code, len(tree.child_ids(district))
    screen.open(f"/?indicator={VARIED}&lang={language}")  # the city: the first map, sent with the page
    assert check(city) == {STATUS_COLOURS[status] for status in ("critical", "warning", "stale", "nodata")}
    screen.open(f"/?unit={district_code}&indicator={VARIED}&lang={language}")  # streets: show_map's answer
    screen.page.wait_for_function(
        "code => document.querySelector('.breadcrumb .crumb-current')?.dataset.code === code", arg=district_code)
    screen.page.wait_for_function(f"document.querySelectorAll('path.leaflet-interactive').length === {streets}")
    screen.page.wait_for_timeout(500)  # the streets' hideout styles the polygons as they are added
    check(district)
    screen.assert_no_console_errors()


MAP_EXTENT = """() => {
    let left = Infinity, right = -Infinity, top = Infinity, bottom = -Infinity;
    const shapes = [...document.querySelectorAll('path.leaflet-interactive')];
    shapes.forEach(path => { const box = path.getBoundingClientRect(); left = Math.min(left, box.left);
        right = Math.max(right, box.right); top = Math.min(top, box.top); bottom = Math.max(bottom, box.bottom); });
    return {polygons: shapes.length, width: Math.round(right - left), height: Math.round(bottom - top),
            title: document.getElementById('map-title').innerText};
}"""


def test_colours_that_change_while_the_boundaries_load_are_the_ones_drawn(screen, screen_settings):
    """A drill into a district, then another indicator before the district's boundaries have arrived (a viewer
    quick on the selector; a refresh during a drill-down): the streets are drawn in the second indicator's
    colours. dash-leaflet's layer ignores a new `hideout` while it loads its URL, then draws with the one it had:
    the first indicator's colours under the second's title and legend until some later change."""
    from cityops.catalog import load_catalog
    from cityops.readings import children_readings
    from cityops.scope import Viewer, viewer_scope
    from cityops.storage import indicator_ids
    from layouts.theme import STATUS_COLOURS

    catalog = load_catalog(screen_settings.catalog_path)
    with session_scope(screen_settings.database_url) as session:
        tree = load_tree(session)
        district_id = int(tree.at_level(Level.DISTRICT).index[0])
        district, name = str(tree.frame.loc[district_id, "code"]), str(tree.frame.loc[district_id, "name_zh"])
        street = int(tree.child_ids(district_id)[0])
        where = "WHERE unit_id = :unit AND indicator_id = (SELECT id FROM indicators WHERE key = :key)"
        # AQI is reported by the streets themselves: their snapshot rows are current_values.
        kept = session.execute(text(f"SELECT value, observed_at FROM current_values {where}"),
                               {"unit": street, "key": VARIED}).one()
        # One street critical for VARIED, so its colours differ from the first indicator's whatever the data.
        critical = catalog[VARIED].thresholds_at(Level.STREET).critical * 2
        session.execute(text(f"UPDATE current_values SET value = :value, observed_at = :now {where}"),
                        {"value": critical, "now": int(time.time()) - 60, "unit": street, "key": VARIED})

    def fills(indicator: str) -> list[str]:
        with session_scope(screen_settings.database_url) as session:
            rows = children_readings(session, viewer_scope(session, Viewer()), catalog,
                                     indicator_ids(session, catalog), district_id, indicator, int(time.time()))
        return sorted(STATUS_COLOURS[status] for status in rows["status"])

    try:
        assert fills(VARIED) != fills("hotline_complaints")
        screen.open()
        held = []
        screen.page.route(f"**/geo/{district}/*", lambda route: held.append(route))

        def select(indicator: str) -> None:
            screen.page.evaluate("""([store, unit, indicator]) => window.dash_clientside.set_props(store,
                {data: {unit: unit, indicator: indicator}})""", [PageIds.SELECTION, district, indicator])

        select("hotline_complaints")
        screen.page.wait_for_function(f"document.getElementById('map-title').innerText.includes({name!r})")
        select(VARIED)
        screen.page.wait_for_function("name => document.getElementById('map-title').innerText.startsWith(name)",
                                      arg=catalog[VARIED].name("zh"))
        screen.page.wait_for_timeout(300)
        assert len(held) == 2, "the district's boundaries and labels were asked for, and are held"
        for route in held:
            route.continue_()
        streets = len(fills(VARIED))
        screen.page.wait_for_function(f"document.querySelectorAll('path.leaflet-interactive').length === {streets}")
        screen.page.wait_for_timeout(2000)  # decoded, drawn, and (new code) given the colours again
        shown = sorted(screen.page.evaluate(
            "() => [...document.querySelectorAll('path.leaflet-interactive')].map(path => path.getAttribute('fill'))"))
        assert shown == fills(VARIED), (shown, fills(VARIED), fills("hotline_complaints"))
        screen.page.unroute(f"**/geo/{district}/*")
        screen.assert_no_console_errors()
    finally:
        with session_scope(screen_settings.database_url) as session:
            session.execute(text(f"UPDATE current_values SET value = :value, observed_at = :at {where}"),
                            {"value": kept[0], "at": kept[1], "unit": street, "key": VARIED})


def test_two_level_changes_in_quick_succession_leave_the_map_at_the_second(screen, screen_settings):
    """A drill into a district and straight back to the city before the district's boundaries have arrived (a deep
    link and a wall's first playlist step do the same): the city's districts at the city's fit. Neither the
    district's streets under the city's title (dash-leaflet's layer ignores a new URL while loading the last one and
    then draws that one) nor the districts at the district's zoom (Leaflet drops a fit asked for while a zoom
    animation runs)."""
    with session_scope(screen_settings.database_url) as session:
        tree = load_tree(session)
        first = tree.at_level(Level.DISTRICT).index[0]
        district, name = str(tree.frame.loc[first, "code"]), str(tree.frame.loc[first, "name_zh"])
        district_count = len(tree.at_level(Level.DISTRICT))
        district_names = set(tree.at_level(Level.DISTRICT)["name_zh"])
    screen.open()
    city = screen.page.evaluate(MAP_EXTENT)
    assert city["polygons"] == district_count
    held = []
    # The district's boundaries and labels are answered only once the city is back.
    screen.page.route(f"**/geo/{district}/*", lambda route: held.append(route))

    def select(unit: str | None) -> None:
        screen.page.evaluate("""([store, unit]) => window.dash_clientside.set_props(store,
            {data: {unit: unit, indicator: 'hotline_complaints'}})""", [PageIds.SELECTION, unit])

    select(district)
    screen.page.wait_for_function(f"document.getElementById('map-title').innerText.includes({name!r})")
    select(None)  # at once: the map's fit to the district is still under way
    screen.page.wait_for_function(f"!document.getElementById('map-title').innerText.includes({name!r})")
    screen.page.wait_for_timeout(300)
    assert len(held) == 2, "the district's boundaries and labels were asked for, and are held"
    with screen.page.expect_response(lambda response: f"/geo/{district}/children" in response.url):
        for route in held:
            route.continue_()
    screen.page.wait_for_timeout(300)  # the district's streets are decoded and drawn (old code: and stay)
    screen.page.wait_for_function(f"""() => {{
        const now = ({MAP_EXTENT})();
        return now.polygons === {district_count} && Math.abs(now.width - {city['width']}) <= 2
            && document.querySelectorAll('.unit-label').length === {district_count}; }}""", timeout=10_000)
    after = screen.page.evaluate(MAP_EXTENT)
    assert after["polygons"] == district_count, after
    assert abs(after["width"] - city["width"]) <= 2 and abs(after["height"] - city["height"]) <= 2, (city, after)
    labels = screen.page.locator(".unit-label").all_inner_texts()
    # Each label is a district's name (a badge may follow it), every district's once.
    named = [next((name for name in district_names if label.strip().startswith(name)), None) for label in labels]
    assert len(labels) == district_count and set(named) == district_names, labels
    screen.page.unroute(f"**/geo/{district}/*")
    screen.assert_no_console_errors()
