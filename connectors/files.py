"""Drop folder: CSV and Excel (.xlsx) files that street offices put in a shared folder.

Each run reads the files waiting in the folder, oldest first, and yields their rows as `RecordBatch`es of
`batch_rows` source rows (the `mapping:` names the columns; Chinese column names are fine). Nothing is held
whole in memory: CSV is streamed in blocks of lines (read exactly as the csv module reads them: see `CsvRows`),
.xlsx with openpyxl in read-only mode.

    connectors:
      - name: jiangning_street_offices
        type: drop_folder
        levels: [community, street]
        schedule: {interval: 5m}
        config:
          folder: /srv/onescreen/drop/jiangning   # required
          pattern: "*.csv,*.xlsx"                 # comma-separated, case-insensitive
          encoding: auto                          # or utf-8, gbk, gb18030, ...
          delimiter: ","
          sheet: 报表                             # .xlsx sheet (default: the first)
          batch_rows: 50000
          settle_seconds: 10
        mapping:
          unit_code: 社区代码
          observed_at: 时间
          indicator: 指标
          value: 数值
          indicator_names: {热线投诉: hotline_complaints, 火警: fire_alarms}

The folder is the queue, so the type is unordered and its cursor is not a time (see "Exactly once" below).

Reading a file
- The file is archived as it came (`self.archived`) before it is parsed; quarantined records carry the archived
  payload's reference and the line, `…/0003-report.csv.gz#17`, and their raw row has `_file` and `_line` (the
  1-based line of a CSV, the row number Excel shows for a sheet).
- What a file is comes from its content, not its name: a zip is an .xlsx workbook, an old OLE2 workbook (.xls)
  is refused with what to do, anything else is CSV text.
- Encoding `auto`: a UTF-8 or UTF-16 byte-order mark decides; otherwise the first MiB must decode strictly as
  UTF-8, else as GB18030 (a superset of GBK, which Chinese Excel writes when it saves "CSV").
- The header is the first row, among the first 20 non-blank ones, that holds every mapped column, so a title
  row above it ("江宁区 11 月报表") is skipped. Blank rows are skipped. Every cell is read as text: codes keep
  their leading zeros and the validator converts values and times, with its own reasons.
- Times stay text for the validator (ISO 8601; naive times are in the deployment's zone). Spreadsheet habits
  are normalised first: `2026/11/26 9:00` and `2026-1-5` become `2026-11-26T09:00` and `2026-01-05`. Date
  cells of a workbook become ISO text. When every time of a batch reads (and none is in the future), and then
  every value is a finite number, they are handed over read — by the validator's own array functions, once
  per distinct text — so the validator takes its fast path; otherwise they stay text, for its reasons.

Bad input
- A row with the wrong number of fields becomes a quarantined record whose reason names the file and the line;
  the rows before and after it are read as usual. Extra empty fields at the end of a row are ignored.
- An empty value cell is quarantined by the validator ("value '' is not a number"), not skipped: an office that
  forgot a value should see it.
- A file that cannot be read as a table — no mapped column header, an undecodable encoding, a corrupt or
  binary file, an empty file, a missing sheet — is moved to `failed/` with `<file>.reason.txt` next to it,
  and one quarantined record with the same reason makes the run `partial`. A whole file is refused rather than
  every row quarantined because the cause is one (a renamed column, a wrong export setting), an operator
  fixes it once, and a million identical quarantine rows would bury everything else. Putting the fixed file
  back into the folder reads it again; re-delivered rows are harmless (storage upserts).

Nothing lost, nothing duplicated
- A run first moves each file to `processing/<token>/`, then reads it. When the runner has committed the run's
  records it calls `committed()`, and the files move to `processed/`.
- A run that never got that far (a crash, a database failure) leaves its files claimed. The token is also the
  cursor of every batch the run yields, saved with the run's last commit, so the next run's `since` tells a
  committed claim (moved on to `processed/`) from an uncommitted one, which is read again first, moved to
  `processing/<new token>/again/`. Records upsert, so re-reading duplicates nothing.
- A file found in `again/` by a third run was read twice by runs that both failed before committing: it is
  moved to `failed/` with a reason saying so, rather than retried forever. Nothing is dropped without a file in
  `failed/` explaining why.
- Files changed in the last `settle_seconds` are left for the next run: they may still be being copied in.
  Hidden files and Excel's `~$` lock files are ignored. Names repeated in `processed/` or `failed/` get a
  `-2`, `-3`... suffix, never overwriting an earlier file.
"""

