"""Raw payloads are archived before parsing and can be replayed; quarantined records are re-processed after a fix;
connector configuration problems name the file, the entry and the fix."""

from __future__ import annotations

import gzip
import json
import os
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from cityops.hierarchy import Level
from connectors.archive import RunArchive, open_payload, purge, run_payloads
from connectors.base import Connector, Health, register
from connectors.config import ConnectorConfigError, ConnectorInstance, load_connectors
from connectors.mapping import FieldMapping, MappingError
from connectors.quarantine import list_quarantine, reprocess
from connectors.runner import run_connector

ZONE = "Asia/Shanghai"
NOW = int(datetime(2026, 11, 26, 10, 30, tzinfo=ZoneInfo(ZONE)).timestamp())
COMMUNITY_A, COMMUNITY_B = "990101001001", "990101001002"


@register
class JsonPagesConnector(Connector):
    """Serves config["pages"] (lists of source rows) as JSON payloads: archived first, then parsed by mapping."""

    type_name = "test-json-pages"
    uses_mapping = True

    def check(self) -> Health:
        return Health(True, "test")

    def fetch(self, since):
        for number, rows in enumerate(self.config["pages"], start=1):
            payload = json.dumps(rows, ensure_ascii=False).encode("utf-8")
            reference = self.archived(f"page-{number}.json", payload, "application/json")
            yield from self.replay_from(payload, reference)

    def replay(self, label, payload):
        return self.replay_from(payload, label)

    def replay_from(self, payload, reference):
        for position, row in enumerate(json.loads(payload)):
            yield from self.mapping.records(row, source=f"{reference}#{position}")


MAPPING = {"unit_code": "site.code", "observed_at": "time", "indicator": "metric", "value": "reading"}
PAGES = [
    [{"site": {"code": COMMUNITY_A}, "time": "2026-11-26T09:00:00+08:00", "metric": "hotline_complaints",
      "reading": 4},
     {"site": {"code": COMMUNITY_B}, "time": "2026-11-26T09:00:00+08:00", "metric": "热线", "reading": 7}],
    [{"site": {"code": COMMUNITY_B}, "time": "2026-11-26T09:00:00+08:00", "reading": 1}],  # no metric
]


def pages_instance(mapping=MAPPING, name="pages") -> ConnectorInstance:
    return ConnectorInstance(name=name, type="test-json-pages", levels=(Level.COMMUNITY,), interval_seconds=300,
                             config={"pages": PAGES}, mapping=FieldMapping.parse(mapping))


def stored(db) -> dict:
    with db.session() as session:
        rows = session.execute(text("SELECT u.code, i.key, o.value FROM observations o JOIN units u ON u.id = o.unit_id "
                                    "JOIN indicators i ON i.id = o.indicator_id")).all()
    return {(code, key): value for code, key, value in rows}


def test_payloads_are_archived_before_parsing_and_quarantine_points_at_them(sqlite_city_db, tmp_path):
    summary = run_connector(sqlite_city_db.url, pages_instance(), sqlite_city_db.catalog, timezone=ZONE, now=NOW,
                            archive_root=tmp_path / "archive")
    assert (summary.status, summary.accepted, summary.rejected) == ("partial", 1, 2)
    refs = run_payloads(tmp_path / "archive", summary.archive)
    assert [ref.rsplit("/", 1)[1] for ref in refs] == ["0001-page-1.json.gz", "0002-page-2.json.gz"]
    with open_payload(tmp_path / "archive", refs[0]) as stream:
        assert json.loads(stream.read())[0]["site"]["code"] == COMMUNITY_A
    entries = sorted(list_quarantine(sqlite_city_db.url, "pages"), key=lambda e: e.id)
    assert [e.reason for e in entries] == ["unknown indicator '热线'", "missing field 'metric'"]
    assert entries[0].source == f"{refs[0]}#1" and entries[1].source == f"{refs[1]}#0"
    assert json.loads(entries[1].raw) == PAGES[1][0]  # the row as the source sent it
    with sqlite_city_db.session() as session:
        assert session.execute(text("SELECT archive FROM connector_runs WHERE id = :i"),
                               {"i": summary.run_id}).scalar() == summary.archive
    with pytest.raises(FileNotFoundError):
        open_payload(tmp_path / "archive", "../../etc/passwd.gz")


