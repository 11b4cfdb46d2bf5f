"""Configured connector instances (data/connectors.yaml), validated against the registered types."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cityops.catalog import parse_duration
from cityops.config_files import yaml_entries
from cityops.hierarchy import Level
from connectors.mapping import FieldMapping, MappingError


class ConnectorConfigError(ValueError):
    """connectors.yaml cannot be used; the message names the file, the entry and the fix."""


DEFAULT_RETENTION_SECONDS = 30 * 86400


@dataclass(frozen=True)
class ConnectorInstance:
    name: str
    type: str
    levels: tuple[Level, ...]
    # How often it runs; with a cron schedule, the longest gap between two runs (what "late" is measured by).
    interval_seconds: int
    config: dict
    timeout_seconds: float = 60.0
    enabled: bool = True
    mapping: FieldMapping | None = None
    cron: str | None = None  # crontab expression (minute hour day month weekday), in the deployment's zone
    retention_seconds: int = DEFAULT_RETENTION_SECONDS  # how long raw payloads are archived


def load_connectors(path: str | Path, catalog_keys=None, timezone: str = "Asia/Shanghai") -> list[ConnectorInstance]:
    """The instances in a connectors file. Every problem names the file, the entry and the fix.
    With `catalog_keys`, indicator keys named in mappings are checked against the catalog too."""
    from connectors.base import REGISTRY, resolve_config

    path = Path(path)
    entries = yaml_entries(path, "connectors", ConnectorConfigError, "set ONESCREEN_CONNECTORS or create it")
    instances: list[ConnectorInstance] = []
    for position, entry in enumerate(entries, start=1):
        where = f"{path}: connector #{position}"
        if not isinstance(entry, dict):
            raise ConnectorConfigError(f"{where}: expected a mapping with name, type, levels, schedule")
        if isinstance(entry.get("name"), str):
            where = f"{path}: connector '{entry['name']}' (#{position})"
        allowed = {"name", "type", "levels", "schedule", "config", "timeout", "enabled", "mapping", "archive"}
        unknown = sorted(set(entry) - allowed)
        if unknown:
            raise ConnectorConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        for required in ("name", "type", "levels", "schedule"):
            if required not in entry:
                raise ConnectorConfigError(f"{where}: missing '{required}'")
        if entry["type"] not in REGISTRY:
            raise ConnectorConfigError(f"{where}: unknown type {entry['type']!r}; registered types: "
                                       f"{', '.join(sorted(REGISTRY))}")
        kind = REGISTRY[entry["type"]]
        if any(other.name == entry["name"] for other in instances):
            raise ConnectorConfigError(f"{where}: duplicate name; every connector needs its own name")
        try:
            levels = tuple(Level.parse(level) for level in entry["levels"])
        except (TypeError, ValueError) as error:
            raise ConnectorConfigError(f"{where}: levels: {error}") from None
        interval, cron = _schedule(entry["schedule"], where, timezone)
        try:
            timeout = parse_duration(entry.get("timeout", "60s"))
        except ValueError as error:
            raise ConnectorConfigError(f"{where}: timeout: {error}") from None
        retention = _retention(entry.get("archive"), where)
        mapping = None
        if kind.uses_mapping:
            if "mapping" not in entry:
                raise ConnectorConfigError(f"{where}: type {entry['type']} reads another system's format and needs "
                                           f"'mapping:', e.g. mapping: {FieldMapping.EXAMPLE}")
            try:
                mapping = FieldMapping.parse(entry["mapping"])
                if catalog_keys is not None:
                    mapping.check_catalog(catalog_keys)
            except MappingError as error:
                raise ConnectorConfigError(f"{where}: {error}") from None
        elif "mapping" in entry:
            raise ConnectorConfigError(f"{where}: type {entry['type']} produces catalog records itself; "
                                       f"remove 'mapping:'")
        config = resolve_config(kind.config_schema, entry.get("config") or {}, where)
        try:
            kind.validate_config(config)
        except ValueError as error:
            raise ConnectorConfigError(f"{where}: config: {error}") from None
        instances.append(ConnectorInstance(entry["name"], entry["type"], levels, interval, config,
                                           float(timeout), bool(entry.get("enabled", True)), mapping, cron,
                                           retention))
    return instances


def duration_seconds(text, field: str, allow_zero: bool = False) -> int:
    """A duration such as 72h (or seconds) from a connector's config; with `allow_zero`, empty or 0 mean none.
    A ValueError names the field."""
    if allow_zero and text in (None, "", 0, "0", "0s"):
        return 0
    try:
        return parse_duration(text)
    except ValueError as error:
        raise ValueError(f"{field}: {error}") from None


def _schedule(schedule, where: str, timezone: str) -> tuple[int, str | None]:
    """(interval seconds, cron expression or None) from {interval: 5m} or {cron: "*/10 * * * *"}."""
    if not isinstance(schedule, dict) or len(set(schedule) & {"interval", "cron"}) != 1:
        raise ConnectorConfigError(f"{where}: schedule needs either 'interval' (e.g. {{interval: 5m}}) or 'cron' "
                                   f"(e.g. {{cron: \"*/10 * * * *\"}})")
    if "interval" in schedule:
        try:
            return parse_duration(schedule["interval"]), None
        except ValueError as error:
            raise ConnectorConfigError(f"{where}: schedule: {error}") from None
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from apscheduler.triggers.cron import CronTrigger

    expression = str(schedule["cron"])
    try:
        trigger = CronTrigger.from_crontab(expression, timezone=ZoneInfo(timezone))
    except ValueError as error:
        raise ConnectorConfigError(f"{where}: schedule: cron {expression!r} is not a crontab expression "
                                   f"(minute hour day month weekday): {error}") from None
    # The longest gap between runs over the next two weeks: a source is late only after that.
    times, moment = [], datetime.now(ZoneInfo(timezone))
    while len(times) < 2000 and (not times or times[-1] - times[0] < timedelta(days=14)):
        moment = trigger.get_next_fire_time(times[-1] if times else None, moment + timedelta(microseconds=1))
        if moment is None:
            break
        times.append(moment)
    if len(times) < 2:
        raise ConnectorConfigError(f"{where}: schedule: cron {expression!r} never runs twice")
    gap = max(int((b - a).total_seconds()) for a, b in zip(times, times[1:]))
    return gap, expression


def _retention(archive, where: str) -> int:
    if archive is None:
        return DEFAULT_RETENTION_SECONDS
    if not isinstance(archive, dict) or set(archive) - {"retention"}:
        raise ConnectorConfigError(f"{where}: archive takes only 'retention' (e.g. archive: {{retention: 30d}})")
    try:
        return parse_duration(archive.get("retention", "30d"))
    except ValueError as error:
        raise ConnectorConfigError(f"{where}: archive: {error}") from None
