"""Record validation: each check either yields a clean row or the reason the record is quarantined."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from cityops.catalog import Catalog, RollupRule
from cityops.hierarchy import Level
from cityops.tree import UnitTree
from connectors.base import Record

FUTURE_TOLERANCE_SECONDS = 300


class Rejected(ValueError):
    """A record that cannot be stored as it is; the message is the quarantine reason."""


@dataclass(frozen=True)
class Validator:
    catalog: Catalog
    indicator_ids: dict[str, int]
    tree: UnitTree
    levels: tuple[Level, ...]
    zone: ZoneInfo
    now: int

    @classmethod
    def build(cls, catalog, indicator_ids, tree, levels, timezone_name: str, now: int) -> "Validator":
        return cls(catalog, indicator_ids, tree, tuple(levels), ZoneInfo(timezone_name), now)

    def __post_init__(self):
        # Hot path: resolve lookups once, not per record.
        object.__setattr__(self, "_unit_ids", self.tree.id_by_code)
        object.__setattr__(self, "_unit_levels", self.tree.frame["level"].to_dict())
        object.__setattr__(self, "_reported", {i.key: i for i in self.catalog if not i.is_derived})

    def validate(self, record: Record) -> dict:
        """A row for storage {unit_id, indicator_id, observed_at, value}, or raise Rejected(reason)."""
        indicator = self._reported.get(record.indicator)
        if indicator is None:
            if record.indicator in self.catalog:
                raise Rejected(f"indicator {record.indicator!r} is derived (a ratio) and cannot be reported")
            raise Rejected(f"unknown indicator {record.indicator!r}")
        unit_id = self._unit_ids.get(str(record.unit_code))
        if unit_id is None:
            raise Rejected(f"unknown unit code {record.unit_code!r}")
        level = self._unit_levels[unit_id]
        if level != indicator.level:
            raise Rejected(f"{record.indicator} is reported per {indicator.level.name.lower()}, "
                           f"but {record.unit_code} is a {Level(level).name.lower()}")
        if level not in self.levels:
            raise Rejected(f"this connector is configured for {', '.join(l.name.lower() for l in self.levels)}, "
                           f"not {Level(level).name.lower()}")
        value = _number(record.value)
        if indicator.rollup == RollupRule.SUM and value < 0:
            raise Rejected(f"negative count {value} for {record.indicator}")
        observed_at = self.timestamp(record.observed_at)
        if observed_at > self.now + FUTURE_TOLERANCE_SECONDS:
            raise Rejected(f"timestamp {record.observed_at} is in the future "
                           f"(more than {FUTURE_TOLERANCE_SECONDS // 60} min ahead of the server clock)")
        return {"unit_id": unit_id, "indicator_id": self.indicator_ids[indicator.key],
                "observed_at": observed_at, "value": value}

    def timestamp(self, raw) -> int:
        """Epoch seconds; text or datetimes without a zone are read in the configured zone."""
        if isinstance(raw, bool):
            raise Rejected(f"timestamp {raw!r} is not a time")
        if isinstance(raw, (int, float)):
            if not math.isfinite(raw):
                raise Rejected(f"timestamp {raw!r} is not a time")
            return int(raw)
        if isinstance(raw, str):
            text = raw.strip().replace("Z", "+00:00")
            try:
                raw = datetime.fromisoformat(text)
            except ValueError:
                raise Rejected(f"timestamp {raw!r} is not ISO 8601 (e.g. 2026-11-26T10:00:00+08:00)") from None
        if isinstance(raw, datetime):
            if raw.tzinfo is None:
                raw = raw.replace(tzinfo=self.zone)
            return int(raw.astimezone(timezone.utc).timestamp())
        raise Rejected(f"timestamp {raw!r} is not a time")


def _number(raw) -> float:
    if isinstance(raw, bool) or raw is None:
        raise Rejected(f"value {raw!r} is not a number")
    try:
        value = float(raw.strip()) if isinstance(raw, str) else float(raw)
    except (TypeError, ValueError):
        raise Rejected(f"value {raw!r} is not a number") from None
    if not math.isfinite(value):
        raise Rejected(f"value {raw!r} is not a finite number")
    return value
