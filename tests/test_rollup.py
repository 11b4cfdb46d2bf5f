"""Roll-ups: the pure rules of `aggregate`, and roll-ups computed in the database (time buckets: test_buckets.py).

The pure tests use a hand-made tree of ids; the end-to-end tests use the tiny city, whose community
populations are 1000…8000, so every expected number below is checked by hand:

    city 990000 ─┬─ district 990101 ─┬─ street 990101001: communities 990101001001 (1000), …002 (2000)
                 │                    └─ street 990101002: communities 990101002001 (3000), …002 (4000)
                 └─ district 990102 ─┬─ street 990102001: communities 990102001001 (5000), …002 (6000)
                                      └─ street 990102002: communities 990102002001 (7000), …002 (8000)
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from cityops.catalog import RollupRule
from cityops.hierarchy import Level
from cityops.buckets import bucket_start
from cityops.rollup import aggregate, dependents, process_backlog, queue_rollups, refresh_rollups
from cityops.tree import load_tree

# ------------------------------------------------------------------------------------------------
# aggregate(): pure
# ------------------------------------------------------------------------------------------------

# Leaves 1..8 under streets 11..14 (two each), districts 21 (streets 11, 12) and 22 (13, 14), city 30.
LEAVES = list(range(1, 9))
STREET_OF = {leaf: 11 + (leaf - 1) // 2 for leaf in LEAVES}
DISTRICT_OF = {street: 21 if street <= 12 else 22 for street in (11, 12, 13, 14)}
MEMBERSHIP = pd.DataFrame(
    [(leaf, STREET_OF[leaf]) for leaf in LEAVES] + [(leaf, DISTRICT_OF[STREET_OF[leaf]]) for leaf in LEAVES]
    + [(leaf, 30) for leaf in LEAVES], columns=["leaf_id", "ancestor_id"])
WEIGHTS = {leaf: 1000.0 * leaf for leaf in LEAVES}


def values_frame(values, weights=WEIGHTS, leaves=LEAVES) -> pd.DataFrame:
    return pd.DataFrame({"leaf_id": leaves, "value": values, "weight": [weights[leaf] for leaf in leaves]})


def by_ancestor(result: pd.DataFrame) -> dict[int, tuple[float, int]]:
    return {int(a): (float(v), int(r)) for a, v, r in result[["ancestor_id", "value", "reported"]].itertuples(index=False)}


def test_sum():
    result = by_ancestor(aggregate(values_frame([1, 2, 3, 4, 5, 6, 7, 8]), MEMBERSHIP, RollupRule.SUM))
    assert result == {11: (3, 2), 12: (7, 2), 13: (11, 2), 14: (15, 2), 21: (10, 4), 22: (26, 4), 30: (36, 8)}


def test_mean():
    result = by_ancestor(aggregate(values_frame([1, 2, 3, 4, 5, 6, 7, 8]), MEMBERSHIP, RollupRule.MEAN))
    assert result == {11: (1.5, 2), 12: (3.5, 2), 13: (5.5, 2), 14: (7.5, 2), 21: (2.5, 4), 22: (6.5, 4),
                      30: (4.5, 8)}


def test_max():
    result = by_ancestor(aggregate(values_frame([0, 5, 12, 3, 40, 1, -2, -7]), MEMBERSHIP, RollupRule.MAX))
    assert result == {11: (5, 2), 12: (12, 2), 13: (40, 2), 14: (-2, 2), 21: (12, 4), 22: (40, 4), 30: (40, 8)}


def test_population_weighted_mean():
    values = [100, 90, 80, 70, 60, 50, 40, 30]
    result = by_ancestor(aggregate(values_frame(values), MEMBERSHIP, RollupRule.POPULATION_WEIGHTED_MEAN))
    assert result[11] == pytest.approx((280 / 3, 2))
    assert result[21] == pytest.approx((800 / 10, 4))
    assert result[22] == pytest.approx((1120 / 26, 4))
    assert result[30] == pytest.approx((1920 / 36, 8))  # the plain mean would be 65


def test_population_weighted_mean_with_all_zero_weights_falls_back_to_the_plain_mean():
    weights = dict(WEIGHTS)
    weights[1] = weights[2] = 0.0  # street 11 has no inhabitants
    result = by_ancestor(aggregate(values_frame([10, 20, 30, 40, 50, 60, 70, 80], weights=weights), MEMBERSHIP,
                                   RollupRule.POPULATION_WEIGHTED_MEAN))
    assert result[11] == (15.0, 2)                                   # plain mean, not 0/0
    assert result[12] == pytest.approx(((30 * 3 + 40 * 4) / 7, 2))   # weighted as usual
    assert result[21] == pytest.approx(((30 * 3 + 40 * 4) / 7, 4))   # zero weights simply count for nothing
    everyone_zero = aggregate(values_frame([10, 20, 30, 40, 50, 60, 70, 80], weights=dict.fromkeys(LEAVES, 0.0)),
                              MEMBERSHIP, RollupRule.POPULATION_WEIGHTED_MEAN)
    assert by_ancestor(everyone_zero)[30] == (45.0, 8)


def ratio_frame(numerators, denominators, leaves=LEAVES) -> pd.DataFrame:
    return pd.DataFrame({"leaf_id": leaves, "numerator": numerators, "denominator": denominators})


def test_ratio_is_sum_over_sum_not_mean_of_ratios():
    overdue = [1, 0, 3, 8, 5, 6, 0, 16]
    open_ = [10, 0, 30, 40, 50, 60, 70, 80]
    result = aggregate(ratio_frame(overdue, open_), MEMBERSHIP, RollupRule.RATIO, scale=100)
    values = by_ancestor(result)
    assert values[11] == pytest.approx((10.0, 2))           # 1/10: the 0/0 leaf adds nothing but did report
    assert values[12] == pytest.approx((1100 / 70, 2))
    assert values[21] == pytest.approx((1200 / 80, 4))
    assert values[30] == pytest.approx((3900 / 340, 8))
    mean_of_ratios = np.mean([o / d * 100 for o, d in zip(overdue, open_) if d])
    assert values[30][0] != pytest.approx(mean_of_ratios)


def test_ratio_with_zero_denominator_is_nan_not_inf():
    result = aggregate(ratio_frame([3, 0, 0, 0, 0, 0, 0, 0], [0] * 8), MEMBERSHIP, RollupRule.RATIO, scale=100)
    assert result["value"].isna().all()
    assert not np.isinf(result["value"].astype(float)).any()
    assert dict(zip(result["ancestor_id"], result["reported"])) == {11: 2, 12: 2, 13: 2, 14: 2, 21: 4, 22: 4, 30: 8}


@pytest.mark.parametrize("rule", [RollupRule.SUM, RollupRule.MEAN, RollupRule.MAX,
                                  RollupRule.POPULATION_WEIGHTED_MEAN])
def test_nan_values_are_ignored_and_not_counted(rule):
    values = [1, np.nan, 3, 4, np.nan, np.nan, 7, 8]
    result = by_ancestor(aggregate(values_frame(values), MEMBERSHIP, rule))
    assert 13 not in result   # no leaf of street 13 reported a number
    assert result[11] == (1.0, 1)
    assert result[30][1] == 5
    expected_city = {RollupRule.SUM: 23.0, RollupRule.MEAN: 23 / 5, RollupRule.MAX: 8.0,
                     RollupRule.POPULATION_WEIGHTED_MEAN: (1 + 9 + 16 + 49 + 64) / (1 + 3 + 4 + 7 + 8)}[rule]
    assert result[30][0] == pytest.approx(expected_city)


def test_ratio_ignores_leaves_missing_either_part():
    result = by_ancestor(aggregate(ratio_frame([1, np.nan, 3, 4, 5, 6, 7, 8], [10, 10, np.nan, 10, 10, 10, 10, 10]),
                                   MEMBERSHIP, RollupRule.RATIO))
    assert result[11] == (0.1, 1) and result[12] == (0.4, 1)
    assert result[30] == pytest.approx(((1 + 4 + 5 + 6 + 7 + 8) / 60, 6))


def test_grouping_by_bucket_keeps_buckets_apart():
    frame = pd.concat([values_frame([1] * 8).assign(bucket_start=0), values_frame([2] * 8).assign(bucket_start=3600),
                       values_frame([5, 5, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan]).assign(bucket_start=7200)])
    result = aggregate(frame, MEMBERSHIP, RollupRule.SUM, by=("bucket_start",))
    assert list(result.columns) == ["ancestor_id", "bucket_start", "value", "reported"]
    city = {int(b): (float(v), int(r)) for a, b, v, r in result.itertuples(index=False) if a == 30}
    assert city == {0: (8.0, 8), 3600: (16.0, 8), 7200: (10.0, 2)}
    assert len(result[result["bucket_start"] == 7200]) == 3  # street 11, district 21, city


def test_empty_values_give_an_empty_frame_with_the_columns():
    result = aggregate(values_frame([], leaves=[]), MEMBERSHIP, RollupRule.SUM, by=("bucket_start",))
    assert result.empty and list(result.columns) == ["ancestor_id", "bucket_start", "value", "reported"]


def test_leaves_outside_the_membership_are_ignored():
    frame = pd.DataFrame({"leaf_id": [1, 99], "value": [5.0, 1000.0], "weight": [1.0, 1.0]})
    assert by_ancestor(aggregate(frame, MEMBERSHIP, RollupRule.SUM))[30] == (5.0, 1)


# --- properties --------------------------------------------------------------------------------

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
maybe = st.one_of(finite, st.just(math.nan))
leaf_values = st.lists(maybe, min_size=8, max_size=8)
weights = st.lists(st.integers(0, 100_000).map(float), min_size=8, max_size=8)  # populations are whole numbers


@settings(deadline=None)
@given(leaf_values)
def test_city_sum_is_the_sum_of_district_sums_and_of_street_sums(values):
    result = by_ancestor(aggregate(values_frame(values), MEMBERSHIP, RollupRule.SUM))
    numbers = [v for v in values if not math.isnan(v)]
    if not numbers:
        assert result == {}
        return
    city, reported = result[30]
    assert reported == len(numbers)
    assert city == pytest.approx(sum(result[d][0] for d in (21, 22) if d in result), abs=1e-6)
    assert city == pytest.approx(sum(result[s][0] for s in (11, 12, 13, 14) if s in result), abs=1e-6)
    assert sum(result[d][1] for d in (21, 22) if d in result) == reported


@settings(deadline=None)
@given(leaf_values, weights)
def test_weighted_mean_lies_between_min_and_max_of_its_leaves(values, raw_weights):
    weight_of = dict(zip(LEAVES, raw_weights))
    result = by_ancestor(aggregate(values_frame(values, weights=weight_of), MEMBERSHIP,
                                   RollupRule.POPULATION_WEIGHTED_MEAN))
    for ancestor, (value, reported) in result.items():
        members = MEMBERSHIP.loc[MEMBERSHIP["ancestor_id"] == ancestor, "leaf_id"]
        numbers = [values[leaf - 1] for leaf in members if not math.isnan(values[leaf - 1])]
        assert reported == len(numbers)
        tolerance = 1e-9 * max(1.0, *map(abs, numbers))
        assert min(numbers) - tolerance <= value <= max(numbers) + tolerance


@settings(deadline=None)
@given(st.lists(finite, min_size=1, max_size=7), st.integers(0, 100_000).map(float), st.sampled_from(
    [RollupRule.MEAN, RollupRule.POPULATION_WEIGHTED_MEAN]))
def test_adding_a_leaf_at_the_mean_leaves_the_mean_unchanged(values, new_weight, rule):
    leaves = LEAVES[:len(values)]
    before = by_ancestor(aggregate(values_frame(values, leaves=leaves), MEMBERSHIP, rule))[30][0]
    new_leaf = LEAVES[len(values)]
    after_weights = {**WEIGHTS, new_leaf: new_weight}
    after = by_ancestor(aggregate(values_frame([*values, before], weights=after_weights, leaves=[*leaves, new_leaf]),
                                  MEMBERSHIP, rule))[30]
    assert after[1] == len(values) + 1
    assert after[0] == pytest.approx(before, rel=1e-9, abs=1e-6)


@settings(deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=8, max_size=8), st.lists(st.integers(0, 1000), min_size=8, max_size=8),
       st.sampled_from([1.0, 100.0]))
def test_ratio_rolls_up_as_sum_over_sum(numerators, denominators, scale):
    result = by_ancestor(aggregate(ratio_frame(numerators, denominators), MEMBERSHIP, RollupRule.RATIO, scale))
    for ancestor in (11, 12, 13, 14, 21, 22, 30):
        members = MEMBERSHIP.loc[MEMBERSHIP["ancestor_id"] == ancestor, "leaf_id"].tolist()
        numerator = sum(numerators[leaf - 1] for leaf in members)
        denominator = sum(denominators[leaf - 1] for leaf in members)
        value, reported = result[ancestor]
        assert reported == len(members)
        if denominator == 0:
            assert math.isnan(value)
        else:
            assert value == pytest.approx(numerator / denominator * scale)


@settings(deadline=None)
@given(leaf_values)
def test_max_of_the_city_is_the_max_of_its_districts(values):
    result = by_ancestor(aggregate(values_frame(values), MEMBERSHIP, RollupRule.MAX))
    assume(30 in result)
    assert result[30][0] == max(result[d][0] for d in (21, 22) if d in result)
    assert result[30][0] == max(v for v in values if not math.isnan(v))


SHANGHAI = ZoneInfo("Asia/Shanghai")
EIGHT_HOURS = 8 * 3600


def epoch(*parts, zone=timezone.utc) -> int:
    return int(datetime(*parts, tzinfo=zone).timestamp())


# ------------------------------------------------------------------------------------------------
# Roll-ups in the database (SQLite and PostgreSQL), with the tiny city
# ------------------------------------------------------------------------------------------------

CITY, D1, D2 = "990000", "990101", "990102"
S11, S12, S21, S22 = "990101001", "990101002", "990102001", "990102002"
COMMUNITIES = [s + c for s in (S11, S12, S21, S22) for c in ("001", "002")]  # populations 1000 … 8000
STREETS = [S11, S12, S21, S22]

NOW = epoch(2026, 11, 26, 10, 30, zone=SHANGHAI)  # 02:30 UTC
HOUR = bucket_start(NOW, 3600)                     # 02:00 UTC: the current hourly bucket
DAY = epoch(2026, 11, 26, 0, 0, zone=SHANGHAI)    # the current local day


def history(db, key) -> dict[tuple[str, int], tuple]:
    with db.session() as session:
        rows = session.execute(text(
            "SELECT u.code, h.bucket_start, h.value, h.reported, h.expected FROM rollup_history h "
            "JOIN units u ON u.id = h.unit_id WHERE h.indicator_id = :i"), {"i": db.indicator_ids[key]}).all()
    return {(code, int(b)): (v, int(r), int(e)) for code, b, v, r, e in rows}


def current(db, key) -> dict[str, tuple]:
    with db.session() as session:
        rows = session.execute(text(
            "SELECT u.code, c.value, c.reported, c.expected, c.latest_observed_at, c.as_of FROM current_rollups c "
            "JOIN units u ON u.id = c.unit_id WHERE c.indicator_id = :i"), {"i": db.indicator_ids[key]}).all()
    return {code: (v, int(r), int(e), None if latest is None else int(latest), int(as_of))
            for code, v, r, e, latest, as_of in rows}


def roll(db, touched, now=NOW, offset=EIGHT_HOURS) -> int:
    with db.session() as session:
        tree = load_tree(session)
        return refresh_rollups(session, db.catalog, db.indicator_ids, tree, touched, now, offset)


def roll_via_backlog(db, touched, now=NOW, offset=EIGHT_HOURS) -> int:
    with db.session() as session:
        queue_rollups(session, db.catalog, db.indicator_ids, touched, offset)
    with db.session() as session:
        return process_backlog(session, db.catalog, db.indicator_ids, load_tree(session), now, offset)


def ingest(db, observations, via_backlog=False):
    _, touched = db.store(observations)
    return (roll_via_backlog if via_backlog else roll)(db, touched)


def communities_in(code: str) -> int:
    return {12: 1, 9: 2, 6: 4}[len(code)] if code != CITY else 8


def approx_row(value, reported, expected):
    return (pytest.approx(value), reported, expected)


@pytest.mark.parametrize("via_backlog", [False, True], ids=["refresh", "backlog"])
def test_sum_rolls_up_to_history_and_current(city_db, via_backlog):
    at = HOUR + 600
    observations = [(code, "hotline_complaints", at, n) for n, code in enumerate(COMMUNITIES, start=1)]
    observations.append((COMMUNITIES[0], "hotline_complaints", HOUR + 60, 100))  # superseded within the bucket
    ingest(city_db, observations, via_backlog)
    expected = {S11: (3, 2, 2), S12: (7, 2, 2), S21: (11, 2, 2), S22: (15, 2, 2), D1: (10, 4, 4), D2: (26, 4, 4),
                CITY: (36, 8, 8)}
    assert history(city_db, "hotline_complaints") == {(code, HOUR): row for code, row in expected.items()}
    assert current(city_db, "hotline_complaints") == {
        code: (value, reported, count, at, NOW) for code, (value, reported, count) in expected.items()}


@pytest.mark.parametrize("via_backlog", [False, True], ids=["refresh", "backlog"])
def test_population_weighted_mean_in_local_daily_buckets(city_db, via_backlog):
    at = NOW - 3 * 3600  # 07:30 local, the same local day (and the previous UTC day)
    values = [100, 90, 80, 70, 60, 50, 40, 30]
    ingest(city_db, [(code, "garbage_sorting_compliance", at, v) for code, v in zip(COMMUNITIES, values)],
           via_backlog)
    expected = {S11: 280 / 3, S12: 520 / 7, S21: 600 / 11, S22: 520 / 15, D1: 80.0, D2: 1120 / 26, CITY: 1920 / 36}
    rolled = history(city_db, "garbage_sorting_compliance")
    live = current(city_db, "garbage_sorting_compliance")
    assert set(rolled) == {(code, DAY) for code in expected}  # one bucket: the local day, not the UTC day
    for code, value in expected.items():
        assert rolled[(code, DAY)] == approx_row(value, communities_in(code), communities_in(code))
        assert live[code][:3] == approx_row(value, communities_in(code), communities_in(code))


def test_max_rolls_up(city_db):
    depths = [0, 5, 12, 3, 40, 1, 0, 7]
    ingest(city_db, [(code, "waterlogging_depth", HOUR + 900, d) for code, d in zip(COMMUNITIES, depths)])
    expected = {S11: 5, S12: 12, S21: 40, S22: 7, D1: 12, D2: 40, CITY: 40}
    assert {code: row[0] for (code, _), row in history(city_db, "waterlogging_depth").items()} == expected
    assert {code: row[0] for code, row in current(city_db, "waterlogging_depth").items()} == expected


def test_mean_rolls_up_from_streets(city_db):
    levels = [50, 60, 70, 80]  # street-level noise
    ingest(city_db, [(code, "noise", NOW - 120, v) for code, v in zip(STREETS, levels)])
    rolled = current(city_db, "noise")
    assert set(rolled) == {D1, D2, CITY}  # streets report it themselves: no roll-up for them
    assert rolled[D1][:3] == (55.0, 2, 2) and rolled[D2][:3] == (75.0, 2, 2) and rolled[CITY][:3] == (65.0, 4, 4)
    assert history(city_db, "noise")[(CITY, bucket_start(NOW - 120, 900))] == (65.0, 4, 4)


OPEN = [10, 0, 30, 40, 50, 60, 70, 80]
OVERDUE = [1, 0, 3, 8, 5, 6, 0, 16]
RATE = {  # overdue ÷ open × 100, summed first at every level
    COMMUNITIES[0]: 10.0, COMMUNITIES[1]: None, COMMUNITIES[2]: 10.0, COMMUNITIES[3]: 20.0, COMMUNITIES[4]: 10.0,
    COMMUNITIES[5]: 10.0, COMMUNITIES[6]: 0.0, COMMUNITIES[7]: 20.0,
    S11: 10.0, S12: 1100 / 70, S21: 10.0, S22: 1600 / 150, D1: 15.0, D2: 2700 / 260, CITY: 3900 / 340,
}


@pytest.mark.parametrize("via_backlog", [False, True], ids=["refresh", "backlog"])
def test_ratio_is_derived_at_every_level_from_sums(city_db, via_backlog):
    observations = [(code, "grid_incidents_open", HOUR + 300, n) for code, n in zip(COMMUNITIES, OPEN)]
    observations += [(code, "grid_incidents_overdue", HOUR + 900, n) for code, n in zip(COMMUNITIES, OVERDUE)]
    ingest(city_db, observations, via_backlog)
    rolled = history(city_db, "grid_overdue_rate")
    live = current(city_db, "grid_overdue_rate")
    assert set(rolled) == {(code, HOUR) for code in RATE}
    for code, rate in RATE.items():
        members = communities_in(code)
        if rate is None:  # 0 overdue of 0 open: no rate, not 0 and not infinity
            assert rolled[(code, HOUR)] == (None, 1, 1)
            assert live[code][:3] == (None, 1, 1)
        else:
            assert rolled[(code, HOUR)] == approx_row(rate, members, members)
            assert live[code][:3] == approx_row(rate, members, members)
        assert live[code][3] == HOUR + 300  # a pair is only as fresh as its older part
    # The sums themselves rolled up too.
    assert current(city_db, "grid_incidents_open")[CITY][:3] == (340.0, 8, 8)


def test_ratio_follows_a_later_change_of_only_one_part(city_db):
    ingest(city_db, [(code, "grid_incidents_open", HOUR + 300, n) for code, n in zip(COMMUNITIES, OPEN)]
           + [(code, "grid_incidents_overdue", HOUR + 300, n) for code, n in zip(COMMUNITIES, OVERDUE)])
    ingest(city_db, [(COMMUNITIES[7], "grid_incidents_open", HOUR + 1200, 160)])  # only the denominator changes
    assert history(city_db, "grid_overdue_rate")[(CITY, HOUR)][0] == pytest.approx(3900 / 420)
    assert current(city_db, "grid_overdue_rate")[S22][0] == pytest.approx(1600 / 230)


def test_completeness_with_a_silent_and_a_stale_community(city_db):
    """990101001001 last reported two hours ago (stale), 990101001002 never: street 990101001 has no live value."""
    stale_at = NOW - 2 * 3600
    fresh_at = HOUR + 600
    observations = [(COMMUNITIES[0], "hotline_complaints", stale_at, 50)]
    observations += [(code, "hotline_complaints", fresh_at, n) for n, code in enumerate(COMMUNITIES, start=1)
                     if code not in COMMUNITIES[:2]]
    ingest(city_db, observations)

    live = current(city_db, "hotline_complaints")
    assert live[S11] == (None, 0, 2, stale_at, NOW)      # nothing counts, but the old value is still visible
    assert live[S12] == (7.0, 2, 2, fresh_at, NOW)
    assert live[D1] == (7.0, 2, 4, fresh_at, NOW)
    assert live[CITY] == (33.0, 6, 8, fresh_at, NOW)

    rolled = history(city_db, "hotline_complaints")
    old_hour = bucket_start(stale_at, 3600)
    assert rolled[(S11, old_hour)] == (50.0, 1, 2)
    assert rolled[(D1, old_hour)] == (50.0, 1, 4)
    assert rolled[(CITY, old_hour)] == (50.0, 1, 8)
    assert (S11, HOUR) not in rolled                     # nobody in street 990101001 reported this hour
    assert rolled[(D1, HOUR)] == (7.0, 2, 4)
    assert rolled[(CITY, HOUR)] == (33.0, 6, 8)


def test_value_exactly_one_and_a_quarter_intervals_old_still_counts(city_db):
    """The live roll-up and the status agree: a value is stale only when *older* than 1.25 intervals."""
    boundary = NOW - 4500  # 1.25 × 1 h
    ingest(city_db, [(COMMUNITIES[0], "hotline_complaints", boundary, 4),
                     (COMMUNITIES[1], "hotline_complaints", boundary - 1, 5)])
    assert current(city_db, "hotline_complaints")[S11] == (4.0, 1, 2, boundary, NOW)


def test_late_and_corrected_values_update_their_bucket_only(city_db):
    earlier = HOUR - 3600
    ingest(city_db, [(code, "hotline_complaints", HOUR + 600, 1) for code in COMMUNITIES])
    ingest(city_db, [(code, "hotline_complaints", earlier + 600, 2) for code in COMMUNITIES])  # a late backfill
    rolled = history(city_db, "hotline_complaints")
    assert rolled[(CITY, HOUR)] == (8.0, 8, 8) and rolled[(CITY, earlier)] == (16.0, 8, 8)
    assert current(city_db, "hotline_complaints")[CITY][:4] == (8.0, 8, 8, HOUR + 600)  # the late rows are older

    ingest(city_db, [(COMMUNITIES[0], "hotline_complaints", earlier + 600, 12)])  # a correction of the past
    rolled = history(city_db, "hotline_complaints")
    assert rolled[(CITY, earlier)] == (26.0, 8, 8) and rolled[(S11, earlier)] == (14.0, 2, 2)
    assert rolled[(CITY, HOUR)] == (8.0, 8, 8)


def test_backlog_is_cleared_and_unknown_indicators_are_dropped(city_db):
    _, touched = city_db.store([(code, "hotline_complaints", HOUR + 600, 1) for code in COMMUNITIES])
    with city_db.session() as session:
        queue_rollups(session, city_db.catalog, city_db.indicator_ids, touched, EIGHT_HOURS)
        queue_rollups(session, city_db.catalog, city_db.indicator_ids, touched, EIGHT_HOURS)  # queued once
        session.execute(text("INSERT INTO rollup_backlog (indicator_id, bucket_start) VALUES (999, 0)"))
    with city_db.session() as session:
        assert session.execute(text("SELECT count(*) FROM rollup_backlog")).scalar() == 2
    with city_db.session() as session:
        written = process_backlog(session, city_db.catalog, city_db.indicator_ids, load_tree(session), NOW,
                                  EIGHT_HOURS)
    assert written == 14  # 7 ancestors in history and 7 in the live roll-up
    with city_db.session() as session:
        assert session.execute(text("SELECT count(*) FROM rollup_backlog")).scalar() == 0
        assert process_backlog(session, city_db.catalog, city_db.indicator_ids, load_tree(session), NOW) == 0
    assert history(city_db, "hotline_complaints")[(CITY, HOUR)] == (8.0, 8, 8)


def test_processing_the_backlog_clears_only_what_it_computed(city_db, monkeypatch):
    """Another connector may queue buckets while roll-ups are computed; its work must not be thrown away."""
    import cityops.rollup as rollup

    _, touched = city_db.store([(code, "hotline_complaints", HOUR + 600, 1) for code in COMMUNITIES])
    with city_db.session() as session:
        queue_rollups(session, city_db.catalog, city_db.indicator_ids, touched, EIGHT_HOURS)
    real_refresh = rollup.refresh_rollups
    fire_id = city_db.indicator_ids["fire_alarms"]

    def refresh_while_another_run_queues(session, *args, **kwargs):
        session.execute(text("INSERT INTO rollup_backlog (indicator_id, bucket_start) VALUES (:i, :b)"),
                        {"i": fire_id, "b": HOUR})
        return real_refresh(session, *args, **kwargs)

    monkeypatch.setattr(rollup, "refresh_rollups", refresh_while_another_run_queues)
    with city_db.session() as session:
        process_backlog(session, city_db.catalog, city_db.indicator_ids, load_tree(session), NOW, EIGHT_HOURS)
    with city_db.session() as session:
        left = session.execute(text("SELECT indicator_id, bucket_start FROM rollup_backlog")).all()
    assert [tuple(row) for row in left] == [(fire_id, HOUR)]


def test_both_paths_write_the_same_rollups(db_url, catalog, city_db_factory, tmp_path):
    """refresh_rollups straight after an ingest and the queued backlog give identical tables."""
    from cityops.db import migrate

    observations = [(code, "hotline_complaints", HOUR - 3600 * k + 60 * n, n + k)
                    for k in range(3) for n, code in enumerate(COMMUNITIES)]
    observations += [(code, "grid_incidents_open", HOUR + 100, 10 + n) for n, code in enumerate(COMMUNITIES)]
    observations += [(code, "grid_incidents_overdue", HOUR + 100, n) for n, code in enumerate(COMMUNITIES)]
    direct = city_db_factory(db_url, catalog)
    ingest(direct, observations)
    other_url = f"sqlite:///{(tmp_path / 'other.db').as_posix()}"
    migrate(other_url)
    queued = city_db_factory(other_url, catalog)
    ingest(queued, observations, via_backlog=True)
    for key in ("hotline_complaints", "grid_incidents_open", "grid_overdue_rate"):
        assert history(direct, key) == history(queued, key)
        assert current(direct, key) == current(queued, key)


def test_dependents_include_ratios_of_touched_parts(catalog):
    assert {i.key for i in dependents(catalog, ["grid_incidents_open"])} == {"grid_incidents_open",
                                                                             "grid_overdue_rate"}
    assert {i.key for i in dependents(catalog, ["hotline_complaints"])} == {"hotline_complaints"}


def test_membership_counts_leaves_per_ancestor(sqlite_city_db):
    with sqlite_city_db.session() as session:
        tree = load_tree(session)
    ids = sqlite_city_db.unit_ids
    counts = tree.leaf_counts(Level.COMMUNITY, include_self=False)
    assert counts[ids[CITY]] == 8 and counts[ids[D2]] == 4 and counts[ids[S21]] == 2
    assert ids[COMMUNITIES[0]] not in counts.index
    with_self = tree.leaf_counts(Level.COMMUNITY, include_self=True)
    assert with_self[ids[COMMUNITIES[0]]] == 1 and with_self[ids[CITY]] == 8
    assert tree.leaf_counts(Level.STREET, include_self=False)[ids[CITY]] == 4


# ------------------------------------------------------------------------------------------------
# Windows: buckets read and rolled up together, from memory or the database
# ------------------------------------------------------------------------------------------------


def test_a_window_from_memory_never_rolls_up_a_bucket_it_does_not_hold_whole(city_db):
    """Noise is measured every 15 minutes per street. A run's hourly rows are rolled up from memory in one window
    that spans the half hour between them, where an earlier run stored another street's reading: that bucket
    must come from the database (both streets), not from the run's rows alone."""
    half_past = HOUR - 1800
    ingest(city_db, [(S11, "noise", half_past, 50)])
    run_rows = [(S12, "noise", HOUR - 3600, 40), (S12, "noise", half_past, 60), (S12, "noise", HOUR, 70)]
    _, touched = city_db.store(run_rows)
    recent = pd.DataFrame([(city_db.unit_ids[code], city_db.indicator_ids[key], at, float(value))
                           for code, key, at, value in run_rows],
                          columns=["unit_id", "indicator_id", "observed_at", "value"])
    with city_db.session() as session:
        refresh_rollups(session, city_db.catalog, city_db.indicator_ids, load_tree(session), touched, NOW,
                        EIGHT_HOURS, recent)
    rolled = history(city_db, "noise")
    assert rolled[(D1, half_past)] == approx_row(55.0, 2, 2)
    assert rolled[(D1, HOUR - 3600)] == approx_row(40.0, 1, 2)
    assert rolled[(D1, HOUR)] == approx_row(70.0, 1, 2)
    assert (D1, HOUR - 2700) not in rolled and (D1, HOUR - 900) not in rolled  # untouched buckets stay unwritten


