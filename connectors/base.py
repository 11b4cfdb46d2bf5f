"""The connector contract: a small plugin that says what it needs, whether it is healthy, and yields records.

A connector holds no state of its own. The runner owns the cursor, validation, storage and the run record;
a connector only knows how to talk to its source. Besides indicator values (`Record`, `RecordBatch`), a type may
yield `Incident`s (or pages of them as `IncidentBatch`es): cases in another system (service requests, grid events)
that the runner stores as evidence and counts per community into the indicators the type names (`incident_counts`).
"""

from __future__ import annotations

import dataclasses
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar, Iterator

import pandas as pd

from cityops.catalog import Catalog
from cityops.tree import UnitTree


@dataclass(frozen=True)
class Record:
    """One reported value. `observed_at` may be an aware datetime, an ISO-8601 text or epoch seconds."""

    unit_code: str
    indicator: str
    observed_at: datetime | str | int | float
    value: Any
    raw: Any = None  # the record as the source sent it, kept for quarantine and replay
    problem: str | None = None  # set when the source row could not even be read (a missing field): quarantined
    source: str | None = None  # where it came from: archived payload and position, e.g. "…/0001-page.json#17"


@dataclass(frozen=True)
class RecordBatch:
    """Many records as columns, for sources that read in bulk (a file, a query, a simulated hour).

    `frame` has the columns unit_code, indicator, observed_at, value (the same meanings as `Record`).
    The runner validates a batch with array operations, so a million records cost what a few thousand
    `Record` objects would. `cursor` is what committing the batch advances to (default: its newest time).
    """

    frame: pd.DataFrame
    cursor: str | None = None
    # The source rows as they came (same index as `frame`; a wide row may give several records), quarantined
    # with a record that fails; `source` names the archived payload, `positions` each row's place in it.
    raw: pd.DataFrame | list | None = None
    source: str | list[str] | None = None  # one payload, or (with `raw` a list) one per raw row

    COLUMNS = ("unit_code", "indicator", "observed_at", "value")

    def __len__(self) -> int:
        return len(self.frame)


@dataclass(frozen=True)
class Incident:
    """One case in another system (a service request, a grid event), as its source last described it.

    The runner validates it (an id, readable times, a point inside the city), places it in the community whose
    boundary holds its point, and upserts it by (connector, external_id): a newer `updated_at` wins, an older
    delivery never overwrites it. Times take the forms `Record.observed_at` does.

    `contact` holds the requester's personal fields (name, phone, email, device id...); they are stored only
    masked (cityops.incidents.mask_contact). `raw` must not repeat them: a type drops its personal fields from
    `raw` (the runner also removes `contact`'s keys and masks its values and phone numbers / e-mail addresses
    wherever they appear in `raw`, `address` and `description` before anything is stored).
    """

    external_id: str
    category: str | None
    status: str  # "open" or "closed": the type maps the source's statuses onto these two
    source_status: str | None  # the source's own word for the status
    opened_at: datetime | str | int | float | None
    updated_at: datetime | str | int | float | None  # when the source last changed it; None: opened_at
    closed_at: datetime | str | int | float | None = None
    lon: float | str | None = None
    lat: float | str | None = None
    address: str | None = None
    description: str | None = None
    contact: dict = field(default_factory=dict)
    raw: Any = None  # the source's row without its personal fields, kept with the incident and for quarantine
    source: str | None = None  # archived payload and position, as for `Record`
    problem: str | None = None  # the source row could not even be read: quarantined with this reason


