"""The indicator catalog: what is measured, where, in which unit, how it rolls up and when it is bad.

Loaded from YAML and validated up front: one error names the file, the entry and the fix, and nothing
half-loads.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cityops.config_files import yaml_entries
from cityops.hierarchy import Level


class CatalogError(ValueError):
    """The catalog cannot be used; the message names the file, the entry and what to change."""


class RollupRule(StrEnum):
    SUM = "sum"
    MEAN = "mean"
    POPULATION_WEIGHTED_MEAN = "population_weighted_mean"
    MAX = "max"
    RATIO = "ratio"  # sum(numerator) / sum(denominator) × scale, at every level


class Direction(StrEnum):
    HIGHER_IS_WORSE = "higher_is_worse"
    HIGHER_IS_BETTER = "higher_is_better"


@dataclass(frozen=True)
class Thresholds:
    warning: float
    critical: float


# A wall's KPI card has room for about this many characters of a name beside its alert badge and change.
SHORT_NAME_MAX = 16


@dataclass(frozen=True)
class Indicator:
    key: str
    name_zh: str
    name_en: str
    unit_of_measure: str
    level: Level
    rollup: RollupRule
    direction: Direction
    thresholds: dict[Level, Thresholds]
    interval_seconds: int
    decimals: int = 0
    numerator: str | None = None
    denominator: str | None = None
    scale: float = 1.0
    description_zh: str = ""
    description_en: str = ""
    # False for an indicator kept for checks rather than for reading, e.g. a district's own count of what its
    # communities also report: a second card with nearly the same number would only clutter the KPI panel.
    kpi: bool = True
    # The unit of measure in English where it is written otherwise (件/时: cases/h); "" where it reads the same.
    unit_en: str = ""
    # What a wall's KPI card calls it, where the name is longer than a card has room for beside its badges
    # (网格在办, Open incidents); "" where the name itself is short enough.
    short_zh: str = ""
    short_en: str = ""

    @property
    def is_derived(self) -> bool:
        return self.rollup == RollupRule.RATIO

    def thresholds_at(self, level: Level) -> Thresholds | None:
        return self.thresholds.get(level)

    def name(self, language: str) -> str:
        return self.name_zh if language == "zh" else self.name_en

    def short_name(self, language: str) -> str:
        """The name where room is short (a wall's KPI card): its short form, else the name."""
        short = self.short_zh if language == "zh" else self.short_en
        return short or self.name(language)

    def measure(self, language: str) -> str:
        """The unit of measure as written beside a number in `language`."""
        return self.unit_en if language == "en" and self.unit_en else self.unit_of_measure

    def measured_at_or_above(self, level: Level) -> bool:
        """True when a unit at `level` has a value: the measured level itself or an ancestor of it."""
        return level <= self.level


@dataclass(frozen=True)
class Catalog:
    indicators: tuple[Indicator, ...]
    source: Path

    def __iter__(self):
        return iter(self.indicators)

    def __len__(self) -> int:
        return len(self.indicators)

    def __getitem__(self, key: str) -> Indicator:
        for indicator in self.indicators:
            if indicator.key == key:
                return indicator
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return any(indicator.key == key for indicator in self.indicators)

    @property
    def keys(self) -> list[str]:
        return [indicator.key for indicator in self.indicators]

    def reported(self) -> list[Indicator]:
        """Indicators that sources report (as opposed to ratios derived from two of them)."""
        return [indicator for indicator in self.indicators if not indicator.is_derived]

    def kpis(self) -> list[Indicator]:
        """Indicators shown as KPI cards, in catalog order (those with `kpi: false` are left off the panel)."""
        return [indicator for indicator in self.indicators if indicator.kpi]

    def derived_from(self, key: str) -> list[Indicator]:
        return [i for i in self.indicators if i.is_derived and key in (i.numerator, i.denominator)]


_DURATION = re.compile(r"^\s*(\d+)\s*(s|sec|m|min|h|hour|hours|d|day|days)\s*$")
_DURATION_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "hours": 3600,
                     "d": 86400, "day": 86400, "days": 86400}


