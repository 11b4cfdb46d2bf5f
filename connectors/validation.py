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
        # Time texts already read (text -> epoch seconds, -1 when not read as ISO 8601): a run's batches repeat
        # the same few hours, and reading a text costs more than looking it up.
        object.__setattr__(self, "_time_texts", {})

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
        # A batch repeats a few thousand codes and a dozen keys: look each distinct one up once. Plain numpy
        # arrays from here on: the batch is checked column by column, with no index to align.
        code_index, codes = _factorized_texts(frame["unit_code"])
        key_index, keys = _factorized_texts(frame["indicator"])
        distinct_ids = np.array([self._unit_ids.get(code, -1) for code in codes], dtype=np.int64)
        distinct_levels = np.array([self._unit_levels.get(ident, -1) for ident in distinct_ids], dtype=np.int64)
        known = {key: reported[key] for key in keys if key in reported}
        unit_ids = distinct_ids[code_index]
        unit_levels = distinct_levels[code_index]
        indicator_ids = np.array([self.indicator_ids[k] if k in known else -1 for k in keys],
                                 dtype=np.int64)[key_index]
        indicator_levels = np.array([int(known[k].level) if k in known else -2 for k in keys],
                                    dtype=np.int64)[key_index]
        is_sum = np.array([k in known and known[k].rollup == RollupRule.SUM for k in keys], dtype=bool)[key_index]
        values = _numbers(frame["value"]).to_numpy(dtype=float)
        times = frame["observed_at"]
        if pd.api.types.is_integer_dtype(times):
            observed = times.to_numpy(dtype=np.int64)
            timed = np.ones(len(frame), dtype=bool)
        elif pd.api.types.is_object_dtype(times) or pd.api.types.is_string_dtype(times):
            observed, timed = (column.to_numpy() for column in _iso_times(times, self.zone, self._time_texts))
        else:
            observed = np.zeros(len(frame), dtype=np.int64)
            timed = np.zeros(len(frame), dtype=bool)  # datetimes and floats take the careful path
        with np.errstate(invalid="ignore"):  # NaN values: not finite, which already fails them
            ok = ((unit_ids >= 0) & (indicator_ids >= 0) & (unit_levels == indicator_levels)
                  & np.isin(unit_levels, [int(level) for level in self.levels]) & np.isfinite(values)
                  & ~(is_sum & (values < 0)) & timed & (observed <= self.now + FUTURE_TOLERANCE_SECONDS))
        every = bool(ok.all())
        valid = pd.DataFrame({"unit_id": unit_ids if every else unit_ids[ok],
                              "indicator_id": indicator_ids if every else indicator_ids[ok],
                              "observed_at": observed if every else observed[ok],
                              "value": values if every else values[ok]},
                             index=frame.index if every else frame.index[ok])
        if every:
            return valid, []
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
        # Strings already: hash them as they are rather than converting every one first. As a numpy array, so
        # the distinct ones come back as one (pandas would wrap them in a string array, slow to walk).
        index, distinct = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=False)
        return index, distinct.tolist()
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


def _iso_times(times: pd.Series, zone: ZoneInfo, known: dict[str, int] | None = None
               ) -> tuple[pd.Series, pd.Series]:
    """ISO-8601 texts as epoch seconds, with array operations: (seconds, parsed). Texts with an offset are read
    as they say, zone-less ones in the configured zone, as `timestamp` does; anything else — other types, other
    formats, a local time that a clock change makes ambiguous or skip — is left unparsed for `timestamp`.
    `known` (text -> seconds, -1 for unparsed) holds the texts read by earlier calls in the same zone, and gets
    this call's."""
    if pd.api.types.infer_dtype(times, skipna=True) != "string":
        times = times.map(lambda v: v if isinstance(v, str) else None)
    # A batch repeats a few time texts (every unit reports the same hours): parse each distinct one once.
    codes, distinct = pd.factorize(times.to_numpy(dtype=object))
    if not len(distinct):  # no text at all
        return pd.Series(0, index=times.index, dtype="int64"), pd.Series(False, index=times.index)
    if len(distinct) == len(times) and known is None:
        return _distinct_iso_times(times, zone)
    texts = distinct.tolist()
    if known is None:
        known = {}
    new = [text for text in texts if text not in known]
    if new:
        if len(known) + len(new) > _KNOWN_TIME_TEXTS:
            known.clear()  # a backfill of many distinct times: keep only what this batch needs
        known.update(_new_iso_times(new, zone))
    read = np.array([known[text] for text in texts], dtype=np.int64)
    parsed = read != -1  # -1 marks a text not read (no real source time is 1969-12-31 23:59:59 UTC)
    present = codes >= 0
    at = np.where(present, codes, 0)
    return (pd.Series(np.where(present & parsed[at], read[at], 0), index=times.index, dtype="int64"),
            pd.Series(present & parsed[at], index=times.index))


# Time texts remembered by a validator (a run): far more than a year of hourly times, a few MB at most.
_KNOWN_TIME_TEXTS = 100_000
# Up to this many new texts are read one by one: pandas' fixed cost is milliseconds per call, and a source
# delivering hour after hour brings one or two new time texts per batch.
_FEW_TIME_TEXTS = 16


def _new_iso_times(texts: list[str], zone: ZoneInfo) -> dict[str, int]:
    """Epoch seconds of each text as `_distinct_iso_times` reads it, -1 where it does not. A few texts are read
    with the standard library first: an ISO 8601 text names one instant whichever parser reads it; whatever
    it does not read plainly (a local time a clock change makes ambiguous, a form it refuses) goes to pandas."""
    seconds: dict[str, int] = {}
    if len(texts) <= _FEW_TIME_TEXTS:
        for text in texts:
            moment = _plain_iso_time(text, zone)
            if moment is not None:
                seconds[text] = moment
    rest = [text for text in texts if text not in seconds]
    if rest:
        read, ok = _distinct_iso_times(pd.Series(rest, dtype=object), zone)
        seconds.update(zip(rest, np.where(ok.to_numpy(), read.to_numpy(), -1).tolist()))
    return seconds


def _plain_iso_time(text: str, zone: ZoneInfo) -> int | None:
    """Epoch seconds (rounded down, as pandas does) of an ISO 8601 text of a year pandas holds, with or without
    an offset; None when the standard library does not read it, or the local time it names is ambiguous or
    skipped by a clock change (pandas leaves those to `Validator.timestamp`)."""
    stripped = text.strip()
    if not (stripped[:4].isascii() and stripped[:4].isdigit() and 1700 <= int(stripped[:4]) <= 2200):
        return None
    try:
        moment = datetime.fromisoformat(stripped.replace("Z", "+00:00"))  # as `Validator.timestamp` reads it
    except ValueError:
        return None
    if moment.tzinfo is None:
        early, late = moment.replace(tzinfo=zone, fold=0), moment.replace(tzinfo=zone, fold=1)
        if early.utcoffset() != late.utcoffset():
            return None
        moment = early
    return math.floor(moment.timestamp())


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
