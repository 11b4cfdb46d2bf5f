"""The wall display (/wall) in chromium: a kiosk at 1920×1080, 3840×2160 and 5760×1080 (no scrollbars, every panel
inside the viewport, nothing to focus or press), its playlist advancing with the clock, a new alert raised while
it runs holding it on that alert's unit (the most severe first), and the stale marking once a source stopped."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select, update
from werkzeug.serving import make_server

from cityops.alerts.rules import load_alert_config
from cityops.alerts.store import AlertWriter, Judged
from cityops.boundaries import replace_units
from cityops.catalog import load_catalog
from cityops.db import migrate, session_scope
from cityops.demo_city import generate_city
from cityops.hierarchy import Level
from cityops.models import Alert, ConnectorRun, Unit
from cityops.playlist import load_wall_config
from cityops.storage import indicator_ids
from cityops.tree import load_tree
from connectors.config import load_connectors
from connectors.runner import run_connector

from .conftest import CITY_SHAPE

pytestmark = pytest.mark.browser

SIZES = [(1920, 1080), (3840, 2160), (5760, 1080)]
DWELL, HOLD = 5, 6
# A short playlist for the tests: the city on two indicators, then a district on a third.
PLAYLIST = [(None, "hotline_complaints"), (None, "aqi"), ("990102", "grid_overdue_rate")]
# The rule the test's alerts are raised under (through the alert store, as the engine raises them).
RULES = """rules:
  - name: wall-test
    type: threshold
    indicators: [fire_alarms, hotline_complaints]
    levels: [community]
"""
STOPPED_HOURS = 3  # the stale city's only source stopped this long ago

FOCUSABLE = "a[href], button, input, select, textarea, summary, iframe, [tabindex], [contenteditable]"


@dataclass(frozen=True)
class WallCity:
    base_url: str
    database_url: str
    catalog_path: Path
    folder: Path  # holds the test's wall.yaml and alerts.yaml


@dataclass(frozen=True)
class WallServers:
    live: WallCity    # the browser tests' city, fresh data, a short playlist
    stale: WallCity   # a city whose source stopped STOPPED_HOURS ago


def serve(settings) -> tuple[str, callable]:
    """The app for `settings` on a free port; it takes its callbacks at its first request, made here (creating
    the next app registers them anew for that one, see callbacks/__init__.py)."""
    from app import create_app

    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    urllib.request.urlopen(f"{url}/_dash-dependencies", timeout=30).close()

    def stop():
        server.shutdown()
        thread.join(timeout=10)
    return url, stop


@pytest.fixture(scope="module")
def wall_servers(screen_settings, live_server, tmp_path_factory) -> WallServers:
    urllib.request.urlopen(f"{live_server}/_dash-dependencies", timeout=30).close()  # see serve()
    folder = tmp_path_factory.mktemp("wall")
    playlist = [{"unit": unit, "indicator": key} if unit else {"indicator": key} for unit, key in PLAYLIST]
    (folder / "wall.yaml").write_text(yaml.safe_dump({"dwell": f"{DWELL}s", "alert_hold": f"{HOLD}s",
                                                      "playlist": playlist}), encoding="utf-8")
    (folder / "alerts.yaml").write_text(RULES, encoding="utf-8")

    # The live city: a copy of the browser tests' database (the backup API: the source is in WAL mode).
    database = folder / "live.db"
    with sqlite3.connect(screen_settings.database_url.removeprefix("sqlite:///")) as source, \
            sqlite3.connect(database) as target:
        source.backup(target)
    live_settings = replace(screen_settings, database_url=f"sqlite:///{database}", wall_path=folder / "wall.yaml",
                            alerts_path=folder / "alerts.yaml")
    live_url, stop_live = serve(live_settings)

    # The stale city: its simulator ran until STOPPED_HOURS ago, and has delivered nothing since.
    stale_url = f"sqlite:///{folder / 'stale.db'}"
    migrate(stale_url)
    with session_scope(stale_url) as session:
        replace_units(session, generate_city(7, **CITY_SHAPE))
    catalog = load_catalog(screen_settings.catalog_path)
    simulator = next(i for i in load_connectors(screen_settings.connectors_path) if i.type == "simulator")
    stopped = time.time() - STOPPED_HOURS * 3600
    summary = run_connector(stale_url, simulator, catalog, timezone=screen_settings.timezone, now=stopped,
                            since=str(int(stopped - 86400)))
    assert summary.status == "ok", summary
    with session_scope(stale_url) as session:  # the run ended then (the runner stamps its end with the real clock)
        session.execute(update(ConnectorRun).values(finished_at=ConnectorRun.started_at))
    stale_settings = replace(live_settings, database_url=stale_url)
    stale_url_served, stop_stale = serve(stale_settings)
    yield WallServers(WallCity(live_url, live_settings.database_url, screen_settings.catalog_path, folder),
                      WallCity(stale_url_served, stale_url, screen_settings.catalog_path, folder))
    stop_stale()
    stop_live()


def open_wall(screen, base_url: str, width: int, height: int, path: str = "/wall"):
    screen.base_url = base_url
    screen.page.set_viewport_size({"width": width, "height": height})
    screen.open(path)
    page = screen.page
    page.wait_for_function("document.documentElement.classList.contains('wall')")
    page.wait_for_function("document.querySelectorAll('.main-svg').length >= 2", timeout=30_000)
    page.locator(".wall-cue").first.wait_for()
    return page


def wall_shows(page) -> tuple[str, str]:
    """(unit code, indicator key) the wall shows: the breadcrumb's current unit and the selected KPI card."""
    return page.evaluate("""() => [document.querySelector('.breadcrumb .crumb-current')?.dataset.code,
                                   document.querySelector('.kpi-card.selected')?.dataset.indicator]""")


