"""Alerts in the database: a rule's judgements of one indicator at one level become alert rows, their audit
events and their notifications, in the caller's transaction.

The state machine (cityops/alerts/episodes.py) decides; this module only persists what it decided:

- an episode's row is keyed by (rule, unit, indicator, started_at), so taking the same judgements again finds
  the row it made (and the episode's `evaluated_to` ignores them): no duplicate alert, no second notification;
- a pending episode that ends before `for` has passed is deleted: a blip was never an alert;
- firing, escalation and recovery each write an audit event (actor "system") and queue one notification per
  target (the outbox's unique key keeps it to one however often it is evaluated);
- firing starts the deadline clocks (dispatch, handle) from when the centre learnt of it.

Only units with a breach in the new judgements, or with an episode already open, are taken through the state
machine. Rows are read once per evaluation and written with one statement per kind (insert, update, delete):
an evaluation after an hourly ingest moves hundreds of episodes, and a round trip per row would cost more than
judging the whole city.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, fields

import numpy as np
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from cityops.alerts.episodes import Change, Episode, Judgement, Phase, Severity, Transition, advance
from cityops.alerts.rules import AlertConfig, Rule
from cityops.models import Alert, AlertEvent

SYSTEM = "system"
RESOLVED = "resolved"  # a row's phase once its episode is over (episodes know only ok/pending/firing)
_SEVERITY_BY_RANK = {1: Severity.WARNING, 2: Severity.CRITICAL}


@dataclass
class StoredChanges:
    """What one application of judgements changed: transitions by kind, and the alerts they touched."""

    changes: Counter = field(default_factory=Counter)
    alert_ids: set[int] = field(default_factory=set)

    def add(self, other: "StoredChanges") -> None:
        self.changes.update(other.changes)
        self.alert_ids |= other.alert_ids


@dataclass(frozen=True)
class Judged:
    """Judgements as aligned arrays: rank 0 (no breach), 1 (warning) or 2 (critical); `line` the limit crossed;
    `run_id` the run that stored the judged value (NaN when unknown, as for roll-ups)."""

    unit_id: np.ndarray
    at: np.ndarray
    rank: np.ndarray
    value: np.ndarray
    line: np.ndarray
    run_id: np.ndarray

    @classmethod
    def of(cls, unit_id, at, rank, value, line, run_id=None) -> "Judged":
        unit_id = np.asarray(unit_id, dtype=np.int64)
        return cls(unit_id, np.asarray(at, dtype=np.int64), np.asarray(rank, dtype=np.int8),
                   np.asarray(value, dtype=float), np.asarray(line, dtype=float),
                   np.full(len(unit_id), np.nan) if run_id is None else np.asarray(run_id, dtype=float))

    def __len__(self) -> int:
        return len(self.unit_id)

    @property
    def empty(self) -> bool:
        return not len(self.unit_id)

    def take(self, positions: np.ndarray) -> "Judged":
        columns = ("unit_id", "at", "rank", "value", "line", "run_id")
        return Judged(*(getattr(self, name)[positions] for name in columns))


NOTHING_JUDGED = Judged.of([], [], [], [], [])


@dataclass(eq=False)
class _Row:
    """An alert row as the engine handles it (the people's columns are never touched here)."""

    rule: str
    unit_id: int
    indicator_id: int
    source: str
    started_at: int
    phase: str
    severity: str
    last_breach_at: int
    evaluated_to: int
    notified: str | None = None
    value: float | None = None
    line: float | None = None
    fired_at: int | None = None
    resolved_at: int | None = None
    run_id: int | None = None
    dispatch_due: int | None = None
    handle_due: int | None = None
    id: int | None = None        # None until inserted
    dirty: bool = False
    deleted: bool = False


_ENGINE_COLUMNS = [f.name for f in fields(_Row) if f.name not in ("id", "dirty", "deleted")]
_MUTABLE = [name for name in _ENGINE_COLUMNS if name not in ("rule", "unit_id", "indicator_id", "source", "started_at")]


class OpenEpisodes:
    """The pending and firing alerts, read once per evaluation and grouped by (rule, indicator)."""

    def __init__(self, session: Session):
        self._by_pair: dict[tuple[str, int, str], dict[int, _Row]] = {}
        columns = [getattr(Alert, name) for name in _ENGINE_COLUMNS] + [Alert.id]
        for values in session.execute(select(*columns).where(Alert.phase.in_([Phase.PENDING, Phase.FIRING]))):
            row = _Row(*values)
            self._by_pair.setdefault((row.rule, row.indicator_id, row.source), {})[row.unit_id] = row

    def of(self, rule: str, indicator_id: int, source: str = "") -> dict[int, _Row]:
        return self._by_pair.setdefault((rule, indicator_id, source), {})


class AlertWriter:
    """Takes the judgements of every rule of one evaluation (`add`), then stores what they change (`flush`): the
    past rows it needs in one query, and the rows, events and notifications in one statement each."""

    def __init__(self, session: Session, config: AlertConfig, now: int, episodes: OpenEpisodes | None = None):
        self.session, self.config, self.now = session, config, now
        self.episodes = episodes or OpenEpisodes(session)
        self._work: list[tuple[Rule, int, str, Judged, np.ndarray]] = []

    def add(self, rule: Rule, indicator_id: int, judged: Judged, source: str = "") -> None:
        """A rule's judgements of one indicator (for units of one level), or with `source` (and indicator 0) of
        one connector. Only units with a breach or an episode open go on to the state machine."""
        if judged.empty:
            return
        open_rows = self.episodes.of(rule.name, indicator_id, source)
        breaching = np.unique(judged.unit_id[judged.rank > 0])
        still_open = np.fromiter(open_rows, dtype=np.int64, count=len(open_rows))
        candidates = np.union1d(breaching, np.intersect1d(still_open, judged.unit_id))
        if len(candidates):
            self._work.append((rule, indicator_id, source, judged, candidates))

    def flush(self) -> StoredChanges:
        result = StoredChanges()
        work, self._work = self._work, []
        if not work:
            return result
        past = self._past_rows(work)
        touched: list[_Row] = []
        changed: list[tuple[_Row, Transition, float | None]] = []
        for rule, indicator_id, source, judged, candidates in work:
            open_rows = self.episodes.of(rule.name, indicator_id, source)
            since = int(judged.at.min())
            positions = np.flatnonzero(np.isin(judged.unit_id, candidates))
            mine = judged.take(positions[np.lexsort((judged.at[positions], judged.unit_id[positions]))])
            units = mine.unit_id
            bounds = np.flatnonzero(np.r_[True, units[1:] != units[:-1], True])
            for low, high in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
                unit_id = int(units[low])
                row = open_rows.get(unit_id)
                earlier = past.get((rule.name, indicator_id, source, unit_id), [])
                episode = _episode_of(row) if row is not None else Episode(
                    evaluated_to=max((r.evaluated_to for r in earlier), default=None))
                times = mine.at[low:high].tolist()
                judgements = [Judgement(at, _SEVERITY_BY_RANK.get(rank), value) for at, rank, value in
                              zip(times, mine.rank[low:high].tolist(), mine.value[low:high].tolist())]
                new, transitions = advance(episode, judgements, rule.for_seconds, rule.keep_firing_for)
                if new == episode:
                    continue
                rows = {row.started_at: row} if row is not None else {}
                # A row already made for an episode being rebuilt (after a loss of state) is found, not made again.
                rows.update({r.started_at: r for r in earlier if r.started_at >= since})
                lines = dict(zip(times, mine.line[low:high].tolist()))
                runs = dict(zip(times, mine.run_id[low:high].tolist()))
                kept = _persist(self.config, rule, (indicator_id, source), unit_id, rows, new, transitions, lines,
                                runs, self.now, result, changed)
                touched.extend(rows.values())
                if kept is not None and kept.phase in (Phase.PENDING.value, Phase.FIRING.value):
                    open_rows[unit_id] = kept
                else:
                    open_rows.pop(unit_id, None)
        _write(self.session, touched)
        result.alert_ids.update(row.id for row, _, _ in changed)
        _record_changes(self.session, self.config, changed, self.now)
        return result

    def _past_rows(self, work) -> dict[tuple, list[_Row]]:
        """The past alerts of the candidate units without an open episode, by (rule, indicator, source, unit): how
        far they took judgements (so a time is never judged twice), and any that began within these judgements."""
        wanted = set()
        for rule, indicator_id, source, _judged, candidates in work:
            open_rows = self.episodes.of(rule.name, indicator_id, source)
            wanted.update((rule.name, indicator_id, source, unit) for unit in candidates.tolist()
                          if unit not in open_rows)
        if not wanted:
            return {}
        found: dict[tuple, list[_Row]] = {}
        columns = [getattr(Alert, name) for name in _ENGINE_COLUMNS] + [Alert.id]
        units = sorted({key[3] for key in wanted})
        rules = sorted({key[0] for key in wanted})
        for values in self.session.execute(select(*columns).where(Alert.unit_id.in_(units), Alert.rule.in_(rules))):
            row = _Row(*values)
            key = (row.rule, row.indicator_id, row.source, row.unit_id)
            if key in wanted:
                found.setdefault(key, []).append(row)
        return found


def _episode_of(row: _Row) -> Episode:
    return Episode(phase=Phase(row.phase), started_at=row.started_at, fired_at=row.fired_at,
                   last_breach_at=row.last_breach_at, severity=Severity(row.severity),
                   notified=Severity(row.notified) if row.notified else None, value=row.value,
                   evaluated_to=row.evaluated_to)


def _persist(config: AlertConfig, rule: Rule, subject: tuple[int, str], unit_id: int, rows: dict[int, _Row],
             new: Episode, transitions: list[Transition], lines: dict, runs: dict, now: int, result: StoredChanges,
             changed: list) -> _Row | None:
    """Apply one unit's transitions and new episode to its rows (`rows`: started_at → row, those known; new
    ones are added). `subject`: (indicator id, source). Returns the row of the episode still open, if any."""

    def row_for(started_at: int, severity: Severity) -> _Row:
        if started_at not in rows:
            rows[started_at] = _Row(rule.name, unit_id, *subject, started_at, Phase.PENDING.value, severity.value,
                                    started_at, started_at)
        rows[started_at].dirty = True
        return rows[started_at]

    for transition in transitions:
        alert = row_for(transition.started_at, transition.severity)
        result.changes[transition.change] += 1
        if transition.change is Change.PENDING:
            continue
        if transition.change is Change.RESOLVED:
            alert.phase, alert.resolved_at, alert.evaluated_to = RESOLVED, transition.at, transition.at
        else:
            alert.phase = Phase.FIRING.value
            alert.severity = alert.notified = transition.severity.value
            alert.value, alert.line = transition.value, _line(lines, transition.at)
            run = runs.get(transition.at)
            if run is not None and not np.isnan(run):
                alert.run_id = int(run)
            deadline = config.deadlines[transition.severity.value]
            if transition.change is Change.FIRING:
                alert.fired_at = transition.at
            alert.dispatch_due = min(filter(None, (alert.dispatch_due, now + deadline.dispatch)))
            alert.handle_due = min(filter(None, (alert.handle_due, now + deadline.handle)))
        changed.append((alert, transition, _line(lines, transition.at)))
    keep = new.started_at if new.phase is not Phase.OK else None
    for started_at, alert in rows.items():
        if started_at != keep and alert.phase == Phase.PENDING.value:
            alert.deleted = True  # a pending episode that ended before `for` had passed: never an alert
    if keep is None:
        return None
    alert = row_for(keep, new.severity)
    if alert.phase != Phase.FIRING.value:
        alert.phase = new.phase.value
    alert.severity = new.severity.value
    alert.last_breach_at, alert.evaluated_to, alert.value = new.last_breach_at, new.evaluated_to, new.value
    if new.last_breach_at in lines:  # the value and the line it crossed, of the same (latest) breach
        alert.line = _line(lines, new.last_breach_at)
    return alert


def _write(session: Session, rows: list[_Row]) -> None:
    """One statement per kind: delete the blips, insert the new rows (their ids come back), update the rest."""
    table = Alert.__table__
    gone = [row.id for row in rows if row.deleted and row.id is not None]
    if gone:
        session.execute(delete(Alert).where(Alert.id.in_(gone)))
    new = [row for row in rows if row.id is None and not row.deleted]
    if new:
        returned = session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True),
                                   [{name: getattr(row, name) for name in _ENGINE_COLUMNS} for row in new]).all()
        for row, (ident,) in zip(new, returned):
            row.id = ident
    inserted = {id(row) for row in new}
    changed = [row for row in rows if row.dirty and not row.deleted and id(row) not in inserted]
    if changed:
        statement = update(table).where(table.c.id == bindparam("row_id")).values(
            {name: bindparam(name) for name in _MUTABLE})
        session.connection().execute(statement, [{"row_id": row.id, **{name: getattr(row, name) for name in _MUTABLE}}
                                                 for row in changed])
    for row in rows:
        row.dirty = False


