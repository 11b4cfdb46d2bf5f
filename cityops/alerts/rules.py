"""Alert rules from YAML (data/alerts.yaml), validated up front: an error names the file, the rule and the fix,
and nothing half-loads.

    rules:
      - name: over-threshold             # unique; alerts are keyed by it
        description_zh: …                # what it watches, for people (description_en, or description)
        type: threshold                  # threshold | rate_of_change | no_data | anomaly | consistency
        indicators: all                  # or a list of catalog keys (or `indicator: key`)
        except: [waterlogging_depth]     # with `all`: indicators judged by a rule of their own
        levels: [district, street, community]   # default: every level the indicator has thresholds at
        for: 30m                         # a breach must hold this long before it fires (default 0: at once)
        keep_firing_for: 1h              # and must be gone this long before the alert resolves (default 0)

    threshold:      from_severity (warning | critical; default warning): with critical, only critical breaches
                    alert (for levels with many units, where warnings are the map's to show)
    rate_of_change: compare (previous_period | same_hour_last_week), warning_pct, critical_pct, worse (up | down |
                    either; default: the indicator's bad direction), min_base (default 1: smaller bases are
                    not judged)
    no_data:        critical_after (intervals of silence, default 4); warning comes after 1.25 intervals, the
                    screen's stale mark. Instead of indicators, `sources: all` (or a list of connector names)
                    watches the sources themselves: silent since their last successful run, against their
                    schedule's interval (one alert per source, at the city)
    anomaly:        weeks (of same-hour history, default 4), warning_z (default 3.5), critical_z (default 5),
                    worse, min_samples (default 3)
    consistency:    reported (the indicator a unit reports itself, e.g. a district's own total), warning_pct,
                    critical_pct, min_base: compared with `indicator` summed from its children

Beside `rules:`, the file may set the people's side of an alert (`load_alert_config`):

    deadlines:                     # from when an alert fires: acknowledge or assign it by `dispatch`,
      critical: {dispatch: 15m, handle: 4h}   # close it by `handle`; past either it shows as overdue
      warning: {dispatch: 1h, handle: 1d}
    auto_close_after: 12h          # a resolved alert nobody acknowledged closes itself after this
    notifications: ...             # webhooks and e-mail (cityops/alerts/notify.py)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import yaml

from cityops.alerts.judgements import WEEK, Worse
from cityops.catalog import Catalog, Indicator, parse_duration
from cityops.config_files import yaml_entries
from cityops.hierarchy import Level


class RuleError(ValueError):
    """The rules file cannot be used; the message names the file, the rule and what to change."""


class RuleType(StrEnum):
    THRESHOLD = "threshold"
    RATE_OF_CHANGE = "rate_of_change"
    NO_DATA = "no_data"
    ANOMALY = "anomaly"
    CONSISTENCY = "consistency"


COMPARE_OFFSETS = {"previous_period": None, "same_hour_last_week": WEEK}  # None: the indicator's interval

# Per type: the options it takes, with their defaults (None: required).
_OPTIONS: dict[RuleType, dict[str, object]] = {
    RuleType.THRESHOLD: {"from_severity": "warning"},
    RuleType.RATE_OF_CHANGE: {"compare": "previous_period", "warning_pct": None, "critical_pct": None,
                              "worse": None, "min_base": 1.0},
    RuleType.NO_DATA: {"critical_after": 4.0},
    RuleType.ANOMALY: {"weeks": 4, "warning_z": 3.5, "critical_z": 5.0, "worse": None, "min_samples": 3},
    RuleType.CONSISTENCY: {"reported": None, "warning_pct": None, "critical_pct": None, "min_base": 1.0},
}
_COMMON = {"name", "type", "indicator", "indicators", "sources", "except", "levels", "for", "keep_firing_for",
           "description", "description_zh", "description_en"}


@dataclass(frozen=True)
class Rule:
    name: str
    type: RuleType
    indicators: tuple[str, ...]
    levels: tuple[Level, ...]            # empty: every level the rule applies at for the indicator
    for_seconds: int = 0
    keep_firing_for: int = 0
    options: dict = field(default_factory=dict)
    description: str = ""
    sources: tuple[str, ...] | None = None  # a no_data rule about connectors: their names, or ("all",)
    description_zh: str = ""

    def described(self, language: str) -> str:
        """What the rule watches, for people: in Chinese when the file says it (description_zh), else as given."""
        return self.description_zh if language == "zh" and self.description_zh else self.description

    def watches(self, source: str) -> bool:
        return self.sources is not None and ("all" in self.sources or source in self.sources)

    def levels_for(self, indicator: Indicator) -> tuple[Level, ...]:
        """Where this rule judges `indicator`: the levels asked (or, by default, where it has thresholds, for a
        threshold rule, and where it has values, for the others)."""
        if self.levels:
            return tuple(level for level in self.levels if indicator.measured_at_or_above(level))
        if self.type is RuleType.THRESHOLD:
            return tuple(sorted(indicator.thresholds))
        return tuple(level for level in Level if level != Level.CITY and indicator.measured_at_or_above(level))

    def worse(self, indicator: Indicator) -> Worse:
        given = self.options.get("worse")
        return Worse(given) if given else Worse.of(indicator.direction)


@dataclass(frozen=True)
class Deadline:
    dispatch: int  # seconds from firing to be acknowledged or assigned
    handle: int    # seconds from firing to be closed


DEFAULT_DEADLINES = {"critical": Deadline(15 * 60, 4 * 3600), "warning": Deadline(3600, 86400)}
DEFAULT_AUTO_CLOSE = 12 * 3600


@dataclass(frozen=True)
class AlertConfig:
    """Everything the alerts file says: the rules, the deadlines, and whom to notify."""

    rules: tuple[Rule, ...]
    deadlines: dict[str, Deadline] = field(default_factory=lambda: dict(DEFAULT_DEADLINES))
    auto_close_after: int = DEFAULT_AUTO_CLOSE
    notifications: object = None  # cityops.alerts.notify.NotificationConfig

    def rule(self, name: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.name == name), None)


def load_alert_config(path: str | Path, catalog: Catalog, environ=None, timezone: str = "Asia/Shanghai") -> AlertConfig:
    """The whole alerts file, validated: an error names the file, the entry and the fix."""
    from cityops.alerts.notify import parse_notifications  # notify reports its errors as RuleError

    path = Path(path)
    rules = load_rules(path, catalog)
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    unknown = sorted(set(document) - {"rules", "deadlines", "auto_close_after", "notifications"})
    if unknown:
        raise RuleError(f"{path}: unknown top-level entry {', '.join(unknown)}; the file takes rules, deadlines, "
                        f"auto_close_after and notifications")
    deadlines = dict(DEFAULT_DEADLINES)
    given = document.get("deadlines") or {}
    if not isinstance(given, dict) or set(given) - set(DEFAULT_DEADLINES):
        raise RuleError(f"{path}: deadlines: expected critical: and/or warning:, each with dispatch: and handle: "
                        f"durations (e.g. critical: {{dispatch: 15m, handle: 4h}})")
    for severity, entry in given.items():
        try:
            if not isinstance(entry, dict) or set(entry) != {"dispatch", "handle"}:
                raise ValueError("give both dispatch: and handle:, e.g. {dispatch: 15m, handle: 4h}")
            deadline = Deadline(parse_duration(entry["dispatch"]), parse_duration(entry["handle"]))
            if deadline.dispatch > deadline.handle:
                raise ValueError("dispatch must come before handle")
        except ValueError as error:
            raise RuleError(f"{path}: deadlines: {severity}: {error}") from None
        deadlines[severity] = deadline
    try:
        auto_close = parse_duration(document.get("auto_close_after", DEFAULT_AUTO_CLOSE))
    except ValueError as error:
        raise RuleError(f"{path}: auto_close_after: {error}") from None
    notifications = parse_notifications(document.get("notifications"), path, environ, timezone=timezone)
    return AlertConfig(rules, deadlines, auto_close, notifications)


def load_rules(path: str | Path, catalog: Catalog) -> tuple[Rule, ...]:
    path = Path(path)
    entries = yaml_entries(path, "rules", RuleError, "set ONESCREEN_ALERT_RULES or restore data/alerts.yaml")
    rules, names = [], set()
    for position, entry in enumerate(entries, start=1):
        where = f"{path}: rule #{position}"
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            where = f"{path}: rule '{entry['name']}' (#{position})"
        try:
            rule = _parse(entry, catalog)
        except ValueError as error:
            raise RuleError(f"{where}: {error}") from None
        if rule.name in names:
            raise RuleError(f"{where}: duplicate name; every rule needs its own (alerts are keyed by it)")
        names.add(rule.name)
        rules.append(rule)
    return tuple(rules)


def _parse(entry: object, catalog: Catalog) -> Rule:
    if not isinstance(entry, dict):
        raise ValueError("expected a mapping with name, type and indicator(s)")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("needs a name (text), e.g. name: hotline-over-threshold")
    try:
        kind = RuleType(entry.get("type"))
    except ValueError:
        raise ValueError(f"type must be one of {', '.join(t.value for t in RuleType)}, "
                         f"not {entry.get('type')!r}") from None
    unknown = sorted(set(entry) - _COMMON - set(_OPTIONS[kind]))
    if unknown:
        allowed = ", ".join(sorted(_COMMON | set(_OPTIONS[kind])))
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for a {kind.value} rule; it takes {allowed}")
    sources = _sources(entry, kind)
    indicators = () if sources is not None else _indicators(entry, catalog, kind)
    levels = _levels(entry.get("levels"))
    options = {key: entry.get(key, default) for key, default in _OPTIONS[kind].items()}
    missing = [key for key, value in options.items() if value is None and key != "worse"]
    if missing:
        raise ValueError(f"a {kind.value} rule needs {', '.join(missing)}")
    _check_options(kind, options, catalog)
    durations = {}
    for key in ("for", "keep_firing_for"):
        value = entry.get(key, 0)
        try:
            durations[key] = 0 if value in (0, "0", None) else parse_duration(value)
        except ValueError as error:
            raise ValueError(f"{key}: {error}") from None
    description = str(entry.get("description_en", entry.get("description", "")) or "").strip()
    return Rule(name.strip(), kind, indicators, levels, durations["for"], durations["keep_firing_for"], options,
                description, sources, str(entry.get("description_zh", "") or "").strip())


def _sources(entry: dict, kind: RuleType) -> tuple[str, ...] | None:
    if "sources" not in entry:
        return None
    if kind is not RuleType.NO_DATA:
        raise ValueError("sources: goes with a no_data rule (the silence of a source); other rules judge indicators")
    if "indicator" in entry or "indicators" in entry or "levels" in entry:
        raise ValueError("a rule about sources takes no indicator(s) or levels: it watches the connectors themselves")
    given = entry["sources"]
    names = [given] if isinstance(given, str) else given
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError("sources must be all or a list of connector names (as in the connectors file)")
    return tuple(name.strip() for name in names)


def _indicators(entry: dict, catalog: Catalog, kind: RuleType) -> tuple[str, ...]:
    if ("indicator" in entry) == ("indicators" in entry):
        raise ValueError("give either indicator: <key> or indicators: [<key>, …] (or indicators: all)")
    given = entry.get("indicator", entry.get("indicators"))
    excepted = entry.get("except", [])
    if given == "all":
        if not isinstance(excepted, list) or any(key not in catalog for key in excepted):
            raise ValueError(f"except must list catalog keys, not {excepted!r}")
        keys = [i.key for i in catalog if (kind is not RuleType.THRESHOLD or i.thresholds) and i.key not in excepted]
    elif excepted:
        raise ValueError("except goes with indicators: all")
    else:
        keys = [given] if isinstance(given, str) else given
    if not isinstance(keys, list) or not keys or not all(isinstance(key, str) for key in keys):
        raise ValueError("indicators must be all or a list of catalog keys")
    unknown = [key for key in keys if key not in catalog]
    if unknown:
        raise ValueError(f"unknown indicator(s) {', '.join(unknown)}; the catalog has {', '.join(catalog.keys)}")
    if kind is RuleType.THRESHOLD:
        without = [key for key in keys if not catalog[key].thresholds]
        if without:
            raise ValueError(f"{', '.join(without)} has no thresholds in the catalog to judge against")
    return tuple(keys)


def _levels(given) -> tuple[Level, ...]:
    if given is None:
        return ()
    names = [given] if isinstance(given, str) else given
    by_name = {level.name.lower(): level for level in Level}
    if not isinstance(names, list) or any(str(name).lower() not in by_name for name in names):
        raise ValueError(f"levels must name some of {', '.join(by_name)}, not {given!r}")
    return tuple(by_name[str(name).lower()] for name in names)


def _check_options(kind: RuleType, options: dict, catalog: Catalog) -> None:
    if options.get("from_severity", "warning") not in ("warning", "critical"):
        raise ValueError(f"from_severity must be warning or critical, not {options['from_severity']!r}")
    if kind is RuleType.RATE_OF_CHANGE and options["compare"] not in COMPARE_OFFSETS:
        raise ValueError(f"compare must be {' or '.join(COMPARE_OFFSETS)}, not {options['compare']!r}")
    if options.get("worse") is not None and options["worse"] not in {w.value for w in Worse}:
        raise ValueError(f"worse must be up, down or either, not {options['worse']!r}")
    if kind is RuleType.CONSISTENCY and options["reported"] not in catalog:
        raise ValueError(f"reported names unknown indicator {options['reported']!r}")
    for low, high in (("warning_pct", "critical_pct"), ("warning_z", "critical_z")):
        if low in options:
            try:
                options[low], options[high] = float(options[low]), float(options[high])
            except (TypeError, ValueError):
                raise ValueError(f"{low} and {high} must be numbers") from None
            if not 0 < options[low] <= options[high]:
                raise ValueError(f"{low} must be above 0 and at most {high} ({options[low]:g} > {options[high]:g})")
    for key, minimum in (("weeks", 1), ("min_samples", 1), ("critical_after", 1.25), ("min_base", 0)):
        if key in options:
            value = options[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
                raise ValueError(f"{key} must be a number of at least {minimum:g}, not {value!r}")
