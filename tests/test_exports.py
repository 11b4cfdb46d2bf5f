"""Panel exports: the data behind each panel as CSV and XLSX equals what the database answers for the viewer's
scope, the files are named and stamped, every export is recorded, and the page cannot widen its scope."""

from __future__ import annotations

import base64
import io
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).parent))

from city_factory import CITY, simulated_tiny_city  # noqa: E402
from cityops.alerts.queries import alert_list  # noqa: E402
from cityops.catalog import load_catalog  # noqa: E402
from cityops.db import session_scope  # noqa: E402
from cityops.exports.exporting import chart_request, panel_file  # noqa: E402
from cityops.exports.files import csv_bytes, export_filename  # noqa: E402
from cityops.exports.panel_data import ExportContext, ExportView, panel_table  # noqa: E402
from cityops.models import Alert, ExportRecord  # noqa: E402
from cityops.readings import children_readings, trend, unit_readings  # noqa: E402
from cityops.scope import OutOfScope, Viewer, viewer_scope  # noqa: E402
from cityops.settings import Settings  # noqa: E402
from cityops.storage import indicator_ids  # noqa: E402
from cityops.time_range import resolve_range  # noqa: E402
from cityops.tree import load_tree  # noqa: E402
from layouts.ids import ExportIds  # noqa: E402
from cityops.ranking import ranked_children  # noqa: E402
from dash_calls import in_callback  # noqa: E402

D1, D2, S11, C111 = "990101", "990102", "990101001", "990101001001"
ZONE = "Asia/Shanghai"
INTERVALS = {"city-simulator": 300}


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    """The tiny city with a day of simulated history and one open alert in each district."""
    settings = simulated_tiny_city(tmp_path_factory.mktemp("exports"))
    catalog = load_catalog(settings.catalog_path)
    now = int(time.time())
    with session_scope(settings.database_url) as session:
        tree, ids = load_tree(session), indicator_ids(session, catalog)
        for code, severity in ((C111, "critical"), ("990102002001", "warning")):
            session.add(Alert(rule="fire-alarms", unit_id=tree.id_by_code[code], indicator_id=ids["fire_alarms"],
                              source="", started_at=now - 3600, phase="firing", severity=severity, value=3.0,
                              line=2.0, last_breach_at=now - 600, evaluated_to=now - 300, fired_at=now - 3000,
                              dispatch_due=now - 2100, handle_due=now + 10000))
    return settings


@pytest.fixture(scope="module")
def app(settings):
    from app import create_app

    return create_app(settings)


@pytest.fixture
def catalog(settings):
    return load_catalog(settings.catalog_path)


def context_for(session, catalog, root_code: str | None = None, language: str = "zh") -> ExportContext:
    scope = viewer_scope(session, Viewer("officer", root_code=root_code))
    return ExportContext(session, scope, catalog, indicator_ids(session, catalog), load_tree(session),
                         int(time.time()), ZONE, language)


def view_of(context: ExportContext, code: str, indicator: str = "hotline_complaints", selection=None) -> ExportView:
    tree = context.tree
    unit_id = tree.id_by_code[code]
    parent = unit_id if not tree.children(unit_id).empty else int(tree.frame.at[unit_id, "parent_id"])
    return ExportView(unit_id, parent, indicator, resolve_range(selection or {"range": "7d"}, context.now, ZONE))


def read_csv(content: bytes) -> pd.DataFrame:
    assert content.startswith(b"\xef\xbb\xbf"), "CSV must start with a UTF-8 byte-order mark for Excel"
    return pd.read_csv(io.BytesIO(content), encoding="utf-8-sig", dtype={"单位代码": str, "Unit code": str})


def local(epoch) -> str:
    return "" if epoch is None else pd.Timestamp(int(epoch), unit="s", tz="UTC").tz_convert(ZONE).strftime(
        "%Y-%m-%d %H:%M:%S")


def as_float(value):
    return None if value is None or pd.isna(value) else float(value)


# ------------------------------------------------------------------------------------------------
# The data behind each panel equals the database's answer for the scope
# ------------------------------------------------------------------------------------------------


