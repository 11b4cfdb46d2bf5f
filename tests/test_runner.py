"""The connector runner: validation and quarantine, idempotent storage, cursors, run records and failures.

Small connector types are registered here; they yield the records given in their config and can fail midway.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from sqlalchemy import text

from cityops.hierarchy import Level
from connectors.base import Connector, FatalError, Health, Record, RecordBatch, RetriableError, register
from connectors.config import ConnectorInstance
from connectors.runner import run_connector
from connectors.validation import FUTURE_TOLERANCE_SECONDS

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = int(datetime(2026, 11, 26, 10, 30, tzinfo=SHANGHAI).timestamp())
ZONE = "Asia/Shanghai"
ALL_LEVELS = (Level.DISTRICT, Level.STREET, Level.COMMUNITY)

CITY, D1 = "990000", "990101"
S11, S12, S21, S22 = "990101001", "990101002", "990102001", "990102002"
COMMUNITIES = [s + c for s in (S11, S12, S21, S22) for c in ("001", "002")]


@register
class ListConnector(Connector):
    """Yields config["records"] (all of them: it ignores the cursor), then raises config["error"] if given.

    With config["fail_after"] = n it raises after yielding n records instead.
    """

    type_name = "test-list"

    def check(self) -> Health:
        return Health(True, "test")

    def fetch(self, since):
        self.config.setdefault("seen_since", []).append(since)
        fail_after = self.config.get("fail_after")
        for position, record in enumerate(self._records(since)):
            if fail_after is not None and position == fail_after:
                raise self.config["error"]
            yield record
        if self.config.get("error") is not None and fail_after is None:
            raise self.config["error"]

    def _records(self, since):
        return list(self.config["records"])


@register
class OrderedListConnector(ListConnector):
    """Yields its records in time order from the cursor on (inclusive), as an ordered source does."""

    type_name = "test-ordered"
    ordered = True

    def _records(self, since):
        floor = -math.inf if since is None else float(since)
        return sorted((r for r in self.config["records"] if r.observed_at >= floor), key=lambda r: r.observed_at)


@register
class BrokenAtStartConnector(ListConnector):
    """Fails while being set up, as a connector with a wrong credential might."""

    type_name = "test-broken-at-start"

    def __init__(self, name, config, context, mapping=None):
        raise FatalError("the source rejected the API key")


def instance(name="test", type_="test-list", levels=ALL_LEVELS, **config) -> ConnectorInstance:
    return ConnectorInstance(name=name, type=type_, levels=levels, interval_seconds=300, config=config)


def run(db, inst, **options):
    options.setdefault("timezone", ZONE)
    options.setdefault("now", NOW)
    return run_connector(db.url, inst, db.catalog, **options)


def hotline(code, at, value, raw=None) -> Record:
    return Record(code, "hotline_complaints", at, value, raw)


def fetch_all(db, sql, **params):
    with db.session() as session:
        return session.execute(text(sql), params).all()


def run_row(db, run_id) -> dict:
    with db.session() as session:
        found = session.execute(text("SELECT * FROM connector_runs WHERE id = :i"), {"i": run_id}).mappings().one()
    return dict(found)


def cursor_of(db, name="test"):
    with db.session() as session:
        return session.execute(text("SELECT cursor FROM connector_cursors WHERE connector = :n"), {"n": name}).scalar()


def stored(db) -> dict[tuple[str, str, int], tuple[float, int]]:
    rows = fetch_all(db, "SELECT u.code, i.key, o.observed_at, o.value, o.run_id FROM observations o "
                         "JOIN units u ON u.id = o.unit_id JOIN indicators i ON i.id = o.indicator_id")
    return {(code, key, int(at)): (value, run_id) for code, key, at, value, run_id in rows}


def quarantined(db) -> list[tuple[str, str, int]]:
    return [tuple(r) for r in fetch_all(db, "SELECT reason, raw, run_id FROM quarantine ORDER BY id")]


# ------------------------------------------------------------------------------------------------
# Good records
# ------------------------------------------------------------------------------------------------


def test_good_records_are_stored_rolled_up_and_the_run_recorded(city_db):
    at = NOW - 600
    records = [hotline(code, at, n) for n, code in enumerate(COMMUNITIES, start=1)]
    counts = []
    summary = run(city_db, instance(records=records), progress=lambda s: counts.append(s.fetched))
    assert (summary.status, summary.fetched, summary.accepted, summary.rejected, summary.duplicates) == \
        ("ok", 8, 8, 0, 0)
    assert summary.error_family is None and summary.error_message is None and counts[-1] == 8
    assert stored(city_db) == {(code, "hotline_complaints", at): (float(n), summary.run_id)
                               for n, code in enumerate(COMMUNITIES, start=1)}
    record = run_row(city_db, summary.run_id)
    assert record["connector"] == "test" and record["started_at"] == NOW and record["status"] == "ok"
    assert record["finished_at"] is not None
    assert (record["fetched"], record["accepted"], record["rejected"], record["duplicates"]) == (8, 8, 0, 0)
    assert record["error_family"] is None and record["error_message"] is None
    assert cursor_of(city_db) == str(at)
    # Roll-ups are computed after the run and the queue is empty.
    city = fetch_all(city_db, "SELECT c.value, c.reported, c.expected FROM current_rollups c JOIN units u "
                              "ON u.id = c.unit_id JOIN indicators i ON i.id = c.indicator_id "
                              "WHERE u.code = :c AND i.key = 'hotline_complaints'", c=CITY)
    assert [tuple(r) for r in city] == [(36.0, 8, 8)]
    assert fetch_all(city_db, "SELECT * FROM rollup_backlog") == []


@pytest.mark.parametrize("observed_at, zone, expected", [
    ("2026-11-26T10:20:00", "Asia/Shanghai", datetime(2026, 11, 26, 2, 20, tzinfo=timezone.utc)),
    ("2026-11-26T10:20:00", "UTC", datetime(2026, 11, 26, 10, 20, tzinfo=timezone.utc)),
    ("2026-11-26 10:20", "Asia/Shanghai", datetime(2026, 11, 26, 2, 20, tzinfo=timezone.utc)),
    ("2026-11-26T02:20:00Z", "Asia/Shanghai", datetime(2026, 11, 26, 2, 20, tzinfo=timezone.utc)),
    ("2026-11-26T10:20:00+08:00", "UTC", datetime(2026, 11, 26, 2, 20, tzinfo=timezone.utc)),
    (datetime(2026, 11, 26, 10, 20), "Asia/Shanghai", datetime(2026, 11, 26, 2, 20, tzinfo=timezone.utc)),
    (datetime(2026, 11, 26, 4, 20, tzinfo=ZoneInfo("Europe/Paris")), "Asia/Shanghai",
     datetime(2026, 11, 26, 3, 20, tzinfo=timezone.utc)),
    (1_795_660_000, "Asia/Shanghai", datetime.fromtimestamp(1_795_660_000, timezone.utc)),
    (1_795_660_000.9, "Asia/Shanghai", datetime.fromtimestamp(1_795_660_000, timezone.utc)),
])
def test_timestamps_and_zone_less_times_in_the_configured_zone(sqlite_city_db, observed_at, zone, expected):
    summary = run(sqlite_city_db, instance(records=[hotline(COMMUNITIES[0], observed_at, 2)]), timezone=zone,
                  now=NOW + 12 * 3600)
    assert summary.status == "ok", quarantined(sqlite_city_db)
    assert list(stored(sqlite_city_db)) == [(COMMUNITIES[0], "hotline_complaints", int(expected.timestamp()))]


def test_values_given_as_text_and_integers_are_numbers(sqlite_city_db):
    records = [hotline(COMMUNITIES[0], NOW - 60, " 3 "), hotline(COMMUNITIES[1], NOW - 60, 4),
               Record(S11, "water_pressure", NOW - 60, "0.31"), Record(D1, "power_load_ratio", NOW - 60, 0)]
    assert run(sqlite_city_db, instance(records=records)).accepted == 4
    values = {code: value for (code, _, _), (value, _) in stored(sqlite_city_db).items()}
    assert values == {COMMUNITIES[0]: 3.0, COMMUNITIES[1]: 4.0, S11: 0.31, D1: 0.0}


def test_a_little_clock_skew_is_accepted(sqlite_city_db):
    summary = run(sqlite_city_db, instance(records=[hotline(COMMUNITIES[0], NOW + FUTURE_TOLERANCE_SECONDS, 1)]))
    assert summary.accepted == 1 and summary.rejected == 0


# ------------------------------------------------------------------------------------------------
# Bad records: quarantined with a clear reason and their raw form
# ------------------------------------------------------------------------------------------------

BAD = {
    "unknown unit": (Record("990199999999", "hotline_complaints", NOW - 60, 1), "unknown unit code '990199999999'"),
    "unknown indicator": (Record(COMMUNITIES[0], "rainfall", NOW - 60, 1), "unknown indicator 'rainfall'"),
    "derived indicator": (Record(COMMUNITIES[0], "grid_overdue_rate", NOW - 60, 12.5),
                          "indicator 'grid_overdue_rate' is derived (a ratio) and cannot be reported"),
    "wrong level": (Record(S11, "hotline_complaints", NOW - 60, 1),
                    "hotline_complaints is reported per community, but 990101001 is a street"),
    "street indicator for a community": (Record(COMMUNITIES[0], "aqi", NOW - 60, 80),
                                         "aqi is reported per street, but 990101001001 is a community"),
    "nan": (hotline(COMMUNITIES[0], NOW - 60, math.nan), "is not a finite number"),
    "inf": (hotline(COMMUNITIES[0], NOW - 60, math.inf), "value inf is not a finite number"),
    "inf text": (hotline(COMMUNITIES[0], NOW - 60, "-Infinity"), "is not a finite number"),
    "not a number": (hotline(COMMUNITIES[0], NOW - 60, "many"), "value 'many' is not a number"),
    "no value": (hotline(COMMUNITIES[0], NOW - 60, None), "value None is not a number"),
    "boolean value": (hotline(COMMUNITIES[0], NOW - 60, True), "value True is not a number"),
    "negative count": (hotline(COMMUNITIES[0], NOW - 60, -2), "negative count -2.0 for hotline_complaints"),
    "bad timestamp text": (hotline(COMMUNITIES[0], "yesterday at noon", 1),
                           "timestamp 'yesterday at noon' is not ISO 8601"),
    "boolean timestamp": (hotline(COMMUNITIES[0], True, 1), "timestamp True is not a time"),
    "nan timestamp": (hotline(COMMUNITIES[0], math.nan, 1), "timestamp nan is not a time"),
    "far future": (hotline(COMMUNITIES[0], NOW + FUTURE_TOLERANCE_SECONDS + 1, 1), "is in the future"),
    "far future text": (hotline(COMMUNITIES[0], "2027-01-01T00:00:00+08:00", 1),
                        "timestamp 2027-01-01T00:00:00+08:00 is in the future"),
    "milliseconds": (hotline(COMMUNITIES[0], NOW * 1000, 1), "is in the future"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_record_is_quarantined_with_its_reason_and_raw_form(sqlite_city_db, case):
    record, reason = BAD[case]
    good = hotline(COMMUNITIES[7], NOW - 60, 3)
    summary = run(sqlite_city_db, instance(records=[good, record]))
    assert (summary.status, summary.fetched, summary.accepted, summary.rejected) == ("partial", 2, 1, 1)
    assert list(stored(sqlite_city_db)) == [(COMMUNITIES[7], "hotline_complaints", NOW - 60)]
    [(stored_reason, raw, run_id)] = quarantined(sqlite_city_db)
    assert reason in stored_reason
    assert run_id == summary.run_id
    raw = json.loads(raw)
    assert raw["unit_code"] == record.unit_code and raw["indicator"] == record.indicator
    assert raw["observed_at"] == str(record.observed_at)
    assert run_row(sqlite_city_db, summary.run_id)["status"] == "partial"


def test_a_level_the_connector_is_not_configured_for_is_quarantined(sqlite_city_db):
    records = [Record(S11, "aqi", NOW - 60, 80), hotline(COMMUNITIES[0], NOW - 60, 1)]
    summary = run(sqlite_city_db, instance(records=records, levels=(Level.COMMUNITY,)))
    assert (summary.accepted, summary.rejected) == (1, 1)
    assert "this connector is configured for community, not street" in quarantined(sqlite_city_db)[0][0]


def test_quarantine_keeps_the_source_form_when_given(city_db):
    source = {"station": "A-17", "reading": "NaN", "ts": "2026-11-26 10:00", "extra": [1, 2]}
    summary = run(city_db, instance(records=[hotline(COMMUNITIES[0], NOW - 60, math.nan, raw=source),
                                             Record("nowhere", "hotline_complaints", NOW - 60, 1)]))
    assert (summary.status, summary.accepted, summary.rejected) == ("partial", 0, 2)
    (reason_a, raw_a, _), (reason_b, raw_b, _) = quarantined(city_db)
    assert json.loads(raw_a) == source and "not a finite number" in reason_a
    assert json.loads(raw_b)["unit_code"] == "nowhere" and "unknown unit code 'nowhere'" in reason_b
    assert stored(city_db) == {}


def test_a_run_with_only_bad_records_is_partial_and_stores_nothing(sqlite_city_db):
    summary = run(sqlite_city_db, instance(records=[BAD["nan"][0], BAD["unknown unit"][0]]))
    assert (summary.status, summary.accepted, summary.rejected) == ("partial", 0, 2)
    assert stored(sqlite_city_db) == {} and cursor_of(sqlite_city_db) is None


# ------------------------------------------------------------------------------------------------
# Duplicates
# ------------------------------------------------------------------------------------------------


def test_duplicates_within_a_batch_and_across_runs_are_counted_not_stored_twice(city_db):
    at = NOW - 600
    records = [hotline(COMMUNITIES[0], at, 1), hotline(COMMUNITIES[1], at, 2), hotline(COMMUNITIES[0], at, 5)]
    first = run(city_db, instance(records=records))
    assert (first.status, first.fetched, first.accepted, first.duplicates) == ("ok", 3, 2, 1)
    assert stored(city_db)[(COMMUNITIES[0], "hotline_complaints", at)][0] == 5.0  # the last delivery wins

    again = [hotline(COMMUNITIES[0], at, 5), hotline(COMMUNITIES[1], at, 2)]
    second = run(city_db, instance(records=again))
    assert (second.status, second.fetched, second.accepted, second.duplicates) == ("ok", 2, 0, 2)
    assert run_row(city_db, second.run_id)["duplicates"] == 2
    # Replays keep the run that first stored the value.
    assert {run_id for _, run_id in stored(city_db).values()} == {first.run_id}

    corrected = run(city_db, instance(records=[hotline(COMMUNITIES[1], at, 4)]))
    assert (corrected.accepted, corrected.duplicates) == (1, 0)
    assert stored(city_db)[(COMMUNITIES[1], "hotline_complaints", at)] == (4.0, corrected.run_id)
    assert len(stored(city_db)) == 2


def test_duplicates_across_batches_of_one_run(sqlite_city_db):
    at = NOW - 600
    records = [hotline(COMMUNITIES[0], at, 1), hotline(COMMUNITIES[1], at, 2), hotline(COMMUNITIES[0], at, 1),
               hotline(COMMUNITIES[1], at, 2)]
    summary = run(sqlite_city_db, instance(records=records), batch_size=2)
    assert (summary.fetched, summary.accepted, summary.duplicates) == (4, 2, 2)


# ------------------------------------------------------------------------------------------------
# Failures
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("error, family, message", [
    (RetriableError("HTTP 503 from the source", retry_after=30), "retriable", "HTTP 503 from the source"),
    (FatalError("401: API key revoked"), "fatal", "401: API key revoked"),
    (ValueError("could not parse page 3"), "unexpected", "ValueError: could not parse page 3"),
    (KeyError("rows"), "unexpected", "KeyError: 'rows'"),
])
def test_failure_before_anything_is_stored(city_db, error, family, message):
    summary = run(city_db, instance(records=[], error=error))
    assert (summary.status, summary.error_family, summary.error_message) == ("failed", family, message)
    record = run_row(city_db, summary.run_id)
    assert (record["status"], record["error_family"], record["error_message"]) == ("failed", family, message)
    assert record["finished_at"] is not None
    assert cursor_of(city_db) is None


@pytest.mark.parametrize("error, family", [(RetriableError("timeout"), "retriable"), (FatalError("gone"), "fatal"),
                                           (RuntimeError("bug"), "unexpected")])
def test_failure_midway_keeps_committed_batches_and_is_partial(sqlite_city_db, error, family):
    records = [hotline(code, NOW - 600 + n, n) for n, code in enumerate(COMMUNITIES)]
    summary = run(sqlite_city_db, instance(records=records, fail_after=5, error=error), batch_size=2)
    assert (summary.status, summary.error_family, summary.fetched, summary.accepted) == ("partial", family, 5, 4)
    assert len(stored(sqlite_city_db)) == 4  # two full batches; the fifth record was never committed
    # A connector that does not promise order never moves its cursor before the whole run is committed.
    assert cursor_of(sqlite_city_db) is None
    # The committed batches still got their roll-ups.
    city = fetch_all(sqlite_city_db, "SELECT c.reported FROM current_rollups c JOIN units u ON u.id = c.unit_id "
                                     "WHERE u.code = :c", c=CITY)
    assert [r[0] for r in city] == [4]


def test_ordered_connector_cursor_follows_committed_batches_and_a_rerun_stores_nothing_twice(city_db):
    times = [NOW - 3000 + 60 * n for n in range(10)]
    records = [hotline(COMMUNITIES[n % 8], t, n) for n, t in enumerate(times)]
    failing = instance(type_="test-ordered", records=records, fail_after=5, error=RetriableError("connection reset"))
    first = run(city_db, failing, batch_size=3)
    assert (first.status, first.error_family, first.fetched, first.accepted) == ("partial", "retriable", 5, 3)
    assert cursor_of(city_db) == str(times[2])  # the last committed batch's newest record
    assert len(stored(city_db)) == 3

    healthy = instance(type_="test-ordered", records=records)
    second = run(city_db, healthy, batch_size=3)
    assert healthy.config["seen_since"] == [str(times[2])]
    assert (second.status, second.fetched, second.accepted, second.duplicates) == ("ok", 8, 7, 1)
    assert cursor_of(city_db) == str(times[-1])
    assert stored(city_db) == {(r.unit_code, r.indicator, r.observed_at): (float(r.value), first.run_id if n < 3
                               else second.run_id) for n, r in enumerate(records)}

    third = run(city_db, healthy, batch_size=3)  # nothing new: the newest record is delivered again and ignored
    assert (third.fetched, third.accepted, third.duplicates) == (1, 0, 1)
    assert cursor_of(city_db) == str(times[-1])


def test_unordered_connector_saves_its_cursor_after_the_whole_run(sqlite_city_db):
    """Also when the records fill the last batch exactly, leaving nothing for the final commit."""
    times = [NOW - 600, NOW - 60, NOW - 3000, NOW - 1200, NOW - 2000, NOW - 1500]  # any order
    records = [hotline(COMMUNITIES[n], t, 1) for n, t in enumerate(times)]
    inst = instance(records=records)
    summary = run(sqlite_city_db, inst, batch_size=3)
    assert (summary.status, summary.accepted) == ("ok", 6)
    assert cursor_of(sqlite_city_db) == str(NOW - 60)
    run(sqlite_city_db, inst, batch_size=4)
    assert inst.config["seen_since"] == [None, str(NOW - 60)]


@register
class SlowConnector(ListConnector):
    """Yields its records one every config["pause"] seconds, as a slow source does."""

    type_name = "test-slow"
    ordered = True

    def fetch(self, since):
        import time as clock

        for record in self.config["records"]:
            clock.sleep(self.config["pause"])
            yield record


def test_a_run_past_its_timeout_stops_keeps_what_it_committed_and_is_retried(sqlite_city_db):
    records = [hotline(code, NOW - 600, 1) for code in COMMUNITIES]
    summary = run(sqlite_city_db, instance(type_="test-slow", records=records, pause=0.2), timeout=0.5,
                  batch_size=1)
    assert (summary.status, summary.error_family) == ("partial", "retriable")
    assert "took longer than its timeout (0.5 s)" in summary.error_message
    assert 0 < summary.accepted < len(records) and len(stored(sqlite_city_db)) == summary.accepted


def test_out_of_order_timestamps_are_all_kept_and_the_current_value_is_the_newest(sqlite_city_db):
    """A late record (older than one already stored) joins the history and never replaces the newer value."""
    community = COMMUNITIES[0]
    run(sqlite_city_db, instance(records=[hotline(community, NOW - 600, 7), hotline(community, NOW - 3600, 2)]))
    late = run(sqlite_city_db, instance(records=[hotline(community, NOW - 1800, 4)]))
    assert (late.status, late.accepted) == ("ok", 1)
    history = {at: value for (_code, _key, at), (value, _run) in stored(sqlite_city_db).items()}
    assert history == {NOW - 3600: 2.0, NOW - 1800: 4.0, NOW - 600: 7.0}
    current = fetch_all(sqlite_city_db, "SELECT c.observed_at, c.value FROM current_values c "
                                        "JOIN units u ON u.id = c.unit_id WHERE u.code = :code", code=community)
    assert [tuple(row) for row in current] == [(NOW - 600, 7.0)]
    assert cursor_of(sqlite_city_db) == str(NOW - 600)  # the late record does not move the cursor back


def test_rejected_records_do_not_move_the_cursor(sqlite_city_db):
    """A record quarantined for a far-future time must not push the cursor past data still to come."""
    records = [hotline(COMMUNITIES[0], NOW - 600, 1), hotline(COMMUNITIES[1], NOW + 86400, 1)]
    run(sqlite_city_db, instance(type_="test-ordered", records=records))
    assert cursor_of(sqlite_city_db) == str(NOW - 600)


def test_since_overrides_the_stored_cursor(sqlite_city_db):
    inst = instance(type_="test-ordered", records=[hotline(COMMUNITIES[0], NOW - 600, 1)])
    run(sqlite_city_db, inst)
    run(sqlite_city_db, inst, since=str(NOW - 7200))
    assert inst.config["seen_since"] == [None, str(NOW - 7200)]


def test_a_connector_failing_at_set_up_is_recorded_as_failed(sqlite_city_db):
    summary = run(sqlite_city_db, instance(type_="test-broken-at-start", records=[]))
    assert (summary.status, summary.error_family) == ("failed", "fatal")
    assert "API key" in summary.error_message
    record = run_row(sqlite_city_db, summary.run_id)
    assert record["status"] == "failed" and record["finished_at"] is not None


def test_a_failing_connector_leaves_others_runnable(city_db):
    broken = instance(name="broken", records=[hotline(COMMUNITIES[0], NOW - 600, 1)], error=RuntimeError("boom"))
    good = instance(name="good", records=[hotline(COMMUNITIES[1], NOW - 600, 2)])
    failed = run(city_db, broken)
    assert (failed.status, failed.error_family, failed.accepted) == ("failed", "unexpected", 0)
    ok = run(city_db, good)
    assert (ok.status, ok.accepted) == ("ok", 1)
    again = run(city_db, instance(name="broken", records=[], error=FatalError("still down")))
    assert again.status == "failed"
    statuses = dict(fetch_all(city_db, "SELECT connector, status FROM connector_runs WHERE id = :i", i=ok.run_id))
    assert statuses == {"good": "ok"}
    assert fetch_all(city_db, "SELECT count(*) FROM connector_runs WHERE status = 'running'")[0][0] == 0
    assert cursor_of(city_db, "good") == str(NOW - 600) and cursor_of(city_db, "broken") is None
    assert list(stored(city_db)) == [(COMMUNITIES[1], "hotline_complaints", NOW - 600)]


# ------------------------------------------------------------------------------------------------
# Columnar batches: the same rules as single records, decided with array operations
# ------------------------------------------------------------------------------------------------


@register
class BatchConnector(Connector):
    """Yields config["frames"] as RecordBatch objects, as a bulk source (file, query) would."""

    type_name = "test-batch"

    def check(self) -> Health:
        return Health(True, "test")

    def fetch(self, since):
        for frame in self.config["frames"]:
            yield RecordBatch(frame)


def batch_of(records: list[Record]) -> pd.DataFrame:
    return pd.DataFrame([(r.unit_code, r.indicator, r.observed_at, r.value) for r in records],
                        columns=list(RecordBatch.COLUMNS))


def test_a_numeric_batch_keeps_good_rows_and_quarantines_bad_ones_with_the_record_reasons(sqlite_city_db):
    good = [hotline(code, NOW - 600, position) for position, code in enumerate(COMMUNITIES)]
    bad = [BAD[case][0] for case in ("unknown unit", "unknown indicator", "derived indicator", "wrong level",
                                     "nan", "inf", "negative count", "far future", "milliseconds")]
    duplicate = hotline(COMMUNITIES[0], NOW - 600, 99)  # the last delivery of a key wins
    frame = batch_of(good + bad + [duplicate])
    assert pd.api.types.is_numeric_dtype(frame["value"])  # the array path, not the record-by-record one
    summary = run(sqlite_city_db, instance(type_="test-batch", frames=[frame]))
    assert (summary.status, summary.fetched, summary.rejected) == ("partial", len(frame), len(bad))
    assert (summary.accepted, summary.duplicates) == (len(good), 1)
    rows = stored(sqlite_city_db)
    assert rows[(COMMUNITIES[0], "hotline_complaints", NOW - 600)][0] == 99
    assert rows[(COMMUNITIES[3], "hotline_complaints", NOW - 600)] == (3, summary.run_id)
    reasons = [reason for reason, _raw, _run in quarantined(sqlite_city_db)]
    for case in ("unknown unit", "unknown indicator", "derived indicator", "wrong level", "inf", "negative count"):
        assert any(BAD[case][1] in reason for reason in reasons), case
    assert sum("is in the future" in reason for reason in reasons) == 2


def test_a_batch_with_text_values_and_times_takes_the_careful_path(sqlite_city_db):
    records = [hotline(COMMUNITIES[0], "2026-11-26T10:00:00", "4"), BAD["not a number"][0],
               BAD["bad timestamp text"][0], BAD["boolean value"][0]]
    summary = run(sqlite_city_db, instance(type_="test-batch", frames=[batch_of(records)]))
    assert (summary.accepted, summary.rejected) == (1, 3)
    expected_at = int(datetime(2026, 11, 26, 10, 0, tzinfo=SHANGHAI).timestamp())
    assert stored(sqlite_city_db)[(COMMUNITIES[0], "hotline_complaints", expected_at)][0] == 4
    reasons = " | ".join(reason for reason, _raw, _run in quarantined(sqlite_city_db))
    assert "value 'many' is not a number" in reasons and "is not ISO 8601" in reasons
    assert "value True is not a number" in reasons


def test_roll_ups_from_memory_equal_roll_ups_read_back_from_the_database(sqlite_city_db):
    """A backfill rolls up its own buckets from memory; recomputing every bucket from storage changes nothing."""
    import time as clock

    from cityops.rollup import refresh_rollups
    from cityops.tree import load_tree
    from connectors.config import load_connectors
    from connectors.runner import utc_offset_seconds

    simulator = next(i for i in load_connectors("data/connectors.yaml") if i.type == "simulator")
    now = int(clock.time())
    first = run_connector(sqlite_city_db.url, simulator, sqlite_city_db.catalog, timezone=ZONE, now=now - 7200,
                          since=str(now - 2 * 86400))
    # A second run lands in buckets the first one started: those must be read back, not taken from memory.
    second = run_connector(sqlite_city_db.url, simulator, sqlite_city_db.catalog, timezone=ZONE, now=now)
    assert first.status == second.status == "ok" and second.accepted > 0
    history = "SELECT unit_id, indicator_id, bucket_start, value, reported, expected FROM rollup_history ORDER BY 1, 2, 3"
    from_runs = fetch_all(sqlite_city_db, history)
    observed = fetch_all(sqlite_city_db, "SELECT i.key, o.observed_at FROM observations o "
                                         "JOIN indicators i ON i.id = o.indicator_id")
    touched: dict[str, set[int]] = {}
    for key, at in observed:
        touched.setdefault(key, set()).add(int(at))
    with sqlite_city_db.session() as session:
        refresh_rollups(session, sqlite_city_db.catalog, sqlite_city_db.indicator_ids, load_tree(session), touched,
                        now, utc_offset_seconds(ZONE, now))
    recomputed = fetch_all(sqlite_city_db, history)
    assert len(from_runs) > 1000
    assert len(recomputed) == len(from_runs)
    for before, after in zip(from_runs, recomputed):
        assert before[:3] == after[:3] and before[4:] == after[4:], (before, after)
        assert (before[3] is None and after[3] is None) or before[3] == pytest.approx(after[3]), (before, after)
