"""Evaluating the alert rules after an ingest, on what changed.

Each (rule, indicator, level) keeps a cursor (`alert_cursors`): the newest data time it has judged. An evaluation
reads, for the indicators an ingest touched, only the values after their cursors — at the level an indicator is
reported at, its observations; above it, its roll-up buckets — and judges them with array operations; only units
with a breach, or with an episode already open, go on to the state machine (cityops/alerts/store.py).

- A roll-up bucket is judged once most of its units have reported (`SETTLED_SHARE`) or an interval after it
  ended: a street's sum judged while half its communities are still to report would be half its size. A sum's
  bucket that ended with fewer in is no figure to compare: rate-of-change, anomaly and consistency rules neither
  judge it nor compare with it (a week-old hour with a quarter of the city in made every district's complaints
  "+438 %").
- On a first evaluation, and after a long outage, only the last `LOOKBACK` (plus the rule's `for`) is judged:
  a seven-day backfill must not raise (and notify) a week of alerts that are long over.
- `no_data` rules are judged at every evaluation, touched or not: silence is exactly what no ingest reports.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from cityops.alerts.judgements import MAD_TO_SIGMA, Worse
from cityops.alerts.rules import COMPARE_OFFSETS, AlertConfig, Rule, RuleType
from cityops.alerts.store import NOTHING_JUDGED, AlertWriter, Judged, StoredChanges, close_recovered
from cityops.buckets import bucket_start
from cityops.catalog import Catalog, Direction, Indicator, RollupRule
from cityops.hierarchy import Level
from cityops.models import AlertCursor, ConnectorRun, CurrentRollup, CurrentValue, Observation, RollupHistory, Unit
from cityops.readings import source_of
from cityops.rollup import dependents
from cityops.status import STALE_GRACE
from cityops.storage import _dialect_insert, fetch_frame
from cityops.tree import UnitTree

LOOKBACK = 6 * 3600
SETTLED_SHARE = 0.8
WEEK = 7 * 86400


@dataclass
class EvaluationReport:
    judged: int = 0                       # judgements made
    stored: StoredChanges = field(default_factory=StoredChanges)
    closed: int = 0                       # resolved alerts closed automatically
    seconds: float = 0.0


def evaluate_alerts(session: Session, catalog: Catalog, ids: dict[str, int], tree: UnitTree, config: AlertConfig,
                    now: int, touched: Iterable[str] | None = None, utc_offset_seconds: int = 0,
                    fresh: pd.DataFrame | None = None, sources: dict[str, int] | None = None) -> EvaluationReport:
    """Judge what changed since the last evaluation and record the alerts it makes or ends. The caller commits.

    `touched`: the indicator keys an ingest wrote (None: every indicator). `fresh`: the rows it committed
    (unit_id, indicator_id, observed_at, value, run_id); where an indicator is reported, they are judged as they
    are instead of being read back — and a value that arrived late, for a time already judged at other units, is
    judged too (each unit's episode still takes a time only once). `sources`: the configured connectors and their
    schedule intervals (seconds), for the rules about sources' silence."""
    started = time.perf_counter()
    report = EvaluationReport()
    changed = None if touched is None else {indicator.key for indicator in dependents(catalog, touched)}
    cursors = _Cursors(session, now)
    tasks = [(rule, catalog[key], level, cursors.of(rule, ids[key], level))
             for rule in config.rules for key in rule.indicators
             if rule.type is RuleType.NO_DATA or changed is None or {key, rule.options.get("reported", key)} & changed
             for level in rule.levels_for(catalog[key])]
    reads = _Reads(session, tree, fresh if touched is not None else None)
    reads.silent_ids = {ids[indicator.key] for rule, indicator, _, _ in tasks if rule.type is RuleType.NO_DATA}
    reads.prefetch_rollups([(indicator, ids[indicator.key], level, cursor.start) for rule, indicator, level, cursor
                            in tasks if rule.type is not RuleType.NO_DATA], now)
    writer = AlertWriter(session, config, now)
    moved: list[dict] = []
    for rule, indicator, level, cursor in tasks:
        indicator_id = ids[indicator.key]
        judged, reached = _judge(reads, rule, indicator, catalog, ids, tree, level, now, cursor, utc_offset_seconds)
        report.judged += len(judged)
        writer.add(rule, indicator_id, judged)
        if reached is not None and reached != cursors.stored(rule, indicator_id, level):
            moved.append({"rule": rule.name, "indicator_id": indicator_id, "level": int(level),
                          "evaluated_to": reached, "since": now})
    source_rules = [rule for rule in config.rules if rule.sources is not None]
    if source_rules and sources:
        _judge_sources(session, source_rules, sources, tree, now, cursors, writer, report, moved)
    report.stored.add(writer.flush())
    _save_cursors(session, moved)
    report.closed = close_recovered(session, config, now)
    report.seconds = time.perf_counter() - started
    return report


@dataclass(frozen=True)
class _Cursor:
    start: int     # judge data after this time (read back from the database)
    since: int     # when this rule first judged this indicator and level
    earliest: int  # nothing older is judged, however it arrives


class _Cursors:
    """Every stored cursor, read at once."""

    def __init__(self, session: Session, now: int):
        self.now = now
        self._stored = {(rule, indicator_id, level): (evaluated_to, since) for rule, indicator_id, level, evaluated_to,
                        since in session.execute(select(AlertCursor.rule, AlertCursor.indicator_id, AlertCursor.level,
                                                        AlertCursor.evaluated_to, AlertCursor.since))}

    def stored(self, rule: Rule, indicator_id: int, level: Level) -> int | None:
        return self._stored.get((rule.name, indicator_id, int(level)), (None, None))[0]

    def of(self, rule: Rule, indicator_id: int, level: Level) -> _Cursor:
        earliest = self.now - LOOKBACK - rule.for_seconds
        stored = self._stored.get((rule.name, indicator_id, int(level)))
        if stored is None:
            return _Cursor(earliest, self.now, earliest)
        return _Cursor(max(stored[0], earliest), stored[1], earliest)


def _judge_sources(session: Session, rules: list[Rule], sources: dict[str, int], tree: UnitTree, now: int,
                   cursors: "_Cursors", writer: AlertWriter, report: EvaluationReport, moved: list[dict]) -> None:
    """Each watched connector's silence since its last successful run, against its schedule's interval, as an
    alert at the city (the source serves the whole city). Never run yet: silent since the rule first looked."""
    last_success = dict(session.execute(select(ConnectorRun.connector, func.max(ConnectorRun.finished_at)).where(
        ConnectorRun.status.in_(["ok", "partial"])).group_by(ConnectorRun.connector)).all())
    city = tree.root_id
    for rule in rules:
        cursor = cursors.of(rule, 0, Level.CITY)
        for name, interval in sorted(sources.items()):
            if not rule.watches(name):
                continue
            since = last_success.get(name) or cursor.since
            quiet = float(max(now - since, 0))
            intervals = quiet / max(interval, 1)
            rank = 2 if intervals >= rule.options["critical_after"] else 1 if intervals > STALE_GRACE else 0
            line = (rule.options["critical_after"] if rank == 2 else STALE_GRACE) * interval
            judged = Judged.of([city], [now], [rank], [quiet], [line])
            report.judged += 1
            writer.add(rule, 0, judged, source=name)
        if cursors.stored(rule, 0, Level.CITY) is None:
            moved.append({"rule": rule.name, "indicator_id": 0, "level": int(Level.CITY), "evaluated_to": now,
                          "since": now})


def _save_cursors(session: Session, moved: list[dict]) -> None:
    if not moved:
        return
    table = AlertCursor.__table__
    statement = _dialect_insert(session, table)
    session.execute(statement.on_conflict_do_update(index_elements=["rule", "indicator_id", "level"],
                                                    set_={"evaluated_to": statement.excluded.evaluated_to}), moved)


class _Reads:
    """Values read in this evaluation, by (indicator, level, window): rules judging the same indicator over the
    same window (thresholds, silence, rate of change at one cursor) read it once."""

    def __init__(self, session: Session, tree: UnitTree, fresh: pd.DataFrame | None):
        self.session = session
        self._frames: dict[tuple, pd.DataFrame] = {}
        self._prefetched: dict[tuple[int, int], tuple[int, int, pd.DataFrame]] = {}
        self._latest: dict[bool, dict[int, pd.Series]] = {}
        self.silent_ids: set[int] = set()  # the indicators silence rules watch (see `latest`)
        self._fresh = None
        if fresh is not None and not fresh.empty:
            level = tree.frame["level"].reindex(fresh["unit_id"].to_numpy()).to_numpy()
            self._fresh = {key: rows for key, rows in fresh.assign(level=level).groupby(["indicator_id", "level"])}

    def fresh(self, indicator: Indicator, indicator_id: int, level: Level, after: int,
              until: int) -> pd.DataFrame | None:
        """The ingest's own rows of a reported indicator at `level` in (after, until], or None: read them back."""
        if self._fresh is None or source_of(indicator, level) != "reported":
            return None
        rows = self._fresh.get((indicator_id, int(level)))
        if rows is None:
            return pd.DataFrame(columns=["unit_id", "at", "value", "run_id", "settled"])
        at = rows["observed_at"].to_numpy(dtype=np.int64)
        inside = (at > after) & (at <= until)
        return pd.DataFrame({"unit_id": rows["unit_id"].to_numpy(dtype=np.int64)[inside], "at": at[inside],
                             "value": rows["value"].to_numpy(dtype=float)[inside],
                             "run_id": rows["run_id"].to_numpy(dtype=float)[inside], "settled": True})

    def latest(self, indicator_id: int, reported: bool) -> pd.Series:
        """When each unit last reported the indicator (its snapshot), by unit id. The snapshot rows of every
        indicator the silence rules watch are read in one query, on the first call."""
        if reported not in self._latest:
            table = CurrentValue if reported else CurrentRollup
            column = CurrentValue.observed_at if reported else CurrentRollup.latest_observed_at
            frame = fetch_frame(self.session, select(table.indicator_id, table.unit_id, column).where(
                table.indicator_id.in_(sorted(self.silent_ids))), ["indicator_id", "unit_id", "at"])
            self._latest[reported] = {int(ident): pd.Series(rows["at"].to_numpy(dtype=float),
                                                            index=rows["unit_id"].to_numpy(dtype=np.int64))
                                      for ident, rows in frame.groupby("indicator_id")}
        return self._latest[reported].get(indicator_id, pd.Series(dtype=float))

    def prefetch_rollups(self, wanted: list[tuple[Indicator, int, Level, int]], until: int) -> None:
        """Read the roll-ups the rules will judge in few queries: per level, one for all the indicators whose
        cursors stand at the same time (after an hourly ingest, most do), rather than one per rule, indicator and
        level."""
        starts: dict[tuple[int, int], tuple[Indicator, int]] = {}
        for indicator, indicator_id, level, start in wanted:
            if source_of(indicator, level) == "rollup":
                known = starts.get((indicator_id, int(level)))
                starts[(indicator_id, int(level))] = (indicator, min(start, known[1]) if known else start)
        batches: dict[tuple[int, int], dict[int, Indicator]] = {}
        for (indicator_id, level), (indicator, start) in starts.items():
            batches.setdefault((level, start), {})[indicator_id] = indicator
        for (level, start), indicators in batches.items():
            frame = _rollup_rows(self.session, list(indicators), level, start, until)
            groups = dict(tuple(frame.groupby("indicator_id"))) if not frame.empty else {}
            for indicator_id, indicator in indicators.items():
                rows = groups.get(indicator_id, frame.iloc[0:0])
                self._prefetched[(indicator_id, level)] = (start, until, _settled(rows, indicator, until))

    def values(self, indicator: Indicator, indicator_id: int, level: Level, after: int, until: int) -> pd.DataFrame:
        held = self._prefetched.get((indicator_id, int(level)))
        if held is not None and held[0] <= after and held[1] == until:
            frame = held[2]
            return frame if held[0] == after else frame[frame["at"].to_numpy() > after]
        key = (indicator_id, int(level), after, until)
        if key not in self._frames:
            self._frames[key] = _values(self.session, indicator, indicator_id, level, after, until)
        return self._frames[key]


def _judge(reads: _Reads, rule: Rule, indicator: Indicator, catalog: Catalog, ids, tree: UnitTree, level: Level,
           now: int, cursor: _Cursor, offset: int) -> tuple[Judged, int | None]:
    """The rule's judgements of `indicator` at `level` after the cursor, and the time the cursor may move to."""
    if rule.type is RuleType.NO_DATA:
        return _silence(reads, rule, indicator, ids[indicator.key], tree, level, now, cursor), now
    values = reads.fresh(indicator, ids[indicator.key], level, cursor.earliest, now)
    if values is None:
        values = reads.values(indicator, ids[indicator.key], level, cursor.start, now)
    if values.empty:
        return _empty(), None
    at, settled = values["at"].to_numpy(dtype=np.int64), values["settled"].to_numpy(dtype=bool)
    reached = int(at[~settled].min()) - 1 if not settled.all() else int(at.max())
    keep = settled & (at <= reached)
    if not keep.any():
        return _empty(), max(reached, cursor.start)
    if not keep.all():
        values, at = values[keep], at[keep]
    low = int(at.min()) - 1  # references are read for the times judged, whatever their source
    if rule.type is RuleType.THRESHOLD:
        judged = _threshold(values, indicator, level, rule.options.get("from_severity", "warning"))
    elif rule.type is RuleType.RATE_OF_CHANGE:
        shift = COMPARE_OFFSETS[rule.options["compare"]] or indicator.interval_seconds
        reference = reads.values(indicator, ids[indicator.key], level, low - shift, reached - shift)
        judged = _change(_comparable(values, indicator), _comparable(reference, indicator), shift, rule, indicator)
    elif rule.type is RuleType.ANOMALY:
        history = [_comparable(reads.values(indicator, ids[indicator.key], level, low - WEEK * k, reached - WEEK * k),
                               indicator).assign(at=lambda frame, k=k: frame["at"] + WEEK * k)
                   for k in range(1, rule.options["weeks"] + 1)]
        judged = _anomaly(_comparable(values, indicator), history, rule, indicator)
    elif rule.type is RuleType.CONSISTENCY:
        reported = catalog[rule.options["reported"]]
        # The unit's own figures for the buckets judged: reported at any time within them.
        own = reads.values(reported, ids[reported.key], level, low, reached + indicator.interval_seconds - 1)
        own = own.assign(at=bucket_start(own["at"].to_numpy(dtype=np.int64), indicator.interval_seconds, offset))
        judged = _consistency(_comparable(values, indicator), own, rule)
    else:  # pragma: no cover - rules.py validates types
        raise ValueError(rule.type)
    return judged, max(reached, cursor.start)


def _comparable(values: pd.DataFrame, indicator: Indicator) -> pd.DataFrame:
    """The values a comparison may use: a sum's roll-up buckets that most of their units reported to
    (`SETTLED_SHARE`). A sum with a quarter of its units in is a quarter of a figure; a mean of those in is still
    a fair reading, and a unit's own figure is whole."""
    if indicator.rollup != RollupRule.SUM or "complete" not in values or values["complete"].all():
        return values
    return values[values["complete"].to_numpy(dtype=bool)]


def _empty() -> Judged:
    return NOTHING_JUDGED


def _values(session: Session, indicator: Indicator, indicator_id: int, level: Level, after: int,
            until: int) -> pd.DataFrame:
    """(unit_id, at, value, run_id, settled) of the units at `level`, for times in (after, until]."""
    columns = ["unit_id", "at", "value", "run_id", "settled"]
    source = source_of(indicator, level)
    if source is None or until <= after:
        return pd.DataFrame(columns=columns)
    if source == "reported":
        # Through the units at the level: one primary-key range per unit (as the roll-ups read: buckets.py).
        statement = select(Observation.unit_id, Observation.observed_at, Observation.value, Observation.run_id) \
            .select_from(Unit).join(Observation, and_(
                Observation.unit_id == Unit.id, Observation.indicator_id == indicator_id,
                Observation.observed_at > after, Observation.observed_at <= until)).where(Unit.level == int(level))
        frame = fetch_frame(session, statement, ["unit_id", "at", "value", "run_id"])
        return frame.assign(settled=True)
    return _settled(_rollup_rows(session, [indicator_id], int(level), after, until), indicator, until)


def _rollup_rows(session: Session, indicator_ids: list[int], level: int, after: int, until: int) -> pd.DataFrame:
    """Roll-up buckets of the units at `level` in (after, until], through the units (one key range per unit)."""
    statement = select(RollupHistory.indicator_id, RollupHistory.unit_id, RollupHistory.bucket_start,
                       RollupHistory.value, RollupHistory.reported, RollupHistory.expected).select_from(Unit).join(
        RollupHistory, and_(RollupHistory.unit_id == Unit.id, RollupHistory.indicator_id.in_(indicator_ids),
                            RollupHistory.bucket_start > after, RollupHistory.bucket_start <= until)) \
        .where(Unit.level == level)
    return fetch_frame(session, statement, ["indicator_id", "unit_id", "at", "value", "reported", "expected"])


def _settled(frame: pd.DataFrame, indicator: Indicator, until: int) -> pd.DataFrame:
    """Roll-up rows as values, marked settled once most of their units reported or an interval after they ended,
    and complete where most of their units reported (`_comparable`)."""
    at = frame["at"].to_numpy(dtype=np.int64)
    aged = at + 2 * indicator.interval_seconds <= until
    complete = frame["reported"].to_numpy(dtype=float) >= SETTLED_SHARE * frame["expected"].to_numpy(dtype=float)
    return pd.DataFrame({"unit_id": frame["unit_id"].to_numpy(dtype=np.int64), "at": at,
                         "value": frame["value"].to_numpy(dtype=float), "run_id": np.nan, "settled": aged | complete,
                         "complete": complete})


def _graded(score: np.ndarray, warning: float, critical: float) -> np.ndarray:
    return np.where(score >= critical, 2, np.where(score >= warning, 1, 0)).astype(np.int8)


def _bad_part(score: np.ndarray, worse: Worse) -> np.ndarray:
    if worse is Worse.UP:
        return np.maximum(score, 0.0)
    if worse is Worse.DOWN:
        return np.maximum(-score, 0.0)
    return np.abs(score)


def _line_of(rank: np.ndarray, warning: float, critical: float) -> np.ndarray:
    return np.where(rank == 2, critical, warning).astype(float)


def _threshold(values: pd.DataFrame, indicator: Indicator, level: Level, from_severity: str) -> pd.DataFrame:
    limits = indicator.thresholds_at(level)
    if limits is None or values.empty:
        return _empty()
    value = values["value"].to_numpy(dtype=float)
    present = ~np.isnan(value)
    value = value[present]
    if indicator.direction == Direction.HIGHER_IS_WORSE:
        rank = np.where(value >= limits.critical, 2, np.where(value >= limits.warning, 1, 0))
    else:
        rank = np.where(value <= limits.critical, 2, np.where(value <= limits.warning, 1, 0))
    if from_severity == "critical":
        rank = np.where(rank == 2, 2, 0)
    return Judged.of(values["unit_id"].to_numpy()[present], values["at"].to_numpy()[present], rank, value,
                     _line_of(rank, limits.warning, limits.critical), values["run_id"].to_numpy(dtype=float)[present])


def _change(values: pd.DataFrame, reference: pd.DataFrame, shift: int, rule: Rule,
            indicator: Indicator) -> pd.DataFrame:
    """Percentage change against the value `shift` seconds earlier (see judgements.change)."""
    options = rule.options
    base = reference.dropna(subset=["value"]).assign(at=lambda frame: frame["at"] + shift)[["unit_id", "at", "value"]]
    merged = values.dropna(subset=["value"]).merge(base, on=["unit_id", "at"], suffixes=("", "_base"))
    merged = merged[merged["value_base"].abs() >= options["min_base"]]
    if merged.empty:
        return _empty()
    percent = (merged["value"] - merged["value_base"]).to_numpy(dtype=float) / merged["value_base"].abs().to_numpy(
        dtype=float) * 100.0
    rank = _graded(_bad_part(percent, rule.worse(indicator)), options["warning_pct"], options["critical_pct"])
    return Judged.of(merged["unit_id"], merged["at"], rank, percent,
                     _line_of(rank, options["warning_pct"], options["critical_pct"]), merged["run_id"])


def _anomaly(values: pd.DataFrame, history: list[pd.DataFrame], rule: Rule, indicator: Indicator) -> pd.DataFrame:
    """Robust z-score against the same hour of the week in the weeks before (see judgements.anomaly)."""
    options = rule.options
    values = values.dropna(subset=["value"])
    if values.empty:
        return _empty()
    past = np.full((len(values), len(history)), np.nan)
    keys = pd.MultiIndex.from_arrays([values["unit_id"].to_numpy(), values["at"].to_numpy()])
    for column, frame in enumerate(history):
        if not frame.empty:
            series = frame.dropna(subset=["value"]).drop_duplicates(["unit_id", "at"]).set_index(["unit_id", "at"])
            past[:, column] = series["value"].reindex(keys).to_numpy(dtype=float)
    samples = np.sum(~np.isnan(past), axis=1)
    usable = samples >= options["min_samples"]
    if not usable.any():
        return _empty()
    past, values = past[usable], values[usable]
    centre = np.nanmedian(past, axis=1)
    sigma = np.maximum(MAD_TO_SIGMA * np.nanmedian(np.abs(past - centre[:, None]), axis=1), 1e-9)
    z = (values["value"].to_numpy(dtype=float) - centre) / sigma
    rank = _graded(_bad_part(z, rule.worse(indicator)), options["warning_z"], options["critical_z"])
    return Judged.of(values["unit_id"], values["at"], rank, z,
                     _line_of(rank, options["warning_z"], options["critical_z"]), values["run_id"])


def _consistency(summed: pd.DataFrame, own: pd.DataFrame, rule: Rule) -> pd.DataFrame:
    """A unit's own reported figure against its children's sum for the same bucket (see judgements.consistency)."""
    options = rule.options
    own = own.dropna(subset=["value"]).drop_duplicates(["unit_id", "at"], keep="last")
    merged = own.merge(summed.dropna(subset=["value"])[["unit_id", "at", "value"]], on=["unit_id", "at"],
                       suffixes=("", "_summed"))
    if merged.empty:
        return _empty()
    value, total = merged["value"].to_numpy(dtype=float), merged["value_summed"].to_numpy(dtype=float)
    percent = np.abs(value - total) / np.maximum(np.maximum(np.abs(value), np.abs(total)), options["min_base"]) * 100
    rank = _graded(percent, options["warning_pct"], options["critical_pct"])
    return Judged.of(merged["unit_id"], merged["at"], rank, percent,
                     _line_of(rank, options["warning_pct"], options["critical_pct"]), merged["run_id"])


def _silence(reads: "_Reads", rule: Rule, indicator: Indicator, indicator_id: int, tree: UnitTree, level: Level,
             now: int, cursor: _Cursor) -> Judged:
    """How long each unit at `level` has been quiet, judged at `now` (see judgements.silence); a unit never heard
    from counts from when this rule first looked for it."""
    units = tree.at_level(level).index.to_numpy(dtype=np.int64)
    heard = reads.latest(indicator_id, source_of(indicator, level) == "reported")
    since = heard.reindex(units).fillna(cursor.since).to_numpy(dtype=np.int64)
    quiet = (now - since).astype(float)
    intervals = quiet / indicator.interval_seconds
    rank = np.where(intervals >= rule.options["critical_after"], 2, np.where(intervals > STALE_GRACE, 1, 0))
    line = np.where(rank == 2, rule.options["critical_after"], STALE_GRACE) * indicator.interval_seconds
    return Judged.of(units, np.full(len(units), now), rank, quiet, line)