def test_replay_parses_archived_payloads_again_without_moving_the_cursor(sqlite_city_db, tmp_path):
    archive = tmp_path / "archive"
    first = run_connector(sqlite_city_db.url, pages_instance(), sqlite_city_db.catalog, timezone=ZONE, now=NOW,
                          archive_root=archive)
    fixed = pages_instance({**MAPPING, "indicator_names": {"热线": "hotline_complaints"}})
    again = run_connector(sqlite_city_db.url, fixed, sqlite_city_db.catalog, timezone=ZONE, now=NOW,
                          archive_root=archive, replay=run_payloads(archive, first.archive))
    assert (again.accepted, again.duplicates, again.rejected) == (1, 1, 1)  # 热线 is now understood
    assert stored(sqlite_city_db) == {(COMMUNITY_A, "hotline_complaints"): 4.0,
                                      (COMMUNITY_B, "hotline_complaints"): 7.0}
    assert run_payloads(archive, f"pages/x/run-{again.run_id}") == []  # a replay archives nothing new


def test_quarantined_records_are_reprocessed_once_after_a_mapping_fix(sqlite_city_db, tmp_path):
    run_connector(sqlite_city_db.url, pages_instance(), sqlite_city_db.catalog, timezone=ZONE, now=NOW)
    fixed = pages_instance({**MAPPING, "indicator_names": {"热线": "hotline_complaints"}})
    summary, outcomes = reprocess(sqlite_city_db.url, fixed, sqlite_city_db.catalog, timezone=ZONE)
    assert outcomes == {"accepted": 1, "rejected": 1}
    assert stored(sqlite_city_db)[(COMMUNITY_B, "hotline_complaints")] == 7.0
    open_entries = list_quarantine(sqlite_city_db.url, "pages")
    # The row still missing its metric is quarantined again (from the re-processing run); the originals are done.
    assert [(e.reason, e.run_id) for e in open_entries] == [("missing field 'metric'", summary.run_id)]
    done = {e.outcome for e in list_quarantine(sqlite_city_db.url, "pages", include_done=True) if e.outcome}
    assert done == {"accepted", "rejected"}
    _, nothing = reprocess(sqlite_city_db.url, pages_instance(MAPPING), sqlite_city_db.catalog, timezone=ZONE,
                           ids=[e.id for e in list_quarantine(sqlite_city_db.url, "pages", include_done=True)
                                if e.outcome])
    assert nothing == {"accepted": 0, "rejected": 0}  # re-processed rows are not run twice


def test_archive_retention_removes_only_old_runs(tmp_path):
    day = 86400
    old = RunArchive(tmp_path, "district-api", 1, NOW - 40 * day)
    old.store("page-1.json", b"[]")
    recent = RunArchive(tmp_path, "district-api", 2, NOW - 2 * day)
    reference = recent.store("page-1.json", b'[{"a": 1}]')
    other = RunArchive(tmp_path, "another", 3, NOW - 40 * day)
    other.store("x.csv", b"a,b\n")
    assert purge(tmp_path, "district-api", 30 * day, now=NOW) == 1
    assert not old.folder.exists() and recent.folder.exists() and other.folder.exists()
    with gzip.open(tmp_path / reference) as stream:
        assert stream.read() == b'[{"a": 1}]'


