"""SensorThings Observations pages as columnar batches (connectors/sensorthings.py reads the pages).

An Observations page is a list of entities `{"phenomenonTime": ..., "result": ..., ...}` of one datastream, whose
unit and indicator are already known. Pages are gathered into one `RecordBatch` of about `BATCH_ROWS`
observations: the runner validates a batch with array operations, and a batch has a fixed cost (a thousand-row
page alone would pay it for little). Nothing is built per observation but its time and value: the row a rejected
observation is quarantined with (`quarantined_raw`) is built only for the rejected few, by `ObservationRows`.

An observation that cannot even be read (not an object, no phenomenonTime or result, a phenomenonTime that names
no time) becomes its own `Record` with the problem named, yielded after the batch holding its page.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Iterator

import numpy as np
import pandas as pd

from connectors.base import Record, RecordBatch
from connectors.mapping import PageSources

# Observations per batch: the validator's fixed cost per batch (milliseconds) is spread over this many rows, and
# the pages held meanwhile stay a few megabytes.
BATCH_ROWS = 20_000
PHENOMENON_TIME, RESULT = itemgetter("phenomenonTime"), itemgetter("result")


@dataclass(frozen=True)
class Stream:
    """A datastream resolved to the unit and indicator its observations are stored under."""

    ident: Any  # @iot.id: a number or a text, depending on the server
    name: str
    unit_code: str
    indicator: str
    entity: dict  # as the server listed it (with Thing and ObservedProperty), archived with its observations


@dataclass(frozen=True)
class Page:
    """One Observations page of one datastream, and where it is archived (a reference, or a label)."""

    stream: Stream
    observations: list
    source: str


def quarantined_raw(stream: Stream, observation: Any) -> dict:
    """What a quarantined observation keeps: the record as resolved (so quarantine re-processing can run it again
    after a unit or catalog fix), which datastream it came from and the observation as sent."""
    fields = observation if isinstance(observation, dict) else {}
    phenomenon = fields.get("phenomenonTime")
    return {"unit_code": stream.unit_code, "indicator": stream.indicator,
            "observed_at": interval_end(phenomenon) if isinstance(phenomenon, str) else None,
            "value": fields.get("result"), "datastream": stream.ident, "observation": observation}


class ObservationRows(Sequence):
    """The source rows of a batch, by batch position: each observation's quarantine row, built when asked for."""

    def __init__(self, pages: list[Page]):
        self.pages = pages
        self.starts = [0]
        for page in pages:
            self.starts.append(self.starts[-1] + len(page.observations))

    def __len__(self) -> int:
        return self.starts[-1]

    def __getitem__(self, position):
        if not isinstance(position, (int, np.integer)) or not 0 <= position < len(self):
            raise IndexError(f"no observation at batch position {position!r}")
        number = bisect_right(self.starts, position) - 1
        page = self.pages[number]
        return quarantined_raw(page.stream, page.observations[position - self.starts[number]])


class ObservationBatches:
    """Gathers Observations pages and hands them on as batches (`add`, then `flush` at the end)."""

    def __init__(self, rows: int | None = None):
        self.rows = rows or BATCH_ROWS
        self.pages: list[Page] = []
        self.size = 0

    def add(self, stream: Stream, observations: list, source: str) -> Iterator[Record | RecordBatch]:
        self.pages.append(Page(stream, observations, source))
        self.size += len(observations)
        if self.size >= self.rows:
            yield from self.flush()

    def flush(self) -> Iterator[Record | RecordBatch]:
        pages, self.pages, self.size = self.pages, [], 0
        if not pages:
            return
        offset, times, values, units, indicators, positions, counts, unreadable = 0, [], [], [], [], [], [], []
        for page in pages:
            readable = readable_columns(page.observations)
            if readable is None:
                readable = _sorted_out(page, unreadable)
            page_positions, page_times, page_values = readable
            positions.append(page_positions + offset)
            times += page_times
            values += page_values
            units.append(page.stream.unit_code)
            indicators.append(page.stream.indicator)
            counts.append(len(page_times))
            offset += len(page.observations)
        if times:
            index = np.concatenate(positions)
            frame = pd.DataFrame({
                "unit_code": np.repeat(np.array(units, dtype=object), counts),
                "indicator": np.repeat(np.array(indicators, dtype=object), counts),
                "observed_at": np.array(times, dtype=object),
                # Through pandas: numpy would make a page of list results a 2-D array (and None a NaN).
                "value": pd.Series(values, dtype=object).to_numpy()}, index=pd.Index(index))
            yield RecordBatch(frame=frame, raw=ObservationRows(pages), source=_sources(pages))
        yield from unreadable


def readable_columns(observations: list) -> tuple[np.ndarray, list, list] | None:
    """(positions, times, results) of a page whose every observation is plainly readable — an object with a
    result and a phenomenonTime that is one instant written without spaces — checked with a few C-speed passes;
    None when one is not, and the page must be read observation by observation."""
    try:
        times = list(map(PHENOMENON_TIME, observations))
        results = list(map(RESULT, observations))
        joined = "".join(times)  # a TypeError when one is not a text
    except (KeyError, TypeError):
        return None
    # No "/" (an interval, stored at its end) and no white space anywhere (which interval_end strips): each text
    # is its own interval_end, and all(times) says none is empty.
    if "/" in joined or joined.split() != [joined] or not all(times):
        return None
    return np.arange(len(observations)), times, results


def _sorted_out(page: Page, unreadable: list[Record]) -> tuple[np.ndarray, list, list]:
    """(positions, times, results) of a page's readable observations, read one by one; the others are added to
    `unreadable` as records naming their problem."""
    positions, times, results = [], [], []
    for position, observation in enumerate(page.observations):
        fields = observation if isinstance(observation, dict) else {}
        phenomenon = fields.get("phenomenonTime")
        observed_at = interval_end(phenomenon) if isinstance(phenomenon, str) else None
        problem = observation_problem(page.stream, observation, observed_at)
        if problem is None:
            positions.append(position)
            times.append(observed_at)
            results.append(observation["result"])
        else:
            unreadable.append(Record(page.stream.unit_code, page.stream.indicator, observed_at, fields.get("result"),
                                     raw=quarantined_raw(page.stream, observation), problem=problem,
                                     source=f"{page.source}#{position}"))
    return np.array(positions, dtype=np.int64), times, results


def _sources(pages: list[Page]) -> str | PageSources:
    """The batch's `source`: the page's reference when it is one page (the validator appends "#position"),
    otherwise each observation's "reference#position", by batch position."""
    if len(pages) == 1:
        return pages[0].source
    sources = PageSources()
    for page in pages:
        sources.add(page.source, len(page.observations))
    return sources


def observation_problem(stream: Stream, observation: Any, observed_at: str | None) -> str | None:
    """Why an observation cannot even be read as a record; None when it can (the validator judges the rest)."""
    where = f"datastream {stream.ident}"
    if not isinstance(observation, dict):
        return f"{where}: the observation is not a JSON object"
    missing = [field for field in ("phenomenonTime", "result") if field not in observation]
    if missing:
        return f"{where}: the observation has no {' and no '.join(missing)}"
    if not observed_at:
        return f"{where}: phenomenonTime {observation['phenomenonTime']!r} is not a time"
    return None


def interval_end(phenomenon: str) -> str:
    """The instant an observation is stored at: itself, or the end of an interval "start/end"."""
    return phenomenon.rpartition("/")[2].strip()
