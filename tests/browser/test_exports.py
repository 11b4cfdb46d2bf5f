"""Exports as an analyst takes them: a panel's menu hands over its data and its chart, the header's Report
button a report drawn on the server; each file is what the database says, and each export is recorded."""

from __future__ import annotations

import io
import struct
import time

import pandas as pd
import pytest
from sqlalchemy import func, select

from cityops.catalog import load_catalog
from cityops.db import session_scope
from cityops.models import ExportRecord
from cityops.readings import trend, unit_readings
from cityops.scope import Viewer, viewer_scope
from cityops.storage import indicator_ids
from cityops.time_range import resolve_range

from .conftest import SCREENSHOTS

pytestmark = pytest.mark.browser


def export_count(settings) -> int:
    with session_scope(settings.database_url) as session:
        return session.scalar(select(func.count()).select_from(ExportRecord))


def newest_export(settings) -> ExportRecord:
    with session_scope(settings.database_url) as session:
        return session.scalars(select(ExportRecord).order_by(ExportRecord.id.desc())).first()


def choose(screen, menu: str, item: str):
    """Open a menu (its <summary>) and click the entry whose text starts with `item`; return the download."""
    page = screen.page
    page.locator(f"{menu} > summary").click()
    entry = page.locator(f"{menu} .export-item", has_text=item).first
    entry.wait_for(state="visible")
    with page.expect_download(timeout=90_000) as download:
        entry.click()
    return download.value


def png_size(content: bytes) -> tuple[int, int]:
    assert content[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", content[16:24])


def test_a_panels_menu_hands_over_its_data_and_its_chart(screen, screen_settings):
    screen.open()
    page = screen.page
    catalog = load_catalog(screen_settings.catalog_path)
    before = export_count(screen_settings)

    page.locator(".export-menu-kpi > summary").click()
    page.locator(".export-menu-kpi .export-items").wait_for(state="visible")
    screen.screenshot("exports-panel-menu")
    page.keyboard.press("Escape")
    assert not page.locator(".export-menu-kpi .export-items").is_visible()

    csv = choose(screen, ".export-menu-kpi", "CSV")
    assert csv.suggested_filename.startswith("onescreen-kpi-990000-") and csv.suggested_filename.endswith(".csv")
    content = open(csv.path(), "rb").read()
    assert content.startswith(b"\xef\xbb\xbf")
    table = pd.read_csv(io.BytesIO(content), encoding="utf-8-sig")
    with session_scope(screen_settings.database_url) as session:
        scope = viewer_scope(session, Viewer())
        readings = unit_readings(session, scope, catalog, indicator_ids(session, catalog), scope.root_id,
                                 int(time.time()))
    assert table["指标代码"].tolist() == [indicator.key for indicator in catalog.kpis()]
    for key, value in zip(table["指标代码"], table["数值"]):  # no scheduler runs here: the stored values stay
        if readings[key].value is None:
            assert pd.isna(value)
        else:
            assert float(value) == pytest.approx(readings[key].value)
    assert page.locator(".export-status-line", has_text=csv.suggested_filename).is_visible()

    # The trend's image: drawn by the browser from the chart on the screen, at the size the server named.
    page.wait_for_function("document.querySelector('#trend-graph .main-svg') !== null", timeout=30_000)
    png = choose(screen, ".export-menu-trend", "PNG")
    assert png.suggested_filename.startswith("onescreen-trend-990000-hotline_complaints-")
    assert png_size(open(png.path(), "rb").read()) == (1600, 900)
    svg = choose(screen, ".export-menu-trend", "SVG")
    assert open(svg.path(), "rb").read().lstrip().startswith(b"<svg")

    # The trend's data: the selected range's points, as the database holds them.
    trend_csv = choose(screen, ".export-menu-trend", "CSV")
    series = pd.read_csv(trend_csv.path(), encoding="utf-8-sig")
    with session_scope(screen_settings.database_url) as session:
        scope = viewer_scope(session, Viewer())
        window = resolve_range({"range": "7d"}, int(time.time()), screen_settings.timezone).window
        stored = trend(session, scope, catalog, indicator_ids(session, catalog), scope.root_id,
                       "hotline_complaints", *window)
    assert 0 < len(series) and abs(len(series) - len(stored)) <= 1  # a bucket may close between the two reads
    assert export_count(screen_settings) == before + 4
    assert (newest_export(screen_settings).panel, newest_export(screen_settings).format) == ("trend", "csv")
    screen.assert_no_console_errors()


def test_the_report_button_hands_over_a_report_drawn_on_the_server(screen, screen_settings):
    screen.open()
    page = screen.page
    page.locator(".report-menu > summary").click()
    page.locator(".report-menu .export-items").wait_for(state="visible")
    screen.screenshot("exports-report-menu")
    page.keyboard.press("Escape")
    report = choose(screen, ".report-menu", "PNG")
    assert report.suggested_filename.startswith("onescreen-report-990000-hotline_complaints-")
    content = open(report.path(), "rb").read()
    assert png_size(content) == (2246, 1588)
    SCREENSHOTS.mkdir(exist_ok=True)
    (SCREENSHOTS / "exports-report.png").write_bytes(content)  # the report itself, to look at
    recorded = newest_export(screen_settings)
    assert (recorded.panel, recorded.format, recorded.unit_code, recorded.bytes) == ("report", "png", "990000",
                                                                                     len(content))
    assert page.locator("#export-busy").is_hidden()
    screen.screenshot("exports-report-done")
    screen.assert_no_console_errors()
