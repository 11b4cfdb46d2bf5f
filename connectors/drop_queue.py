"""The drop folder as a queue: files claimed into `processing/<token>/`, then moved on to `processed/` or
`failed/` without ever overwriting one (see connectors/files.py for the whole life of a file)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

PROCESSING, PROCESSED, FAILED, AGAIN = "processing", "processed", "failed", "again"


def folder_problem(folder: Path) -> str | None:
    """Why the drop folder cannot be used, or None."""
    if not folder.is_dir():
        return f"drop folder {folder} does not exist or is not a folder: create it or fix config.folder"
    for path in (folder, *(folder / sub for sub in (PROCESSING, PROCESSED, FAILED))):
        if path.exists() and not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            return f"{path} is not readable and writable by this process: fix its permissions"
    return None


def files_in(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        yield from (path for path in folder.iterdir() if path.is_file())


def files_below(folder: Path) -> Iterator[Path]:
    """The files of a claim folder: first attempts and those read again."""
    yield from files_in(folder)
    yield from files_in(folder / AGAIN)


def claimed_count(processing: Path) -> int:
    """Files read by earlier runs and not yet confirmed (or put into processing/ by hand)."""
    if not processing.is_dir():
        return 0
    return sum(1 if entry.is_file() else sum(1 for _ in files_below(entry)) for entry in processing.iterdir())


def token_order(path: Path) -> tuple[float, str]:
    try:
        return float(path.name), path.name
    except ValueError:
        return float("inf"), path.name


def new_token(processing: Path) -> str:
    """This run's claim folder name and cursor: its start time, unique among the claims present."""
    moment = time.time()
    while (processing / (token := f"{moment:.6f}")).exists():
        moment += 1e-6
    return token


def claim(path: Path, folder: Path) -> Path | None:
    """Move a file into a claim folder (atomically, in the same file system); None when it has gone."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None  # taken by another run meanwhile
    return target


def move_unique(path: Path, folder: Path) -> Path | None:
    """Move a file into a folder without overwriting: report.csv, report-2.csv, report-3.csv..."""
    folder.mkdir(parents=True, exist_ok=True)
    stem, suffix = path.stem, path.suffix
    target, number = folder / path.name, 1
    while target.exists() or target.with_name(target.name + ".reason.txt").exists():
        number += 1
        target = folder / f"{stem}-{number}{suffix}"
    try:
        os.replace(path, target)
    except FileNotFoundError:
        return None
    return target


def remove_empty(folder: Path) -> None:
    for path in (folder / AGAIN, folder):
        try:
            path.rmdir()
        except OSError:
            pass  # not empty (something unexpected is in it) or already gone: leave it