def _record_changes(session: Session, config: AlertConfig, changed: list, now: int) -> None:
    """The audit events (actor: system) and the notifications of the alerts' changes, once the rows have ids."""
    if not changed:
        return
    session.execute(insert(AlertEvent), [
        {"alert_id": alert.id, "at": now, "actor": SYSTEM, "action": transition.change.value,
         "detail": json.dumps({"severity": transition.severity.value, "value": _finite(transition.value),
                               "line": line, "data_time": transition.at})}
        for alert, transition, line in changed])
    if config.notifications is None:
        return
    from cityops.alerts.notify import queue_notifications

    for alert, transition, _line_crossed in changed:
        queue_notifications(session, config.notifications, alert.id, transition.change.value,
                            transition.severity.value, now)


def _finite(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _line(lines: dict, at: int | None) -> float | None:
    value = lines.get(at) if at is not None else None
    return None if value is None or np.isnan(value) else float(value)


def close_recovered(session: Session, config: AlertConfig, now: int) -> int:
    """Close alerts that recovered by themselves and that nobody took up, `auto_close_after` after recovery, so
    the open counts mean work still to do. Returns how many were closed."""
    cutoff = now - config.auto_close_after
    ids = session.scalars(select(Alert.id).where(
        Alert.phase == "resolved", Alert.closed_at.is_(None), Alert.acknowledged_at.is_(None),
        Alert.assignee.is_(None), Alert.resolved_at <= cutoff)).all()
    if not ids:
        return 0
    resolution = "recovered by itself and closed automatically (nobody had taken it up)"
    session.execute(update(Alert).where(Alert.id.in_(ids)).values(closed_at=now, closed_by=SYSTEM,
                                                                   resolution=resolution))
    session.execute(insert(AlertEvent), [{"alert_id": ident, "at": now, "actor": SYSTEM, "action": "closed",
                                          "detail": json.dumps({"resolution": resolution})} for ident in ids])
    return len(ids)


def forget_pending(session: Session, rule_names: set[str]) -> int:
    """Remove pending episodes of rules no longer in the file (they can never fire now)."""
    result = session.execute(delete(Alert).where(Alert.phase == Phase.PENDING.value,
                                                 Alert.rule.not_in(sorted(rule_names))))
    return result.rowcount or 0


