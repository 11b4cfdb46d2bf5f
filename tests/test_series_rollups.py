"""A source delivering series (`delivers_series`: SensorThings, one datastream's whole history, then the next)
gets the roll-ups of every unit above the ones it touched, though the runner lets the rows it holds go midway
and rolls up only once, at the end (connectors/runner.py): every bucket is then read back from the database.

The expected roll-ups are worked out here from the source's own readings, by each indicator's rule: a bucket
holds each street's latest reading in it; `aqi` is weighted by the streets' populations, `noise` a plain mean.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

import connectors.runner
import connectors.sensorthings  # noqa: F401  (registers the type)
import connectors.sensorthings_observations
from cityops.buckets import bucket_start
from cityops.hierarchy import Level
from cityops.status import STALE_GRACE
from connectors.config import ConnectorInstance
from connectors.runner import run_connector
from sensorthings_server import sensorthings_server

ZONE = "Asia/Shanghai"
CITY, D1, D2 = "990000", "990101", "990102"
STREETS = ["990101001", "990101002", "990102001", "990102002"]
DISTRICT_OF = {street: street[:6] for street in STREETS}
SIX_HOURS = 6 * 3600


def readings(now: int, street: int, key: str) -> list[tuple[int, float]]:
    """Every 10 minutes over the last six hours, values that differ by street and time. The last street's noise
    monitor has been silent for the last hour, and was silent between 3 and 2 hours ago: its buckets there are
    incomplete, and its live value is stale."""
    times = range(now - SIX_HOURS + 120 * street, now - 60, 600)
    if key == "noise" and street == 3:
        times = [t for t in times if not (now - 3 * 3600 <= t < now - 2 * 3600) and t < now - 3600]
    return [(t, float(40 + 9 * street + (t // 600) % 7 * (3 if key == "aqi" else 1))) for t in times]


def by_rule(key: str, values: dict[str, float], populations: dict[str, int]) -> float:
    if key == "aqi":  # population-weighted mean
        return sum(values[s] * populations[s] for s in values) / sum(populations[s] for s in values)
    return sum(values.values()) / len(values)  # noise: mean


def expected_history(key: str, interval: int, sent: dict[str, list], populations) -> dict:
    """(parent code, bucket) → (value, reported, expected) for the districts and the city."""
    latest: dict[int, dict[str, tuple[int, float]]] = {}
    for street, series in sent.items():
        for at, value in series:
            bucket = latest.setdefault(bucket_start(at, interval), {})
            if street not in bucket or bucket[street][0] < at:
                bucket[street] = (at, value)
    expected = {}
    for bucket, streets in latest.items():
        for parent, members in [(CITY, STREETS), (D1, STREETS[:2]), (D2, STREETS[2:])]:
            values = {s: streets[s][1] for s in members if s in streets}
            if values:
                expected[(parent, bucket)] = (by_rule(key, values, populations), len(values), len(members))
    return expected


def expected_current(key: str, interval: int, sent: dict[str, list], populations, now: int) -> dict:
    """Parent code → (value or None, reported, expected): each street's latest reading while it is fresh."""
    fresh = {street: series[-1][1] for street, series in sent.items()
             if series[-1][0] >= now - interval * STALE_GRACE}
    expected = {}
    for parent, members in [(CITY, STREETS), (D1, STREETS[:2]), (D2, STREETS[2:])]:
        values = {s: fresh[s] for s in members if s in fresh}
        expected[parent] = (by_rule(key, values, populations) if values else None, len(values), len(members))
    return expected


def stored_history(db, key: str) -> dict:
    with db.session() as session:
        rows = session.execute(text(
            "SELECT u.code, h.bucket_start, h.value, h.reported, h.expected FROM rollup_history h "
            "JOIN units u ON u.id = h.unit_id WHERE h.indicator_id = :i AND u.level < :street"),
            {"i": db.indicator_ids[key], "street": int(Level.STREET)}).all()
    return {(code, int(bucket)): (value, int(reported), int(expected))
            for code, bucket, value, reported, expected in rows}


def stored_current(db, key: str) -> dict:
    with db.session() as session:
        rows = session.execute(text(
            "SELECT u.code, c.value, c.reported, c.expected FROM current_rollups c "
            "JOIN units u ON u.id = c.unit_id WHERE c.indicator_id = :i AND u.level < :street"),
            {"i": db.indicator_ids[key], "street": int(Level.STREET)}).all()
    return {code: (value, int(reported), int(expected)) for code, value, reported, expected in rows}


def assert_same(stored: dict, expected: dict) -> None:
    assert stored.keys() == expected.keys()
    for key, (value, reported, count) in expected.items():
        assert stored[key][1:] == (reported, count), key
        assert stored[key][0] == (None if value is None else pytest.approx(value, rel=1e-9)), key


def test_a_source_delivering_series_rolls_up_every_parent_of_the_streets_it_touched(city_db, now, monkeypatch):
    # Small enough that the run commits every few pages and lets its rows go after every commit.
    monkeypatch.setattr(connectors.sensorthings_observations, "BATCH_ROWS", 5)
    monkeypatch.setattr(connectors.runner, "RECENT_ROWS_LIMIT", 1)
    sent = {key: {street: readings(now, n, key) for n, street in enumerate(STREETS)} for key in ("aqi", "noise")}
    commits = []
    with sensorthings_server() as source:
        for key, series in sent.items():
            for street, observations in series.items():
                source.series(street, key, observations)
        instance = ConnectorInstance(
            name="iot", type="sensorthings", levels=(Level.STREET,), interval_seconds=600,
            config={"url": source.root, "unit_code_from": "thing_property:street_code",
                    "indicator_from": "datastream_property:onescreen_indicator", "page_size": 5,
                    "backoff": 0.01, "max_wait": 5.0, "timeout": 5.0})
        summary = run_connector(city_db.url, instance, city_db.catalog, timezone=ZONE, now=now, batch_size=20,
                                progress=lambda s: commits.append(s.accepted))
    total = sum(len(observations) for series in sent.values() for observations in series.values())
    assert (summary.status, summary.fetched, summary.accepted, summary.rejected) == ("ok", total, total, 0)
    # Committed and let go midway, many times (the path under test); the last rows are still held at the end, in
    # buckets that also hold rows let go: those must be read back whole.
    assert len(commits) > 10 and commits[-2] < total == commits[-1]

    with city_db.session() as session:
        populations = dict(session.execute(text("SELECT code, population FROM units WHERE level = :street"),
                                           {"street": int(Level.STREET)}).all())
        queued = session.execute(text("SELECT count(*) FROM rollup_backlog")).scalar()
    assert queued == 0
    for key in ("aqi", "noise"):
        interval = city_db.catalog[key].interval_seconds
        history = stored_history(city_db, key)
        expected = expected_history(key, interval, sent[key], populations)
        assert len({bucket for _, bucket in expected}) >= SIX_HOURS // interval  # every bucket of six hours
        assert_same(history, expected)
        assert_same(stored_current(city_db, key), expected_current(key, interval, sent[key], populations, now))
    # The silent noise monitor: its district's buckets then are 1 of 2, the city's 3 of 4, and it is stale now.
    silent = bucket_start(now - 3 * 3600, 900)
    assert stored_history(city_db, "noise")[(D2, silent)][1:] == (1, 2)
    assert stored_current(city_db, "noise")[CITY][1:] == (3, 4)