def parse_duration(text: str | int) -> int:
    """'5m', '1h', '1d' or a number of seconds → seconds."""
    if isinstance(text, int) and text > 0:
        return text
    match = _DURATION.match(str(text))
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration: write e.g. 5m, 1h or 1d")
    return int(match.group(1)) * _DURATION_SECONDS[match.group(2)]


_KEY = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
_REQUIRED = ("key", "name_zh", "name_en", "unit", "level", "rollup", "direction", "thresholds", "interval")


def load_catalog(path: str | Path) -> Catalog:
    path = Path(path)
    entries = yaml_entries(path, "indicators", CatalogError, "set ONESCREEN_CATALOG or restore data/indicators.yaml")
    indicators: list[Indicator] = []
    seen: set[str] = set()
    for position, entry in enumerate(entries, start=1):
        where = f"{path}: indicator #{position}"
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            where = f"{path}: indicator '{entry['key']}' (#{position})"
        indicator = _parse_indicator(entry, where)
        if indicator.key in seen:
            raise CatalogError(f"{where}: duplicate key; every indicator key must be unique")
        seen.add(indicator.key)
        indicators.append(indicator)
    catalog = Catalog(tuple(indicators), path)
    _check_ratio_references(catalog)
    return catalog


def _parse_indicator(entry: object, where: str) -> Indicator:
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: expected a mapping with {', '.join(_REQUIRED)}")
    missing = [name for name in _REQUIRED if name not in entry]
    if missing:
        raise CatalogError(f"{where}: missing {', '.join(missing)}")
    known = set(_REQUIRED) | {"decimals", "numerator", "denominator", "scale", "description_zh", "description_en",
                              "kpi", "unit_en", "short_zh", "short_en"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise CatalogError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
    key = entry["key"]
    if not isinstance(key, str) or not _KEY.match(key):
        raise CatalogError(f"{where}: key {key!r} must be lower_snake_case letters, digits and _")
    for name in ("name_zh", "name_en"):
        if not isinstance(entry[name], str) or not entry[name].strip():
            raise CatalogError(f"{where}: {name} must be a non-empty text")
    try:
        level = Level.parse(entry["level"])
    except ValueError as error:
        raise CatalogError(f"{where}: level: {error}") from None
    if level == Level.CITY:
        raise CatalogError(f"{where}: level city has nothing to roll up from; use district, street or community")
    rollup = _choice(RollupRule, entry["rollup"], where, "rollup")
    direction = _choice(Direction, entry["direction"], where, "direction")
    try:
        interval = parse_duration(entry["interval"])
    except ValueError as error:
        raise CatalogError(f"{where}: interval: {error}") from None
    thresholds = _parse_thresholds(entry["thresholds"], level, rollup, direction, where)
    numerator, denominator = entry.get("numerator"), entry.get("denominator")
    if rollup == RollupRule.RATIO and not (numerator and denominator):
        raise CatalogError(f"{where}: rollup ratio needs 'numerator' and 'denominator' indicator keys")
    if rollup != RollupRule.RATIO and (numerator or denominator):
        raise CatalogError(f"{where}: 'numerator'/'denominator' only apply to rollup: ratio")
    decimals = entry.get("decimals", 0)
    if not isinstance(decimals, int) or not 0 <= decimals <= 4:
        raise CatalogError(f"{where}: decimals must be a whole number from 0 to 4")
    scale = entry.get("scale", 1.0)
    if not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise CatalogError(f"{where}: scale must be a positive number (100 turns a ratio into a percentage)")
    unit_en = entry.get("unit_en", "")
    if not isinstance(unit_en, str) or (("unit_en" in entry) and not unit_en.strip()):
        raise CatalogError(f"{where}: unit_en must be the unit of measure written in English (e.g. cases/h), not "
                           f"{unit_en!r}; leave it out where the unit reads the same in both languages")
    shorts = {}
    for name in ("short_zh", "short_en"):
        short = entry.get(name, "")
        if not isinstance(short, str) or (name in entry and not short.strip()) or len(short.strip()) > SHORT_NAME_MAX:
            raise CatalogError(f"{where}: {name} must be the name in at most {SHORT_NAME_MAX} characters, as a wall's "
                               f"KPI card shows it (e.g. {'网格在办' if name == 'short_zh' else 'Open incidents'}), "
                               f"not {short!r}; leave it out where the name is short enough")
        shorts[name] = short.strip()
    kpi = entry.get("kpi", True)
    if not isinstance(kpi, bool):
        raise CatalogError(f"{where}: kpi must be true or false (false leaves the indicator off the KPI panel), "
                           f"not {kpi!r}")
    return Indicator(
        key=key, name_zh=entry["name_zh"].strip(), name_en=entry["name_en"].strip(),
        unit_of_measure=str(entry["unit"]), level=level, rollup=rollup, direction=direction,
        thresholds=thresholds, interval_seconds=interval, decimals=decimals,
        numerator=numerator, denominator=denominator, scale=float(scale),
        description_zh=str(entry.get("description_zh", "")), description_en=str(entry.get("description_en", "")),
        kpi=kpi, unit_en=unit_en.strip(), **shorts,
    )


def _choice(enum, value, where: str, field_name: str):
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise CatalogError(f"{where}: {field_name} {value!r} is not one of: {allowed}") from None


def _parse_thresholds(raw, level: Level, rollup: RollupRule, direction: Direction, where: str):
    """Either one {warning, critical} pair for every level, or one pair per level for extensive measures.

    A sum grows with the area it covers, so a single pair cannot be right for a community and a district:
    sums must give a pair for each level from the measured one up to the city.
    """
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: thresholds must be a mapping")
    levels = [lv for lv in Level if lv <= level]
    if "warning" in raw or "critical" in raw:
        if rollup == RollupRule.SUM:
            names = ", ".join(lv.name.lower() for lv in levels)
            raise CatalogError(f"{where}: a sum grows with the area it covers; give thresholds per level ({names})")
        pair = _threshold_pair(raw, direction, f"{where}: thresholds")
        return {lv: pair for lv in levels}
    result: dict[Level, Thresholds] = {}
    for name, pair in raw.items():
        try:
            lv = Level.parse(name)
        except ValueError as error:
            raise CatalogError(f"{where}: thresholds: {error}") from None
        if lv > level:
            raise CatalogError(f"{where}: thresholds for {name} but the indicator is measured at {level.name.lower()}")
        result[lv] = _threshold_pair(pair, direction, f"{where}: thresholds.{name}")
    absent = [lv.name.lower() for lv in levels if lv not in result]
    if absent:
        raise CatalogError(f"{where}: thresholds missing for level(s) {', '.join(absent)}")
    return result


def _threshold_pair(raw, direction: Direction, where: str) -> Thresholds:
    if not isinstance(raw, dict) or set(raw) != {"warning", "critical"}:
        raise CatalogError(f"{where}: give exactly 'warning' and 'critical'")
    warning, critical = raw["warning"], raw["critical"]
    for name, value in (("warning", warning), ("critical", critical)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise CatalogError(f"{where}: {name} must be a number, got {value!r}")
    if direction == Direction.HIGHER_IS_WORSE and not warning < critical:
        raise CatalogError(f"{where}: higher is worse, so warning ({warning}) must be below critical ({critical})")
    if direction == Direction.HIGHER_IS_BETTER and not warning > critical:
        raise CatalogError(f"{where}: higher is better, so warning ({warning}) must be above critical ({critical})")
    return Thresholds(float(warning), float(critical))


def _check_ratio_references(catalog: Catalog) -> None:
    for indicator in catalog:
        if not indicator.is_derived:
            continue
        where = f"{catalog.source}: indicator '{indicator.key}'"
        for role in ("numerator", "denominator"):
            ref = getattr(indicator, role)
            if ref not in catalog:
                raise CatalogError(f"{where}: {role} '{ref}' is not an indicator in this catalog")
            other = catalog[ref]
            if other.is_derived:
                raise CatalogError(f"{where}: {role} '{ref}' is itself a ratio; use reported indicators")
            if other.level != indicator.level:
                raise CatalogError(f"{where}: {role} '{ref}' is measured at {other.level.name.lower()}, "
                                   f"the ratio at {indicator.level.name.lower()}; they must match")
            if other.rollup != RollupRule.SUM:
                raise CatalogError(f"{where}: {role} '{ref}' rolls up by {other.rollup}; a ratio of sums needs sums")