def expect_showing(page, code: str, indicator: str) -> None:
    page.wait_for_function(
        f"document.querySelector('.breadcrumb .crumb-current')?.dataset.code === '{code}'"
        f" && document.querySelector('.kpi-card.selected')?.dataset.indicator === '{indicator}'", timeout=20_000)


# ------------------------------------------------------------------------------------------------
# The kiosk, at every size
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width, height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_the_wall_fits_every_panel_without_scrollbars_or_controls(screen, wall_servers, width, height):
    page = open_wall(screen, wall_servers.live.base_url, width, height)
    # A KPI card redrawn for the indicator shown is the last thing to settle.
    page.wait_for_function("document.querySelector('.kpi-card.selected') !== null")
    fit = page.evaluate("""() => {
        const root = document.documentElement, body = document.body;
        const inside = (r, w, h) => r.width > 0 && r.height > 0 && r.left >= -0.5 && r.top >= -0.5
            && r.right <= w + 0.5 && r.bottom <= h + 0.5;
        const panels = [...document.querySelectorAll('.screen-header, .panel, .wall-status')].map(el => {
            const r = el.getBoundingClientRect();
            return {name: el.className, inside: inside(r, innerWidth, innerHeight)};
        });
        const kpi = document.querySelector('.kpi-panel').getBoundingClientRect();
        const cardsOutside = [...document.querySelectorAll('.kpi-card')].filter(card => {
            const r = card.getBoundingClientRect();
            return r.top < kpi.top - 0.5 || r.bottom > kpi.bottom + 0.5 || r.left < kpi.left - 0.5
                || r.right > kpi.right + 0.5;
        }).length;
        // In each card the number (with its unit) and the change keep apart and inside the card.
        const meets = (a, b) => a.width > 0 && b.width > 0 && a.left < b.right - 0.5 && b.left < a.right - 0.5
            && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
        const crowded = [...document.querySelectorAll('.kpi-card')].filter(card => {
            const c = card.getBoundingClientRect();
            const value = card.querySelector('.kpi-value'), change = card.querySelector('.kpi-change');
            if (!value || !change) return false;
            const v = value.getBoundingClientRect(), d = change.getBoundingClientRect();
            return meets(v, d) || v.right > c.right + 0.5 || d.right > c.right + 0.5 || d.left < c.left - 0.5;
        }).map(card => card.innerText.replace(/\\s+/g, ' '));
        return {scrollWidth: Math.max(root.scrollWidth, body.scrollWidth),
                scrollHeight: Math.max(root.scrollHeight, body.scrollHeight),
                innerWidth, innerHeight, panels, cardsOutside, crowded,
                cursor: getComputedStyle(body).cursor, fontSize: parseFloat(getComputedStyle(root).fontSize)};
    }""")
    assert fit["scrollWidth"] <= fit["innerWidth"] and fit["scrollHeight"] <= fit["innerHeight"], fit
    assert len(fit["panels"]) == 7 and all(panel["inside"] for panel in fit["panels"]), fit["panels"]
    assert fit["cardsOutside"] == 0
    assert fit["crowded"] == [], fit["crowded"]
    assert fit["cursor"] == "none"
    assert fit["fontSize"] >= 20 * min(width / 1920, height / 1080) - 0.5  # larger type than a browser's 15 px

    # No control to see, and nothing on the page can take focus.
    for hidden in (".indicator-picker", ".leaflet-control-zoom", ".modebar-container", "#alert-drawer",
                   "#sources-panel", ".screen-control", "summary", "input", "select", ".range-control"):
        assert page.locator(hidden).evaluate_all("els => els.filter(el => el.checkVisibility()).length") == 0, \
            hidden
    focused = page.evaluate(f"""() => {{
        const taken = [];
        for (const el of document.querySelectorAll({FOCUSABLE!r})) {{
            el.focus();
            if (document.activeElement === el) taken.push(el.outerHTML.slice(0, 80));
        }}
        return taken;
    }}""")
    assert focused == []
    # Keys that would scroll, move focus, reload or go back do nothing.
    url = page.url
    for key in ("Tab", "Tab", "End", "PageDown", "Space", "ArrowDown", "F5", "Alt+ArrowLeft", "Control+a"):
        page.keyboard.press(key)
    assert page.evaluate("document.activeElement === document.body && window.scrollY === 0 && window.scrollX === 0")
    assert page.evaluate("window.getSelection().toString()") == ""
    assert page.url == url and page.evaluate("document.documentElement.classList.contains('wall')")
    page.mouse.wheel(0, 800)
    assert page.evaluate("window.scrollY") == 0
    screen.screenshot(f"wall-{width}x{height}")
    screen.assert_no_console_errors()


