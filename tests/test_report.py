"""Reports drawn on the server: the PDF carries the stamp as text (Chinese and English), the PNG has the size
asked for, the text layer copies Chinese as written, and every report is recorded within the viewer's scope."""

from __future__ import annotations

import base64
import io
import json
import struct
import sys
import time
import zlib
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).parent))

from city_factory import simulated_tiny_city  # noqa: E402
from cityops.catalog import load_catalog  # noqa: E402
from cityops.db import session_scope  # noqa: E402
from cityops.exports.exporting import chart_file, report_file  # noqa: E402
from cityops.exports.panel_data import ExportContext, ExportView  # noqa: E402
from cityops.exports.pdf_text import finish_pdf, ideograph_of, repaired_cmap  # noqa: E402
from cityops.exports.report_content import report_content  # noqa: E402
from cityops.exports.report_page import PAGE_HEIGHT, PAGE_WIDTH  # noqa: E402
from cityops.exports.stamp import full_time  # noqa: E402
from cityops.models import ExportRecord  # noqa: E402
from cityops.scope import OutOfScope, Viewer, viewer_scope  # noqa: E402
from cityops.settings import Settings  # noqa: E402
from cityops.storage import indicator_ids  # noqa: E402
from cityops.time_range import resolve_range  # noqa: E402
from cityops.tree import load_tree  # noqa: E402
from layouts.ids import ExportIds  # noqa: E402
from dash_calls import in_callback  # noqa: E402

D1, D2, C111 = "990101", "990102", "990101001001"
ZONE = "Asia/Shanghai"
INTERVALS = {"city-simulator": 300}


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return simulated_tiny_city(tmp_path_factory.mktemp("report"))


@pytest.fixture
def catalog(settings):
    return load_catalog(settings.catalog_path)


def context_for(session, catalog, language: str, root_code: str | None = None) -> ExportContext:
    scope = viewer_scope(session, Viewer(root_code=root_code))
    return ExportContext(session, scope, catalog, indicator_ids(session, catalog), load_tree(session),
                         int(time.time()), ZONE, language)


def view_of(context: ExportContext, code: str) -> ExportView:
    unit_id = context.tree.id_by_code[code]
    parent = unit_id if not context.tree.children(unit_id).empty else int(context.tree.frame.at[unit_id, "parent_id"])
    return ExportView(unit_id, parent, "hotline_complaints", resolve_range({"range": "7d"}, context.now, ZONE))


def pdf_text(content: bytes) -> str:
    return PdfReader(io.BytesIO(content)).pages[0].extract_text()


def squashed(text: str) -> str:
    """Without white space: how far apart two runs of text are drawn is the layout's business, not the text's."""
    return "".join(text.split())


def png_size(content: bytes) -> tuple[int, int]:
    assert content[:8] == b"\x89PNG\r\n\x1a\n" and content[12:16] == b"IHDR"
    return struct.unpack(">II", content[16:24])


@pytest.mark.parametrize("language, words", [
    ("zh", {"title": "小城市 · 城市运行报告", "as_of": "数据截至", "at": "导出时间", "by": "导出人", "scope": "权限范围",
            "source": "最近成功", "kpis": "社区01001 · 关键指标"}),
    ("en", {"title": "Tiny City · City operations report", "as_of": "Data as of", "at": "Exported at",
            "by": "Exported by", "scope": "Scope", "source": "last success",
            "kpis": "Community 01001 · key indicators"}),
])
def test_the_report_pdf_carries_the_stamp_as_text(settings, catalog, language, words):
    city = "小城市" if language == "zh" else "Tiny City"
    actor = "王值班 (未认证)" if language == "zh" else "Wang (unverified)"
    with session_scope(settings.database_url) as session:
        context = context_for(session, catalog, language)
        view = view_of(context, C111)
        content = report_content(context, view, city_name=city, actor=actor, connector_intervals=INTERVALS)
        exported, entry = report_file(context, view, "pdf", actor=actor, city_name=city,
                                      connector_intervals=INTERVALS)
    assert exported.content.startswith(b"%PDF-") and exported.filename.endswith(".pdf")
    reader = PdfReader(io.BytesIO(exported.content))
    assert len(reader.pages) == 1
    width, height = (float(v) for v in reader.pages[0].mediabox[2:])
    assert (round(width), round(height)) == (842, 596)  # A4 landscape, in points
    text = reader.pages[0].extract_text()
    stamp = content.stamp
    assert stamp.as_of is not None
    for expected in (words["title"], f"{words['as_of']}  {full_time(stamp.as_of, ZONE)}",
                     f"{words['at']}  {full_time(stamp.exported_at, ZONE)} ({ZONE})", f"{words['by']}  {actor}",
                     f"{words['scope']}  {city} (990000)", "city-simulator", words["source"], words["kpis"]):
        assert squashed(expected) in squashed(text), f"{expected!r} not in the PDF's text:\n{text}"
    assert reader.metadata.title.startswith(words["title"]) and reader.metadata.author == actor
    assert entry.panel == "report" and entry.format == "pdf" and entry.size == len(exported.content)