def test_kpi_csv_equals_the_units_readings(settings, catalog):
    with session_scope(settings.database_url) as session:
        context = context_for(session, catalog)
        view = view_of(context, D1)
        exported, _entry = panel_file(context, view, "kpi", "csv", actor="tester", connector_intervals=INTERVALS)
        readings = unit_readings(session, context.scope, catalog, context.ids, view.unit_id, context.now)
    table = read_csv(exported.content)
    assert list(table.columns[:5]) == ["指标代码", "指标", "数值", "计量单位", "状态"]
    assert table["指标代码"].tolist() == [indicator.key for indicator in catalog.kpis()]
    for row in table.itertuples(index=False):
        reading = readings[row[0]]
        if reading.value is None:
            assert pd.isna(row[2])
        else:
            assert float(row[2]) == pytest.approx(reading.value)
        assert row[3] == catalog[row[0]].unit_of_measure
        observed = row[5] if isinstance(row[5], str) else ""
        assert observed == local(reading.observed_at)
    measured = table[table["指标代码"] == "hotline_complaints"].iloc[0]
    assert measured["已上报"] == readings["hotline_complaints"].reported  # roll-up completeness travels too
    assert exported.rows == len(catalog.kpis())


def test_a_communitys_kpi_csv_says_whose_value_an_indicator_measured_per_street_is(settings, catalog):
    """As its card does: a community's AQI is its street's, and the export names the street beside the value."""
    with session_scope(settings.database_url) as session:
        context = context_for(session, catalog)
        view = view_of(context, C111)
        exported, _entry = panel_file(context, view, "kpi", "csv", actor="tester", connector_intervals=INTERVALS)
        street = unit_readings(session, context.scope, catalog, context.ids, context.tree.id_by_code[S11],
                               context.now)
        street_name = context.tree.frame.at[context.tree.id_by_code[S11], "name_zh"]
    table = read_csv(exported.content).set_index("指标代码")
    aqi = table.loc["aqi"]
    assert street["aqi"].value is not None and float(aqi["数值"]) == pytest.approx(street["aqi"].value)
    assert aqi["数值所属单位"] == street_name and aqi["状态"] != "本级不统计"
    assert pd.isna(table.loc["hotline_complaints", "数值所属单位"])  # the community's own: nothing to say


def test_map_and_ranking_csv_equal_the_childrens_readings(settings, catalog):
    with session_scope(settings.database_url) as session:
        context = context_for(session, catalog)
        view = view_of(context, C111, indicator="aqi")  # a community: the map shows its street's communities
        children = children_readings(session, context.scope, catalog, context.ids, view.map_parent_id, "aqi",
                                     context.now)
        map_file, _ = panel_file(context, view, "map", "csv", actor="t", connector_intervals=INTERVALS)
        ranking_file, _ = panel_file(context, view, "ranking", "csv", actor="t", connector_intervals=INTERVALS)
    assert view.map_parent_id == context.tree.id_by_code[S11]
    expected = {code: as_float(value) for code, value in zip(children["code"], children["value"])}
    mapped = read_csv(map_file.content)
    assert mapped["单位代码"].tolist() == sorted(expected)
    assert {code: as_float(v) for code, v in zip(mapped["单位代码"], mapped["数值 (AQI)"])} == expected
    ranked = read_csv(ranking_file.content)
    order = ranked_children(children, catalog["aqi"])  # the comparison view's own order
    assert ranked["单位代码"].tolist() == order["code"].tolist()
    assert ranked["数值 (AQI)"].tolist() == pytest.approx(order["value"].astype(float).tolist(), nan_ok=True)
    values = ranked["数值 (AQI)"].dropna()
    assert ranked["排名"].dropna().astype(int).tolist() == list(range(1, len(values) + 1))
    current = ranked[ranked["状态"].isin(["正常", "预警", "告警"])]["数值 (AQI)"].tolist()
    assert current == sorted(current, reverse=True)  # AQI: higher is worse, worst first


@pytest.mark.parametrize("selection", [{"range": "24h"}, {"range": "7d"}, {"range": "custom", "start": None,
                                                                           "end": None}])
def test_trend_csv_equals_the_trend_query_for_the_selected_range(settings, catalog, selection):
    with session_scope(settings.database_url) as session:
        context = context_for(session, catalog)
        if selection["range"] == "custom":  # yesterday and today, whole days in the city's zone
            today = pd.Timestamp(context.now, unit="s", tz="UTC").tz_convert(ZONE).date()
            selection = {"range": "custom", "start": str(today - pd.Timedelta(days=1)), "end": str(today)}
        view = view_of(context, D2, selection=selection)
        exported, entry = panel_file(context, view, "trend", "csv", actor="t", connector_intervals=INTERVALS)
        series = trend(session, context.scope, catalog, context.ids, view.unit_id, "hotline_complaints",
                       *view.time_range.window)
    table = read_csv(exported.content)
    assert len(series) > 0 and len(table) == len(series)
    assert table.iloc[:, 0].tolist() == [local(at) for at in series["time"]]
    assert table.iloc[:, 1].tolist() == pytest.approx(series["value"].astype(float).tolist())
    assert table.columns[0] == f"时间 ({ZONE})" and table.columns[1] == "数值 (件/时)"
    assert entry.selection["range"] == selection["range"]
    assert (entry.selection["start"], entry.selection["end"]) == view.time_range.window


