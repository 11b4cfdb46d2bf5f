"""The relational schema. Alembic (migrations/) owns its evolution; these classes describe it.

Times are stored as integer epoch seconds (UTC): compact, index-friendly and free of driver time-zone quirks.
"""

from __future__ import annotations

from sqlalchemy import (BigInteger, Float, ForeignKey, Index, Integer, SmallInteger, String, Text, UniqueConstraint,
                        text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Unit(Base):
    """An administrative unit. `lft`/`rgt` are nested-set bounds, so a subtree is one integer range."""

    __tablename__ = "units"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_zh: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))
    level: Mapped[int] = mapped_column(SmallInteger, index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    population: Mapped[int] = mapped_column(Integer, default=0)
    lft: Mapped[int] = mapped_column(Integer, index=True)
    rgt: Mapped[int] = mapped_column(Integer)
    # Centroid for labels and bounding box for fitting the map and placing points later.
    center_lon: Mapped[float] = mapped_column(Float)
    center_lat: Mapped[float] = mapped_column(Float)
    min_lon: Mapped[float] = mapped_column(Float)
    min_lat: Mapped[float] = mapped_column(Float)
    max_lon: Mapped[float] = mapped_column(Float)
    max_lat: Mapped[float] = mapped_column(Float)
    geometry: Mapped[str] = mapped_column(Text)  # GeoJSON geometry, full precision
    geometry_simplified: Mapped[str] = mapped_column(Text)  # GeoJSON geometry for the map


class Indicator(Base):
    """Catalog keys mapped to small ids; the catalog YAML stays the source of truth for everything else."""

    __tablename__ = "indicators"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name_zh: Mapped[str] = mapped_column(String(120))
    name_en: Mapped[str] = mapped_column(String(120))
    unit_of_measure: Mapped[str] = mapped_column(String(32))
    unit_of_measure_en: Mapped[str] = mapped_column(String(32), server_default="")  # the same where it reads so


class Observation(Base):
    """Reported history, one row per (unit, indicator, observed_at); re-ingesting upserts."""

    __tablename__ = "observations"

    unit_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    indicator_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    observed_at: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    run_id: Mapped[int | None] = mapped_column(Integer)

    # No index beyond the key: roll-ups read one indicator's time window through the units at its level and
    # this key (cityops.rollup), which beats an (indicator, time) index and spares every insert a second B-tree.
    __table_args__ = ({"sqlite_with_rowid": False},)


class CurrentValue(Base):
    """The latest reported value per (unit, indicator), maintained on ingest so the screen never scans history."""

    __tablename__ = "current_values"

    unit_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    indicator_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    observed_at: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float] = mapped_column(Float)
    run_id: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (Index("ix_current_values_indicator", "indicator_id", "unit_id"), {"sqlite_with_rowid": False})


class RollupHistory(Base):
    """An indicator rolled up to a unit for one time bucket (bucket_start, bucket_start + interval)."""

    __tablename__ = "rollup_history"

    unit_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    indicator_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    bucket_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)
    reported: Mapped[int] = mapped_column(Integer)
    expected: Mapped[int] = mapped_column(Integer)

    __table_args__ = ({"sqlite_with_rowid": False},)


class RollupBacklog(Base):
    """Time buckets whose roll-ups must be recomputed, written in the same transaction as the observations.

    Roll-ups are derived data: queuing the work with the data means a crash between the two is repaired by
    the next run, and a backfill computes each bucket once instead of once per batch.
    """

    __tablename__ = "rollup_backlog"

    indicator_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    bucket_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class CurrentRollup(Base):
    """The live roll-up per (unit, indicator): children's latest values within the expected interval."""

    __tablename__ = "current_rollups"

    unit_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    indicator_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    as_of: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float | None] = mapped_column(Float)
    reported: Mapped[int] = mapped_column(Integer)
    expected: Mapped[int] = mapped_column(Integer)
    latest_observed_at: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_current_rollups_indicator", "indicator_id", "unit_id"), {"sqlite_with_rowid": False})


class ConnectorRun(Base):
    __tablename__ = "connector_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connector: Mapped[str] = mapped_column(String(64), index=True)
    started_at: Mapped[int] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))  # running / ok / partial / failed
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    error_family: Mapped[str | None] = mapped_column(String(16))
    error_message: Mapped[str | None] = mapped_column(Text)
    archive: Mapped[str | None] = mapped_column(String(255))  # the run's raw payloads (connectors/archive.py)