def test_a_communitys_report_shows_its_streets_values_for_indicators_measured_per_street(settings, catalog):
    """As the screen does: the KPI row names the street whose AQI it is, and the trend is the street's."""
    with session_scope(settings.database_url) as session:
        context = context_for(session, catalog, "zh")
        unit = context.tree.id_by_code[C111]
        street_id = int(context.tree.frame.at[unit, "parent_id"])
        street = context.unit_name(street_id)
        view = ExportView(unit, street_id, "aqi", resolve_range({"range": "7d"}, context.now, ZONE))
        content = report_content(context, view, city_name="小城市", actor="t", connector_intervals=INTERVALS)
        exported, _ = report_file(context, view, "pdf", actor="t", city_name="小城市", connector_intervals=INTERVALS)
    aqi = dict((indicator.key, reading) for indicator, reading in content.kpis)["aqi"]
    assert aqi.owner_id == street_id and aqi.value is not None and content.owner_names[street_id] == street
    assert content.trend_unit_name == street and content.series["value"].notna().any()
    text = squashed(pdf_text(exported.content))
    assert squashed(f"空气质量指数 · 趋势 · {street}") in text and f"空气质量指数（{street}" in text
    # The map's communities are not coloured and the ranking has none: both say why, as the screen does.
    assert squashed("社区/村级不统计，按街道/镇统计") in text and text.count("社区/村级不统计") == 2


def test_a_community_only_viewers_report_has_no_street_values(settings, catalog):
    """A viewer limited to the community: no street's AQI in the KPI rows or the trend, which says why."""
    with session_scope(settings.database_url) as session:
        context = context_for(session, catalog, "zh", root_code=C111)
        unit = context.tree.id_by_code[C111]
        # The map shows the community itself (callbacks/context.py resolve_view: its street is out of scope).
        view = ExportView(unit, unit, "aqi", resolve_range({"range": "7d"}, context.now, ZONE))
        content = report_content(context, view, city_name="小城市", actor="t", connector_intervals=INTERVALS)
        exported, _ = report_file(context, view, "pdf", actor="t", city_name="小城市", connector_intervals=INTERVALS)
    aqi = dict((indicator.key, reading) for indicator, reading in content.kpis)["aqi"]
    assert aqi.owner_id is None and aqi.value is None and not content.trend_measured
    assert content.series["value"].isna().all() if len(content.series) else True
    text = squashed(pdf_text(exported.content))
    assert "街道1001" not in text and text.count("社区/村级不统计") >= 1


def test_chinese_text_in_the_pdf_copies_as_written(settings, catalog):
    """运行 and 导出人 (whose 行 and 人 the CJK font shares with Kangxi radicals) come out as typed."""
    with session_scope(settings.database_url) as session:
        context = context_for(session, catalog, "zh")
        exported, _ = report_file(context, view_of(context, D1), "pdf", actor="黄民青", city_name="海城市",
                                  connector_intervals=INTERVALS)
    text = pdf_text(exported.content)
    assert "城市运行报告" in text and "导出人黄民青" in squashed(text)
    assert not any(0x2E80 <= ord(char) <= 0x2FDF for char in text), "radicals left in the text layer"


def test_the_report_png_has_the_size_asked_for(settings, catalog):
    with session_scope(settings.database_url) as session:
        context = context_for(session, catalog, "zh")
        exported, entry = report_file(context, view_of(context, D2), "png", actor="t", city_name="海城市",
                                      connector_intervals=INTERVALS, png_width=1600)
        with pytest.raises(ValueError):
            report_file(context, view_of(context, D2), "png", actor="t", city_name="海城市",
                        connector_intervals=INTERVALS, png_width=100_000)
    assert png_size(exported.content) == (1600, round(PAGE_HEIGHT * 1600 / PAGE_WIDTH))
    assert entry.format == "png" and entry.unit_code == D2


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_the_ranking_chart_is_drawn_on_the_server(settings, catalog, fmt):
    with session_scope(settings.database_url) as session:
        context = context_for(session, catalog, "en")
        exported, entry = chart_file(context, view_of(context, D1), "ranking", fmt, actor="t", city_name="Tiny City")
    if fmt == "png":
        assert png_size(exported.content) == (1200, 900)
    else:
        svg = exported.content.decode("utf-8")
        assert svg.lstrip().startswith("<svg") and "Street 1001" in svg
        assert "Streets ranked · 12345 hotline complaints" in svg
    assert exported.filename.startswith(f"onescreen-ranking-{D1}-hotline_complaints-")
    assert (entry.panel, entry.format, entry.size, entry.rows) == ("ranking", fmt, len(exported.content), 2)