# Per list (alerts, ranking): its rows shown, and those of them its box cuts.
ROWS_SHOWN = """() => [...document.querySelectorAll('.alert-list, .comparison-rows')].map(list => {
    const box = list.getBoundingClientRect();
    const shown = [...list.children].filter(row => row.checkVisibility({visibilityProperty: true}));
    return {list: list.className, rows: list.children.length, shown: shown.length,
            cut: shown.filter(row => {
                const r = row.getBoundingClientRect();
                return r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5;
            }).map(row => row.innerText.replace(/\\s+/g, ' ').slice(0, 40))};
})"""


def test_the_wall_shows_whole_rows_only(screen, wall_servers):
    """A list with more rows than room (alerts, a ranking) shows those that fit whole and hides the one its edge
    would cut (half a name across the room reads as a broken screen), also when its panel changes size."""
    page = open_wall(screen, wall_servers.live.base_url, 1920, 1080)
    page.wait_for_function("document.querySelectorAll('.comparison-rows > *').length >= 3", timeout=20_000)
    assert all(not each["cut"] for each in page.evaluate(ROWS_SHOWN))
    # Each list with two rows or more made to end halfway down its second row, as a smaller panel would.
    halved = page.evaluate("""() => [...document.querySelectorAll('.alert-list, .comparison-rows')]
        .filter(list => list.children.length >= 2).map(list => {
            const top = list.getBoundingClientRect().top, second = list.children[1].getBoundingClientRect();
            list.style.flex = 'none';
            list.style.height = `${second.top - top + second.height / 2}px`;
            return list.className;
        })""")
    assert "comparison-rows" in halved
    lists = page.wait_for_function(f"""() => {{
        const lists = ({ROWS_SHOWN})();
        return lists.every(each => each.cut.length === 0) && lists;
    }}""", timeout=5_000).json_value()
    for each in lists:
        if each["list"] in halved:
            assert each["shown"] == 1, each  # the first row whole, the second hidden rather than cut
    screen.screenshot("wall-whole-rows")
    screen.assert_no_console_errors()


def test_a_browser_page_is_no_wall_and_runs_none_of_it(screen, wall_servers):
    screen.base_url = wall_servers.live.base_url
    sent = []
    screen.page.on("request", lambda request: "_dash-update-component" in request.url
                   and sent.append(request.post_data or ""))
    with screen.page.expect_request(lambda request: "_dash-update-component" in request.url
                                    and "refresh-interval" in (request.post_data or ""), timeout=30_000):
        screen.open("/")  # ... and one refresh comes and goes
    assert not screen.page.evaluate("document.documentElement.classList.contains('wall')")
    assert not screen.page.locator("#wall-status").is_visible()
    assert screen.page.locator(".indicator-picker").is_visible()
    assert not [body for body in sent if "wall-" in body]
    screen.assert_no_console_errors()


