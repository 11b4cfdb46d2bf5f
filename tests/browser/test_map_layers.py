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
