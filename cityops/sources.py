"""Source health: when each connector last delivered, judged against its schedule."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.models import ConnectorRun
from cityops.status import source_freshness


@dataclass(frozen=True)
class SourceHealth:
    name: str
    last_success: int | None
    freshness: str  # fresh / late / silent


def source_health(session: Session, intervals: dict[str, int], now: int) -> list[SourceHealth]:
    """One entry per configured connector (name → schedule interval in seconds)."""
    last = dict(session.execute(
        select(ConnectorRun.connector, func.max(ConnectorRun.finished_at))
        .where(ConnectorRun.status.in_(["ok", "partial"])).group_by(ConnectorRun.connector)).all())
    return [SourceHealth(name, last.get(name), source_freshness(last.get(name), interval, now))
            for name, interval in intervals.items()]