def test_a_communitys_trend_export_is_its_streets_for_an_indicator_measured_per_street(settings, catalog):
    """As the trend panel draws it: the street's AQI, and the file, its record and a chart's title say the street."""
    with session_scope(settings.database_url) as session:
        context = context_for(session, catalog)
        view = view_of(context, C111, indicator="aqi")
        exported, entry = panel_file(context, view, "trend", "csv", actor="t", connector_intervals=INTERVALS)
        street = context.tree.id_by_code[S11]
        series = trend(session, context.scope, catalog, context.ids, street, "aqi", *view.time_range.window)
    table = read_csv(exported.content)
    assert len(series) > 0 and table.iloc[:, 1].tolist() == pytest.approx(series["value"].astype(float).tolist())
    assert S11 in exported.filename and C111 not in exported.filename and entry.unit_code == S11


def test_children_below_the_measured_level_are_exported_as_not_measured(settings, catalog):
    """A street's communities for AQI (measured per street): "本级不统计", not "无数据" as if a source were silent."""
    with session_scope(settings.database_url) as session:
        context = context_for(session, catalog)
        below, _ = panel_file(context, view_of(context, S11, indicator="aqi"), "map", "csv", actor="t",
                              connector_intervals=INTERVALS)
        measured, _ = panel_file(context, view_of(context, D1, indicator="aqi"), "ranking", "csv", actor="t",
                                 connector_intervals=INTERVALS)
    rows = read_csv(below.content)
    assert len(rows) > 0 and set(rows["状态"]) == {"本级不统计"} and rows["数值 (AQI)"].isna().all()
    assert "本级不统计" not in set(read_csv(measured.content)["状态"])


def test_alert_csv_lists_the_open_alerts_of_the_scope_only(settings, catalog):
    with session_scope(settings.database_url) as session:
        context = context_for(session, catalog, root_code=D1)
        view = view_of(context, D1)
        exported, _ = panel_file(context, view, "alerts", "csv", actor="t", connector_intervals=INTERVALS)
        listed = alert_list(session, context.scope, context.tree, view.unit_id, context.now)
    table = read_csv(exported.content)
    assert table["告警编号"].tolist() == listed["id"].tolist() and len(table) == 1
    assert table["单位代码"].tolist() == [C111]
    assert table["级别"].tolist() == ["告警"]


def test_english_headers_and_words_for_an_english_viewer(settings, catalog):
    with session_scope(settings.database_url) as session:
        context = context_for(session, catalog, language="en")
        exported, _ = panel_file(context, view_of(context, D1), "kpi", "csv", actor="t",
                                 connector_intervals=INTERVALS)
    table = read_csv(exported.content)
    assert list(table.columns[:5]) == ["Indicator key", "Indicator", "Value", "Unit of measure", "Status"]
    assert set(table["Status"]) <= {"normal", "warning", "critical", "stale", "no data",
                                     "not measured at this level"}
    assert table.columns[5] == f"As of ({ZONE})"


def test_the_xlsx_opens_and_carries_the_stamp(settings, catalog):
    with session_scope(settings.database_url) as session:
        context = context_for(session, catalog, root_code=D1)
        view = view_of(context, S11, selection={"range": "24h"})
        exported, entry = panel_file(context, view, "trend", "xlsx", actor="王值班 (未认证)",
                                     connector_intervals=INTERVALS)
        series = trend(session, context.scope, catalog, context.ids, view.unit_id, "hotline_complaints",
                       *view.time_range.window)
    book = load_workbook(io.BytesIO(exported.content))
    assert book.sheetnames == ["数据", "导出信息"]
    data = book["数据"]
    assert [cell.value for cell in data[1]] == [f"时间 ({ZONE})", "数值 (件/时)", "已上报", "应上报"]
    assert data.max_row == len(series) + 1 and data.freeze_panes == "A2"
    first = data.cell(row=2, column=1)
    assert first.is_date and first.value.strftime("%Y-%m-%d %H:%M:%S") == local(series["time"].iloc[0])
    assert data.cell(row=2, column=2).value == pytest.approx(float(series["value"].iloc[0]))
    stamp = {row[0].value: row[1].value for row in book["导出信息"].iter_rows()}
    assert stamp["单位"] == "街道1001 (990101001)" and stamp["权限范围"] == "区1 (990101)"
    assert stamp["导出人"] == "王值班 (未认证)" and stamp["行数"] == f"{len(series):,}"
    assert stamp["指标"] == "12345热线诉求 (hotline_complaints)"
    assert stamp["时间范围"].startswith("近24小时 · ")
    assert stamp["数据截至"] == local(series["time"].max())[:16]
    assert stamp["数据源"].startswith("city-simulator 最近成功 ")
    assert exported.filename == entry.filename and entry.size == len(exported.content)