def test_a_report_of_a_unit_outside_the_scope_is_refused(settings, catalog):
    with session_scope(settings.database_url) as session:
        context = context_for(session, catalog, "zh", root_code=D1)
        with pytest.raises(OutOfScope):
            report_content(context, view_of(context, D2), city_name="x", actor="t", connector_intervals=INTERVALS)


def test_the_report_button_reports_the_scope_and_records_it(settings, monkeypatch):
    from app import create_app
    from callbacks import context as callback_context
    from callbacks.exports import export_report

    app = create_app(settings)
    monkeypatch.setattr(callback_context, "current_viewer", lambda: Viewer("district officer", root_code=D1))
    click = [{"prop_id": json.dumps(ExportIds.report("scope", "pdf"), separators=(",", ":"), sort_keys=True)
              + ".n_clicks", "value": 1}]
    download, status = in_callback(app, export_report, [1], {"unit": D2, "indicator": "aqi"}, None,
                                   triggered=click)
    content = base64.b64decode(download["content"])
    assert download["filename"].startswith(f"onescreen-report-{D1}-aqi-") and download["type"] == "application/pdf"
    text = pdf_text(content)
    assert "区1(990101)" in squashed(text) and "区2" not in text  # the scope's root, never the unit outside it
    with session_scope(settings.database_url) as session:
        record = session.scalars(select(ExportRecord).order_by(ExportRecord.id.desc())).first()
    assert (record.panel, record.format, record.unit_code, record.scope_code, record.actor) == (
        "report", "pdf", D1, D1, "匿名")
    assert record.bytes == len(content) and f"onescreen-report-{D1}-aqi-" in str(status)


# ------------------------------------------------------------------------------------------------
# The text layer's repair, on its own
# ------------------------------------------------------------------------------------------------


def test_drawing_fetches_nothing_from_the_internet():
    """The page kaleido draws in loads plotly.js from the plotly package and no MathJax (its default: a CDN)."""
    from kaleido import PageGenerator

    from cityops.exports.render import PLOTLY_JS

    page = PageGenerator(plotly=PLOTLY_JS.as_uri(), mathjax=False).generate_index()
    assert PLOTLY_JS.is_file() and PLOTLY_JS.as_uri() in page
    assert "http://" not in page and "https://" not in page


def test_radicals_become_the_ideographs_they_stand_for():
    assert ideograph_of("⺠") == "民" and ideograph_of("⾏") == "行" and ideograph_of("⼈") == "人"
    assert ideograph_of("a") == "a" and ideograph_of("民") == "民"
    cmap = ("/CIDInit /ProcSet findresource begin\nbegincmap\n1 begincodespacerange\n<00> <FF>\nendcodespacerange\n"
            "2 beginbfchar\n<01> <2EA0>\n<02> <0041>\nendbfchar\n1 beginbfrange\n<10> <12> <2F8F>\nendbfrange\n"
            "endcmap\nend\n")
    repaired = repaired_cmap(cmap)
    assert "<01> <6C11>" in repaired and "<02> <0041>" in repaired  # ⺠ → 民; A stays A
    assert "<10> <884C>" in repaired and "<11> <2F90>" not in repaired  # ⾏ → 行 and the range around it
    assert "2F" not in repaired.split("endcodespacerange")[1] and repaired.startswith("/CIDInit")
    assert repaired_cmap(cmap.replace("<2EA0>", "<6C11>").replace("<2F8F>", "<4E00>")) is None


def test_the_repair_appends_an_update_and_keeps_what_chromium_wrote():
    stream = zlib.compress(b"begincmap\n1 begincodespacerange\n<00> <FF>\nendcodespacerange\n1 beginbfchar\n"
                           b"<01> <2EA0>\nendbfchar\nendcmap")
    original = (b"%%PDF-1.4\n1 0 obj\n<</Type /Catalog>>\nendobj\n2 0 obj\n<</Type /Font /ToUnicode 3 0 R>>\nendobj\n"
                b"3 0 obj\n<</Filter /FlateDecode\n/Length %d>> stream\n" % len(stream) + stream
                + b"\nendstream\nendobj\nxref\n0 4\ntrailer\n<</Size 4\n/Root 1 0 R>>\nstartxref\n130\n%%EOF\n")
    finished = finish_pdf(original, title="海城市 · 报告", author="王", subject="s", created=0)
    assert finished.startswith(original)
    update = finished[len(original):]
    assert b"3 0 obj" in update and b"/Prev 130" in update and b"/Info 4 0 R" in update and b"/Size 5" in update
    assert finish_pdf(b"%PDF-1.4\nnot a pdf this understands", title="t", author="a", subject="s",
                      created=0) == b"%PDF-1.4\nnot a pdf this understands"
