"""Storage on SQLite and PostgreSQL: idempotent upserts, the forward-only current snapshot, stable indicator ids.

Every test runs on both databases (see `db_url` in conftest.py); the schema comes from the Alembic migrations.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, select, text

from cityops.catalog import Catalog
from cityops.db import engine_for, migrate, session_scope
from cityops.models import Base, Indicator, Observation
from cityops.storage import UpsertResult, fetch_frame, indicator_ids, sync_indicators, upsert_observations


def row(unit, indicator, at, value, run_id=None) -> dict:
    return {"unit_id": unit, "indicator_id": indicator, "observed_at": at, "value": float(value), "run_id": run_id}


def upsert(url, rows) -> UpsertResult:
    with session_scope(url) as session:
        return upsert_observations(session, rows)


def observations(url) -> dict[tuple[int, int, int], tuple[float, int | None]]:
    with session_scope(url) as session:
        found = session.execute(text("SELECT unit_id, indicator_id, observed_at, value, run_id FROM observations"))
        return {(u, i, int(t)): (v, r) for u, i, t, v, r in found}


def current_values(url) -> dict[tuple[int, int], tuple[int, float]]:
    with session_scope(url) as session:
        found = session.execute(text("SELECT unit_id, indicator_id, observed_at, value FROM current_values"))
        return {(u, i): (int(t), v) for u, i, t, v in found}


def test_migration_builds_every_table_and_is_idempotent(db_url):
    migrate(db_url)  # a second upgrade changes nothing and does not fail
    tables = set(inspect(engine_for(db_url)).get_table_names())
    assert {table.name for table in Base.metadata.sorted_tables} <= tables
    assert "alembic_version" in tables


def test_upsert_is_idempotent(db_url):
    rows = [row(1, 1, 100, 5, run_id=1), row(1, 1, 200, 6, run_id=1), row(2, 1, 100, 7, run_id=1)]
    assert upsert(db_url, rows) == UpsertResult(written=3, unchanged=0)
    again = [dict(r, run_id=2) for r in rows]
    assert upsert(db_url, again) == UpsertResult(written=0, unchanged=3)
    assert observations(db_url) == {(1, 1, 100): (5.0, 1), (1, 1, 200): (6.0, 1), (2, 1, 100): (7.0, 1)}
    assert current_values(db_url) == {(1, 1): (200, 6.0), (2, 1): (100, 7.0)}
    with session_scope(db_url) as session:  # the replay left the snapshot alone as well
        assert set(session.execute(text("SELECT run_id FROM current_values")).scalars()) == {1}


def test_changed_value_updates_and_is_counted_as_written(db_url):
    upsert(db_url, [row(1, 1, 100, 5, run_id=1), row(1, 1, 200, 6, run_id=1)])
    result = upsert(db_url, [row(1, 1, 100, 5, run_id=2), row(1, 1, 200, 9, run_id=2), row(1, 2, 50, 1, run_id=2)])
    assert result == UpsertResult(written=2, unchanged=1)
    assert observations(db_url) == {(1, 1, 100): (5.0, 1), (1, 1, 200): (9.0, 2), (1, 2, 50): (1.0, 2)}
    assert current_values(db_url) == {(1, 1): (200, 9.0), (1, 2): (50, 1.0)}  # a correction of the latest moves it
    with session_scope(db_url) as session:
        assert session.execute(text("SELECT run_id FROM current_values WHERE indicator_id = 1")).scalar() == 2


def test_older_rows_never_replace_the_current_value(db_url):
    upsert(db_url, [row(1, 1, 300, 3)])
    upsert(db_url, [row(1, 1, 100, 1), row(1, 1, 200, 2)])          # late delivery of the past
    assert current_values(db_url) == {(1, 1): (300, 3.0)}
    upsert(db_url, [row(1, 1, 100, 10)])                            # a correction of the past
    assert current_values(db_url) == {(1, 1): (300, 3.0)}
    assert observations(db_url)[(1, 1, 100)][0] == 10.0
    upsert(db_url, [row(1, 1, 400, 4), row(1, 1, 350, 35)])         # the newest row of a batch wins, not the last
    assert current_values(db_url) == {(1, 1): (400, 4.0)}


def test_empty_upsert_writes_nothing(db_url):
    assert upsert(db_url, []) == UpsertResult(0, 0)
    assert observations(db_url) == {}


keys = st.tuples(st.integers(1, 3), st.integers(1, 2), st.integers(0, 12))
batches = st.lists(st.lists(st.tuples(keys, st.integers(0, 3)), max_size=15), min_size=1, max_size=5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=batches, data=st.data())
def test_current_snapshot_is_the_latest_observation_after_any_sequence_of_batches(db_url, batches, data):
    """Random batches in random order, with replays, corrections and rows older than what is stored."""
    with session_scope(db_url) as session:
        session.execute(text("DELETE FROM observations"))
        session.execute(text("DELETE FROM current_values"))
    model: dict[tuple[int, int, int], float] = {}
    for batch in batches:
        unique = dict(batch)  # a batch is unique on its key (the runner de-duplicates first)
        order = data.draw(st.permutations(list(unique.items())))
        written = sum(1 for key, value in order if model.get(key) != value)
        result = upsert(db_url, [row(*key, value) for key, value in order])
        assert result == UpsertResult(written=written, unchanged=len(order) - written)
        model.update(unique)
    assert {key: value for key, (value, _) in observations(db_url).items()} == model
    latest: dict[tuple[int, int], tuple[int, float]] = {}
    for (unit, indicator, at), value in model.items():
        if (unit, indicator) not in latest or at > latest[(unit, indicator)][0]:
            latest[(unit, indicator)] = (at, value)
    assert current_values(db_url) == latest


def test_sync_indicators_keeps_ids_when_the_catalog_is_reordered_or_renamed(db_url, catalog):
    with session_scope(db_url) as session:
        first = sync_indicators(session, catalog)
    assert sorted(first.values()) == list(range(1, len(catalog) + 1))
    assert list(first) == catalog.keys

    renamed = dataclasses.replace(catalog["aqi"], name_en="Air quality")
    shuffled = Catalog(tuple(reversed([renamed if i.key == "aqi" else i for i in catalog])), catalog.source)
    with session_scope(db_url) as session:
        second = sync_indicators(session, shuffled)
    assert second == first
    assert list(second) == shuffled.keys
    with session_scope(db_url) as session:
        assert session.scalar(select(Indicator.name_en).where(Indicator.key == "aqi")) == "Air quality"
        assert session.scalar(select(Indicator.name_zh).where(Indicator.key == "aqi")) == catalog["aqi"].name_zh


def test_new_keys_get_new_ids_and_removed_keys_keep_theirs(db_url, catalog):
    with session_scope(db_url) as session:
        first = sync_indicators(session, catalog)
    fewer = Catalog(tuple(i for i in catalog if i.key != "pm25"), catalog.source)
    extra = dataclasses.replace(catalog["noise"], key="night_noise", name_en="Night noise")
    grown = Catalog((extra, *fewer), catalog.source)
    with session_scope(db_url) as session:
        second = sync_indicators(session, grown)
    assert "pm25" not in second
    assert second["night_noise"] == max(first.values()) + 1
    assert all(second[key] == first[key] for key in fewer.keys)
    with session_scope(db_url) as session:
        third = sync_indicators(session, catalog)  # pm25 returns under its old id
    assert third == first


def test_indicator_ids_registers_keys_the_database_has_not_seen(db_url, catalog):
    with session_scope(db_url) as session:
        assert indicator_ids(session, catalog) == sync_indicators(session, catalog)
    extra = dataclasses.replace(catalog["noise"], key="night_noise")
    grown = Catalog((*catalog, extra), catalog.source)
    with session_scope(db_url) as session:
        ids = indicator_ids(session, grown)
    assert ids["night_noise"] == len(catalog) + 1
    with session_scope(db_url) as session:
        assert session.scalar(select(Indicator.id).where(Indicator.key == "night_noise")) == len(catalog) + 1


def test_fetch_frame_returns_rows_and_typed_empty_frames(db_url):
    upsert(db_url, [row(1, 1, 100, 5), row(2, 1, 200, 6), row(2, 2, 300, 7)])
    with session_scope(db_url) as session:
        statement = select(Observation.unit_id, Observation.observed_at, Observation.value).where(
            Observation.indicator_id == 1, Observation.observed_at >= 150)
        frame = fetch_frame(session, statement, ["leaf_id", "observed_at", "value"])
        empty = fetch_frame(session, statement.where(Observation.unit_id == 99), ["leaf_id", "observed_at", "value"])
    pd.testing.assert_frame_equal(frame, pd.DataFrame({"leaf_id": [2], "observed_at": [200], "value": [6.0]}),
                                  check_dtype=False)
    assert empty.empty and list(empty.columns) == ["leaf_id", "observed_at", "value"]


def test_a_failed_transaction_stores_nothing(db_url):
    try:
        with session_scope(db_url) as session:
            upsert_observations(session, [row(1, 1, 100, 5)])
            raise RuntimeError("crash before commit")
    except RuntimeError:
        pass
    assert observations(db_url) == {} and current_values(db_url) == {}
