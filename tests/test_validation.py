"""The validator's array path gives every record the same verdict as validating it alone.

A batch takes shortcuts (distinct unit codes, keys and time texts looked up once; numbers and times parsed as
arrays); whatever mixture a source sends, each record must come out stored with the same row, or quarantined
with the same reason, as `Validator.validate` gives it one by one.
"""

from __future__ import annotations

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityops.hierarchy import Level
from cityops.tree import load_tree
from conftest import NOW, ZONE
from connectors.base import Record, RecordBatch
from connectors.validation import Rejected, Validator

COMMUNITY = "990101001001"
UNIT_CODES = st.sampled_from([COMMUNITY, "990101002002", "990101001", "000000000000", 990101001001, True, None])
INDICATORS = st.sampled_from(["hotline_complaints", "noise", "aqi", "unknown_key", "hotline_per_10k", 7])
TIMES = st.sampled_from(["2026-11-26T10:00:00+08:00", "2026-11-26 09:00", " 2026-11-26T01:00:00Z ",
                         "0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-08:00", "0001-01-01 00:00",
                         "2026-11-26T10:00:00", "2026-11-26", "26/11/2026 10:00", "2026-11-27T10:00:00+08:00",
                         "", None, NOW - 60, NOW + 86400, 1.5e9, True])
VALUES = st.one_of(st.integers(-3, 50), st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([" 12.5 ", "many", "", None, True, "NaN"]))
RECORDS = st.lists(st.tuples(UNIT_CODES, INDICATORS, TIMES, VALUES), min_size=1, max_size=40)


def validator(city) -> Validator:
    with city.session() as session:
        tree = load_tree(session)
    return Validator.build(city.catalog, city.indicator_ids, tree, [Level.COMMUNITY, Level.STREET], ZONE, NOW)


def one_by_one(check: Validator, rows: list[tuple]) -> list:
    verdicts = []
    for row in rows:
        try:
            verdicts.append(("stored", tuple(check.validate(Record(*row)).values())))
        except Rejected as reason:
            verdicts.append(("rejected", str(reason)))
    return verdicts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=RECORDS)
def test_a_batch_gives_each_record_the_verdict_it_gets_alone(sqlite_city_db, rows):
    check = validator(sqlite_city_db)
    frame = pd.DataFrame(rows, columns=list(RecordBatch.COLUMNS), dtype=object)
    stored, rejected = check.validate_frame(frame, raw=[dict(zip(RecordBatch.COLUMNS, r)) for r in rows],
                                            source="page-1.json")
    expected = one_by_one(check, rows)
    want_stored = sorted(verdict for kind, verdict in expected if kind == "stored")
    got_stored = sorted(tuple(row) for row in stored[["unit_id", "indicator_id", "observed_at", "value"]]
                        .astype(object).itertuples(index=False, name=None))
    assert got_stored == want_stored
    assert sorted(reason for reason, _record in rejected) == sorted(v for kind, v in expected if kind == "rejected")
    for reason, record in rejected:
        position = int(record.source.split("#")[1])
        assert record.raw == dict(zip(RecordBatch.COLUMNS, rows[position]))


def test_rows_gathered_from_several_pages_are_quarantined_with_their_own_page_and_place(sqlite_city_db):
    from connectors.mapping import PageSources

    pages = {"page-1.json": [(COMMUNITY, "hotline_complaints", NOW - 60, 1)] * 3,
             "page-2.json": [(COMMUNITY, "hotline_complaints", NOW - 60, 2), ("nowhere", "hotline_complaints",
                                                                               NOW - 60, 2)],
             "page-3.json": [(COMMUNITY, "hotline_complaints", NOW - 60, "many")]}
    sources, rows = PageSources(), []
    for payload, page in pages.items():
        sources.add(payload, len(page))
        rows.extend(page)
    assert len(sources) == 6 and sources[0] == "page-1.json#0" and sources[5] == "page-3.json#0"
    frame = pd.DataFrame(rows, columns=list(RecordBatch.COLUMNS))
    _stored, rejected = validator(sqlite_city_db).validate_frame(frame, raw=rows, source=sources)
    assert sorted(record.source for _reason, record in rejected) == ["page-2.json#1", "page-3.json#0"]