def test_a_pass_over_held_rows_only_leaves_the_other_buckets_queued_for_the_next(city_db):
    """Midway through a run (rows let go): buckets the held rows cover whole are rolled up from them; a bucket
    holding rows of earlier batches too stays queued, and the next pass computes it from the database. The
    end result equals rolling everything up at once, ratios included."""
    earlier = [(code, key, HOUR - 3600 + 60, n) for n, code in enumerate(COMMUNITIES, start=1)
               for key in ("grid_incidents_open", "hotline_complaints")]
    _, touched = city_db.store(earlier)
    with city_db.session() as session:
        queue_rollups(session, city_db.catalog, city_db.indicator_ids, touched, EIGHT_HOURS)
    held = [(code, key, at, n) for n, code in enumerate(COMMUNITIES, start=1)
            for key, at in (("grid_incidents_open", HOUR - 3600 + 120), ("grid_incidents_overdue", HOUR - 3600 + 120),
                            ("hotline_complaints", HOUR + 60))]
    _, touched = city_db.store(held)
    recent = pd.DataFrame([(city_db.unit_ids[code], city_db.indicator_ids[key], at, float(value))
                           for code, key, at, value in held], columns=["unit_id", "indicator_id", "observed_at", "value"])
    with city_db.session() as session:
        queue_rollups(session, city_db.catalog, city_db.indicator_ids, touched, EIGHT_HOURS)
    with city_db.session() as session:
        process_backlog(session, city_db.catalog, city_db.indicator_ids, load_tree(session), NOW, EIGHT_HOURS,
                        recent, held_only=True)
    partial = history(city_db, "hotline_complaints")
    assert (CITY, HOUR) in partial and (CITY, HOUR - 3600) not in partial  # the earlier hour waits
    with city_db.session() as session:
        queued = {(key, int(b)) for key, b in session.execute(text(
            "SELECT i.key, q.bucket_start FROM rollup_backlog q JOIN indicators i ON i.id = q.indicator_id"))}
    assert ("hotline_complaints", HOUR - 3600) in queued and ("grid_incidents_open", HOUR - 3600) in queued
    roll_via_backlog(city_db, {})
    rolled = {key: history(city_db, key) for key in ("hotline_complaints", "grid_incidents_open", "grid_overdue_rate")}
    with city_db.session() as session:
        session.execute(text("DELETE FROM rollup_history"))
    roll(city_db, {key: {HOUR - 3600 + 60, HOUR - 3600 + 120, HOUR + 60} for key in
                   ("hotline_complaints", "grid_incidents_open", "grid_incidents_overdue")})
    for key, before in rolled.items():
        assert before == history(city_db, key), key