@dataclass(frozen=True)
class IncidentBatch:
    """Many incidents as columns, for types that read them by the page (a page of service requests).

    `columns` maps each field of `Incident` but `source` to a list holding that field of every incident, in the
    meanings `Incident` gives them; the fields with defaults there may be left out (an empty `contact` may be one
    shared dict: nothing changes it). The runner masks, validates, places and stores a batch with a few passes
    over each column, so a page costs a fraction of what as many `Incident`s would, and each incident comes out
    exactly as it would alone: the same row, or quarantined with the same reason, row and source.

    `source` names the archived payload (an incident's position in it is its index in the columns), or, as a
    list, each incident's own. `cursor` is what committing the batch advances to (default: the newest
    `updated_at` of its incidents that are stored, which is what `Connector.cursor_of` gives single ones).
    `masked_rows`: the source rows masked by cityops.incident_masking.mask_rows; an incident whose `raw` is one
    of those very objects (and whose `contact` is empty) need not have its `raw` searched for personal data again
    (masks are idempotent).
    """

    columns: dict[str, list]
    source: str | list[str] | None = None
    cursor: str | None = None
    masked_rows: list | tuple = ()

    FIELDS: ClassVar[tuple[str, ...]] = tuple(spec.name for spec in fields(Incident) if spec.name != "source")
    REQUIRED: ClassVar[tuple[str, ...]] = tuple(  # the columns without a default
        spec.name for spec in fields(Incident)
        if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING)

    def __post_init__(self):
        given = set(self.columns)
        missing = [name for name in self.REQUIRED if name not in given]
        unknown = sorted(given - set(self.FIELDS))
        if missing or unknown:
            raise ValueError(f"IncidentBatch columns: {f'missing {missing}' if missing else ''}"
                             f"{'; ' if missing and unknown else ''}{f'unknown {unknown}' if unknown else ''}")
        count = len(self.columns["external_id"])
        if any(len(values) != count for values in self.columns.values()):
            raise ValueError(f"IncidentBatch columns differ in length: "
                             f"{ {name: len(values) for name, values in self.columns.items()} }")
        if isinstance(self.source, list) and len(self.source) != count:
            raise ValueError(f"IncidentBatch: {len(self.source)} sources for {count} incidents")
        if given != set(self.FIELDS):
            filled = {name: [{}] * count if name == "contact" else [_DEFAULTS[name]] * count
                      for name in self.FIELDS if name not in given}
            object.__setattr__(self, "columns", {**self.columns, **filled})

    @classmethod
    def of(cls, incidents: list[Incident], source: str | None = None) -> "IncidentBatch":
        """The batch of these incidents (each keeping its own source unless `source` names them all)."""
        columns = {name: [getattr(incident, name) for incident in incidents] for name in cls.FIELDS}
        return cls(columns, source if source is not None else [incident.source for incident in incidents])

    def source_of(self, position: int) -> str | None:
        """Where the incident at `position` came from, as `Incident.source` says it."""
        if isinstance(self.source, list):
            return self.source[position]
        return f"{self.source}#{position}" if self.source else None

    def incident(self, position: int) -> Incident:
        """The incident at `position`, as a single `Incident`."""
        return Incident(**{name: self.columns[name][position] for name in self.FIELDS},
                        source=self.source_of(position))

    def __len__(self) -> int:
        return len(self.columns["external_id"])


_DEFAULTS = {spec.name: spec.default for spec in fields(Incident) if spec.default is not dataclasses.MISSING}


@dataclass(frozen=True)
class IncidentCounts:
    """What a type's incidents feed after each run: per community, how many are open, and how many of those have
    been open longer than `overdue_after` seconds (or their category's own limit in `overdue_by_category`).

    Both indicators must be reported per community. Counts are the state at the run's time, stored in the
    indicator's time bucket that holds it, for every community (0 where none is open)."""

    open_indicator: str
    overdue_indicator: str
    overdue_after: int
    overdue_by_category: dict[str, int] = field(default_factory=dict)


class ConnectorError(Exception):
    family: ClassVar[str] = "fatal"


class FatalError(ConnectorError):
    """Configuration or authentication is wrong: retrying will not help, an operator must act."""

    family = "fatal"


class RetriableError(ConnectorError):
    """The source is slow, busy or failing right now (timeout, 429, 5xx): back off and try again."""

    family = "retriable"

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class ConfigField:
    name: str
    type: type
    required: bool = False
    default: Any = None
    secret: bool = False  # secrets come from the environment variable named in the YAML, never the YAML itself
    help: str = ""


@dataclass(frozen=True)
class Health:
    healthy: bool
    detail: str


@dataclass(frozen=True)
class ConnectorContext:
    """Reference data a connector may read: the catalog and the unit tree (never the database session)."""

    catalog: Catalog
    tree: UnitTree
    now: float
    timezone: str = "Asia/Shanghai"
    extra: dict = field(default_factory=dict)
    archive: Any = None  # connectors.archive.RunArchive of the current run (None outside a run: check, tests)
    # For types that yield incidents: the external ids of this connector's incidents stored as still open, so a
    # source that can only be asked by opening time can be asked again about those (their closing).
    open_incidents: tuple[str, ...] = ()


