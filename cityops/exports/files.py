"""A panel's table as a file: CSV (UTF-8 with a byte-order mark, so Excel opens Chinese text correctly) or XLSX
(the data on the first sheet, ready to filter, and the stamp on the second), named for what it holds."""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from cityops.exports.text_measure import columns

MIME = {
    "csv": "text/csv;charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "png": "image/png",
    "svg": "image/svg+xml",
    "pdf": "application/pdf",
}
BOM = "\ufeff"
SAFE = re.compile(r"[^0-9A-Za-z_.-]+")

HEADER_FONT = Font(bold=True, color="1B2533")
HEADER_FILL = PatternFill("solid", fgColor="E8EDF4")
TIME_FORMAT = "yyyy-mm-dd hh:mm"


@dataclass(frozen=True)
class ExportFile:
    content: bytes
    filename: str
    format: str
    rows: int | None = None

    @property
    def mime(self) -> str:
        return MIME[self.format]

    @property
    def size(self) -> int:
        return len(self.content)


def export_filename(panel: str, unit_code: str, indicator_key: str | None, at: int, zone: str, extension: str) -> str:
    """onescreen-trend-310115-aqi-20261126-1031.csv: what, where, which indicator and when (the city's time)."""
    moment = datetime.fromtimestamp(at, ZoneInfo(zone)).strftime("%Y%m%d-%H%M")
    parts = ["onescreen", panel, unit_code, indicator_key, moment]
    return "-".join(SAFE.sub("_", part) for part in parts if part) + f".{extension}"


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """UTF-8 with a byte-order mark and CRLF line ends (what Excel expects); times as 2026-11-26 10:30:00; empty
    cells for what is missing; numbers unrounded."""
    text = frame.to_csv(index=False, lineterminator="\r\n", date_format="%Y-%m-%d %H:%M:%S")
    return (BOM + text).encode("utf-8")


def _cell_value(value):
    """What openpyxl can store: None for every kind of missing, plain Python numbers and datetimes."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _column_width(header: str, values: pd.Series) -> float:
    """Wide enough for the header and a typical value; CJK characters count double."""
    sample = [columns(str(v)) for v in values.head(200) if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if pd.api.types.is_datetime64_any_dtype(values):
        sample = [16]
    return min(60, max([columns(header), *sample, 6]) + 2)


def xlsx_bytes(frame: pd.DataFrame, stamp_rows: list[tuple[str, str]], data_sheet: str, stamp_sheet: str) -> bytes:
    """The table on the first sheet (bold, frozen header row with filters, times as Excel dates), the stamp —
    (label, text) rows — on the second."""
    book = Workbook(write_only=True)
    data = book.create_sheet(data_sheet[:31])
    columns = list(frame.columns)
    for position, header in enumerate(columns, start=1):
        data.column_dimensions[get_column_letter(position)].width = _column_width(str(header), frame[header])
    data.freeze_panes = "A2"
    if columns:
        data.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{max(1, len(frame) + 1)}"
    data.append([_styled(data, str(header), font=HEADER_FONT, fill=HEADER_FILL) for header in columns])
    time_columns = {position for position, header in enumerate(columns)
                    if pd.api.types.is_datetime64_any_dtype(frame[header])}
    for row in frame.itertuples(index=False, name=None):
        cells = []
        for position, value in enumerate(row):
            value = _cell_value(value)
            if position in time_columns and value is not None:
                cell = WriteOnlyCell(data, value)
                cell.number_format = TIME_FORMAT
                value = cell
            cells.append(value)
        data.append(cells)

    stamp = book.create_sheet(stamp_sheet[:31])
    stamp.column_dimensions["A"].width = 16
    stamp.column_dimensions["B"].width = 72
    for label, text in stamp_rows:
        stamp.append([_styled(stamp, label, font=HEADER_FONT),
                      _styled(stamp, text, alignment=Alignment(wrap_text=True, vertical="top"))])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _styled(sheet, value, **styles) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value)
    for name, style in styles.items():
        setattr(cell, name, style)
    return cell
