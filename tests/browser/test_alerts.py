"""The alert panel and drawer in the browser: a street office's drop file reports a community's 12345 count far
over its line, the shipped rules (data/alerts.yaml) and one of the test's own are evaluated over two days of
simulator data, and a person takes the alert from the panel to closed — every step recorded under the name they
typed."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.request
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import func, select
from werkzeug.serving import make_server

from cityops.alerts.evaluate import evaluate_alerts
from cityops.alerts.rules import load_alert_config
from cityops.catalog import load_catalog
from cityops.db import session_scope
from cityops.hierarchy import Level
from cityops.models import Alert, AlertEvent, Observation, Unit
from cityops.models import Indicator as IndicatorRow
from cityops.storage import indicator_ids
from cityops.tree import load_tree
from connectors.config import load_connectors
from connectors.runner import run_connector

pytestmark = pytest.mark.browser

BREACH = 30  # 件/时 in one community: the community's critical line is 4
# The test's own rule, beside the shipped ones (which may ask a breach to hold a while before it fires): a
# community's 12345 count past its line fires at once.
TEST_RULE = {"name": "hotline-at-once", "type": "threshold", "indicator": "hotline_complaints", "levels": ["community"],
             "keep_firing_for": "1h",
             "description": "A community's 12345 count past its line, at once (the browser test's rule)."}


@dataclass(frozen=True)
class AlertCity:
    base_url: str
    database_url: str
    community: str        # the code of the community whose alert the test handles
    community_name: str
    street: str
    alert_id: int
    archive: str          # the raw payload archive of the run that brought the breaching record


@pytest.fixture(scope="module")
def alert_city(screen_settings, live_server, tmp_path_factory) -> AlertCity:
    """The app on a copy of the browser tests' database (the other tests' data stays as they expect it), with the
    shipped alert rules evaluated after a drop file brought one community's breaching count."""
    # An app takes the registered callbacks on its first request, and creating another app registers them anew
    # for that one (callbacks/__init__.py): the session's live server, already created for the `screen` fixture,
    # must have taken its own before this module's app is created, or it would serve a page without callbacks.
    urllib.request.urlopen(f"{live_server}/_dash-dependencies", timeout=30).close()
    folder = tmp_path_factory.mktemp("alerts")
    database = folder / "screen.db"
    # The backup API, not a file copy: the source is in WAL mode and its newest pages may be in the -wal file.
    with sqlite3.connect(screen_settings.database_url.removeprefix("sqlite:///")) as source, \
            sqlite3.connect(database) as target:
        source.backup(target)
    url = f"sqlite:///{database}"
    with session_scope(url) as session:
        community, name, unit_id, street_id = session.execute(select(
            Unit.code, Unit.name_zh, Unit.id, Unit.parent_id).where(
            Unit.level == int(Level.COMMUNITY)).order_by(Unit.code).limit(1)).one()
        street = session.scalar(select(Unit.code).where(Unit.id == street_id))
        latest = session.scalar(select(func.max(Observation.observed_at)).where(
            Observation.unit_id == unit_id, Observation.indicator_id == select(IndicatorRow.id).where(
                IndicatorRow.key == "hotline_complaints").scalar_subquery()))
    drops = folder / "drops"
    drops.mkdir()
    # Just after the simulator's last report of this community, so the breach is the community's latest value.
    reported_at = int(latest or time.time() - 60) + 1
    (drops / "热线日报.csv").write_text(
        "社区代码,时间,指标,数值\n"
        f"{community},{datetime.fromtimestamp(reported_at, ZoneInfo(screen_settings.timezone)):%Y-%m-%d %H:%M:%S},"
        f"热线投诉,{BREACH}\n", encoding="utf-8")
    connectors = folder / "connectors.yaml"
    connectors.write_text(f"""connectors:
  - name: city-simulator
    type: simulator
    levels: [district, street, community]
    schedule: {{interval: 5m}}
  - name: street-office-drops
    type: drop_folder
    levels: [community]
    schedule: {{interval: 10m}}
    config: {{folder: "{drops}", settle_seconds: 0}}
    mapping: {{unit_code: 社区代码, observed_at: 时间, indicator: 指标, value: 数值,
               indicator_names: {{热线投诉: hotline_complaints}}}}
""", encoding="utf-8")
    rules = yaml.safe_load(screen_settings.alerts_path.read_text(encoding="utf-8"))
    rules["rules"].append(TEST_RULE)
    (folder / "alerts.yaml").write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
    settings = replace(screen_settings, database_url=url, connectors_path=connectors, archive_dir=folder / "archive",
                       alerts_path=folder / "alerts.yaml")
    catalog = load_catalog(settings.catalog_path)
    drop = next(i for i in load_connectors(connectors, catalog.keys) if i.type == "drop_folder")
    summary = run_connector(url, drop, catalog, timezone=settings.timezone, archive_root=settings.archive_dir)
    assert summary.status == "ok" and summary.accepted == 1, summary
    with session_scope(url) as session:
        ids = indicator_ids(session, catalog)
        evaluate_alerts(session, catalog, ids, load_tree(session),
                        load_alert_config(settings.alerts_path, catalog, environ={}),
                        max(int(time.time()), reported_at))
    with session_scope(url) as session:
        alert_id = session.scalar(select(Alert.id).where(
            Alert.unit_id == unit_id, Alert.indicator_id == ids["hotline_complaints"], Alert.rule == TEST_RULE["name"],
            Alert.phase == "firing"))
        assert alert_id is not None and session.get(Alert, alert_id).severity == "critical"
        others = session.scalar(select(Alert.id).where(Alert.id != alert_id, Alert.closed_at.is_(None)).limit(1))
        assert others is not None  # the simulator's data raised some of its own: the panel has a list to show
    from app import create_app

    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield AlertCity(f"http://127.0.0.1:{server.server_port}", url, community, name, street, alert_id,
                    summary.archive)
    server.shutdown()
    thread.join(timeout=10)


