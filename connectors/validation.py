"""Record validation: each check either yields a clean row or the reason the record is quarantined."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from cityops.catalog import Catalog, RollupRule
from cityops.hierarchy import Level
from cityops.tree import UnitTree
from connectors.base import Record, RecordBatch
from connectors.mapping import source_at

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

    def validate_batch(self, batch: RecordBatch) -> tuple[pd.DataFrame, list[tuple[str, Record]]]:
        """`validate_frame` for a batch: quarantined records keep the source row and payload they came from."""
        return self.validate_frame(batch.frame, batch.raw, batch.source)

    def validate_frame(self, frame: pd.DataFrame, raw: pd.DataFrame | list | None = None,
                       source: str | list[str] | None = None) -> tuple[pd.DataFrame, list[tuple[str, Record]]]:
        """Validate a columnar batch: (rows for storage, [(reason, record)] for quarantine).

        The common case — every check passes — is decided with array operations. Rows that fail any
        check go through `validate` one by one, so the reasons (and the final word) come from the same
        code as for single records.
        """
        reported = self._reported
        # A batch repeats a few thousand codes and a dozen keys: look each distinct one up once.
        code_index, codes = _factorized_texts(frame["unit_code"])
        key_index, keys = _factorized_texts(frame["indicator"])
        distinct_ids = np.array([self._unit_ids.get(code, -1) for code in codes], dtype=np.int64)
        distinct_levels = np.array([self._unit_levels.get(ident, -1) for ident in distinct_ids], dtype=np.int64)
        known = {key: reported[key] for key in keys if key in reported}
        unit_ids = pd.Series(distinct_ids[code_index], index=frame.index).where(lambda s: s >= 0)
        unit_levels = pd.Series(distinct_levels[code_index], index=frame.index)
        indicator_ids = pd.Series(np.array([self.indicator_ids[k] if k in known else -1 for k in keys],
                                           dtype=np.int64)[key_index], index=frame.index).where(lambda s: s >= 0)
        indicator_levels = pd.Series(np.array([int(known[k].level) if k in known else -2 for k in keys],
                                              dtype=np.int64)[key_index], index=frame.index)
        is_sum = pd.Series(np.array([k in known and known[k].rollup == RollupRule.SUM for k in keys],
                                    dtype=bool)[key_index], index=frame.index)
        values = _numbers(frame["value"])
        times = frame["observed_at"]
        if pd.api.types.is_integer_dtype(times):
            observed = times.astype("int64")
            timed = pd.Series(True, index=frame.index)
        elif pd.api.types.is_object_dtype(times) or pd.api.types.is_string_dtype(times):
            observed, timed = _iso_times(times, self.zone)
        else:
            observed = pd.Series(0, index=frame.index, dtype="int64")
            timed = pd.Series(False, index=frame.index)  # datetimes and floats take the careful path
        ok = (unit_ids.notna() & indicator_ids.notna() & (unit_levels == indicator_levels)
              & unit_levels.isin([int(level) for level in self.levels]) & np.isfinite(values)
              & ~(is_sum & (values < 0)) & timed & (observed <= self.now + FUTURE_TOLERANCE_SECONDS))
        valid = pd.DataFrame({"unit_id": unit_ids[ok].astype("int64"), "indicator_id": indicator_ids[ok].astype("int64"),
                              "observed_at": observed[ok], "value": values[ok]})
        rescued, rejected = [], []
        failing = frame.loc[~ok, list(RecordBatch.COLUMNS)]
        for position, row in zip(failing.index, failing.itertuples(index=False, name=None)):
            where = source_at(source, position)
            record = Record(*row, source=where)
            try:
                rescued.append(self.validate(record))
            except Rejected as reason:
                # The source row is looked up only for the rejected few: for every row it would cost more than
                # validating it.
                original = _source_row(raw, position) if raw is not None else dict(zip(RecordBatch.COLUMNS, row))
                rejected.append((str(reason), dataclasses.replace(record, raw=original)))
        if rescued:
            valid = pd.concat([valid, pd.DataFrame(rescued)], ignore_index=True)
        return valid, rejected

    def validate(self, record: Record) -> dict:
        """A row for storage {unit_id, indicator_id, observed_at, value}, or raise Rejected(reason)."""
        if record.problem:
            raise Rejected(record.problem)
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
            try:
                return int(raw.astimezone(timezone.utc).timestamp())
            except (OverflowError, ValueError, OSError):  # year 1 or 9999 shifted past the calendar's ends
                raise Rejected(f"timestamp {raw.isoformat()} is out of range") from None
        raise Rejected(f"timestamp {raw!r} is not a time")


def _factorized_texts(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """(position of each value's text among the distinct texts, the distinct texts), each text as str() says."""
    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        # Strings already: hash them as they are rather than converting every one first.
        index, distinct = pd.factorize(values, use_na_sentinel=False)  # None is text 'None', as str() says
        return index, [str(value) for value in distinct]
    # Anything else goes through str() first: factorizing 1, 1.0 and True directly would take them as one value.
    # (pandas keeps None as a missing value through astype(str): it gets a code of its own all the same.)
    index, distinct = pd.factorize(values.astype(str), use_na_sentinel=False)
    return index, [str(value) for value in distinct]


def _numbers(values: pd.Series) -> pd.Series:
    """Values as floats where they plainly are numbers (numbers, or texts such as " 12.5 "); NaN otherwise, which
    sends the row to `validate` for its reason. Booleans are never numbers, not even as text."""
    if pd.api.types.is_bool_dtype(values):
        return pd.Series(np.nan, index=values.index)
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    kind = pd.api.types.infer_dtype(values, skipna=True)  # one C pass; the per-value map only for mixtures
    if kind in ("integer", "floating", "mixed-integer-float", "decimal"):
        return pd.to_numeric(values, errors="coerce").astype(float)
    if kind != "string":
        values = values.map(lambda v: v if isinstance(v, str) else None if isinstance(v, bool) else v)
    return pd.to_numeric(values.astype("string").str.strip(), errors="coerce").astype(float)


# An offset after a time of day ("…T10:00+08:00", "… 10:00Z"); a date alone ends in "-26", which is no offset.
_ZONED = r"[T\s]\d{1,2}:\d{2}[^+\-zZ]*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"
_EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


def _iso_times(times: pd.Series, zone: ZoneInfo) -> tuple[pd.Series, pd.Series]:
    """ISO-8601 texts as epoch seconds, with array operations: (seconds, parsed). Texts with an offset are read
    as they say, zone-less ones in the configured zone, as `timestamp` does; anything else — other types, other
    formats, a local time that a clock change makes ambiguous or skip — is left unparsed for `timestamp`."""
    if pd.api.types.infer_dtype(times, skipna=True) != "string":
        times = times.map(lambda v: v if isinstance(v, str) else None)
    # A batch repeats a few time texts (every unit reports the same hours): parse each distinct one once.
    codes, distinct = pd.factorize(times)
    if not len(distinct):  # no text at all
        return pd.Series(0, index=times.index, dtype="int64"), pd.Series(False, index=times.index)
    if len(distinct) < len(times):
        seconds, ok = _distinct_iso_times(pd.Series(distinct, dtype=object), zone)
        known = codes >= 0
        at = np.where(known, codes, 0)
        return (pd.Series(np.where(known, seconds.to_numpy()[at], 0), index=times.index, dtype="int64"),
                pd.Series(known & ok.to_numpy()[at], index=times.index))
    return _distinct_iso_times(times, zone)


def _distinct_iso_times(times: pd.Series, zone: ZoneInfo) -> tuple[pd.Series, pd.Series]:
    texts = times.astype("string").str.strip()
    # Years pandas cannot hold (before 1678, after 2261) go to `timestamp`, which names them out of range.
    years = pd.to_numeric(texts.str.slice(0, 4), errors="coerce")
    texts = texts.where(years.between(1700, 2200))
    zoned = texts.str.contains(_ZONED, regex=True, na=False)
    parsed = pd.Series(pd.NaT, index=times.index, dtype="datetime64[ns, UTC]")
    if zoned.any():
        parsed[zoned] = pd.to_datetime(texts[zoned], format="ISO8601", utc=True, errors="coerce")
    local = texts.notna() & ~zoned
    if local.any():
        naive = pd.to_datetime(texts[local], format="ISO8601", errors="coerce")
        parsed[local] = naive.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    ok = parsed.notna()
    seconds = pd.Series(0, index=times.index, dtype="int64")
    seconds[ok] = ((parsed[ok] - _EPOCH) // pd.Timedelta(seconds=1)).astype("int64")
    return seconds, ok


def _source_row(raw, position) -> dict:
    """The source row at an index position, as plain values (one wide row may stand for several records).
    `raw` is a table (files, queries) or the list of rows itself (JSON pages)."""
    if not isinstance(raw, pd.DataFrame):
        return raw[position]
    row = raw.loc[position]
    if isinstance(row, pd.DataFrame):
        row = row.iloc[0]
    return {str(k): (None if (isinstance(v, float) and v != v) else v) for k, v in row.items()}


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
