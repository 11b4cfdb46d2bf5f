"""Source health: when each connector last delivered, judged against its schedule, and what went wrong."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.hierarchy import Level
from cityops.models import ConnectorRun, QuarantinedRecord
from cityops.status import source_freshness


@dataclass(frozen=True)
class SourceHealth:
    name: str
    last_success: int | None
    freshness: str  # fresh / late / silent


@dataclass(frozen=True)
class SourceConfig:
    """What the screen knows of a configured connector (from connectors.yaml)."""

    name: str
    type: str
    levels: tuple[Level, ...]
    interval_seconds: int
    cron: str | None = None


@dataclass(frozen=True)
class RunInfo:
    id: int
    status: str
    started_at: int
    finished_at: int | None
    fetched: int
    accepted: int
    rejected: int
    duplicates: int
    error_family: str | None
    error_message: str | None
    archive: str | None


@dataclass(frozen=True)
class SourceStatus:
    config: SourceConfig
    last_success: int | None
    freshness: str           # fresh / late / silent
    last_run: RunInfo | None
    rejected_recently: int   # records quarantined in the last RECENT_SECONDS
    open_quarantine: int     # quarantined and not yet re-processed

    @property
    def failing(self) -> bool:
        return self.last_run is not None and self.last_run.status == "failed"


@dataclass(frozen=True)
class QuarantinedRow:
    id: int
    run_id: int
    reason: str
    raw: str
    created_at: int
    source: str | None


RECENT_SECONDS = 86400


def source_health(session: Session, intervals: dict[str, int], now: int) -> list[SourceHealth]:
    """One entry per configured connector (name → schedule interval in seconds)."""
    last = _last_success(session)
    return [SourceHealth(name, last.get(name), source_freshness(last.get(name), interval, now))
            for name, interval in intervals.items()]


def source_statuses(session: Session, sources: list[SourceConfig], now: int) -> list[SourceStatus]:
    """Everything the sources panel shows, for every configured connector, in four queries."""
    names = [source.name for source in sources]
    last_success = _last_success(session)
    latest_ids = select(func.max(ConnectorRun.id)).where(ConnectorRun.connector.in_(names)) \
        .group_by(ConnectorRun.connector)
    last_runs = {run.connector: _run_info(run) for run in
                 session.scalars(select(ConnectorRun).where(ConnectorRun.id.in_(latest_ids)))}
    recent = dict(session.execute(
        select(QuarantinedRecord.connector, func.count()).where(
            QuarantinedRecord.connector.in_(names), QuarantinedRecord.created_at >= now - RECENT_SECONDS)
        .group_by(QuarantinedRecord.connector)).all())
    open_rows = dict(session.execute(
        select(QuarantinedRecord.connector, func.count()).where(
            QuarantinedRecord.connector.in_(names), QuarantinedRecord.reprocessed_at.is_(None))
        .group_by(QuarantinedRecord.connector)).all())
    return [SourceStatus(source, last_success.get(source.name),
                         source_freshness(last_success.get(source.name), source.interval_seconds, now),
                         last_runs.get(source.name), recent.get(source.name, 0), open_rows.get(source.name, 0))
            for source in sources]


def last_failure(session: Session, name: str) -> RunInfo | None:
    """The connector's most recent run that reported an error (failed, or partial with a message)."""
    run = session.scalars(select(ConnectorRun).where(ConnectorRun.connector == name,
                                                     ConnectorRun.error_message.is_not(None))
                          .order_by(ConnectorRun.id.desc()).limit(1)).first()
    return _run_info(run) if run is not None else None


def open_quarantine(session: Session, name: str, limit: int = 20) -> list[QuarantinedRow]:
    """The connector's newest quarantined records that have not been re-processed."""
    rows = session.scalars(select(QuarantinedRecord).where(QuarantinedRecord.connector == name,
                                                           QuarantinedRecord.reprocessed_at.is_(None))
                           .order_by(QuarantinedRecord.id.desc()).limit(limit))
    return [QuarantinedRow(r.id, r.run_id, r.reason, r.raw, r.created_at, r.source) for r in rows]


def _last_success(session: Session) -> dict[str, int]:
    return dict(session.execute(
        select(ConnectorRun.connector, func.max(ConnectorRun.finished_at))
        .where(ConnectorRun.status.in_(["ok", "partial"])).group_by(ConnectorRun.connector)).all())


def _run_info(run: ConnectorRun) -> RunInfo:
    return RunInfo(run.id, run.status, run.started_at, run.finished_at, run.fetched, run.accepted, run.rejected,
                   run.duplicates, run.error_family, run.error_message, run.archive)
