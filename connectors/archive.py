"""Raw payloads, kept compressed before they are parsed: the evidence behind every number, and a way to replay.

Layout under the archive root (default var/archive):

    <connector>/<YYYY-MM-DD>/run-<id>/<seq>-<label>.gz

A payload's reference is its path relative to the root; run records and quarantined records carry it, so an
alert's drill-down can open exactly what the source sent. Runs older than the retention are purged at the
start of later runs of the same connector.
"""

from __future__ import annotations

import gzip
import re
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
CHUNK = 1 << 20


def safe_label(label: str) -> str:
    """A file-name-safe version of a label (a URL, a file name with Chinese characters...)."""
    cleaned = _SAFE.sub("_", label).strip("._") or "payload"
    return cleaned[-80:]


@dataclass
class RunArchive:
    """The payloads of one run of one connector."""

    root: Path
    connector: str
    run_id: int
    started_at: float

    def __post_init__(self):
        day = datetime.fromtimestamp(self.started_at, timezone.utc).strftime("%Y-%m-%d")
        self.folder = self.root / safe_label(self.connector) / day / f"run-{self.run_id}"
        self.count = 0
        self.bytes_in = 0

    @property
    def reference(self) -> str:
        return self.folder.relative_to(self.root).as_posix()

    def store(self, label: str, payload: bytes | BinaryIO, media_type: str = "application/octet-stream") -> str:
        """Compress and keep one payload; returns its reference. Streams are copied in chunks (a 1 GB file
        never sits in memory)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count += 1
        path = self.folder / f"{self.count:04d}-{safe_label(label)}.gz"
        # Level 3: archiving runs in ingest's time; a few percent larger than level 6, several times faster.
        with gzip.open(path, "wb", compresslevel=3) as target:
            if isinstance(payload, (bytes, bytearray, memoryview)):
                target.write(payload)
                self.bytes_in += len(payload)
            else:
                while chunk := payload.read(CHUNK):
                    target.write(chunk)
                    self.bytes_in += len(chunk)
        return path.relative_to(self.root).as_posix()


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
