"""Quarantined records: listing them, and running them again once the cause is fixed.

A record is quarantined with the row as the source sent it. After a fix (a unit imported, an indicator added to
the catalog, a corrected mapping), `reprocess` turns those rows into records again — through the connector's
mapping when it has one — and runs them through the ordinary runner: what now passes is stored, what still fails
is quarantined anew with its current reason. Each original row is marked with its outcome, so it is re-processed
once and the screen can tell fixed problems from open ones.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy import select, update

from cityops.catalog import Catalog
from cityops.db import session_scope
from cityops.models import QuarantinedRecord
from connectors.base import Connector, Incident, IncidentBatch, Record, RecordBatch
from connectors.config import ConnectorInstance
from connectors.runner import RunSummary, run_connector

SOURCE_PREFIX = "quarantine#"


@dataclass(frozen=True)
class QuarantineEntry:
    id: int
    run_id: int
    connector: str
    reason: str
    raw: str
    created_at: int
    source: str | None
    outcome: str | None


def list_quarantine(database_url: str, connector: str | None = None, include_done: bool = False,
                    limit: int = 100) -> list[QuarantineEntry]:
    """The newest quarantined records (open ones only, unless `include_done`)."""
    statement = select(QuarantinedRecord).order_by(QuarantinedRecord.id.desc()).limit(limit)
    if connector:
        statement = statement.where(QuarantinedRecord.connector == connector)
    if not include_done:
        statement = statement.where(QuarantinedRecord.reprocessed_at.is_(None))
    with session_scope(database_url) as session:
        return [QuarantineEntry(r.id, r.run_id, r.connector, r.reason, r.raw, r.created_at, r.source, r.outcome)
                for r in session.scalars(statement)]


def items_of(entry: QuarantineEntry, connector: Connector) -> Iterator[Record | RecordBatch | Incident | IncidentBatch]:
    """What a quarantined row stands for now, as its connector type reads such a row, tagged with the row's id as
    its source."""
    source = f"{SOURCE_PREFIX}{entry.id}"
    try:
        raw = json.loads(entry.raw)
    except ValueError:
        yield Record(None, None, None, None, raw=entry.raw, problem="the stored row is not JSON", source=source)
        return
    yield from connector.from_quarantine(raw, source)


def reprocess(database_url: str, instance: ConnectorInstance, catalog: Catalog, *, timezone: str,
              ids: list[int] | None = None, now: float | None = None) -> tuple[RunSummary, dict[str, int]]:
    """Run a connector's open quarantined records again; returns the run and how many were accepted or
    rejected again. Only the given `ids` when set."""
    entries = [e for e in list_quarantine(database_url, instance.name, limit=1_000_000)
               if ids is None or e.id in ids]
    summary = run_connector(database_url, instance, catalog, timezone=timezone, now=now,
                            items=lambda connector: (item for entry in entries for item in items_of(entry, connector)))
    with session_scope(database_url) as session:
        again = {int(source.removeprefix(SOURCE_PREFIX).split("#")[0])
                 for source in session.scalars(select(QuarantinedRecord.source).where(
                     QuarantinedRecord.run_id == summary.run_id, QuarantinedRecord.source.like(f"{SOURCE_PREFIX}%")))}
        now = int(time.time())
        outcomes = {"accepted": 0, "rejected": 0}
        if summary.status != "failed":
            for entry in entries:
                outcome = "rejected" if entry.id in again else "accepted"
                outcomes[outcome] += 1
                session.execute(update(QuarantinedRecord).where(QuarantinedRecord.id == entry.id)
                                .values(reprocessed_at=now, outcome=outcome))
    return summary, outcomes