from __future__ import annotations

import codecs
import dataclasses
import io
import time
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import BinaryIO, Iterator
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from connectors import drop_queue, drop_rows
from connectors.base import ConfigField, Connector, FatalError, Health, Record, RecordBatch, RetriableError, register
from connectors.drop_queue import AGAIN, FAILED, PROCESSED, PROCESSING
from connectors.tables import CsvRows, FileRejected, SheetRows, xlsx_rows
from connectors.validation import FUTURE_TOLERANCE_SECONDS

HEADER_SEARCH_ROWS = 20  # title rows above the header that are tolerated

XLSX_MEDIA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ZIP_MAGIC = b"PK\x03\x04"
OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls, and encrypted workbooks



@dataclass(frozen=True)
class DropSettings:
    folder: Path
    patterns: tuple[str, ...]
    encoding: str
    delimiter: str
    sheet: str | None
    batch_rows: int
    settle_seconds: float


@register
class DropFolderConnector(Connector):
    type_name = "drop_folder"
    config_schema = (
        ConfigField("folder", str, required=True, help="the folder the offices drop their CSV/XLSX files in"),
        ConfigField("pattern", str, default="*.csv,*.xlsx",
                    help="comma-separated file name patterns, matched case-insensitively"),
        ConfigField("encoding", str, default="auto",
                    help="auto (UTF-8 with or without BOM, UTF-16 with BOM, else GBK/GB18030) or a codec name"),
        ConfigField("delimiter", str, default=",", help="the CSV field separator, one character"),
        ConfigField("sheet", str, default=None, help="the .xlsx sheet to read (default: the first)"),
        ConfigField("batch_rows", int, default=50_000, help="source rows per batch"),
        ConfigField("settle_seconds", int, default=10,
                    help="files changed more recently are left for the next run (they may still be copied in)"),
    )
    ordered = False
    uses_mapping = True

    # -- the contract ----------------------------------------------------------------------------------

    def check(self) -> Health:
        try:
            settings = self.settings()
        except FatalError as error:
            return Health(False, str(error))
        folder = settings.folder
        problem = drop_queue.folder_problem(folder)
        if problem:
            return Health(False, problem)
        try:
            waiting = self.waiting(settings, settle=False)
            claimed = drop_queue.claimed_count(folder / PROCESSING)
            failed = sum(1 for path in drop_queue.files_in(folder / FAILED) if not path.name.endswith(".reason.txt"))
            oldest = (datetime.fromtimestamp(waiting[0].stat().st_mtime).strftime("%Y-%m-%d %H:%M")
                      if waiting else None)
        except OSError as error:
            return Health(False, f"cannot list drop folder {folder}: {error}")
        detail = f"{len(waiting)} file(s) waiting in {folder}"
        if oldest:
            detail += f" (oldest from {oldest})"
        if claimed:
            detail += f"; {claimed} read, awaiting the next run's confirmation in {PROCESSING}/"
        if failed:
            detail += f"; {failed} refused in {FAILED}/ (see the .reason.txt files)"
        return Health(True, detail)

    def fetch(self, since: str | None) -> Iterator[Record | RecordBatch]:
        """Read the files left by runs that did not commit, then the files waiting. `since` is the token of
        the last committed run (see the module docstring), not a time."""
        settings = self.settings()
        folder = settings.folder
        problem = drop_queue.folder_problem(folder)
        if problem:
            raise FatalError(f"connector {self.name}: {problem}")
        try:
            for sub in (PROCESSING, PROCESSED, FAILED):
                (folder / sub).mkdir(exist_ok=True)
        except OSError as error:
            raise FatalError(f"connector {self.name}: cannot create the subfolders of {folder}: {error}") from None
        token = drop_queue.new_token(folder / PROCESSING)
        claim = folder / PROCESSING / token
        self._claimed = (settings, claim)
        yield from self._recover(settings, since, claim)
        for path in self.waiting(settings):
            claimed = drop_queue.claim(path, claim)
            if claimed is not None:
                yield from self._read_claimed(claimed, settings, token)

    def committed(self) -> None:
        """The run's records are committed (the runner says so): its files are done and move to processed/.
        Without this call (a crash, a failed commit) they stay claimed and the next run settles them."""
        settings, claim = getattr(self, "_claimed", (None, None))
        if claim is None or not claim.is_dir():
            return
        for path in drop_queue.files_below(claim):
            drop_queue.move_unique(path, settings.folder / PROCESSED)
        drop_queue.remove_empty(claim)

    def replay(self, label: str, payload: bytes) -> Iterator[Record | RecordBatch]:
        """Parse an archived file again with the same code as fetch; nothing in the folder moves."""
        settings = self.settings()
        try:
            yield from self.parse(label, io.BytesIO(payload), label, None, settings)
        except FileRejected as rejected:
            yield Record(None, None, None, None, raw={"_file": label}, problem=str(rejected), source=label)

    # -- settings --------------------------------------------------------------------------------------

    @classmethod
    def validate_config(cls, config: dict) -> None:
        problem = _config_problem(cls._with_defaults(config))
        if problem:
            raise ValueError(problem)

    @classmethod
    def _with_defaults(cls, config: dict) -> dict:
        return {spec.name: config.get(spec.name, spec.default) for spec in cls.config_schema}

    def settings(self) -> DropSettings:
        """The configuration with defaults applied; FatalError when it cannot work."""
        config = self._with_defaults(self.config)
        problem = _config_problem(config)
        if problem:
            raise FatalError(f"connector {self.name}: config: {problem}")
        if self.mapping is None:
            raise FatalError(f"connector {self.name}: a drop folder needs 'mapping:' naming the columns of its files")
        patterns = tuple(p.strip().lower() for p in config["pattern"].split(",") if p.strip())
        return DropSettings(Path(config["folder"]), patterns, config["encoding"].strip().lower(), config["delimiter"],
                            config["sheet"], config["batch_rows"], float(config["settle_seconds"]))

    # -- the folder as a queue -------------------------------------------------------------------------

    def waiting(self, settings: DropSettings, settle: bool = True) -> list[Path]:
        """Files to read, oldest first; not those still being written (changed within settle_seconds)."""
        cutoff = time.time() - settings.settle_seconds
        found = []
        for path in drop_queue.files_in(settings.folder):
            name = path.name.lower()
            if name.startswith((".", "~$")) or not any(fnmatchcase(name, p) for p in settings.patterns):
                continue
            try:
                changed = path.stat().st_mtime
            except FileNotFoundError:
                continue  # taken meanwhile
            if not settle or changed <= cutoff:
                found.append((changed, path.name, path))
        return [path for _, _, path in sorted(found)]

    def _recover(self, settings: DropSettings, since: str | None, claim: Path) -> Iterator[Record | RecordBatch]:
        """Settle what earlier runs left in processing/: committed → processed/, uncommitted → read again,
        read twice without a commit → failed/."""
        folder = settings.folder
        for entry in sorted((folder / PROCESSING).iterdir(), key=drop_queue.token_order):
            if entry == claim:
                continue
            if entry.is_dir() and since is not None and entry.name == since:
                for path in drop_queue.files_below(entry):
                    drop_queue.move_unique(path, folder / PROCESSED)
                drop_queue.remove_empty(entry)
                continue
            if entry.is_dir():
                first, second = list(drop_queue.files_in(entry)), list(drop_queue.files_in(entry / AGAIN))
            else:
                first, second = [entry], []  # put there by hand: read it as a first attempt
            for path in second:
                yield self._refuse(settings, path, None, (
                    f"{path.name} was read twice and neither run was confirmed committed: either none of its "
                    f"records passed validation (see `onescreen quarantine list --connector {self.name}`) or "
                    f"both runs failed before committing"))
            for path in first:
                claimed = drop_queue.claim(path, claim / AGAIN)
                if claimed is not None:
                    yield from self._read_claimed(claimed, settings, claim.name)
            drop_queue.remove_empty(entry)

    def _read_claimed(self, path: Path, settings: DropSettings, token: str) -> Iterator[Record | RecordBatch]:
        """Archive one claimed file, then yield its records; a file that cannot be read goes to failed/."""
        source = None
        try:
            with path.open("rb") as stream:
                source = self._archive(path.name, stream)
                stream.seek(0)
                yield from self.parse(path.name, stream, source or path.name, token, settings)
        except FileRejected as rejected:
            yield self._refuse(settings, path, source, str(rejected))
        except OSError as error:
            yield self._refuse(settings, path, source, f"{path.name}: cannot be read: {error}")

    def _archive(self, name: str, stream: BinaryIO) -> str | None:
        media = XLSX_MEDIA if stream.read(4) == ZIP_MAGIC else "text/csv"
        stream.seek(0)
        try:
            return self.archived(name, stream, media)
        except OSError as error:
            raise RetriableError(f"connector {self.name}: could not archive {name} before reading it ({error}); "
                                 f"it stays in {PROCESSING}/ and is read again on the next run") from None

    def _refuse(self, settings: DropSettings, path: Path, source: str | None, reason: str) -> Record:
        """Move a file to failed/ with its reason beside it; the record quarantines the reason."""
        target = drop_queue.move_unique(path, settings.folder / FAILED)
        where = f"{FAILED}/{target.name}" if target is not None else f"{FAILED}/"
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        text = (f"{reason}\n\nMoved here by connector {self.name} at {stamp}. Fix the file (or the connector's "
                f"mapping) and put it back in {settings.folder} to read it again.\n")
        if target is not None:
            target.with_name(target.name + ".reason.txt").write_text(text, encoding="utf-8")
        return Record(None, None, None, None, raw={"_file": path.name, "moved_to": where},
                      problem=f"{reason}; moved to {where}", source=source)

    # -- reading a file --------------------------------------------------------------------------------

    def parse(self, name: str, stream: BinaryIO, source: str, cursor: str | None,
              settings: DropSettings) -> Iterator[Record | RecordBatch]:
        """The records of one file (a seekable binary stream). Raises FileRejected when it is not a table."""
        magic = stream.read(8)
        stream.seek(0)
        if not magic:
            raise FileRejected(f"{name} is empty")
        if magic.startswith(OLE2_MAGIC):
            raise FileRejected(f"{name} is an old Excel 97-2003 (.xls) or password-protected workbook; "
                               f"save it as .xlsx or CSV without a password")
        if magic.startswith(ZIP_MAGIC):
            rows, ragged = SheetRows(xlsx_rows(name, stream, settings.sheet)), True
        else:
            rows, ragged = CsvRows(name, stream, settings.encoding, settings.delimiter), False
        try:
            yield from self._tabulate(name, rows, ragged, source, cursor, settings.batch_rows)
        finally:
            rows.close()  # now, while the stream is still open

    def _tabulate(self, name: str, rows: "CsvRows | SheetRows", ragged: bool, source: str, cursor: str | None,
                  batch_rows: int) -> Iterator[Record | RecordBatch]:
        header = self._header(name, rows)
        width = len(header)
        # Blank rows are found through this column: a row whose unit code is not blank is not blank.
        probe = header.index(self.mapping.unit_code)
        lines: list[int] = []
        columns: list[list] = [[] for _ in header]
        # No more rows are read before a batch is yielded than the batch holds, as if row by row: what the
        # runner has committed when a file turns out unreadable does not depend on how rows are read.
        while chunk := rows.take(batch_rows - len(lines), width):
            if chunk.columns is not None:
                (taken_lines, taken), broken = drop_rows.without_blank(chunk.lines, chunk.columns, probe), []
            else:
                taken_lines, taken, broken = drop_rows.usable(chunk.lines, chunk.rows, width, ragged, probe)
            for line, fields in broken:
                yield Record(None, None, None, None, raw={"_file": name, "_line": line, "_fields": fields},
                             problem=(f"{name} line {line}: {len(fields)} fields where the header has {width}; "
                                      f"this row is skipped, the rest of the file is read"),
                             source=f"{source}#{line}")
            lines.extend(taken_lines)
            for column, cells in zip(columns, taken):
                column.extend(cells)
            if len(lines) >= batch_rows:
                yield self._batch(name, header, columns, lines, source, cursor)
                lines, columns = [], [[] for _ in header]
        if lines:
            yield self._batch(name, header, columns, lines, source, cursor)

    def _header(self, name: str, rows: Iterator[tuple[int, list]]) -> list[str]:
        """The column names: the first of the leading non-blank rows that holds every mapped column."""
        needed = list(dict.fromkeys(self.mapping.columns()))
        best: list[str] | None = None  # the row closest to a header, for the reason when none is complete
        for _ in range(HEADER_SEARCH_ROWS):
            line, fields = next(((line, f) for line, f in rows if not drop_rows.blank(f)), (None, None))
            if fields is None:
                break
            names = drop_rows.column_names(fields)
            if all(column in names for column in needed):
                doubled = [column for column in needed if drop_rows.occurrences(fields, column) > 1]
                if doubled:
                    raise FileRejected(f"{name} line {line}: column(s) {', '.join(doubled)} appear more than once "
                                       f"in the header; which one to read is ambiguous")
                return names
            if best is None or drop_rows.present(needed, names) > drop_rows.present(needed, best):
                best = names
        if best is None:
            raise FileRejected(f"{name} has no header row (no non-blank row)")
        missing = [column for column in needed if column not in best]
        shown = ", ".join(best[:30]) + (f" and {len(best) - 30} more" if len(best) > 30 else "")
        hint = ""
        if len(best) == 1 and any(mark in best[0] for mark in ",;\t|"):
            hint = " (one column only: is config.delimiter right?)"
        raise FileRejected(f"{name} has no column {', '.join(missing)} (the mapping reads "
                           f"{', '.join(needed)}); its header row has {shown}{hint}")

    def _batch(self, name: str, header: list[str], columns: list[list], lines: list[int], source: str,
               cursor: str | None) -> RecordBatch:
        # The index is the line: the validator names a quarantined record's source `<payload>#<line>`.
        table = pd.DataFrame({column: np.array(cells, dtype=object) for column, cells in zip(header, columns)},
                             index=pd.Index(lines), dtype=object)
        table.insert(0, "_line", pd.Series(lines, index=table.index, dtype=object))  # plain ints for the JSON
        table.insert(0, "_file", name)
        return RecordBatch(frame=self._records(table), raw=table, source=source, cursor=cursor)

    def _records(self, table: pd.DataFrame) -> pd.DataFrame:
        """The mapped columns tidied (codes and names stripped, spreadsheet dates made ISO), as records.
        Each distinct text is tidied once: a file repeats a few thousand codes, a dozen names and a few hours."""
        mapping = self.mapping
        mapped = table[list(dict.fromkeys(mapping.columns()))].copy()
        for column in {mapping.unit_code, mapping.indicator} - {None, mapping.observed_at}:
            mapped[column] = drop_rows.each_distinct(mapped[column], lambda texts: texts.str.strip())
        mapped[mapping.observed_at] = drop_rows.each_distinct(mapped[mapping.observed_at], drop_rows.iso_times)
        if mapping.indicator_names and not mapping.values and mapping.indicator not in (
                mapping.unit_code, mapping.observed_at, mapping.value):
            # The mapping's own translation, once per distinct name rather than per row.
            names = mapping.indicator_names
            mapped[mapping.indicator] = drop_rows.each_distinct(
                mapped[mapping.indicator], lambda texts: texts.map(lambda text: names.get(str(text), text)))
            mapping = dataclasses.replace(mapping, indicator_names={})
        self._read_ahead(mapped)
        return mapping.frame(mapped)

    def _read_ahead(self, mapped: pd.DataFrame) -> None:
        """Times as epoch seconds and values as numbers, read by the validator's own array functions once per
        distinct text, when every one of the batch reads (times not in the future, values finite): the validator
        then takes its fast path with the same results. Otherwise the texts stay, for the validator's reasons."""
        mapping = self.mapping
        values = list(dict.fromkeys(mapping.values.values() if mapping.values else [mapping.value]))
        others = {mapping.unit_code, mapping.indicator}
        if mapping.observed_at in others.union(values) or others.intersection(values):
            return  # one column mapped twice: leave it as it is
        times = drop_rows.epoch_seconds(mapped[mapping.observed_at], ZoneInfo(self.context.timezone),
                               int(self.context.now) + FUTURE_TOLERANCE_SECONDS)
        if times is None:
            return
        mapped[mapping.observed_at] = times
        # Only with the times read: a row the array path fails for its time would be validated one by one, and
        # read its value as text there.
        numbers = {column: drop_rows.finite_numbers(mapped[column]) for column in values}
        if all(column is not None for column in numbers.values()):
            for column, read in numbers.items():
                mapped[column] = read


def _config_problem(config: dict) -> str | None:
    """What is wrong with a configuration (defaults applied), or None."""
    if not isinstance(config["folder"], str) or not config["folder"].strip():
        return "folder must name the drop folder"
    if not isinstance(config["pattern"], str) or not config["pattern"].replace(",", "").strip():
        return 'pattern names no file pattern (e.g. "*.csv,*.xlsx")'
    encoding = str(config["encoding"]).strip().lower()
    if encoding != "auto":
        try:
            codecs.lookup(encoding)
        except LookupError:
            return f"encoding {encoding!r} is not a known encoding; use auto, utf-8, gbk or gb18030"
    if not isinstance(config["delimiter"], str) or len(config["delimiter"]) != 1:
        return f"delimiter must be one character, got {config['delimiter']!r}"
    if not isinstance(config["batch_rows"], int) or config["batch_rows"] < 1:
        return "batch_rows must be a positive number of rows"
    if not isinstance(config["settle_seconds"], (int, float)) or config["settle_seconds"] < 0:
        return "settle_seconds must be 0 or more"
    return None
