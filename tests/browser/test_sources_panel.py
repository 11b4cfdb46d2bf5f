"""The sources panel in the browser: a healthy simulator, a street office's drop folder with a bad row, and a
district API that is down — each shown as it is, with a drill-in to the last error and the quarantined records."""

from __future__ import annotations

import socket
import sqlite3
import threading
from dataclasses import replace

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from cityops.catalog import load_catalog
from cityops.db import session_scope
from cityops.hierarchy import Level
from cityops.models import Unit
from connectors.config import load_connectors
from connectors.runner import run_connector

pytestmark = pytest.mark.browser


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def sources_server(screen_settings, tmp_path_factory):
    """The app on a copy of the browser tests' database, with three configured sources that have each run once."""
    folder = tmp_path_factory.mktemp("sources")
    database = folder / "screen.db"
    # The backup API, not a file copy: the source is in WAL mode and its newest pages may be in the -wal file.
    with sqlite3.connect(screen_settings.database_url.removeprefix("sqlite:///")) as source, \
            sqlite3.connect(database) as target:
        source.backup(target)
    drops = folder / "drops"
    drops.mkdir()
    with session_scope(f"sqlite:///{database}") as session:
        community = session.scalar(select(Unit.code).where(Unit.level == int(Level.COMMUNITY)).limit(1))
    (drops / "热线日报.csv").write_text(
        "社区代码,时间,指标,数值\n"
        f"{community},2026-11-26 09:00,热线投诉,3\n"
        "990199999999,2026-11-26 09:00,热线投诉,2\n", encoding="utf-8")
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
  - name: district-hotline-api
    type: http_json
    levels: [community]
    schedule: {{interval: 5m}}
    config: {{url: "http://127.0.0.1:{closed_port()}/api/counts", attempts: 1, timeout: 2}}
    mapping: {{unit_code: code, observed_at: time, indicator: metric, value: value}}
""", encoding="utf-8")
    settings = replace(screen_settings, database_url=f"sqlite:///{database}", connectors_path=connectors,
                       archive_dir=folder / "archive")
    catalog = load_catalog(settings.catalog_path)
    for instance in load_connectors(connectors, catalog.keys):
        if instance.type != "simulator":
            run_connector(settings.database_url, instance, catalog, timezone=settings.timezone,
                          archive_root=settings.archive_dir)
    from app import create_app

    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def test_the_sources_panel_shows_each_source_and_drills_into_errors_and_quarantine(screen, sources_server):
    screen.base_url = sources_server
    screen.open()
    page = screen.page
    page.wait_for_function("document.querySelectorAll('.source-count').length === 3")
    page.locator("button.sources").click()
    panel = page.locator("#sources-panel")
    panel.wait_for(state="visible")
    rows = panel.locator("button.source-row")
    rows.first.wait_for()
    assert rows.count() == 3
    freshness = {row.get_attribute("data-source"): row.get_attribute("data-freshness") for row in rows.all()}
    assert freshness == {"city-simulator": "fresh", "street-office-drops": "fresh", "district-hotline-api": "silent"}
    office = panel.locator('button.source-row[data-source="street-office-drops"]')
    assert "部分成功" in office.inner_text() and "收 1 · 拒 1" in office.inner_text()

    office.click()
    detail = panel.locator('.source-detail[data-source="street-office-drops"]')
    detail.wait_for()
    assert "unknown unit code '990199999999'" in detail.inner_text()
    assert "热线日报.csv" in detail.inner_text()  # the raw row names its file and line
    screen.screenshot("sources-panel-quarantine")

    panel.locator('button.source-row[data-source="district-hotline-api"]').click()
    api = panel.locator('.source-detail[data-source="district-hotline-api"]')
    api.wait_for()
    assert "可重试" in api.inner_text() and "/api/counts" in api.inner_text()
    screen.screenshot("sources-panel-error")

    page.locator("#sources-close").click()
    panel.wait_for(state="hidden")
    screen.assert_no_console_errors()
