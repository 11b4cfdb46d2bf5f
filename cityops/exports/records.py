"""The record of every export (the `exports` table): who took what, when, within which scope, of which view, in
which format, and how much. Written in the request that makes the file, so no file leaves unrecorded."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.models import ExportRecord

LIST_COLUMNS = ["id", "at", "actor", "panel", "format", "scope_code", "unit_code", "indicator", "selection", "rows",
                "bytes", "filename", "language"]


@dataclass(frozen=True)
class ExportEntry:
    """One export as it is recorded. `selection` is the view after checking it against the scope (never what
    the page sent): unit, indicator, time range."""

    actor: str
    panel: str
    format: str
    scope_code: str
    unit_code: str
    indicator: str | None
    selection: dict
    rows: int | None
    size: int | None
    filename: str
    language: str


def record_export(session: Session, entry: ExportEntry, at: int) -> int:
    """Store one export; its id."""
    record = ExportRecord(
        at=int(at), actor=entry.actor[:120], panel=entry.panel, format=entry.format, scope_code=entry.scope_code,
        unit_code=entry.unit_code, indicator=entry.indicator,
        selection=json.dumps(entry.selection, ensure_ascii=False, sort_keys=True, default=str),
        rows=entry.rows, bytes=entry.size, filename=entry.filename[:255], language=entry.language)
    session.add(record)
    session.flush()
    return record.id


def recent_exports(session: Session, limit: int = 50, actor: str | None = None, since: int | None = None,
                   scope_code: str | None = None) -> pd.DataFrame:
    """The newest exports first, optionally one actor's (exact name), since a time, or within one scope root."""
    statement = select(*(getattr(ExportRecord, column) for column in LIST_COLUMNS))
    if actor is not None:
        statement = statement.where(ExportRecord.actor == actor)
    if since is not None:
        statement = statement.where(ExportRecord.at >= int(since))
    if scope_code is not None:
        statement = statement.where(ExportRecord.scope_code == scope_code)
    rows = session.execute(statement.order_by(ExportRecord.at.desc(), ExportRecord.id.desc()).limit(limit)).all()
    frame = pd.DataFrame(rows, columns=LIST_COLUMNS).astype(object)
    return frame.where(frame.notna(), None)  # None, not NaN, for what was not recorded