def events_of(city: AlertCity) -> list[tuple[str, str, str | None]]:
    with session_scope(city.database_url) as session:
        return [tuple(row) for row in session.execute(select(AlertEvent.action, AlertEvent.actor, AlertEvent.detail)
                                                      .where(AlertEvent.alert_id == city.alert_id)
                                                      .order_by(AlertEvent.id)).all()]


def test_an_alert_is_taken_from_the_panel_to_closed_by_a_named_person(screen, alert_city):
    screen.base_url = alert_city.base_url
    screen.open()
    page = screen.page
    row = page.locator(f'.alert-row[data-alert="{alert_city.alert_id}"]')
    row.wait_for()
    assert alert_city.community_name in row.inner_text() and "≥ 4" in row.inner_text()
    assert row.get_attribute("data-severity") == "critical" and "持续中" in row.inner_text()
    title = page.locator("#alerts-title").inner_text()
    assert " · 告警" in title and "未结" in title
    page.wait_for_function("document.querySelectorAll('.main-svg').length >= 2", timeout=30_000)
    screen.screenshot("alerts-panel")

    # Clicking the row opens its drawer and drills the map to the community (shown within its street).
    row.click()
    drawer = page.locator("#alert-drawer")
    drawer.wait_for(state="visible")
    page.locator("#alert-trend .main-svg").first.wait_for(timeout=30_000)
    page.wait_for_function(
        f"document.querySelector('.breadcrumb .crumb-current')?.dataset.code === '{alert_city.community}'")
    with session_scope(alert_city.database_url) as session:
        street_id = session.scalar(select(Unit.id).where(Unit.code == alert_city.street))
        communities = len(session.scalars(select(Unit.id).where(Unit.parent_id == street_id)).all())
    page.wait_for_function(f"document.querySelectorAll('path.leaflet-interactive').length === {communities}")
    head = page.locator("#alert-head").inner_text()
    assert alert_city.community_name in head and "12345热线诉求" in head
    assert TEST_RULE["name"] in head and TEST_RULE["description"] in head
    records = page.locator(".alert-records").inner_text()
    assert alert_city.community_name in records and f"{BREACH} 件/时" in records
    assert alert_city.archive in page.locator(".alert-runs").inner_text()  # the raw payload it came from

    # Without a name nothing is done, and the drawer says why.
    page.locator("#alert-acknowledge").click()
    page.locator('#alert-message [data-outcome="refused"]').wait_for()
    assert "姓名" in page.locator("#alert-message").inner_text()

    page.locator("#alert-actor").fill("王值班")
    page.locator("#alert-actor").press("Enter")
    page.wait_for_function("document.getElementById('alert-actor-note').innerText.includes('王值班 (未认证)')")
    page.wait_for_function("window.localStorage.getItem('alert-actor-name') === JSON.stringify('王值班')")
    page.locator("#alert-acknowledge").click()
    page.locator('.alert-event[data-action="acknowledged"]').wait_for()
    page.locator("#alert-assignee").fill("城管中队一组")
    page.locator("#alert-assign").click()
    page.locator('.alert-event[data-action="assigned"]').wait_for()
    page.locator("#alert-comment-text").fill("已联系社区网格员核实")
    page.locator("#alert-comment").click()
    page.locator('.alert-event[data-action="commented"]').wait_for()
    assert page.locator("#alert-comment-text").input_value() == ""
    page.wait_for_function(  # the row says who took it up
        f"document.querySelector('.alert-row[data-alert=\"{alert_city.alert_id}\"]')?.innerText.includes('城管中队一组')")
    screen.screenshot("alert-drawer")

    # Closing needs a resolution; refused, what was typed elsewhere stays.
    page.locator("#alert-comment-text").fill("稍后补充")
    page.locator("#alert-close").click()
    page.wait_for_function("document.getElementById('alert-message').innerText.includes('处置结果')")
    assert page.locator("#alert-comment-text").input_value() == "稍后补充"
    page.locator("#alert-resolution").fill("热线集中反映的噪声扰民已现场处置")
    page.locator("#alert-close").click()
    page.locator('.alert-event[data-action="closed"]').wait_for()
    page.wait_for_function(f"!document.querySelector('.alert-row[data-alert=\"{alert_city.alert_id}\"]')")
    assert page.locator("#alert-close").is_disabled()

    actor = "王值班 (未认证)"
    events = events_of(alert_city)
    assert [(action, who) for action, who, _detail in events] == [
        ("firing", "system"), *((action, actor) for action in ("acknowledged", "assigned", "commented", "closed"))]
    assert [json.loads(detail) for _action, _who, detail in events[2:]] == [
        {"assignee": "城管中队一组"}, {"text": "已联系社区网格员核实"}, {"resolution": "热线集中反映的噪声扰民已现场处置"}]
    page.locator("#alert-drawer-close").click()
    drawer.wait_for(state="hidden")
    # The panel lists what is still open in the community: nothing, unless the simulator's own data has raised
    # another alert there at this time of day (the shipped rules watch every indicator) — never the closed one.
    with session_scope(alert_city.database_url) as session:
        unit_id = session.scalar(select(Unit.id).where(Unit.code == alert_city.community))
        still_open = set(session.scalars(select(Alert.id).where(Alert.unit_id == unit_id,
                                                                Alert.closed_at.is_(None))).all())
    rows = page.evaluate("[...document.querySelectorAll('.alert-row')].map(row => Number(row.dataset.alert))")
    assert alert_city.alert_id not in rows and set(rows) <= still_open
    if not rows:
        page.locator(".alert-empty").wait_for()
    screen.screenshot("alerts-closed")
    screen.assert_no_console_errors()


def test_the_typed_name_is_kept_for_the_next_alert(screen, alert_city):
    screen.base_url = alert_city.base_url
    page = screen.page
    # As if typed on an earlier visit: the drawer's store keeps it in the browser's local storage.
    page.add_init_script("window.localStorage.setItem('alert-actor-name', JSON.stringify('李值班'))")
    screen.open()
    first = page.locator(".alert-row").first
    first.wait_for()
    first.click()
    page.locator("#alert-drawer").wait_for(state="visible")
    page.wait_for_function("document.getElementById('alert-actor')?.value === '李值班'")
    page.wait_for_function("document.getElementById('alert-actor-note').innerText.includes('李值班 (未认证)')")
    screen.assert_no_console_errors()