def test_large_payloads_are_archived_from_a_stream(tmp_path):
    source = tmp_path / "big.csv"
    with open(source, "wb") as stream:
        for block in range(8):
            stream.write(b"code,time,value\n" + b"990101001001,2026-11-26T09:00:00+08:00,1\n" * 40_000)
    archive = RunArchive(tmp_path / "archive", "drop", 1, NOW)
    with open(source, "rb") as stream:
        reference = archive.store("big.csv", stream, "text/csv")
    assert archive.bytes_in == source.stat().st_size
    assert os.path.getsize(tmp_path / "archive" / reference) < source.stat().st_size / 10
    with open_payload(tmp_path / "archive", reference) as stream, open(source, "rb") as original:
        assert stream.read() == original.read()


# ------------------------------------------------------------------------------------------------
# Configuration errors name the file, the entry and the fix
# ------------------------------------------------------------------------------------------------

ENTRY = ("connectors:\n  - name: district-api\n    type: test-json-pages\n    levels: [community]\n"
         "    schedule: {schedule}\n{extra}")


@pytest.mark.parametrize(("schedule", "extra", "expected"), [
    ("{interval: 5m}", "", "needs 'mapping:'"),
    ("{interval: 5m}", "    mapping: {unit_code: code}\n", "'observed_at' must name the source field"),
    ("{interval: 5m}", "    mapping: {unit_code: c, observed_at: t, indicator: i, value: v, values: {aqi: x}}\n",
     "either 'indicator' and 'value'"),
    ("{interval: 5m}", "    mapping: {unit_code: c, observed_at: t, values: {air_quality: x}}\n",
     "unknown indicator(s) air_quality"),
    ("{interval: 5m}", "    mapping: {unit_code: c, observed_at: t, indicator: i, value: v, colour: x}\n",
     "unknown key(s) colour"),
    ('{cron: "every monday"}', "    mapping: {unit_code: c, observed_at: t, indicator: i, value: v}\n",
     "is not a crontab expression"),
    ("{interval: 5m, cron: '* * * * *'}", "", "either 'interval'"),
    ("{interval: 5m}", "    mapping: {unit_code: c, observed_at: t, indicator: i, value: v}\n"
                       "    archive: {retention: forever}\n", "archive: 'forever' is not a duration"),
])
def test_connector_config_errors_name_the_file_the_entry_and_the_fix(tmp_path, catalog, schedule, extra, expected):
    path = tmp_path / "connectors.yaml"
    path.write_text(ENTRY.format(schedule=schedule, extra=extra), encoding="utf-8")
    with pytest.raises(ConnectorConfigError) as error:
        load_connectors(path, catalog.keys)
    message = str(error.value)
    assert str(path) in message and "'district-api'" in message and expected in message


def test_a_cron_schedule_is_late_after_its_longest_gap(tmp_path, catalog):
    path = tmp_path / "connectors.yaml"
    path.write_text(ENTRY.format(schedule='{cron: "0 8,12,18 * * 1-5"}',
                                 extra="    mapping: {unit_code: c, observed_at: t, indicator: i, value: v}\n"),
                    encoding="utf-8")
    (instance,) = load_connectors(path, catalog.keys)
    assert instance.cron == "0 8,12,18 * * 1-5"
    assert instance.interval_seconds == (24 + 24 + 14) * 3600  # Friday 18:00 → Monday 08:00


def test_mapping_reads_nested_fields_and_wide_rows():
    wide = FieldMapping.parse({"unit_code": "code", "observed_at": "time", "values": {"aqi": "air.aqi", "pm25": "air.pm"}})
    records = list(wide.records({"code": "990101001", "time": "t", "air": {"aqi": 80, "pm": 35}}))
    assert [(r.indicator, r.value, r.problem) for r in records] == [("aqi", 80, None), ("pm25", 35, None)]
    missing = list(wide.records({"code": "990101001", "time": "t", "air": {"aqi": 80}}))
    assert missing[1].problem == "missing field 'air.pm'"
    listed = FieldMapping.parse({"unit_code": "ids.0", "observed_at": "t", "indicator": "k", "value": "v"})
    assert next(listed.records({"ids": ["990101001"], "t": 1, "k": "aqi", "v": 2})).unit_code == "990101001"
    with pytest.raises(MappingError):
        FieldMapping.parse(["unit_code"])