class Connector(ABC):
    type_name: ClassVar[str]
    config_schema: ClassVar[tuple[ConfigField, ...]] = ()
    # True when fetch() yields records in non-decreasing cursor order, so the runner may commit the cursor
    # batch by batch; otherwise the cursor moves only when the whole run has been committed.
    ordered: ClassVar[bool] = False
    # True for types that read other people's formats and need `mapping:` in connectors.yaml.
    uses_mapping: ClassVar[bool] = False
    # True for types that yield `Incident`s: the runner then reads their open incidents into the context.
    yields_incidents: ClassVar[bool] = False
    # True for types that deliver series by series (one unit and indicator's whole history, then the next): every
    # time bucket fills up all run long, so the runner does not roll buckets up midway (they would all be done
    # again at the end); it lets the rows it holds go and rolls everything up once, after the last commit.
    delivers_series: ClassVar[bool] = False

    def __init__(self, name: str, config: dict, context: ConnectorContext, mapping=None):
        self.name = name
        self.config = config
        self.context = context
        self.mapping = mapping

    def committed(self) -> None:
        """Called once the run's records are all committed (not after replays or a failed run): a source that
        hands work off (moves a file, acknowledges messages) finishes it here, never before."""

    def released(self) -> None:
        """Called when the run is over, whatever its outcome (after `committed` when there was one): a source
        holding a connection lets go of it now. A run that failed leaves its work unacknowledged."""

    @classmethod
    def validate_config(cls, config: dict) -> None:
        """Raise ValueError naming what is wrong with a resolved `config:` (beyond its field types), so a typo
        stops start-up with the file and entry named instead of failing every run."""

    def archived(self, label: str, payload, media_type: str = "application/octet-stream") -> str | None:
        """Keep a raw payload (bytes or a binary stream) in this run's archive before it is parsed; returns
        its reference for records' `source` (None outside a run)."""
        if self.context.archive is None:
            return None
        return self.context.archive.store(label, payload, media_type)

    def incident_counts(self) -> IncidentCounts | None:
        """Which indicators this connector's incidents are counted into after each run (None: not counted)."""
        return None

    def replay(self, label: str, payload: bytes) -> Iterator[Record | RecordBatch | Incident | IncidentBatch]:
        """Parse an archived payload again (after a mapping or catalog fix). Types that can, override."""
        raise FatalError(f"connector type {self.type_name!r} cannot replay archived payloads")

    def from_quarantine(self, raw: Any, source: str) -> Iterator[Record | RecordBatch | Incident | IncidentBatch]:
        """What a quarantined row (as it was kept: the source's row) stands for now, after a fix: a mapped row's
        records through the mapping, a record kept field by field as that record. Types whose quarantined rows
        are their own shape (incidents) override."""
        if self.mapping is not None and isinstance(raw, dict):
            yield from self.mapping.records(raw, source=source)
        elif isinstance(raw, dict) and set(RecordBatch.COLUMNS) <= set(raw):
            yield Record(*(raw[name] for name in RecordBatch.COLUMNS), raw=raw, source=source)
        else:
            yield Record(None, None, None, None, raw=raw, source=source,
                         problem="the stored row has no unit, indicator, time and value")

    @abstractmethod
    def check(self) -> Health:
        """Whether the source can be reached and read now, and if not, why."""

    @abstractmethod
    def fetch(self, since: str | None) -> Iterator[Record | RecordBatch | Incident | IncidentBatch]:
        """Lazily yield records or incidents (one by one, or in columnar batches) whose cursor is at or after
        `since` (None: from the configured start).

        Re-delivering a record is harmless (storage upserts), so `since` is inclusive.
        """

    def cursor_of(self, record: Record | Incident, observed_at: int) -> str:
        """The cursor value a committed record advances to; by default its observation time (an incident's
        `updated_at`)."""
        return str(observed_at)


REGISTRY: dict[str, type[Connector]] = {}


def register(cls: type[Connector]) -> type[Connector]:
    """Class decorator: make a connector type available by its `type_name` in connectors.yaml."""
    if cls.type_name in REGISTRY and REGISTRY[cls.type_name] is not cls:
        raise ValueError(f"connector type {cls.type_name!r} registered twice")
    REGISTRY[cls.type_name] = cls
    return cls


def resolve_config(schema: tuple[ConfigField, ...], raw: dict, where: str) -> dict:
    """Validate an instance's `config:` against the type's schema; read secrets from the environment."""
    from connectors.config import ConnectorConfigError

    known = {f.name for f in schema} | {f"{f.name}_env" for f in schema if f.secret}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConnectorConfigError(f"{where}: unknown config field(s) {', '.join(unknown)}; "
                                   f"allowed: {', '.join(sorted(known)) or 'none'}")
    resolved: dict = {}
    for spec in schema:
        if spec.secret:
            if spec.name in raw:
                raise ConnectorConfigError(
                    f"{where}: {spec.name} is a secret and must not be written in the file; "
                    f"put it in an environment variable and give its name as {spec.name}_env")
            env_name = raw.get(f"{spec.name}_env")
            value = os.environ.get(env_name) if env_name else None
            if spec.required and value is None:
                raise ConnectorConfigError(
                    f"{where}: secret {spec.name} missing: set {spec.name}_env to the name of an environment "
                    f"variable{f' (now {env_name!r}, which is not set)' if env_name else ''}")
            resolved[spec.name] = value
            continue
        if spec.name not in raw:
            if spec.required:
                raise ConnectorConfigError(f"{where}: config field {spec.name} is required ({spec.help})")
            resolved[spec.name] = spec.default
            continue
        value = raw[spec.name]
        if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, spec.type) or (spec.type is int and isinstance(value, bool)):
            raise ConnectorConfigError(f"{where}: config field {spec.name} must be {spec.type.__name__}, "
                                       f"got {value!r}")
        resolved[spec.name] = value
    return resolved
