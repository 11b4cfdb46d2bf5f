"""Reading a dropped file as a stream of rows: CSV in whatever encoding an office's export used, and .xlsx.

Readers yield (line number, fields) and hand out `Chunk`s of rows as columns; they never hold a whole file.
`CsvRows` splits unquoted blocks of whole lines straight into columns and falls back to the csv module from the
first block that needs it (quotes, a lone carriage return, NUL, an undecodable byte), so line numbers stay exact.
A file that cannot be read as a table raises `FileRejected` with what is wrong and what to do.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
import zlib
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as clock_time
from itertools import islice, repeat
from typing import BinaryIO, Generator, Sequence

SAMPLE_BYTES = 1 << 20  # how much of a CSV decides its encoding
BLOCK_BYTES = 1 << 20  # how much of a CSV is decoded and split into lines at once
# Encodings in which a 0x0A byte is always a line feed, never part of another character: a CSV in one of them
# can be cut into blocks of whole lines before decoding.
LINE_SAFE_ENCODINGS = frozenset({"utf-8", "utf-8-sig", "gb18030", "gbk", "gb2312", "ascii", "iso8859-1", "cp1252"})


class FileRejected(Exception):
    """A file that cannot be read as a table; the message says what is wrong with it and what to do."""


def detect_encoding(name: str, sample: bytes, whole: bool) -> str:
    """The encoding of a CSV from its first bytes (`whole`: the sample is the entire file)."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in sample:
        raise FileRejected(f"{name} is not text (it holds NUL bytes): export it as CSV or .xlsx")
    for encoding in ("utf-8", "gb18030"):
        try:
            codecs.getincrementaldecoder(encoding)().decode(sample, final=whole)
            return encoding
        except UnicodeDecodeError:
            continue
    raise FileRejected(f"{name} is neither UTF-8 nor GBK/GB18030 text: export it as CSV (UTF-8) or set "
                       f"config.encoding")


@dataclass
class Chunk:
    """Consecutive rows of a file: as columns when every row has the header's width, else as lists of fields."""

    lines: Sequence[int]  # the line each row starts on
    columns: list[list] | None = None
    rows: list[list] | None = None


class CsvRows:
    """The rows of a CSV stream, decoded as it is read: `(first line of the row, fields)` one at a time, or
    many at once with `take`.

    Parsed exactly as the csv module parses them. Blocks of whole lines without a quote (most exports) are split
    at their delimiters with string operations, many rows at once; from the first block that holds a quote, a
    lone carriage return, a NUL, an overlong line or bytes that do not decode, the rest of the file goes through
    the csv module itself (a quoted field may span lines, and its errors are the ones reported)."""

    def __init__(self, name: str, stream: BinaryIO, encoding: str, delimiter: str):
        sample = stream.read(SAMPLE_BYTES)
        stream.seek(0)
        if encoding == "auto":
            encoding = detect_encoding(name, sample, len(sample) < SAMPLE_BYTES)
        elif codecs.lookup(encoding).name == "utf-8":
            encoding = "utf-8-sig"  # a BOM would otherwise become part of the first column's name
        self.name, self.stream, self.encoding, self.delimiter = name, stream, encoding, delimiter
        self.after = 0  # the physical line the previous row ended on (a quoted field may span lines)
        self.block: list[str] = []  # the lines of the current block (split mode)
        self.position = 0  # how many of them are read
        self.offset = 0  # where in the stream the next block starts
        self.rest = b""  # bytes read past the current block's last line break
        self.text: io.TextIOWrapper | None = None
        self.reader = None  # the csv module's reader, once it reads the rest of the file
        if codecs.lookup(encoding).name in LINE_SAFE_ENCODINGS and delimiter not in "\"\r\n":
            self.decoder = codecs.getincrementaldecoder(encoding)()
        else:
            self._read_with_csv()

    def __iter__(self) -> "CsvRows":
        return self

    def __next__(self) -> tuple[int, list[str]]:
        chunk = self.take(1, 0)
        if chunk is None:
            raise StopIteration
        return chunk.lines[0], chunk.rows[0]

    def take(self, count: int, width: int) -> Chunk | None:
        """Up to `count` rows (fewer at the end of a block or of the file), as columns when all of them have
        `width` fields; None at the end of the file."""
        if self.reader is None and self.position == len(self.block):
            self._next_block()
        if self.reader is not None:
            return self._take_with_csv(count)
        if not self.block:
            return None
        lines = self.block[self.position:self.position + count]
        self.position += len(lines)
        numbers = range(self.after + 1, self.after + 1 + len(lines))
        self.after += len(lines)
        delimiter = self.delimiter
        if width and list(map(str.count, lines, repeat(delimiter, len(lines)))).count(width - 1) == len(lines):
            cells = delimiter.join(lines).split(delimiter)
            return Chunk(numbers, columns=[cells[column::width] for column in range(width)])
        # The csv module reads an empty line as no field at all.
        return Chunk(numbers, rows=[line.split(delimiter) if line else [] for line in lines])

    def close(self) -> None:
        if self.text is not None:
            self.text.detach()  # leave the file to its owner's `with`

    def _next_block(self) -> None:
        """The next block of whole lines, split; or the csv module from here when the block needs it."""
        read = self.stream.read(BLOCK_BYTES)
        data = self.rest + read
        cut = data.rfind(b"\n") + 1 if read else len(data)
        if not data:
            self.block, self.position = [], 0  # the end of the file
            return
        if not cut:  # one line longer than a block: the csv module reads it
            self._read_with_csv(self.offset)
            return
        start, self.offset, self.rest = self.offset, self.offset + cut, data[cut:]
        try:
            text = self.decoder.decode(data[:cut], final=not read)
        except UnicodeDecodeError:
            text = None
        if text is None or any(mark in text for mark in ('"', "\x00")) or (
                "\r" in text and text.count("\r") != text.count("\r\n")):
            self._read_with_csv(start)
            return
        if "\r" in text:
            text = text.replace("\r\n", "\n")
        lines = text.split("\n")
        if text.endswith("\n"):
            lines.pop()  # the end of the last line, not another line
        if lines and max(map(len, lines)) > csv.field_size_limit():
            self._read_with_csv(start)  # it may hold a field the csv module refuses
            return
        self.block, self.position = lines, 0

    def _read_with_csv(self, start: int = 0) -> None:
        """Read the rest of the file, from byte `start` (where a line begins), with the csv module."""
        self.block, self.position = [], 0
        self.stream.seek(start)
        # The byte-order mark can only be at the start.
        encoding = "utf-8" if start and self.encoding == "utf-8-sig" else self.encoding
        self.text = io.TextIOWrapper(self.stream, encoding=encoding, newline="")
        self.reader = csv.reader(self.text, delimiter=self.delimiter)
        self.base = self.after  # the lines before `start`

    def _take_with_csv(self, count: int) -> Chunk | None:
        rows: list[list[str]] = []
        start = self.after
        try:
            rows.extend(islice(self.reader, count))
        except UnicodeDecodeError as error:
            # Decoding runs ahead of the parser a few KiB at a time: the bad bytes are at this line or later.
            line = _row_lines(start, rows)[1] + 1
            raise FileRejected(f"{self.name}: bytes that are not {self.encoding} text at or after line {line} "
                               f"({error.reason}); set config.encoding to the file's encoding or re-export it as "
                               f"UTF-8") from None
        except csv.Error as error:
            line = _row_lines(start, rows)[1] + 1
            raise FileRejected(f"{self.name} line {line}: not readable as CSV ({error})") from None
        if not rows:
            return None
        self.after = self.base + self.reader.line_num
        if self.after - start == len(rows):
            return Chunk(range(start + 1, self.after + 1), rows=rows)  # one line per row
        return Chunk(_row_lines(start, rows)[0], rows=rows)


