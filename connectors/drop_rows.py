"""Rows of a dropped table (CSV or worksheet) as the drop_folder connector reads them: blank and broken rows,
header names, and columns tidied once per distinct text (an office's export repeats a few codes and times)."""

from __future__ import annotations

import re
from itertools import compress
from typing import Callable, Sequence
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from connectors.validation import _iso_times, _numbers

RESERVED = ("_file", "_line")  # columns added to each raw row
# Dates as spreadsheets write them: slashes and unpadded fields, optionally a time without an offset.
LOOSE_TIME = re.compile(r"^(\d{4})[/-](\d{1,2})[/-](\d{1,2})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d+)?))?)?$")


def distinct_texts(column: pd.Series) -> tuple[np.ndarray, pd.Series] | None:
    """(codes, distinct texts) of a column of texts, None when it holds anything else."""
    values = column.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) != "string":
        return None
    codes, distinct = pd.factorize(values)
    return codes, pd.Series(distinct, dtype=object)


def epoch_seconds(column: pd.Series, zone: ZoneInfo, latest: int) -> pd.Series | None:
    """ISO texts as epoch seconds, as the validator reads them; None unless every one reads and is at most
    `latest`."""
    found = distinct_texts(column)
    if found is None:
        return None
    codes, distinct = found
    seconds, read = _iso_times(distinct, zone)
    if not read.all() or (seconds > latest).any():
        return None
    return pd.Series(seconds.to_numpy(dtype=np.int64)[codes], index=column.index)


def finite_numbers(column: pd.Series) -> pd.Series | None:
    """Number texts as the validator reads them; None unless every one is a finite number (and every negative one
    reads the same as the validator's one-by-one path would name it in a reason)."""
    found = distinct_texts(column)
    if found is None:
        return None
    codes, distinct = found
    numbers = _numbers(distinct).to_numpy(dtype=float)
    if not np.isfinite(numbers).all():
        return None
    negative = numbers < 0
    if negative.any() and any(float(text.strip()) != number
                              for text, number in zip(distinct[negative], numbers[negative])):
        return None
    return pd.Series(numbers[codes], index=column.index)


def blank(fields: list[str | None]) -> bool:
    for field in fields:  # a loop, not all(): most rows stop at their first field
        if field and not field.isspace():
            return False
    return True


def usable(lines: Sequence[int], rows: list[list], width: int, ragged: bool,
            probe: int) -> tuple[Sequence[int], list[list], list[tuple[int, list]]]:
    """The rows to tabulate as columns (blank rows dropped, rows fitted to the header's width) with their lines,
    and the broken rows with theirs."""
    if list(map(len, rows)).count(width) == len(rows):
        return *without_blank(lines, [list(cells) for cells in zip(*rows)], probe), []
    kept_lines, kept, broken = [], [], []
    for line, fields in zip(lines, rows):
        if blank(fields):
            continue
        if len(fields) != width:
            fitted = fit(fields, width, ragged)
            if fitted is None:
                broken.append((line, fields))
                continue
            fields = fitted
        kept_lines.append(line)
        kept.append(fields)
    return kept_lines, [list(cells) for cells in zip(*kept)] if kept else [[] for _ in range(width)], broken


def without_blank(lines: Sequence[int], columns: list[list], probe: int) -> tuple[Sequence[int], list[list]]:
    """Rows as columns without the blank ones, looked at one by one only when the `probe` column has a blank."""
    if not any(not cell or cell.isspace() for cell in set(columns[probe])):
        return lines, columns
    keep = [not blank(fields) for fields in zip(*columns)]
    return list(compress(lines, keep)), [list(compress(cells, keep)) for cells in columns]


def each_distinct(column: pd.Series, tidy: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """`tidy(column)` for an element-wise `tidy`, computed once per distinct text."""
    found = distinct_texts(column)
    if found is None:
        return tidy(column)  # empty cells of a workbook: rare and small, tidied as they are
    codes, distinct = found
    return pd.Series(tidy(distinct).to_numpy(dtype=object)[codes], index=column.index, dtype=object)


def fit(fields: list, width: int, ragged: bool) -> list | None:
    """A row of the header's width, or None when its fields cannot be placed (a broken row)."""
    if len(fields) > width:
        return fields[:width] if blank(fields[width:]) else None
    return fields + [None] * (width - len(fields)) if ragged else None


def column_names(fields: list) -> list[str]:
    """Header cells as unique names: blanks become 'column N', repeats get ' (2)', ' (3)'..."""
    names: list[str] = []
    taken = set(RESERVED)
    for position, field in enumerate(fields, start=1):
        base = str(field).strip() if field is not None and str(field).strip() else f"column {position}"
        name, repeat = base, 1
        while name in taken:
            repeat += 1
            name = f"{base} ({repeat})"
        taken.add(name)
        names.append(name)
    return names


def present(needed: list[str], names: list[str]) -> int:
    return sum(1 for column in needed if column in names)


def occurrences(fields: list, column: str) -> int:
    return sum(1 for field in fields if field is not None and str(field).strip() == column)


def iso_times(texts: pd.Series) -> pd.Series:
    """Spreadsheet dates (`2026/11/26 9:00`) as ISO texts; other texts only stripped."""
    return texts.str.strip().str.replace(LOOSE_TIME, iso, regex=True)


def iso(match: re.Match) -> str:
    year, month, day, hour, minute, second = match.groups()
    text = f"{year}-{int(month):02d}-{int(day):02d}"
    if hour is not None:
        text += f"T{int(hour):02d}:{minute}" + (f":{second}" if second else "")
    return text