def test_filenames_carry_unit_indicator_and_the_citys_time():
    at = int(pd.Timestamp("2026-11-26 10:31", tz=ZONE).timestamp())
    assert export_filename("trend", "990101", "aqi", at, ZONE, "csv") == "onescreen-trend-990101-aqi-20261126-1031.csv"
    assert export_filename("kpi", "990101", None, at, ZONE, "xlsx") == "onescreen-kpi-990101-20261126-1031.xlsx"
    assert export_filename("map", "a/../b", "x y", at, ZONE, "csv") == "onescreen-map-a_.._b-x_y-20261126-1031.csv"


def test_csv_writes_missing_values_as_empty_cells_and_keeps_chinese():
    frame = pd.DataFrame({"单位": ["浦东新区", "黄浦区"], "数值": [1.25, None]})
    assert csv_bytes(frame).decode("utf-8") == "\ufeff单位,数值\r\n浦东新区,1.25\r\n黄浦区,\r\n"


# ------------------------------------------------------------------------------------------------
# Scope: never wider than the viewer's
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("panel", ["kpi", "map", "trend", "ranking", "alerts"])
def test_every_panel_refuses_a_unit_outside_the_scope(settings, catalog, panel):
    with session_scope(settings.database_url) as session:
        context = context_for(session, catalog, root_code=D1)
        with pytest.raises(OutOfScope):
            panel_table(context, view_of(context, D2), panel)


def menu_click(component_id: dict) -> list[dict]:
    return [{"prop_id": json.dumps(component_id, separators=(",", ":"), sort_keys=True) + ".n_clicks", "value": 1}]


def records(settings) -> list[ExportRecord]:
    with session_scope(settings.database_url) as session:
        return list(session.scalars(select(ExportRecord).order_by(ExportRecord.id)))


def test_the_callback_exports_the_scope_root_for_a_unit_outside_the_scope(app, settings, catalog, monkeypatch):
    from callbacks import context as callback_context
    from callbacks.exports import export_panel
    from dash import no_update

    monkeypatch.setattr(callback_context, "current_viewer", lambda: Viewer("district officer", root_code=D1))
    before = len(records(settings))
    download, drawing, status = in_callback(app, export_panel, [1], {"unit": D2, "indicator": "aqi"}, None,
                                            triggered=menu_click(ExportIds.item("kpi", "csv")))
    assert download["filename"].startswith(f"onescreen-kpi-{D1}-") and drawing is no_update
    table = read_csv(base64.b64decode(download["content"]))
    with session_scope(settings.database_url) as session:
        scope = viewer_scope(session, Viewer(root_code=D1))
        readings = unit_readings(session, scope, catalog, indicator_ids(session, catalog),
                                 load_tree(session).id_by_code[D1], int(time.time()))
    aqi = table[table["指标代码"] == "aqi"].iloc[0]
    assert as_float(aqi["数值"]) == pytest.approx(readings["aqi"].value)
    recorded = records(settings)[before:]
    assert [(r.panel, r.format, r.unit_code, r.scope_code, r.actor) for r in recorded] == [
        ("kpi", "csv", D1, D1, "匿名")]
    assert recorded[0].rows == len(catalog.kpis()) and recorded[0].bytes == len(base64.b64decode(download["content"]))
    assert json.loads(recorded[0].selection)["unit"] == D1
    assert "onescreen-kpi-" in str(status)


def test_a_forged_menu_entry_is_refused_and_nothing_recorded(app, settings):
    from callbacks.exports import export_panel
    from dash import no_update

    before = len(records(settings))
    for forged in (ExportIds.item("secrets", "csv"), ExportIds.item("kpi", "exe"), ExportIds.item("kpi", "png")):
        download, drawing, status = in_callback(app, export_panel, [1], {"unit": None}, None,
                                                triggered=menu_click(forged))
        assert download is no_update and drawing is no_update  # nothing handed over
        assert "导出失败" in str(status)
    assert len(records(settings)) == before