class ConnectorCursor(Base):
    """The high-water mark of each connector, advanced only after its records are committed."""

    __tablename__ = "connector_cursors"

    connector: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[int] = mapped_column(BigInteger)


class QuarantinedRecord(Base):
    """A record that failed validation, kept with its reason and raw form so nothing fetched is lost."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer, index=True)
    connector: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str | None] = mapped_column(String(255))  # archived payload (and position) it came from
    # Set when `onescreen quarantine reprocess` has run it again: accepted, or rejected with a new reason.
    reprocessed_at: Mapped[int | None] = mapped_column(BigInteger)
    outcome: Mapped[str | None] = mapped_column(String(16))


class Incident(Base):
    """A case from another system (a service request, a grid event): the evidence behind incident counts, which
    an alert's drill-down opens. Upserted by (source, external_id); `updated_at` only moves forward.

    `unit_id` is the community whose boundary holds the point. It is not a foreign key, like observations'
    unit ids: a boundary import replaces every unit row (keeping ids), which a foreign key would refuse.
    Personal fields are never stored in clear: `contact_masked` holds them masked, and `raw` (the source's row)
    has them removed (cityops.incidents).
    """

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))  # the connector's name
    external_id: Mapped[str] = mapped_column(String(128))
    category: Mapped[str | None] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16))  # open / closed
    source_status: Mapped[str | None] = mapped_column(String(64))
    opened_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    closed_at: Mapped[int | None] = mapped_column(BigInteger)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    unit_id: Mapped[int] = mapped_column(Integer)  # indexed first in ix_incidents_unit_status
    address: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    contact_masked: Mapped[str | None] = mapped_column(Text)  # JSON: {"phone": "138****5678", ...}
    raw: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[int | None] = mapped_column(Integer)  # the run that last changed it
    first_seen_at: Mapped[int] = mapped_column(BigInteger)
    last_seen_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_incidents_source_external_id"),
        Index("ix_incidents_unit_status", "unit_id", "status"),  # a community's open incidents (drill-down)
        # A connector's open incidents (counts, re-checks); partial: closed ones, most of them, cost no entry.
        Index("ix_incidents_open_by_source", "source", sqlite_where=text("status = 'open'"),
              postgresql_where=text("status = 'open'")),
    )


class Alert(Base):
    """One episode of a rule breaching at one unit (cityops/alerts): the machine's view (phase, severity, the
    breach's times) and the people's (acknowledged, assigned, closed with a resolution, deadlines).

    Keyed by (rule, unit, indicator, started_at): an episode is identified by when its breach began, so evaluating
    the same data again — even from scratch — finds the alert it made rather than making a second one.
    `indicator_id` is 0 for rules about a source rather than an indicator; `source` names that source (the
    connector), and is empty for every other rule.
    """

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule: Mapped[str] = mapped_column(String(64))
    unit_id: Mapped[int] = mapped_column(Integer)
    indicator_id: Mapped[int] = mapped_column(SmallInteger)
    source: Mapped[str] = mapped_column(String(64), default="")
    started_at: Mapped[int] = mapped_column(BigInteger)
    phase: Mapped[str] = mapped_column(String(16))            # pending / firing / resolved
    severity: Mapped[str] = mapped_column(String(16))         # the highest of the episode: warning / critical
    notified: Mapped[str | None] = mapped_column(String(16))  # the severity last notified
    value: Mapped[float | None] = mapped_column(Float)        # the judged value at the last breach
    line: Mapped[float | None] = mapped_column(Float)         # the line it crossed (threshold, %, z...)
    last_breach_at: Mapped[int] = mapped_column(BigInteger)
    evaluated_to: Mapped[int] = mapped_column(BigInteger)
    fired_at: Mapped[int | None] = mapped_column(BigInteger)
    resolved_at: Mapped[int | None] = mapped_column(BigInteger)
    run_id: Mapped[int | None] = mapped_column(Integer)       # the connector run that brought the breaching data
    # People's part of the lifecycle. An alert is open from firing until a person (or the auto-close of an
    # alert that recovered untouched) closes it with a resolution.
    acknowledged_at: Mapped[int | None] = mapped_column(BigInteger)
    acknowledged_by: Mapped[str | None] = mapped_column(String(120))
    assignee: Mapped[str | None] = mapped_column(String(120))
    assigned_at: Mapped[int | None] = mapped_column(BigInteger)
    closed_at: Mapped[int | None] = mapped_column(BigInteger)
    closed_by: Mapped[str | None] = mapped_column(String(120))
    resolution: Mapped[str | None] = mapped_column(Text)
    dispatch_due: Mapped[int | None] = mapped_column(BigInteger)  # to be acknowledged or assigned by
    handle_due: Mapped[int | None] = mapped_column(BigInteger)    # to be closed by

    __table_args__ = (
        UniqueConstraint("rule", "unit_id", "indicator_id", "source", "started_at", name="uq_alerts_episode"),
        Index("ix_alerts_open", "closed_at", "phase"),
        Index("ix_alerts_unit", "unit_id"),
    )


class AlertEvent(Base):
    """The audit trail of an alert: every change of state and every person's action, with who and when."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(Integer, index=True)
    at: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(120))  # a person, or "system" for the rule engine
    action: Mapped[str] = mapped_column(String(24))  # pending, firing, escalated, resolved, acknowledged, ...
    detail: Mapped[str | None] = mapped_column(Text)


