"""Configured connector instances (data/connectors.yaml), validated against the registered types."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from cityops.catalog import parse_duration
from cityops.hierarchy import Level


class ConnectorConfigError(ValueError):
    """connectors.yaml cannot be used; the message names the file, the entry and the fix."""


@dataclass(frozen=True)
class ConnectorInstance:
    name: str
    type: str
    levels: tuple[Level, ...]
    interval_seconds: int
    config: dict
    timeout_seconds: float = 60.0
    enabled: bool = True


def load_connectors(path: str | Path) -> list[ConnectorInstance]:
    from connectors.base import REGISTRY, resolve_config

    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConnectorConfigError(f"{path}: file not found; set ONESCREEN_CONNECTORS or create it") from None
    except yaml.YAMLError as error:
        raise ConnectorConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("connectors"), list):
        raise ConnectorConfigError(f"{path}: expected a top-level 'connectors:' list")
    instances: list[ConnectorInstance] = []
    for position, entry in enumerate(document["connectors"], start=1):
        where = f"{path}: connector #{position}"
        if not isinstance(entry, dict):
            raise ConnectorConfigError(f"{where}: expected a mapping with name, type, levels, schedule")
        if isinstance(entry.get("name"), str):
            where = f"{path}: connector '{entry['name']}' (#{position})"
        allowed = {"name", "type", "levels", "schedule", "config", "timeout", "enabled"}
        unknown = sorted(set(entry) - allowed)
        if unknown:
            raise ConnectorConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        for required in ("name", "type", "levels", "schedule"):
            if required not in entry:
                raise ConnectorConfigError(f"{where}: missing '{required}'")
        if entry["type"] not in REGISTRY:
            raise ConnectorConfigError(f"{where}: unknown type {entry['type']!r}; registered types: "
                                       f"{', '.join(sorted(REGISTRY))}")
        if any(other.name == entry["name"] for other in instances):
            raise ConnectorConfigError(f"{where}: duplicate name; every connector needs its own name")
        try:
            levels = tuple(Level.parse(level) for level in entry["levels"])
        except (TypeError, ValueError) as error:
            raise ConnectorConfigError(f"{where}: levels: {error}") from None
        schedule = entry["schedule"]
        if not isinstance(schedule, dict) or "interval" not in schedule:
            raise ConnectorConfigError(f"{where}: schedule needs 'interval' (e.g. {{interval: 5m}})")
        try:
            interval = parse_duration(schedule["interval"])
            timeout = parse_duration(entry.get("timeout", "60s"))
        except ValueError as error:
            raise ConnectorConfigError(f"{where}: {error}") from None
        config = resolve_config(REGISTRY[entry["type"]].config_schema, entry.get("config") or {}, where)
        instances.append(ConnectorInstance(entry["name"], entry["type"], levels, interval, config,
                                           float(timeout), bool(entry.get("enabled", True))))
    return instances