def test_any_page_becomes_a_wall_with_mode_wall(screen, wall_servers):
    page = open_wall(screen, wall_servers.live.base_url, 1920, 1080, "/?mode=wall")
    assert page.locator(".wall-cue-playlist").is_visible() and not page.locator(".indicator-picker").is_visible()
    screen.assert_no_console_errors()


# ------------------------------------------------------------------------------------------------
# The playlist, and what a new alert does to it
# ------------------------------------------------------------------------------------------------


def root_code(database_url: str) -> str:
    with session_scope(database_url) as session:
        return str(session.scalar(select(Unit.code).where(Unit.parent_id.is_(None))))


def test_the_playlist_advances_with_the_clock(screen, wall_servers):
    city = wall_servers.live
    page = open_wall(screen, city.base_url, 1920, 1080)
    config = load_wall_config(city.folder / "wall.yaml", load_catalog(city.catalog_path))
    root = root_code(city.database_url)
    expected = [(unit or root, key) for unit, key in PLAYLIST]
    assert [(entry.unit or root, entry.indicator) for entry in config.playlist] == expected
    # Each slot is judged at one instant in the page (its cue, breadcrumb and selected card read together): read
    # one after the other, a slot that moved on in between (a busy machine) looked like a wrong position.
    expected_js = json.dumps([list(entry) for entry in expected])
    seen: list[int] = []
    while len(seen) < 3:
        slot = page.wait_for_function(f"""() => {{
            const cue = document.querySelector('.wall-cue-playlist');
            if (!cue) return null;
            const slot = Number(cue.dataset.slot), entries = {expected_js};
            const [code, indicator] = entries[slot % entries.length];
            const showing = document.querySelector('.breadcrumb .crumb-current')?.dataset.code === code
                && document.querySelector('.kpi-card.selected')?.dataset.indicator === indicator;
            return slot > {seen[-1] if seen else -1} && showing
                && cue.dataset.position === String(slot % entries.length + 1) ? slot : null;
        }}""", timeout=30_000).json_value()
        seen.append(slot)
    assert len(set(seen)) == 3  # the clock moved it on, each slot shown as its cue says
    # Dash's undo history, which every tick of the page's clock adds to, is cut back on a wall: entries were
    # dropped (fewer clock ticks in it than the clock has made), and it holds a few dozen at most.
    page.wait_for_function("""() => {
        const past = window.store.getState().history.past;
        const ticks = past.filter(entry => entry.id === 'clock-tick');
        return ticks.length && ticks.length + 5 < ticks[ticks.length - 1].props.n_intervals;
    }""", timeout=60_000)
    assert page.evaluate("window.store.getState().history.past.length") <= 60
    screen.screenshot("wall-playlist")
    screen.assert_no_console_errors()


def raise_alerts(city: WallCity, alerts: list[tuple[str, str, int]]) -> list[int]:
    """Alerts firing now through the alert store, as the engine raises them: (community code, indicator, rank),
    rank 1 warning, 2 critical, in this order. Returns their ids."""
    catalog = load_catalog(city.catalog_path)
    config = load_alert_config(city.folder / "alerts.yaml", catalog, environ={})
    now = int(time.time())
    with session_scope(city.database_url) as session:
        ids = indicator_ids(session, catalog)
        units = load_tree(session).id_by_code
        writer = AlertWriter(session, config, now)
        for code, key, rank in alerts:
            writer.add(config.rules[0], ids[key], Judged.of([units[code]], [now - 60], [rank], [99.0], [4.0]))
            writer.flush()
    with session_scope(city.database_url) as session:
        found = []
        for code, key, _rank in alerts:
            found.append(session.scalar(select(Alert.id).where(
                Alert.unit_id == units[code], Alert.indicator_id == ids[key], Alert.phase == "firing",
                Alert.rule == "wall-test")))
        return found


def communities(database_url: str, count: int) -> list[str]:
    with session_scope(database_url) as session:
        return list(session.scalars(select(Unit.code).where(Unit.level == int(Level.COMMUNITY))
                                    .order_by(Unit.code.desc()).limit(count)))