class AlertCursor(Base):
    """How far each (rule, indicator, level) has been evaluated: the next evaluation reads only newer data."""

    __tablename__ = "alert_cursors"

    rule: Mapped[str] = mapped_column(String(64), primary_key=True)
    indicator_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    evaluated_to: Mapped[int] = mapped_column(BigInteger)
    since: Mapped[int] = mapped_column(BigInteger)  # first evaluated: a unit never heard from is silent since then


class AlertNotification(Base):
    """One notification of one alert change to one target: the outbox, and the record of its delivery.

    Written in the transaction that records the change, so a crash cannot lose it; the unique key makes one
    breach (and each escalation, and the recovery) notify each target once, however often it is evaluated.
    """

    __tablename__ = "alert_notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(Integer, index=True)
    change: Mapped[str] = mapped_column(String(16))    # firing / escalated / resolved
    severity: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))   # webhook / email
    target: Mapped[str] = mapped_column(String(255))   # the URL or the address
    created_at: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))    # pending / delivered / failed (gave up)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[int] = mapped_column(BigInteger)
    last_attempt_at: Mapped[int | None] = mapped_column(BigInteger)
    delivered_at: Mapped[int | None] = mapped_column(BigInteger)
    response: Mapped[str | None] = mapped_column(Text)  # the HTTP status and body start, or the SMTP reply/error

    __table_args__ = (
        UniqueConstraint("alert_id", "change", "severity", "channel", "target", name="uq_alert_notifications_once"),
        Index("ix_alert_notifications_due", "status", "next_attempt_at"),
    )


class ExportRecord(Base):
    """One export someone took from the screen: a panel's data (CSV, XLSX), a chart (PNG, SVG) or a report (PDF,
    PNG). Who, when, within which scope, of which view, in which format, and how much (cityops/exports/records.py).
    """

    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[int] = mapped_column(BigInteger, index=True)
    actor: Mapped[str] = mapped_column(String(120))        # the proxy's name, a typed one "(unverified)", or anonymous
    panel: Mapped[str] = mapped_column(String(16))         # kpi / map / trend / ranking / alerts / report
    format: Mapped[str] = mapped_column(String(8))         # csv / xlsx / png / svg / pdf
    scope_code: Mapped[str] = mapped_column(String(32))    # the root of what the exporter may see
    unit_code: Mapped[str] = mapped_column(String(32))     # the unit exported (always within that scope)
    indicator: Mapped[str | None] = mapped_column(String(64))
    selection: Mapped[str] = mapped_column(Text)           # JSON: the checked selection (unit, indicator, time range)
    rows: Mapped[int | None] = mapped_column(Integer)      # data rows behind the file
    bytes: Mapped[int | None] = mapped_column(Integer)     # None for chart images the browser draws
    filename: Mapped[str] = mapped_column(String(255))
    language: Mapped[str] = mapped_column(String(4))