def _row_lines(after: int, rows: list[list[str]]) -> tuple[list[int], int]:
    """The line each row starts on, and the line the last one ends on, when a quoted field holds line breaks
    (the csv module counts lines as the text reader splits them: at \\n, \\r and \\r\\n)."""
    starts = []
    for fields in rows:
        starts.append(after + 1)
        after += 1 + sum(field.count("\n") + field.count("\r") - field.count("\r\n")
                         for field in fields if "\n" in field or "\r" in field)
    return starts, after


# -- rows of a workbook ------------------------------------------------------------------------------------

# What a damaged workbook raises from inside zipfile and the XML parser (lxml's errors are SyntaxErrors).
BROKEN_ZIP = (zipfile.BadZipFile, zlib.error, EOFError, KeyError, ValueError, TypeError, SyntaxError, OSError)


def xlsx_rows(name: str, stream: BinaryIO, sheet: str | None) -> Generator[tuple[int, list], None, None]:
    """(row number, cells as text) for each row of a workbook's sheet, streamed in read-only mode."""
    from openpyxl import load_workbook  # here: CSV-only deployments need not install it
    from openpyxl.utils.exceptions import InvalidFileException

    broken = (InvalidFileException, *BROKEN_ZIP)
    try:
        book = load_workbook(stream, read_only=True, data_only=True)
    except broken as error:
        raise FileRejected(f"{name} is not a readable .xlsx workbook ({type(error).__name__}: {error})") from None
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise FileRejected(f"{name} has no sheet {sheet!r} (it has {', '.join(book.sheetnames)}); "
                               f"fix config.sheet")
        if not book.worksheets:
            raise FileRejected(f"{name} has no worksheet (only charts?)")
        worksheet = book[sheet] if sheet is not None else book.worksheets[0]
        # Generators often write a wrong <dimension>; read-only mode would stop at it.
        worksheet.reset_dimensions()
        try:
            # Missing rows come as empty tuples, so the count is the row number Excel shows.
            for number, cells in enumerate(worksheet.iter_rows(values_only=True), start=1):
                yield number, _trimmed([_cell_text(cell) for cell in cells])
        except broken as error:
            raise FileRejected(f"{name} is a damaged .xlsx workbook ({type(error).__name__}: {error})") from None
    finally:
        book.close()


def _cell_text(cell) -> str | None:
    """A cell as the text a CSV export would hold (whole numbers without '.0', dates in ISO 8601)."""
    if cell is None or isinstance(cell, str):
        return cell
    if isinstance(cell, bool):
        return str(cell)
    if isinstance(cell, float) and cell.is_integer() and abs(cell) < 1e16:
        return str(int(cell))
    if isinstance(cell, (datetime, date, clock_time)):
        return cell.isoformat()
    return str(cell)


def _trimmed(cells: list) -> list:
    """A sheet row without its trailing empty cells (sheets have no fixed width)."""
    end = len(cells)
    while end and cells[end - 1] is None:
        end -= 1
    return cells[:end]


class SheetRows:
    """A workbook's `(row number, cells)` rows, one at a time or many at once, as `CsvRows` gives a CSV's."""

    def __init__(self, rows: Generator[tuple[int, list], None, None]):
        self.rows = rows

    def __iter__(self) -> "SheetRows":
        return self

    def __next__(self) -> tuple[int, list]:
        return next(self.rows)

    def take(self, count: int, width: int) -> Chunk | None:
        taken = list(islice(self.rows, count))
        if not taken:
            return None
        return Chunk([line for line, _ in taken], rows=[cells for _, cells in taken])

    def close(self) -> None:
        self.rows.close()


# -- helpers -----------------------------------------------------------------------------------------------