def test_a_new_alert_holds_the_wall_on_its_unit_most_severe_first(screen, wall_servers):
    city = wall_servers.live
    page = open_wall(screen, city.base_url, 1920, 1080)
    page.locator(".wall-cue-playlist").wait_for()
    warned, critical = communities(city.database_url, 2)
    # The warning first, then the critical one: the critical one is shown first all the same.
    warning_id, critical_id = raise_alerts(city, [(warned, "hotline_complaints", 1), (critical, "fire_alarms", 2)])
    assert warning_id and critical_id

    cue = page.locator(f'.wall-cue-alert[data-alert="{critical_id}"]')
    cue.wait_for(timeout=30_000)
    expect_showing(page, critical, "fire_alarms")
    assert "新告警" in cue.inner_text() and cue.get_attribute("data-severity") == "critical"
    row = page.locator(f'.alert-row[data-alert="{critical_id}"]')
    row.wait_for()
    assert row.evaluate("el => getComputedStyle(el).boxShadow") != "none"  # the held alert's row stands out
    assert row.is_visible()
    screen.screenshot("wall-alert-hold")

    # Its hold over, the warning has its turn.
    page.locator(f'.wall-cue-alert[data-alert="{warning_id}"]').wait_for(timeout=30_000)
    expect_showing(page, warned, "hotline_complaints")
    page.locator(f'.alert-row[data-alert="{warning_id}"]').wait_for()
    assert page.locator(f'.alert-row[data-alert="{warning_id}"]').evaluate("el => getComputedStyle(el).boxShadow") \
        != "none"

    # Then the playlist resumes where the clock is.
    page.locator(".wall-cue-playlist").wait_for(timeout=30_000)
    slot = int(page.locator(".wall-cue-playlist").get_attribute("data-slot"))
    root = root_code(city.database_url)
    unit, key = PLAYLIST[slot % len(PLAYLIST)]
    page.wait_for_function(
        f"Number(document.querySelector('.wall-cue-playlist')?.dataset.slot) !== {slot}"
        f" || (document.querySelector('.breadcrumb .crumb-current')?.dataset.code === '{unit or root}'"
        f" && document.querySelector('.kpi-card.selected')?.dataset.indicator === '{key}')", timeout=20_000)
    screen.assert_no_console_errors()


# ------------------------------------------------------------------------------------------------
# Stale marking
# ------------------------------------------------------------------------------------------------


def test_panels_are_marked_stale_when_their_source_stopped(screen, wall_servers):
    page = open_wall(screen, wall_servers.stale.base_url, 1920, 1080)
    catalog = load_catalog(wall_servers.stale.catalog_path)
    # The entry the playlist shows now, drawn (so the screenshot shows one view, not a switch half made).
    slot = int(page.locator(".wall-cue-playlist").get_attribute("data-slot"))
    unit, key = PLAYLIST[slot % len(PLAYLIST)]
    expect_showing(page, unit or root_code(wall_servers.stale.database_url), key)
    # Every indicator updated more often than every STOPPED_HOURS / 1.25 hours is stale on its card, hatched,
    # with its as-of time; the daily ones are not.
    stale_keys = {i.key for i in catalog.kpis() if i.interval_seconds * 1.25 < STOPPED_HOURS * 3600}
    page.wait_for_function(f"document.querySelectorAll('.kpi-card.status-stale').length === {len(stale_keys)}")
    cards = page.evaluate("""() => [...document.querySelectorAll('.kpi-card.status-stale')].map(card => ({
        key: card.dataset.indicator, asOf: card.querySelector('.as-of-mark')?.innerText,
        stale: card.querySelector('.as-of-mark')?.dataset.stale,
        background: getComputedStyle(card).backgroundImage}))""")
    assert {card["key"] for card in cards} == stale_keys
    for card in cards:
        assert card["stale"] == "true" and card["asOf"].startswith("数据过期 · 截至 "), card
        assert "repeating-linear-gradient" in card["background"]  # hatched
    # The map draws every unit of a stale indicator stale (grey, dashed).
    assert set(page.evaluate("[...document.querySelectorAll('path.leaflet-interactive')]"
                             ".map(p => p.getAttribute('stroke-dasharray'))")) == {"4 3"}
    # The header shows the source silent, at a glance.
    assert page.locator(".source-silent").inner_text().split() == ["●", "1", "中断"]
    screen.screenshot("wall-stale")
    screen.assert_no_console_errors()
