"""The drop-folder connector (CSV and .xlsx files) through the real runner, with real files and databases.

Files are written into a temporary drop folder; every run goes through `run_connector` with an archive, and
what was stored is read back with SQL.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook
from sqlalchemy import text

import connectors.files  # noqa: F401  (registers drop_folder)
from cityops.hierarchy import Level
from cityops.tree import load_tree
from connectors.archive import run_payloads
from connectors.base import ConnectorContext, Health
from connectors.config import ConnectorInstance
from connectors.files import DropFolderConnector
from connectors.mapping import FieldMapping
from connectors.runner import run_connector

ZONE = "Asia/Shanghai"
SHANGHAI = ZoneInfo(ZONE)
NOW = int(datetime(2026, 11, 26, 10, 30, tzinfo=SHANGHAI).timestamp())
ALL_LEVELS = (Level.DISTRICT, Level.STREET, Level.COMMUNITY)
C1, C2, C3 = "990101001001", "990101001002", "990101002001"
S11, S12 = "990101001", "990101002"

LONG = FieldMapping.parse({"unit_code": "社区代码", "observed_at": "时间", "indicator": "指标", "value": "数值",
                           "indicator_names": {"热线投诉": "hotline_complaints", "火警": "fire_alarms"}})
WIDE = FieldMapping.parse({"unit_code": "街道代码", "observed_at": "时间",
                           "values": {"aqi": "AQI", "pm25": "PM2.5", "noise": "噪声"}})
HEADER = ["社区代码", "时间", "指标", "数值"]


def at(hour: int, minute: int = 0) -> int:
    return int(datetime(2026, 11, 26, hour, minute, tzinfo=SHANGHAI).timestamp())


def drop(folder: Path, mapping: FieldMapping = LONG, **config) -> ConnectorInstance:
    config = {"folder": str(folder), "settle_seconds": 0, **config}
    return ConnectorInstance(name="drops", type="drop_folder", levels=ALL_LEVELS, interval_seconds=300,
                             config=config, mapping=mapping)


def run(db, inst, archive: Path, **options):
    return run_connector(db.url, inst, db.catalog, timezone=ZONE, now=NOW, archive_root=archive, **options)


def write_csv(path: Path, rows: list[list[str]], encoding: str = "utf-8", delimiter: str = ",") -> Path:
    path.write_bytes(("\n".join(delimiter.join(row) for row in rows) + "\n").encode(encoding))
    return path


def fetch_all(db, sql, **params):
    with db.session() as session:
        return [tuple(row) for row in session.execute(text(sql), params).all()]


def stored(db) -> dict[tuple[str, str, int], float]:
    rows = fetch_all(db, "SELECT u.code, i.key, o.observed_at, o.value FROM observations o "
                         "JOIN units u ON u.id = o.unit_id JOIN indicators i ON i.id = o.indicator_id")
    return {(code, key, int(when)): value for code, key, when, value in rows}


def quarantined(db) -> list[tuple[str, dict, str | None]]:
    return [(reason, json.loads(raw), source)
            for reason, raw, source in fetch_all(db, "SELECT reason, raw, source FROM quarantine ORDER BY id")]


def cursor_of(db):
    found = fetch_all(db, "SELECT cursor FROM connector_cursors WHERE connector = 'drops'")
    return found[0][0] if found else None


def names(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# ------------------------------------------------------------------------------------------------
# Good files
# ------------------------------------------------------------------------------------------------


def test_a_csv_with_chinese_headers_is_archived_stored_confirmed_and_replayable(sqlite_city_db, tmp_path):
    folder, archive = tmp_path / "drop", tmp_path / "archive"
    folder.mkdir()
    original = write_csv(folder / "热线报表.csv", [HEADER, [C1, "2026-11-26 10:00", "热线投诉", "3"],
                                                   [C2, "2026-11-26T10:00:00+08:00", "火警", " 1 "],
                                                   ["990199999999", "2026-11-26 10:00", "热线投诉", "2"]])
    content = original.read_bytes()
    inst = drop(folder)

    first = run(sqlite_city_db, inst, archive)
    assert (first.status, first.fetched, first.accepted, first.rejected, first.duplicates) == \
        ("partial", 3, 2, 1, 0)
    assert stored(sqlite_city_db) == {(C1, "hotline_complaints", at(10)): 3.0, (C2, "fire_alarms", at(10)): 1.0}
    # Committed, so the runner told the connector (committed()): the file is done.
    token = cursor_of(sqlite_city_db)
    assert names(folder) == ["processed/热线报表.csv"]
    [reference] = run_payloads(archive, first.archive)
    with gzip.open(archive / reference) as payload:
        assert payload.read() == content
    [(reason, raw, source)] = quarantined(sqlite_city_db)
    assert reason == "unknown unit code '990199999999'"
    assert source == f"{reference}#4"
    assert raw == {"_file": "热线报表.csv", "_line": 4, "社区代码": "990199999999", "时间": "2026-11-26 10:00",
                   "指标": "热线投诉", "数值": "2"}

    # The next run finds nothing to do.
    second = run(sqlite_city_db, inst, archive)
    assert (second.status, second.fetched, second.accepted) == ("ok", 0, 0)
    assert names(folder) == ["processed/热线报表.csv"]
    assert (folder / "processed/热线报表.csv").read_bytes() == content

    replay = run(sqlite_city_db, inst, archive, replay=[reference])
    assert (replay.status, replay.fetched, replay.accepted, replay.duplicates, replay.rejected) == \
        ("partial", 3, 0, 2, 1)
    assert cursor_of(sqlite_city_db) == token and names(folder) == ["processed/热线报表.csv"]
    assert len(stored(sqlite_city_db)) == 2


@pytest.mark.parametrize("encoding, configured, delimiter", [
    ("utf-8", "auto", ","), ("utf-8-sig", "auto", ","), ("gbk", "auto", ","), ("gb18030", "auto", ";"),
    ("gbk", "gbk", ","), ("utf-16", "auto", "\t"), ("utf-8-sig", "utf-8", ","),
])
def test_encodings_are_detected_and_spreadsheet_dates_normalised(sqlite_city_db, tmp_path, encoding, configured,
                                                                 delimiter):
    folder = tmp_path / "drop"
    folder.mkdir()
    write_csv(folder / "export.csv", [HEADER, [C1, "2026/11/26 9:05", "热线投诉", "7"],
                                      [C2, "2026/11/26", "火警", "0"], [C3, "2026-11-26 10:00", "火警", "2"]],
              encoding=encoding, delimiter=delimiter)
    summary = run(sqlite_city_db, drop(folder, encoding=configured, delimiter=delimiter), tmp_path / "archive")
    assert (summary.status, summary.accepted, summary.rejected) == ("ok", 3, 0)
    assert stored(sqlite_city_db) == {(C1, "hotline_complaints", at(9, 5)): 7.0, (C2, "fire_alarms", at(0)): 0.0,
                                      (C3, "fire_alarms", at(10)): 2.0}


def test_an_xlsx_wide_sheet_is_streamed_and_replayed_by_content(sqlite_city_db, tmp_path):
    folder, archive = tmp_path / "drop", tmp_path / "archive"
    folder.mkdir()
    book = Workbook()
    book.active.title = "说明"
    book.active.append(["this sheet is not read"])
    sheet = book.create_sheet("报表")
    sheet.append(["江宁区 11 月空气质量报表"])  # a title row above the header
    sheet.append(["街道代码", "时间", "AQI", "PM2.5", "噪声", "备注"])
    sheet.append([int(S11), datetime(2026, 11, 26, 10, 0), 52, 31.5, 55.2, None])  # a code stored as a number
    sheet.append([])
    sheet.append([S12, "2026/11/26 10:00", 48, 30, None, "噪声仪故障"])
    book.save(folder / "空气.xlsx")
    inst = drop(folder, WIDE, sheet="报表")

    first = run(sqlite_city_db, inst, archive)
    assert (first.status, first.fetched, first.accepted, first.rejected) == ("partial", 6, 5, 1)
    assert stored(sqlite_city_db) == {
        (S11, "aqi", at(10)): 52.0, (S11, "pm25", at(10)): 31.5, (S11, "noise", at(10)): 55.2,
        (S12, "aqi", at(10)): 48.0, (S12, "pm25", at(10)): 30.0}
    [reference] = run_payloads(archive, first.archive)
    [(reason, raw, source)] = quarantined(sqlite_city_db)
    assert reason == "value None is not a number" and source == f"{reference}#5"  # the row Excel shows
    assert raw["_line"] == 5 and raw["街道代码"] == S12 and raw["备注"] == "噪声仪故障"

    # The archive label lost the Chinese name ("…-xlsx.gz"): the payload is recognised as a workbook by content.
    assert reference.endswith("xlsx.gz")
    cursor_before = cursor_of(sqlite_city_db)
    replay = run(sqlite_city_db, inst, archive, replay=[reference])
    assert (replay.accepted, replay.duplicates, replay.rejected) == (0, 5, 1)
    assert cursor_of(sqlite_city_db) == cursor_before  # a replay moves no cursor


def test_duplicates_within_a_file_and_across_runs_are_stored_once(city_db, tmp_path):
    folder, archive = tmp_path / "drop", tmp_path / "archive"
    folder.mkdir()
    rows = [["街道代码", "时间", "AQI", "PM2.5", "噪声"], [S11, "2026-11-26 10:00", "50", "30", "55"],
            [S12, "2026-11-26 10:00", "60", "40", "57"], [S11, "2026-11-26 10:00", "51", "31", "56"]]
    write_csv(folder / "报表.csv", rows)
    inst = drop(folder, WIDE)
    first = run(city_db, inst, archive)
    # The repeated street's row comes last and wins, as it would in a later run.
    assert (first.status, first.fetched, first.accepted, first.duplicates) == ("ok", 9, 6, 3)
    expected = {(S11, "aqi", at(10)): 51.0, (S11, "pm25", at(10)): 31.0, (S11, "noise", at(10)): 56.0,
                (S12, "aqi", at(10)): 60.0, (S12, "pm25", at(10)): 40.0, (S12, "noise", at(10)): 57.0}
    assert stored(city_db) == expected

    write_csv(folder / "报表.csv", rows)  # the office sends the same file again, under the same name
    second = run(city_db, inst, archive)
    assert (second.status, second.fetched, second.accepted, second.duplicates) == ("ok", 9, 0, 9)
    third = run(city_db, inst, archive)
    assert third.fetched == 0
    assert names(folder) == ["processed/报表-2.csv", "processed/报表.csv"]
    assert stored(city_db) == expected
    assert fetch_all(city_db, "SELECT count(*) FROM observations") == [(6,)]


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------


def test_a_broken_row_is_quarantined_with_its_line_and_the_rows_around_it_are_kept(sqlite_city_db, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "社区.csv").write_text(
        "社区代码,时间,指标,数值,备注\n"
        f'{C1},2026-11-26 09:00,热线投诉,1,"两行\n的备注"\n'  # one row on lines 2-3
        f"{C2},2026-11-26 09:00,热线投诉,2,\n"
        f"{C3},2026-11-26 09:00,热线投诉,3,多,一列\n"  # line 5: six fields
        "\n"
        f"{C1},2026-11-26 10:00,热线投诉,4,,,\n"  # trailing empty fields carry nothing: kept
        f"{C2},2026-11-26 10:00,热线投诉,5,\n", encoding="utf-8")
    summary = run(sqlite_city_db, drop(folder, batch_rows=2), tmp_path / "archive")
    assert (summary.status, summary.fetched, summary.accepted, summary.rejected) == ("partial", 5, 4, 1)
    assert stored(sqlite_city_db) == {(C1, "hotline_complaints", at(9)): 1.0, (C2, "hotline_complaints", at(9)): 2.0,
                                      (C1, "hotline_complaints", at(10)): 4.0,
                                      (C2, "hotline_complaints", at(10)): 5.0}
    [(reason, raw, source)] = quarantined(sqlite_city_db)
    assert reason == "社区.csv line 5: 6 fields where the header has 5; this row is skipped, the rest of the file is read"
    assert raw == {"_file": "社区.csv", "_line": 5, "_fields": [C3, "2026-11-26 09:00", "热线投诉", "3", "多", "一列"]}
    assert source.endswith("csv.gz#5")


def test_unreadable_files_go_to_failed_with_a_reason_and_the_others_are_read(sqlite_city_db, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    write_csv(folder / "a_missing.csv", [["社区报表", "", "", ""], ["社区代码", "时间", "指标", "值"],
                                         [C1, "2026-11-26 10:00", "火警", "1"]])
    (folder / "b_garbage.csv").write_bytes(bytes(range(256)) * 8)
    (folder / "c_truncated.xlsx").write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    (folder / "d_legacy.xlsx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64)
    (folder / "e_empty.csv").write_bytes(b"")
    write_csv(folder / "f_semicolons.csv", [HEADER], delimiter=";")
    write_csv(folder / "g_twice.csv", [[*HEADER, "数值"], [C1, "2026-11-26 10:00", "火警", "1", "2"]])
    write_csv(folder / "h_good.csv", [HEADER, [C1, "2026-11-26 10:00", "火警", "1"]])
    for position, path in enumerate(sorted(folder.iterdir())):  # oldest first: in name order
        os.utime(path, (NOW + position, NOW + position))

    summary = run(sqlite_city_db, drop(folder), tmp_path / "archive")
    assert (summary.status, summary.fetched, summary.accepted, summary.rejected) == ("partial", 8, 1, 7)
    assert stored(sqlite_city_db) == {(C1, "fire_alarms", at(10)): 1.0}
    failed = {path.name: path for path in (folder / "failed").iterdir()}
    expected = {
        "a_missing.csv": "a_missing.csv has no column 数值 (the mapping reads 社区代码, 时间, 指标, 数值); its header "
                         "row has 社区代码, 时间, 指标, 值",
        "b_garbage.csv": "b_garbage.csv is not text (it holds NUL bytes): export it as CSV or .xlsx",
        "c_truncated.xlsx": "c_truncated.xlsx is not a readable .xlsx workbook (BadZipFile: File is not a zip file)",
        "d_legacy.xlsx": "d_legacy.xlsx is an old Excel 97-2003 (.xls) or password-protected workbook; save it as "
                         ".xlsx or CSV without a password",
        "e_empty.csv": "e_empty.csv is empty",
        "f_semicolons.csv": "f_semicolons.csv has no column 社区代码, 时间, 指标, 数值 (the mapping reads 社区代码, 时间, "
                            "指标, 数值); its header row has 社区代码;时间;指标;数值 (one column only: is "
                            "config.delimiter right?)",
        "g_twice.csv": "g_twice.csv line 1: column(s) 数值 appear more than once in the header; which one to read "
                       "is ambiguous",
    }
    assert sorted(failed) == sorted([*expected, *(f"{name}.reason.txt" for name in expected)])
    reasons = quarantined(sqlite_city_db)
    for (reason, raw, source), (name, why) in zip(reasons, expected.items()):
        assert reason == f"{why}; moved to failed/{name}"
        assert raw == {"_file": name, "moved_to": f"failed/{name}"} and source.endswith(".gz")
        note = failed[f"{name}.reason.txt"].read_text(encoding="utf-8")
        assert note.startswith(why + "\n") and f"put it back in {folder}" in note
    assert (folder / "failed/b_garbage.csv").read_bytes() == bytes(range(256)) * 8

    # Putting a fixed file back reads it again.
    (folder / "failed/a_missing.csv").unlink()
    write_csv(folder / "a_missing.csv", [HEADER, [C1, "2026-11-26 10:00", "火警", "1"]])
    again = run(sqlite_city_db, drop(folder), tmp_path / "archive")
    assert (again.status, again.fetched, again.duplicates) == ("ok", 1, 1)


def test_a_wrong_encoding_midway_fails_the_file_and_keeps_what_was_read(sqlite_city_db, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    good = [",".join(HEADER)] + [f"{C1},2026-11-26T{m // 60:02d}:{m % 60:02d},热线投诉,{m}" for m in range(500)]
    bad = f"{C2},2026-11-26 10:00,热线投诉,2\n".encode("gbk")  # line 502
    (folder / "mixed.csv").write_bytes(("\n".join(good) + "\n").encode("utf-8") + bad)
    summary = run(sqlite_city_db, drop(folder, encoding="utf-8", batch_rows=1), tmp_path / "archive")
    # The rows decoded before the bad bytes are stored; the file waits in failed/ for a fixed export.
    assert 300 < summary.accepted < 500 and summary.rejected == 1
    [(reason, _raw, _source)] = quarantined(sqlite_city_db)
    assert reason.startswith(f"mixed.csv: bytes that are not utf-8-sig text at or after line {summary.accepted + 2} "
                             f"(invalid")
    assert reason.endswith("set config.encoding to the file's encoding or re-export it as UTF-8; "
                           "moved to failed/mixed.csv")
    assert names(folder) == ["failed/mixed.csv", "failed/mixed.csv.reason.txt"]


# ------------------------------------------------------------------------------------------------
# Exactly once: processing/ as the in-progress marker, the cursor as the commit receipt
# ------------------------------------------------------------------------------------------------


def test_files_left_by_a_crashed_run_are_read_again_without_duplicating(sqlite_city_db, tmp_path):
    folder, archive = tmp_path / "drop", tmp_path / "archive"
    folder.mkdir()
    rows = [HEADER, [C1, "2026-11-26 10:00", "热线投诉", "3"], [C2, "2026-11-26 10:00", "热线投诉", "4"]]
    write_csv(folder / "a.csv", rows)
    inst = drop(folder)
    first = run(sqlite_city_db, inst, archive)
    assert first.accepted == 2

    # A run that crashed before committing left two files claimed: one already stored, one never stored.
    crashed = folder / "processing" / "1700000000.000000"
    crashed.mkdir()
    write_csv(crashed / "a.csv", rows)
    write_csv(crashed / "b.csv", [HEADER, [C3, "2026-11-26 10:00", "火警", "1"]])
    recovery = run(sqlite_city_db, inst, archive)
    assert (recovery.status, recovery.fetched, recovery.accepted, recovery.duplicates) == ("ok", 3, 1, 2)
    assert names(folder) == ["processed/a-2.csv", "processed/a.csv", "processed/b.csv"]

    last = run(sqlite_city_db, inst, archive)
    assert last.fetched == 0
    assert stored(sqlite_city_db) == {(C1, "hotline_complaints", at(10)): 3.0,
                                      (C2, "hotline_complaints", at(10)): 4.0, (C3, "fire_alarms", at(10)): 1.0}


def test_a_file_with_every_record_rejected_is_quarantined_once(sqlite_city_db, tmp_path):
    """Nothing stored, but the quarantine was committed: the run is confirmed and the file is done."""
    folder, archive = tmp_path / "drop", tmp_path / "archive"
    folder.mkdir()
    write_csv(folder / "wrong_codes.csv", [HEADER, ["123", "2026-11-26 10:00", "热线投诉", "3"]])
    inst = drop(folder)
    assert run(sqlite_city_db, inst, archive).rejected == 1
    assert run(sqlite_city_db, inst, archive).fetched == 0
    assert names(folder) == ["processed/wrong_codes.csv"]
    assert [reason for reason, _raw, _source in quarantined(sqlite_city_db)] == ["unknown unit code '123'"]


def test_a_file_read_twice_by_runs_that_never_committed_goes_to_failed(sqlite_city_db, tmp_path):
    """Two crashed runs in a row (simulated by the claim folders they leave): the third refuses the file."""
    folder, archive = tmp_path / "drop", tmp_path / "archive"
    crashed = folder / "processing" / "1700000000.000000" / "again"
    crashed.mkdir(parents=True)
    write_csv(crashed / "wrong_codes.csv", [HEADER, ["123", "2026-11-26 10:00", "热线投诉", "3"]])
    inst = drop(folder)
    third = run(sqlite_city_db, inst, archive)
    assert (third.fetched, third.rejected) == (1, 1)
    assert names(folder) == ["failed/wrong_codes.csv", "failed/wrong_codes.csv.reason.txt"]
    [reason] = [reason for reason, _raw, _source in quarantined(sqlite_city_db)]
    assert reason.startswith("wrong_codes.csv was read twice and neither run was confirmed committed: either "
                             "none of its records passed validation")


def test_files_still_being_written_hidden_files_and_other_names_wait(sqlite_city_db, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    fresh = write_csv(folder / "fresh.CSV", [HEADER, [C1, "2026-11-26 10:00", "火警", "1"]])
    write_csv(folder / "~$lock.xlsx", [HEADER])
    write_csv(folder / ".hidden.csv", [HEADER])
    write_csv(folder / "notes.txt", [HEADER])
    inst = drop(folder, settle_seconds=60)
    assert run(sqlite_city_db, inst, tmp_path / "archive").fetched == 0
    assert (folder / "fresh.CSV").exists()
    os.utime(fresh, (time.time() - 120, time.time() - 120))
    summary = run(sqlite_city_db, inst, tmp_path / "archive")
    assert (summary.fetched, summary.accepted) == (1, 1)
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == [".hidden.csv", "notes.txt", "~$lock.xlsx"]


# ------------------------------------------------------------------------------------------------
# Health and configuration
# ------------------------------------------------------------------------------------------------


def connector(db, folder: Path, **config) -> DropFolderConnector:
    with db.session() as session:
        tree = load_tree(session)
    context = ConnectorContext(catalog=db.catalog, tree=tree, now=NOW, timezone=ZONE)
    return DropFolderConnector("drops", {"folder": str(folder), **config}, context, LONG)


def test_check_counts_files_and_changes_nothing(sqlite_city_db, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    write_csv(folder / "a.csv", [HEADER])
    write_csv(folder / "b.xlsx", [HEADER])
    write_csv(folder / "~$b.xlsx", [HEADER])
    health = connector(sqlite_city_db, folder).check()
    assert health.healthy and health.detail.startswith(f"2 file(s) waiting in {folder} (oldest from ")
    assert names(folder) == ["a.csv", "b.xlsx", "~$b.xlsx"]

    (folder / "processing/1.000000").mkdir(parents=True)
    write_csv(folder / "processing/1.000000/c.csv", [HEADER])
    (folder / "failed").mkdir()
    write_csv(folder / "failed/d.csv", [HEADER])
    (folder / "failed/d.csv.reason.txt").write_text("why")
    detail = connector(sqlite_city_db, folder).check().detail
    assert detail.endswith("; 1 read, awaiting the next run's confirmation in processing/; "
                           "1 refused in failed/ (see the .reason.txt files)")


def test_an_unusable_folder_or_config_is_unhealthy_and_fails_the_run(sqlite_city_db, tmp_path):
    missing = tmp_path / "nowhere"
    health = connector(sqlite_city_db, missing).check()
    assert not health.healthy
    assert health.detail == f"drop folder {missing} does not exist or is not a folder: create it or fix config.folder"
    (tmp_path / "a_file").write_text("x")
    assert not connector(sqlite_city_db, tmp_path / "a_file").check().healthy
    assert connector(sqlite_city_db, tmp_path, delimiter=";;").check() == Health(
        False, "connector drops: config: delimiter must be one character, got ';;'")
    assert "is not a known encoding" in connector(sqlite_city_db, tmp_path, encoding="latin-9x").check().detail

    # connectors.yaml is checked at start-up with the same rules.
    with pytest.raises(ValueError, match="^batch_rows must be a positive number of rows$"):
        DropFolderConnector.validate_config({"folder": str(tmp_path), "batch_rows": 0})
    DropFolderConnector.validate_config({"folder": str(missing)})  # a folder may appear after start-up

    summary = run(sqlite_city_db, drop(missing), tmp_path / "archive")
    assert (summary.status, summary.error_family) == ("failed", "fatal")
    assert summary.error_message == f"connector drops: drop folder {missing} does not exist or is not a folder: " \
                                    f"create it or fix config.folder"
    assert not missing.exists()


def test_the_documented_yaml_example_loads(tmp_path, catalog):
    from textwrap import dedent

    from connectors.config import load_connectors

    doc = connectors.files.__doc__
    example = dedent(doc[doc.index("    connectors:"):doc.index("\n\n", doc.index("    connectors:"))])
    (tmp_path / "connectors.yaml").write_text(example, encoding="utf-8")
    [loaded] = load_connectors(tmp_path / "connectors.yaml", catalog_keys=[i.key for i in catalog])
    assert (loaded.type, loaded.config["folder"], loaded.config["sheet"]) == \
        ("drop_folder", "/srv/onescreen/drop/jiangning", "报表")
    assert loaded.mapping.indicator_names == {"热线投诉": "hotline_complaints", "火警": "fire_alarms"}


# ------------------------------------------------------------------------------------------------
# Reading CSV fast, exactly as the csv module reads it
# ------------------------------------------------------------------------------------------------


def csv_module_rows(content: bytes, encoding: str) -> list[tuple[int, list[str]]]:
    """(first line, fields) of each row as the csv module reads the file: what CsvRows must give."""
    import csv
    import io

    text = io.TextIOWrapper(io.BytesIO(content), encoding=encoding, newline="")
    reader, rows, after = csv.reader(text), [], 0
    for fields in reader:
        rows.append((after + 1, fields))
        after = reader.line_num
    return rows


def csv_rows_read(content: bytes, encoding: str, count: int, width: int) -> list[tuple[int, list[str]]]:
    import io

    from connectors.tables import CsvRows

    reader, rows = CsvRows("test.csv", io.BytesIO(content), encoding, ","), []
    try:
        while chunk := reader.take(count, width):
            found = [list(fields) for fields in zip(*chunk.columns)] if chunk.columns is not None else chunk.rows
            assert len(found) == len(chunk.lines)
            rows += zip(chunk.lines, found)
    finally:
        reader.close()
    return rows


@pytest.mark.parametrize("block", [16, 64, 1 << 20])
@pytest.mark.parametrize("name, text", [
    ("plain", "a,b,c\n1,2,3\n4,5,6\n"),
    ("crlf and no final newline", "a,b,c\r\n1,2,3\r\n\r\n4,5,6"),
    ("blank, spaces and ragged rows", "a,b,c\n\n   \n1,2\n1,2,3,4\n1,2,3,,\n,,\n7,8,9\n"),
    ("a quote late in the file", "a,b,c\n" + "1,2,3\n" * 12 + '4,"five\nlines\r\nlater",6\n' + "7,8,9\n" * 5),
    ("lone carriage returns", "a,b,c\r1,2,3\r4,5,6\r"),
    ("doubled quotes and a NUL", 'a,b,c\n1,"x""y",3\n4,5\x006,7\n8,9,10\n'),
    ("chinese text", "社区代码,时间,数值\n990101001001,2026/11/26 9:00,3\n990101001002,2026/11/26 9:00,4\n"),
])
@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
def test_csv_rows_are_the_csv_modules_rows_with_their_lines(monkeypatch, block, name, text, encoding):
    import connectors.tables as tables

    monkeypatch.setattr(tables, "BLOCK_BYTES", block)  # small blocks: cuts everywhere in the file
    content = (b"\xef\xbb\xbf" if encoding == "utf-8-sig" else b"") + text.encode(encoding.replace("-sig", ""))
    expected = csv_module_rows(content, encoding)
    for count, width in ((1, 3), (4, 3), (1000, 3), (1000, 4)):
        assert csv_rows_read(content, encoding, count, width) == expected, (count, width)


def test_blocks_without_quotes_and_blocks_with_them_read_the_same_records(sqlite_city_db, tmp_path, monkeypatch):
    """CRLF lines, blank lines, a quoted note spanning lines after the first blocks, a broken row after it."""
    import connectors.tables as tables

    monkeypatch.setattr(tables, "BLOCK_BYTES", 100)
    folder = tmp_path / "drop"
    folder.mkdir()
    rows = ["社区代码,时间,指标,数值,备注"]
    rows += [line for hour in range(4)
             for line in (f"{C1},2026-11-26 0{hour}:00,热线投诉,{hour},", "", f"{C2},2026/11/26 {hour}:00,火警,{hour},  ")]
    rows += [f'{C3},2026-11-26 05:00,热线投诉,5,"两行\r\n的备注"', f"{C3},2026-11-26 06:00,热线投诉,6,x,y",
             f"{C3},2026-11-26 07:00,热线投诉,7,,"]
    (folder / "办.csv").write_bytes("\r\n".join(rows).encode("utf-8") + b"\r\n")
    summary = run(sqlite_city_db, drop(folder, batch_rows=3), tmp_path / "archive")
    assert (summary.status, summary.fetched, summary.accepted, summary.rejected) == ("partial", 11, 10, 1)
    expected = {(C1, "hotline_complaints", at(hour)): float(hour) for hour in range(4)}
    expected |= {(C2, "fire_alarms", at(hour)): float(hour) for hour in range(4)}
    expected |= {(C3, "hotline_complaints", at(5)): 5.0, (C3, "hotline_complaints", at(7)): 7.0}
    assert stored(sqlite_city_db) == expected
    [(reason, raw, source)] = quarantined(sqlite_city_db)
    assert reason.startswith("办.csv line 16: 6 fields where the header has 5")  # the note took lines 14-15
    assert raw["_line"] == 16 and source.endswith("#16")


def test_a_batch_with_a_time_in_the_future_or_a_bad_value_keeps_the_validators_reasons(sqlite_city_db, tmp_path):
    folder = tmp_path / "drop"
    folder.mkdir()
    write_csv(folder / "a.csv", [HEADER, [C1, "2026/11/26 9:00", "热线投诉", "1"],
                                 [C2, "2026/11/26 12:00", "热线投诉", "2"]])
    write_csv(folder / "b.csv", [HEADER, [C1, "2026/11/26 8:00", "热线投诉", "1"],
                                 [C2, "2026/11/26 8:00", "热线投诉", "inf"], [C3, "2026/11/26 8:00", "火警", "-1"]])
    for position, path in enumerate(sorted(folder.iterdir())):
        os.utime(path, (NOW + position, NOW + position))
    summary = run(sqlite_city_db, drop(folder), tmp_path / "archive")
    assert (summary.accepted, summary.rejected) == (2, 3)
    assert stored(sqlite_city_db) == {(C1, "hotline_complaints", at(9)): 1.0, (C1, "hotline_complaints", at(8)): 1.0}
    assert [reason for reason, _raw, _source in quarantined(sqlite_city_db)] == [
        "timestamp 2026-11-26T12:00 is in the future (more than 5 min ahead of the server clock)",
        "value 'inf' is not a finite number", "negative count -1.0 for fire_alarms"]
