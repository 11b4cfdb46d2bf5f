"""The runner: everything around a connector's fetch() that must be the same for every source.

For one run it: records the start; reads the cursor; streams the connector's records through validation;
commits good rows (upsert), quarantines bad ones with their reason, refreshes the roll-ups they touch and
advances the cursor — all in one transaction per batch, so a crash loses nothing and duplicates nothing;
and closes the run record with its counts and status. A failure ends only this connector's run.

Incidents (connectors.base.Incident, or a page of them as an IncidentBatch) go the same way: their personal data
masked first (nothing personal is stored in clear, quarantine included), validated and placed in a community
(cityops.incidents), upserted in their batch's transaction. After a run that did not fail, a connector that names
incident indicators (`incident_counts()`) gets every community's open and overdue counts stored as observations at
the run's time bucket, in one more transaction with their roll-ups queued. Counts are derived data, like roll-ups:
the run's fetched / accepted / duplicates / rejected count what the connector delivered, not them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from cityops.catalog import Catalog
from cityops.db import session_scope
from cityops.incidents import InvalidIncident, open_external_ids, upsert_incidents
from cityops.models import ConnectorCursor, ConnectorRun, QuarantinedRecord
from cityops.rollup import process_backlog, queue_rollups
from cityops.storage import _dialect_insert, last_per_key, sync_indicators, upsert_observations
from cityops.tree import load_tree
from connectors.archive import RunArchive, open_payload, purge
from connectors.base import (REGISTRY, Connector, ConnectorContext, ConnectorError, FatalError, Incident,
                             IncidentBatch, Record, RecordBatch, RetriableError)
from connectors.config import ConnectorInstance
from connectors.incident_intake import IncidentIntake, check_counting, store_counts
from connectors.validation import Rejected, Validator

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    run_id: int
    connector: str
    status: str
    fetched: int = 0
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    error_family: str | None = None
    error_message: str | None = None
    seconds: float = 0.0
    rollup_seconds: float = 0.0  # of `seconds`, the roll-ups computed after the records were committed
    archive: str | None = None  # where the run's raw payloads are kept (reference under the archive root)
    skipped: int = 0  # valid records after a backfill's `until`: left for the regular schedule
    retry_after: float | None = None  # a failed run's source asked not to be called again for this long (s)
    touched: set[str] = dataclasses.field(default_factory=set)  # indicator keys it stored values of (alerts)
    # The rows it committed (unit_id, indicator_id, observed_at, value, run_id), for the alert rules to judge
    # without reading them back; None when there were more than FRESH_ROWS_LIMIT (a backfill): read them back.
    fresh: pd.DataFrame | None = dataclasses.field(default=None, repr=False)


def utc_offset_seconds(zone_name: str, at: float) -> int:
    from zoneinfo import ZoneInfo

    offset = datetime.fromtimestamp(at, ZoneInfo(zone_name)).utcoffset()
    return int(offset.total_seconds()) if offset else 0


def build_connector(instance: ConnectorInstance, context: ConnectorContext) -> Connector:
    return REGISTRY[instance.type](instance.name, instance.config, context, instance.mapping)


def run_connector(database_url: str, instance: ConnectorInstance, catalog: Catalog, *, timezone: str,
                  now: float | None = None, since: str | None = None, batch_size: int = 200_000,
                  progress=None, archive_root: Path | None = None, replay: list[str] | None = None,
                  items: Iterable[Record | RecordBatch | Incident | IncidentBatch]
                  | Callable[[Connector], Iterable[Record | RecordBatch | Incident | IncidentBatch]] | None = None,
                  until: int | None = None, timeout: float | None = None) -> RunSummary:
    """Run one connector once. `since` overrides the stored cursor (a backfill); `progress` gets counts.

    With `archive_root`, the run's raw payloads are kept there (and older runs past the instance's retention
    removed). With `replay` (payload references under `archive_root`), those payloads are parsed again instead
    of fetching; with `items`, those records are run instead (quarantined records re-processed; a callable is
    given the run's connector and returns them, for records only the connector type can rebuild). Neither moves
    the cursor. With `until` (a backfill of a time range from `since`), records observed after it are skipped
    and the cursor does not move: the regular schedule fetches what comes after from its own cursor.
    With `timeout` (seconds; the scheduler passes the instance's), a run still fetching past it stops between two
    records as a retriable failure: what it committed is kept and the next run goes on from the cursor.
    """
    rerun = replay is not None or items is not None or until is not None
    now = time.time() if now is None else now
    started = time.perf_counter()
    with session_scope(database_url) as session:
        ids = sync_indicators(session, catalog)
        tree = load_tree(session)
        # Runs of one connector never overlap (the scheduler's lock and max_instances), so a run still marked
        # running is one whose process died: say so, rather than show it running forever.
        session.execute(update(ConnectorRun).where(
            ConnectorRun.connector == instance.name, ConnectorRun.status == "running").values(
            status="failed", error_family="interrupted", finished_at=int(time.time()),
            error_message="the run stopped before it finished (the process was killed or crashed); what it had "
                          "committed is kept, and this run continued from its cursor"))
        run_id = session.execute(insert(ConnectorRun).values(
            connector=instance.name, started_at=int(now), status="running")).inserted_primary_key[0]
        stored_cursor = session.scalar(select(ConnectorCursor.cursor).where(ConnectorCursor.connector == instance.name))
        kind = REGISTRY.get(instance.type)
        open_incidents = open_external_ids(session, instance.name) if kind and kind.yields_incidents else ()
    summary = RunSummary(run_id, instance.name, "running")
    archive = None
    if archive_root is not None and replay is None and items is None:  # fetched payloads are archived
        try:
            purge(Path(archive_root), instance.name, instance.retention_seconds, now)
        except OSError:
            log.exception("could not purge old payloads of %s", instance.name)
        archive = RunArchive(Path(archive_root), instance.name, run_id, now, write_behind=True)
        summary.archive = archive.reference
    context = ConnectorContext(catalog=catalog, tree=tree, now=now, timezone=timezone, archive=archive,
                               open_incidents=open_incidents)
    validator = Validator.build(catalog, ids, tree, instance.levels, timezone, int(now))
    intake = IncidentIntake(database_url, instance.name, validator, run_id, int(now))
    offset = utc_offset_seconds(timezone, now)
    # A cursor only moves forward: late records, a backfill from further back or a replay never rewind it.
    batch = _Batch(cursor=stored_cursor)
    recent = _RecentRows()
    connector = None
    try:
        # Inside the try: a connector may fail while being set up (bad credentials), and its run must still close.
        connector = build_connector(instance, context)
        counting = connector.incident_counts()
        if counting is not None:
            check_counting(counting, validator, tree, instance.name)
        if callable(items):
            items = items(connector)
        if items is None:
            items = (_replayed(connector, archive_root, replay) if replay is not None
                     else connector.fetch(since if since is not None else stored_cursor))
        deadline = time.monotonic() + timeout if timeout else None
        for item in items:
            if deadline is not None and time.monotonic() > deadline:
                raise RetriableError(f"the run took longer than its timeout ({timeout:g} s); what it committed is "
                                     f"kept and the next run continues from there (raise `timeout:` in the "
                                     f"connectors file if the source is simply slow)")
            if isinstance(item, RecordBatch):
                summary.fetched += len(item)
                valid, rejected = validator.validate_batch(item)
                if until is not None:
                    summary.skipped += int((valid["observed_at"] > until).sum())
                    valid = valid[valid["observed_at"] <= until]
                batch.add_frame(valid, item.cursor)
                batch.quarantine.extend(_quarantine_row(run_id, instance.name, reason, record, int(now))
                                        for reason, record in rejected)
            elif isinstance(item, IncidentBatch):
                summary.fetched += len(item)
                rows, rejected, newest = intake.batch(item)
                if rows:  # the batch's cursor, or its newest update (as cursor_of says for single incidents)
                    batch.add_incidents(rows, item.cursor if item.cursor is not None else str(newest))
                batch.quarantine.extend(_quarantine_row(run_id, instance.name, reason, incident, int(now))
                                        for reason, incident in rejected)
            elif isinstance(item, Incident):
                summary.fetched += 1
                safe = intake.masked(item)
                try:
                    row = intake.row(safe)
                except (Rejected, InvalidIncident) as reason:
                    batch.quarantine.append(_quarantine_row(run_id, instance.name, str(reason), safe, int(now)))
                else:
                    batch.add_incident(row, connector.cursor_of(safe, row["updated_at"]))
            else:
                summary.fetched += 1
                try:
                    row = validator.validate(item)
                except Rejected as reason:
                    batch.quarantine.append(_quarantine_row(run_id, instance.name, str(reason), item, int(now)))
                else:
                    if until is not None and row["observed_at"] > until:
                        summary.skipped += 1
                    else:
                        batch.add(row, connector.cursor_of(item, row["observed_at"]))
            if batch.size + len(batch.quarantine) >= batch_size or len(batch.incidents) >= INCIDENT_BATCH_ROWS:
                recent.add(_commit(database_url, batch, summary, catalog, ids, offset, instance.name,
                                   advance=connector.ordered and not rerun, run_id=run_id, archive=archive))
                if recent.size >= RECENT_ROWS_LIMIT:
                    if connector.delivers_series:
                        recent.take()  # let go: its buckets stay queued, and are read back once, at the end
                    else:
                        # Only what the rows held cover whole: a source delivering unit by unit adds to the same
                        # buckets all run long, and they are read back once, at the end.
                        _roll_up(database_url, catalog, ids, tree, now, offset, recent, held_only=True)
                batch = _Batch(cursor=batch.cursor)
                if progress:
                    progress(summary)
        recent.add(_commit(database_url, batch, summary, catalog, ids, offset, instance.name,
                           advance=not rerun, run_id=run_id, archive=archive))
        if not rerun:
            connector.committed()
        if counting is not None:
            counts = store_counts(database_url, counting, instance.name, catalog, ids, tree, int(now), offset, run_id)
            recent.add(counts)
            if counts is not None and not counts.empty:
                key_by_id = {ident: key for key, ident in ids.items()}
                summary.touched.update(key_by_id[int(i)] for i in counts["indicator_id"].unique())
        summary.status = "partial" if summary.rejected else "ok"
        summary.fresh = recent.fresh_rows()
    except ConnectorError as error:
        summary.status, summary.error_family, summary.error_message = "failed", error.family, str(error)
        summary.retry_after = getattr(error, "retry_after", None)
        log.warning("connector %s failed (%s): %s", instance.name, error.family, error)
    except Exception as error:  # a bug or an unexpected source failure must not take down the scheduler
        summary.status, summary.error_family = "failed", "unexpected"
        summary.error_message = f"{type(error).__name__}: {error}"
        log.exception("connector %s failed unexpectedly", instance.name)
    if archive is not None:
        try:
            archive.close()  # after a failure too: the payloads fetched before it are kept
        except Exception:  # noqa: BLE001 - a committed run flushed its payloads; a failed one keeps its own error
            log.exception("connector %s could not archive every payload it fetched", instance.name)
    if connector is not None:
        try:
            connector.released()
        except Exception:  # noqa: BLE001 - letting go must not change the run's outcome
            log.exception("connector %s could not release its source", instance.name)
    rollups_started = time.perf_counter()
    try:
        # Also after a failure: batches committed before it still need their roll-ups.
        _roll_up(database_url, catalog, ids, tree, now, offset, recent)
    except Exception:
        log.exception("roll-ups after connector %s failed; they are retried after its next run", instance.name)
    if summary.status == "failed" and summary.accepted:
        summary.status = "partial"  # what was committed before the failure stays committed
    summary.rollup_seconds = time.perf_counter() - rollups_started
    summary.seconds = time.perf_counter() - started
    with session_scope(database_url) as session:
        session.execute(update(ConnectorRun).where(ConnectorRun.id == run_id).values(
            finished_at=int(time.time()), status=summary.status, fetched=summary.fetched,
            accepted=summary.accepted, rejected=summary.rejected, duplicates=summary.duplicates,
            error_family=summary.error_family, error_message=summary.error_message,
            archive=summary.archive if archive is not None and archive.count else None))
    if progress:
        progress(summary)
    return summary


KEY = ["unit_id", "indicator_id", "observed_at"]
# Incidents carry their text and raw row (kilobytes each, not the 30 bytes of an observation): they are
# committed in smaller transactions, so a large source does not sit in memory (bench/connector_types.py). Not
# much smaller: each commit of ~10 MB of incidents ends in a WAL checkpoint, and 10,000 per commit took ~15 %
# longer to store than 25,000 (~25 MB held).
INCIDENT_BATCH_ROWS = 25_000
# Committed rows kept for the roll-ups; past this the queued roll-ups are computed and the rows let go, so a
# source of any size runs in bounded memory. Measured (bench/connector_types.py): with 2 M rows held, peak memory
# grew ~1.8× from a 100 k to a 1 M-record source; at this size it stays flat, for a few percent of ingest speed.
RECENT_ROWS_LIMIT = 400_000
# Committed rows handed to the alert rules after the run (a live cycle of the demo city is ~40,000); a larger run
# is a backfill, whose rows the rules read back (only its last hours are judged).
FRESH_ROWS_LIMIT = 200_000


class _RecentRows:
    """Rows this run has committed: the roll-ups of buckets holding only these need not read them back."""

    def __init__(self):
        self.frames: list[pd.DataFrame] = []
        self.size = 0
        self._fresh: list[pd.DataFrame] | None = []  # every row of the run, while they are few
        self._fresh_size = 0

    def add(self, rows: pd.DataFrame | None) -> None:
        if rows is not None and not rows.empty:
            self.frames.append(rows[["unit_id", "indicator_id", "observed_at", "value"]])
            self.size += len(rows)
            self._fresh_size += len(rows)
            if self._fresh_size > FRESH_ROWS_LIMIT:
                self._fresh = None
            elif self._fresh is not None:
                self._fresh.append(rows[["unit_id", "indicator_id", "observed_at", "value", "run_id"]])

    def fresh_rows(self) -> pd.DataFrame | None:
        """Every row the run committed (the last delivery of a key wins), or None when there were too many."""
        if self._fresh is None:
            return None
        if not self._fresh:
            return pd.DataFrame(columns=["unit_id", "indicator_id", "observed_at", "value", "run_id"])
        return pd.concat(self._fresh, ignore_index=True).drop_duplicates(KEY, keep="last")

    def take(self) -> pd.DataFrame | None:
        """All rows held (the last delivery of a key wins, as in the database), and forget them."""
        if not self.frames:
            return None
        frames, self.frames, self.size = self.frames, [], 0
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        del frames  # held twice otherwise, at the peak of the run's memory
        return last_per_key(frame, in_key_order=False)[0]


def _roll_up(database_url, catalog, ids, tree, now, offset, recent: _RecentRows, held_only: bool = False) -> None:
    with session_scope(database_url) as session:
        process_backlog(session, catalog, ids, tree, int(now), offset, recent.take(), held_only=held_only)


class _Batch:
    """Valid rows (single records, columnar frames and incidents), quarantined ones, and the cursor they reach."""

    def __init__(self, cursor: str | None = None):
        self.rows: list[dict] = []
        self.frames: list[pd.DataFrame] = []
        self.incidents: list[dict] = []
        self.quarantine: list[dict] = []
        self.cursor = cursor
        self.size = 0

    def add(self, row: dict, cursor: str) -> None:
        self.rows.append(row)
        self.size += 1
        self._reach(cursor)

    def add_incident(self, row: dict, cursor: str) -> None:
        self.incidents.append(row)
        self.size += 1
        self._reach(cursor)

    def add_incidents(self, rows: list[dict], cursor: str) -> None:
        self.incidents.extend(rows)
        self.size += len(rows)
        self._reach(cursor)

    def add_frame(self, frame: pd.DataFrame, cursor: str | None) -> None:
        if frame.empty:
            return
        self.frames.append(frame)
        self.size += len(frame)
        self._reach(cursor if cursor is not None else str(int(frame["observed_at"].max())))

    def _reach(self, cursor: str) -> None:
        if self.cursor is None or _cursor_key(cursor) > _cursor_key(self.cursor):
            self.cursor = cursor

    def unique_rows(self, run_id: int) -> tuple[pd.DataFrame, int]:
        """All valid rows, one per key (the last delivery wins, as it would across runs), in key order (as they
        are written), and how many deliveries were repeats within this batch."""
        frames = self.frames + ([pd.DataFrame.from_records(self.rows)] if self.rows else [])
        if not frames:
            return pd.DataFrame(columns=[*KEY, "value", "run_id"]), 0
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        unique, repeats = last_per_key(frame)
        return unique.assign(run_id=run_id), repeats


def _cursor_key(cursor: str):
    try:
        return (0, float(cursor), "")
    except ValueError:
        return (1, 0.0, cursor)


def _commit(database_url, batch: _Batch, summary: RunSummary, catalog, ids, offset, name, advance: bool,
            run_id: int, archive: RunArchive | None = None) -> pd.DataFrame | None:
    """One transaction: rows, quarantine, the roll-up queue and (when safe) the cursor move together; the
    payloads they came from are on disk before it begins.

    Returns the rows committed."""
    if archive is not None:
        archive.flush()
    if not batch.size and not batch.quarantine:
        if advance and batch.cursor is not None:
            # The records filled earlier batches exactly, which did not move the cursor: the run is committed now.
            with session_scope(database_url) as session:
                _save_cursor(session, name, batch.cursor, int(time.time()))
        return None
    key_by_id = {ident: key for key, ident in ids.items()}
    rows, repeats = batch.unique_rows(run_id)
    with session_scope(database_url) as session:
        result = upsert_observations(session, rows)
        stored = upsert_incidents(session, batch.incidents)
        if batch.quarantine:
            session.execute(insert(QuarantinedRecord), batch.quarantine)
        touched = {key_by_id[int(ident)]: times.to_numpy()
                   for ident, times in rows.groupby("indicator_id")["observed_at"]}
        queue_rollups(session, catalog, ids, touched, offset)
        summary.touched.update(touched)
        if advance and batch.cursor is not None:
            _save_cursor(session, name, batch.cursor, int(time.time()))
    summary.accepted += result.written + stored.written
    summary.duplicates += result.unchanged + repeats + stored.unchanged
    summary.rejected += len(batch.quarantine)
    return rows


def _save_cursor(session: Session, name: str, cursor: str, now: int) -> None:
    table = ConnectorCursor.__table__
    statement = _dialect_insert(session, table).values(connector=name, cursor=cursor, updated_at=now)
    session.execute(statement.on_conflict_do_update(index_elements=["connector"],
                                                    set_={"cursor": cursor, "updated_at": now}))


def _quarantine_row(run_id: int, connector: str, reason: str, record: Record | Incident, now: int) -> dict:
    """A quarantine row for a record, or for an incident whose personal data is already masked (`IncidentIntake`)."""
    raw = record.raw if record.raw is not None else _described(record)
    try:
        text = json.dumps(raw, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(raw)
    return {"run_id": run_id, "connector": connector, "reason": reason, "raw": text, "created_at": now,
            "source": record.source[:255] if record.source else None}


def _described(record: Record | Incident) -> dict:
    """What a record without its source row says, to keep in quarantine."""
    if isinstance(record, Incident):
        fields = dataclasses.asdict(record)
        return {name: value if isinstance(value, (dict, int, float, type(None))) else str(value)
                for name, value in fields.items() if name not in ("raw", "source", "problem")}
    return {"unit_code": record.unit_code, "indicator": record.indicator, "observed_at": str(record.observed_at),
            "value": record.value}


def _replayed(connector: Connector, root: Path | None, references: list[str]):
    """The records of archived payloads, parsed again by the connector that fetched them."""
    if root is None:
        raise FatalError("replay needs the archive folder (ONESCREEN_ARCHIVE_DIR)")
    for reference in references:
        try:
            with open_payload(Path(root), reference) as stream:
                payload = stream.read()
        except FileNotFoundError as error:
            raise FatalError(str(error)) from None
        label = reference.rsplit("/", 1)[-1].removesuffix(".gz").split("-", 1)[-1]
        for item in connector.replay(label, payload):
            yield _from_archive(item, reference.removesuffix(".gz") + ".gz")


def _from_archive(item: Record | RecordBatch | Incident | IncidentBatch, reference: str):
    """A replayed item's source names the archived payload (a connector replaying only knows its label)."""
    if isinstance(item, (RecordBatch, IncidentBatch)):
        return dataclasses.replace(item, source=reference)
    position = item.source.rpartition("#")[2] if item.source and "#" in item.source else None
    return dataclasses.replace(item, source=f"{reference}#{position}" if position else reference)