def test_a_chart_image_is_named_and_recorded_on_the_server_and_drawn_by_the_browser(app, settings):
    from callbacks.exports import export_panel
    from dash import no_update

    download, drawing, _status = in_callback(app, export_panel, [1], {"unit": S11, "indicator": "aqi",
                                                                      "range": "24h"}, "李分析",
                                             triggered=menu_click(ExportIds.item("trend", "svg")))
    assert download is no_update
    assert drawing["graph"] == "trend-graph" and drawing["format"] == "svg"
    assert drawing["filename"].startswith(f"onescreen-trend-{S11}-aqi-") and drawing["filename"].endswith(".svg")
    assert "李分析 (未认证)" in drawing["footnote"] and (drawing["width"], drawing["height"]) == (1600, 900)
    last = records(settings)[-1]
    assert (last.panel, last.format, last.unit_code, last.actor) == ("trend", "svg", S11, "李分析 (未认证)")
    assert last.bytes is None and last.rows is not None and last.id == drawing["record"]


def test_a_trusted_proxy_names_the_exporter(app, settings, monkeypatch):
    from callbacks.exports import export_panel

    monkeypatch.setenv("ONESCREEN_USER_HEADER", "X-Remote-User")
    in_callback(app, export_panel, [1], {"unit": None}, "typed name",
                triggered=menu_click(ExportIds.item("alerts", "xlsx")), headers={"X-Remote-User": "zhang.wei"})
    last = records(settings)[-1]
    assert (last.actor, last.panel, last.format, last.unit_code) == ("zhang.wei", "alerts", "xlsx", CITY)


def test_an_english_viewer_gets_english_files(app, settings):
    from callbacks.exports import export_panel

    download, _drawing, status = in_callback(app, export_panel, [1], {"unit": D2}, None,
                                             triggered=menu_click(ExportIds.item("map", "xlsx")),
                                             headers={"Cookie": "onescreen-language=en"})
    book = load_workbook(io.BytesIO(base64.b64decode(download["content"])))
    assert book.sheetnames == ["Data", "Export stamp"] and "Exported" in str(status)
    assert records(settings)[-1].language == "en"


def test_chart_requests_refuse_what_the_browser_does_not_draw(settings, catalog):
    with session_scope(settings.database_url) as session:
        context = context_for(session, catalog)
        for panel, fmt in (("kpi", "png"), ("ranking", "png"), ("trend", "pdf")):
            with pytest.raises(ValueError):
                chart_request(context, view_of(context, D1), panel, fmt, actor="t", city_name="x")


def test_the_cli_lists_the_exports(settings, monkeypatch):
    from onescreen import cli

    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    result = CliRunner().invoke(cli, ["exports", "list", "--limit", "5"])
    assert result.exit_code == 0, result.output
    newest = records(settings)[-1]
    assert result.output.splitlines()[0].startswith(f"#{newest.id} ") and newest.filename in result.output
    as_json = CliRunner().invoke(cli, ["exports", "list", "--limit", "1", "--json"])
    assert json.loads(as_json.output.splitlines()[0])["id"] == newest.id


def test_export_records_are_stored_and_listed_newest_first(db_url):
    """On SQLite and PostgreSQL: the migration's table holds every field, and the listing filters."""
    from cityops.exports.records import ExportEntry, record_export, recent_exports

    entry = ExportEntry(actor="张伟", panel="trend", format="csv", scope_code=D1, unit_code=S11, indicator="aqi",
                        selection={"unit": S11, "indicator": "aqi", "range": "24h", "start": 1, "end": 2}, rows=3,
                        size=120, filename="onescreen-trend.csv", language="zh")
    with session_scope(db_url) as session:
        first = record_export(session, entry, at=1000)
        second = record_export(session, replace(entry, actor="李娜", panel="report", format="pdf", rows=None,
                                                size=None), at=2000)
    with session_scope(db_url) as session:
        listed = recent_exports(session)
        mine = recent_exports(session, actor="张伟")
        later = recent_exports(session, since=1500)
    assert listed["id"].tolist() == [second, first]
    assert mine["id"].tolist() == [first] and later["id"].tolist() == [second]
    assert listed.iloc[1]["rows"] == 3 and listed.iloc[0]["rows"] is None and listed.iloc[0]["bytes"] is None
    assert json.loads(listed.iloc[1]["selection"]) == entry.selection
