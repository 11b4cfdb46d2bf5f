"""Which source field is the unit code, the indicator, the time and the value: one mapping for every source type.

A source row says one of two things:
- long form, one value per row: `indicator` and `value` name the fields holding the indicator and the value;
- wide form, several indicators per row: `values` maps catalog keys to the fields holding their values.
`indicator_names` translates the source's own indicator names to catalog keys ("热线投诉" → hotline_complaints).
Field names may be dotted paths into nested JSON (`properties.code`, `readings.0.value`).

Rows missing a mapped field are not dropped: they become records carrying a `problem`, which the runner
quarantines with the row as it came.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, Iterator

import numpy as np
import pandas as pd

from connectors.base import Record, RecordBatch

MISSING = object()  # what `lookup` returns for a path that is not there


class PageSources:
    """The sources of rows gathered from several payloads (pages): row `i` is "<payload>#<its place in it>",
    written out only when asked for (a rejected row), not a million strings per run."""

    def __init__(self):
        self._starts: list[int] = []
        self._payloads: list[str] = []
        self._size = 0

    def add(self, payload: str, rows: int) -> None:
        self._starts.append(self._size)
        self._payloads.append(payload)
        self._size += rows

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, position: int) -> str:
        if not 0 <= position < self._size:
            raise IndexError(position)
        page = bisect_right(self._starts, position) - 1
        return f"{self._payloads[page]}#{position - self._starts[page]}"


def source_at(source: "str | list[str] | PageSources | None", position: int) -> str | None:
    """The source of the row at `position` of a batch: one payload's, or each row's own."""
    if isinstance(source, (list, PageSources)):
        return source[position]
    return f"{source}#{position}" if source else None


class MappingError(ValueError):
    """The mapping in connectors.yaml is unusable; the message says what to write instead."""


@dataclass(frozen=True)
class FieldMapping:
    unit_code: str
    observed_at: str
    indicator: str | None = None
    value: str | None = None
    values: dict[str, str] = field(default_factory=dict)
    indicator_names: dict[str, str] = field(default_factory=dict)

    FIELDS = ("unit_code", "observed_at", "indicator", "value", "values", "indicator_names")
    EXAMPLE = "{unit_code: code, observed_at: time, indicator: metric, value: value}"

    @classmethod
    def parse(cls, raw) -> "FieldMapping":
        if not isinstance(raw, dict):
            raise MappingError(f"mapping must be a mapping of source fields, e.g. {cls.EXAMPLE}")
        unknown = sorted(set(raw) - set(cls.FIELDS))
        if unknown:
            raise MappingError(f"mapping: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(cls.FIELDS)}")
        for required in ("unit_code", "observed_at"):
            if not isinstance(raw.get(required), str) or not raw[required].strip():
                raise MappingError(f"mapping: '{required}' must name the source field holding it, e.g. {cls.EXAMPLE}")
        long_form = raw.get("indicator") is not None or raw.get("value") is not None
        wide_form = bool(raw.get("values"))
        if long_form == wide_form:
            raise MappingError("mapping: give either 'indicator' and 'value' (one value per row) or 'values' "
                               "(catalog key → field, several per row), not both and not neither")
        if long_form and not (isinstance(raw.get("indicator"), str) and isinstance(raw.get("value"), str)):
            raise MappingError("mapping: 'indicator' and 'value' must both name source fields")
        values = raw.get("values") or {}
        names = raw.get("indicator_names") or {}
        for label, table in (("values", values), ("indicator_names", names)):
            if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                      for k, v in table.items()):
                raise MappingError(f"mapping: '{label}' must map names to names")
        return cls(raw["unit_code"], raw["observed_at"], raw.get("indicator"), raw.get("value"), dict(values),
                   {str(k): v for k, v in names.items()})

    def check_catalog(self, catalog_keys) -> None:
        """Every catalog key this mapping names must exist (a typo would quarantine every record)."""
        named = set(self.values) | set(self.indicator_names.values())
        unknown = sorted(named - set(catalog_keys))
        if unknown:
            raise MappingError(f"mapping names unknown indicator(s) {', '.join(unknown)}; "
                               f"the catalog has {', '.join(sorted(catalog_keys))}")

    # -- rows as dicts (JSON) --------------------------------------------------------------------------

    def records(self, row: Any, source: str | None = None) -> Iterator[Record]:
        """The records in one source row (a dict, possibly nested)."""
        unit = lookup(row, self.unit_code)
        observed = lookup(row, self.observed_at)
        problems = [name for name, found in ((self.unit_code, unit), (self.observed_at, observed))
                    if found is MISSING]
        if self.values:
            for key, path in self.values.items():
                value = lookup(row, path)
                missing = problems + ([path] if value is MISSING else [])
                yield self._record(unit, key, observed, value, row, source, missing)
            return
        indicator, value = lookup(row, self.indicator), lookup(row, self.value)
        missing = problems + [p for p, found in ((self.indicator, indicator), (self.value, value)) if found is MISSING]
        name = None if indicator is MISSING else self.indicator_names.get(str(indicator), indicator)
        yield self._record(unit, name, observed, value, row, source, missing)

    def batch(self, rows: list, source: str | list[str] | PageSources | None = None) -> Iterator[Record | RecordBatch]:
        """The records of many rows (a page of JSON) as one columnar batch, validated with array operations.

        The batch's index is each value's row position and `raw` the rows themselves, so a rejected record is
        quarantined with its row and "source#position" (or `source[position]` when rows from several payloads
        come with one source each). A row missing a mapped field comes out as its own record with the problem
        named, as `records` gives it.
        """
        def column(path: str) -> tuple[list, bool]:
            """The values at `path` of every row, and whether some row lacks it (its value is then MISSING)."""
            if "." not in path:
                # A flat field name (the common case): one C-level pass that stops at the first row without it
                # (KeyError) or that is not an object (TypeError); those few columns take the careful path.
                try:
                    return list(map(itemgetter(path), rows)), False
                except (KeyError, TypeError, AttributeError):
                    pass
            values = [lookup(row, path) for row in rows]
            return values, any(value is MISSING for value in values)

        units, times = column(self.unit_code), column(self.observed_at)
        if self.values:
            pairs = [(key, None, column(path)) for key, path in self.values.items()]
        else:
            pairs = [(None, column(self.indicator), column(self.value))]
        columns = (units, times, *(c for _, i, c in pairs for c in (i, c) if c is not None))
        missing = {position for values, lacking in columns if lacking
                   for position, value in enumerate(values) if value is MISSING}
        for position in sorted(missing):
            where = source_at(source, position)
            yield from self.records(rows[position], source=where)

        def objects(found: tuple[list, bool]) -> np.ndarray:
            # Through pandas: numpy would turn a column of lists (a nested value) into a 2-D array.
            values = pd.Series(found[0], dtype=object).to_numpy()
            return values[positions] if missing else values

        if missing:
            keep = np.ones(len(rows), dtype=bool)
            keep[list(missing)] = False
            positions = np.flatnonzero(keep)
        else:
            positions = np.arange(len(rows))
        if not len(positions):
            return
        parts = []
        for key, indicators, values in pairs:
            if indicators is None:
                indicator = np.full(len(positions), key, dtype=object)
            else:
                indicator = objects(indicators)
                if self.indicator_names:
                    indicator = np.array([self.indicator_names.get(str(i), i) for i in indicator], dtype=object)
            parts.append(pd.DataFrame({"unit_code": objects(units), "indicator": indicator,
                                       "observed_at": objects(times), "value": objects(values)},
                                      index=pd.Index(positions)))
        frame = parts[0] if len(parts) == 1 else pd.concat(parts)
        yield RecordBatch(frame=frame, raw=rows, source=source)

    @staticmethod
    def _record(unit, indicator, observed, value, row, source, missing) -> Record:
        def plain(found):
            return None if found is MISSING else found
        problem = f"missing field {', '.join(repr(m) for m in missing)}" if missing else None
        return Record(unit_code=plain(unit), indicator=plain(indicator), observed_at=plain(observed),
                      value=plain(value), raw=row, problem=problem, source=source)

    # -- tables (CSV, spreadsheets, query results) -----------------------------------------------------

    def columns(self) -> list[str]:
        return [self.unit_code, self.observed_at,
                *([self.indicator, self.value] if not self.values else self.values.values())]

    def missing_columns(self, table: pd.DataFrame) -> list[str]:
        return [name for name in self.columns() if name not in table.columns]

    def frame(self, table: pd.DataFrame) -> pd.DataFrame:
        """A table's rows as the runner's columns (unit_code, indicator, observed_at, value), wide rows
        unpivoted; the index keeps each value's source row. The caller checks `missing_columns` first."""
        if self.values:
            parts = [pd.DataFrame({"unit_code": table[self.unit_code], "indicator": key,
                                   "observed_at": table[self.observed_at], "value": table[column]})
                     for key, column in self.values.items()]
            return pd.concat(parts) if parts else pd.DataFrame(columns=["unit_code", "indicator", "observed_at",
                                                                        "value"])
        indicator = table[self.indicator]
        if self.indicator_names:
            indicator = indicator.map(lambda name: self.indicator_names.get(str(name), name))
        return pd.DataFrame({"unit_code": table[self.unit_code], "indicator": indicator,
                             "observed_at": table[self.observed_at], "value": table[self.value]})


def lookup(row: Any, path: str):
    """The value at a dotted path (`a.b.0.c`) in nested dicts and lists; MISSING when any step is absent."""
    current = row
    if isinstance(current, dict) and path in current:
        return current[path]  # a flat field whose name contains dots
    for step in path.split("."):
        if isinstance(current, dict):
            if step not in current:
                return MISSING
            current = current[step]
        elif isinstance(current, list):
            try:
                current = current[int(step)]
            except (ValueError, IndexError):
                return MISSING
        else:
            return MISSING
    return current
