"""Raw payloads, kept compressed before they are parsed: the evidence behind every number, and a way to replay.

Layout under the archive root (default var/archive):

    <connector>/<YYYY-MM-DD>/run-<id>/<seq>-<label>.gz

A payload's reference is its path relative to the root; run records and quarantined records carry it, so an
alert's drill-down can open exactly what the source sent. Runs older than the retention are purged at the
start of later runs of the same connector.
"""

from __future__ import annotations

import gzip
import queue
import re
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from connectors.base import RetriableError

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
CHUNK = 1 << 20


def safe_label(label: str) -> str:
    """A file-name-safe version of a label (a URL, a file name with Chinese characters...)."""
    cleaned = _SAFE.sub("_", label).strip("._") or "payload"
    return cleaned[-80:]


@dataclass
class RunArchive:
    """The payloads of one run of one connector.

    With `write_behind`, payloads given as bytes are compressed and written by a thread of their own: creating a
    file costs about a millisecond of the kernel's time here, and a connector reading page after page (SensorThings:
    a datastream's pages, then the next one's) would wait for it each time. `flush` waits until every payload
    stored so far is on disk: the runner calls it before each commit, so no committed record names a payload that
    is not there. `close` writes what is left and ends the thread.

    A payload that cannot be written (a full disk, a read-only folder) raises `ArchiveUnwritable`, naming it: the
    run fails before committing anything from it, and its cursor stays for the next run to fetch it again."""

    root: Path
    connector: str
    run_id: int
    started_at: float
    write_behind: bool = False

    def __post_init__(self):
        day = datetime.fromtimestamp(self.started_at, timezone.utc).strftime("%Y-%m-%d")
        self.folder = self.root / safe_label(self.connector) / day / f"run-{self.run_id}"
        self.count = 0
        self.bytes_in = 0
        self._folder_made = False
        self._pending: queue.Queue | None = None
        self._writer: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._closed = False

    @property
    def reference(self) -> str:
        return self.folder.relative_to(self.root).as_posix()

    def store(self, label: str, payload: bytes | BinaryIO, media_type: str = "application/octet-stream") -> str:
        """Compress and keep one payload; returns its reference. Streams are copied in chunks (a 1 GB file
        never sits in memory)."""
        self._raise_failure()
        if not self._folder_made:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ArchiveUnwritable(self.folder, error) from error
            self._folder_made = True
        self.count += 1
        path = self.folder / f"{self.count:04d}-{safe_label(label)}.gz"
        if isinstance(payload, (bytes, bytearray, memoryview)):
            payload = bytes(payload)  # copies only the mutable kinds: the caller may change those meanwhile
            self.bytes_in += len(payload)
            if self.write_behind and not self._closed:
                self._queue().put((path, payload))
            else:
                _write(path, payload)
        else:
            with gzip.open(path, "wb", compresslevel=COMPRESS_LEVEL) as target:
                while chunk := payload.read(CHUNK):
                    target.write(chunk)
                    self.bytes_in += len(chunk)
        return path.relative_to(self.root).as_posix()

    def flush(self) -> None:
        """Wait until every payload stored so far is written; raises what writing one of them raised."""
        if self._pending is not None:
            self._pending.join()
        self._raise_failure()

    def close(self) -> None:
        """Write what is pending and end the writing thread; payloads stored after this are written at once."""
        self._closed = True
        if self._pending is not None:
            self._pending.put(None)
            self._writer.join()
            self._pending = self._writer = None
        self._raise_failure()

    def _queue(self) -> queue.Queue:
        if self._pending is None:
            # A few pages' worth: a disk slower than the source holds the reading back rather than filling memory.
            self._pending = queue.Queue(maxsize=WRITE_BEHIND_PAYLOADS)
            self._writer = threading.Thread(target=self._write_pending, args=(self._pending,),
                                            name=f"{self.connector} archive", daemon=True)
            self._writer.start()
        return self._pending

    def _write_pending(self, pending: queue.Queue) -> None:
        while True:
            item = pending.get()
            try:
                if item is None:
                    return
                if self._failure is None:  # after a failure the run fails: nothing more is written
                    _write(*item)
            except BaseException as error:  # noqa: BLE001 - raised in the run's thread, by store or flush
                self._failure = error
            finally:
                pending.task_done()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure


class ArchiveUnwritable(RetriableError):
    """A payload could not be written to the archive. Retriable: once there is space again (or the folder is
    writable), the next run fetches and archives what this one did not commit."""

    def __init__(self, path: Path, error: OSError):
        super().__init__(f"could not write the raw payload {path} to the archive: {error.strerror or error}; free "
                         f"space there or make the archive folder (ONESCREEN_ARCHIVE_DIR) writable. Nothing fetched "
                         f"after the last commit was stored: the next run fetches it again")


# Level 3: archiving runs in ingest's time; a few percent larger than level 6, several times faster.
COMPRESS_LEVEL = 3
# Payloads waiting to be written behind the reading (each a page: ~0.1-1 MB).
WRITE_BEHIND_PAYLOADS = 32


def _write(path: Path, payload: bytes) -> None:
    """A payload compressed in one call and written with one (a gzip member, as `gzip.open` reads it): every call
    into zlib or the file system gives up the interpreter lock and waits to take it back."""
    compressed = gzip.compress(payload, compresslevel=COMPRESS_LEVEL, mtime=0)
    try:
        with open(path, "wb") as target:
            target.write(compressed)
    except OSError as error:
        raise ArchiveUnwritable(path, error) from error


def open_payload(root: Path, reference: str) -> BinaryIO:
    """An archived payload, decompressed as it is read. The reference must stay inside the archive."""
    path = (root / reference).resolve()
    if root.resolve() not in path.parents or path.suffix != ".gz" or not path.is_file():
        raise FileNotFoundError(f"no archived payload {reference!r} under {root}")
    return gzip.open(path, "rb")


def run_payloads(root: Path, run_reference: str) -> list[str]:
    """The references of every payload of one run, in the order they were stored."""
    folder = (root / run_reference).resolve()
    if root.resolve() not in folder.parents or not folder.is_dir():
        return []
    return [path.relative_to(root.resolve()).as_posix() for path in sorted(folder.glob("*.gz"))]


def purge(root: Path, connector: str, retention_seconds: float, now: float | None = None) -> int:
    """Delete this connector's run folders older than the retention; returns how many were removed."""
    now = time.time() if now is None else now
    base = root / safe_label(connector)
    if not base.is_dir():
        return 0
    removed = 0
    for day in base.iterdir():
        try:
            day_start = datetime.strptime(day.name, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue  # not ours
        if day_start + 86400 > now - retention_seconds:
            continue  # the whole day is not yet past the retention
        for run in day.iterdir():
            shutil.rmtree(run, ignore_errors=True)
            removed += 1
        shutil.rmtree(day, ignore_errors=True)
    return removed
