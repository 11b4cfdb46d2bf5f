"""Raw payloads archived behind the reading (connectors/archive.py, `write_behind`): when writing one fails, the
run says so and loses nothing.

The archive promises that `flush` — called by the runner before every commit — raises what writing a payload
raised, so no committed record comes from a payload that is not on disk; the run then fails, its cursor stays
where it was, and the next run fetches again what was not committed. Here the failure is real: one payload's
file is the kernel's /dev/full, so writing it fails with ENOSPC as on a full disk. The source is a real
SensorThings server; the connector and the runner are the shipped ones.
"""

from __future__ import annotations

import gzip
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

import connectors.sensorthings  # noqa: F401  (registers the type)
import connectors.sensorthings_observations
from cityops.hierarchy import Level
from connectors.archive import run_payloads
from connectors.config import ConnectorInstance
from connectors.runner import run_connector
from sensorthings_server import sensorthings_server

ZONE = "Asia/Shanghai"
STREETS = ["990101001", "990101002", "990102001", "990102002"]
PAGE = 5
READINGS = 12  # per datastream: pages of 5, 5 and 2

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full (a full device)")


def readings(now: int, street: int) -> list[tuple[int, float]]:
    return [(now - 3600 * 6 + 1200 * k + 60 * street, float(50 + 10 * street + k)) for k in range(READINGS)]


def instance(root: str) -> ConnectorInstance:
    return ConnectorInstance(name="iot", type="sensorthings", levels=(Level.STREET,), interval_seconds=600,
                             config={"url": root, "unit_code_from": "thing_property:street_code",
                                     "indicator_from": "datastream_property:onescreen_indicator",
                                     "page_size": PAGE, "backoff": 0.01, "max_wait": 5.0, "timeout": 5.0})


def stored(db) -> dict[tuple[str, int], float]:
    with db.session() as session:
        rows = session.execute(text("SELECT u.code, o.observed_at, o.value FROM observations o "
                                    "JOIN units u ON u.id = o.unit_id")).all()
    return {(code, int(at)): value for code, at, value in rows}


def archived_observations(root: Path, run_reference: str) -> dict[tuple[str, int], float]:
    """What the run's archived Observations pages hold (each page's datastream names its street)."""
    found = {}
    for reference in run_payloads(root, run_reference):
        path = root / reference
        if path.is_symlink():
            continue  # the payload whose writing failed
        document = json.loads(gzip.decompress(path.read_bytes()))
        if isinstance(document, dict) and "datastream" in document:
            street = document["datastream"]["Thing"]["properties"]["street_code"]
            for observation in document["observations"]["value"]:
                at = int(datetime.fromisoformat(observation["phenomenonTime"].replace("Z", "+00:00")).timestamp())
                found[(street, at)] = observation["result"]
    return found


# Payload 8 is the first Observations page of the third datastream (after the Datastreams page and three pages of
# each of the first two): pages after it are stored, and may meet the failure first, while it is written. Payload
# 13 is the run's last page: only the runner's flush before the last commit stands between it and the database.
@pytest.mark.parametrize("unwritable", ["0008-observations-3-1.json.gz", "0013-observations-4-3.json.gz"])
def test_a_payload_that_cannot_be_written_fails_the_run_clearly_and_loses_nothing(sqlite_city_db, now, tmp_path,
                                                                                  monkeypatch, unwritable):
    # Batches of a page, committed two pages at a time: the pages before the failing one are committed first.
    monkeypatch.setattr(connectors.sensorthings_observations, "BATCH_ROWS", PAGE)
    sent = {street: readings(now, n) for n, street in enumerate(STREETS)}
    root = tmp_path / "archive"
    # Run 1's folder, where that payload's file is a full device.
    run_folder = root / "iot" / datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%d") / "run-1"
    run_folder.mkdir(parents=True)
    full = run_folder / unwritable
    full.symlink_to("/dev/full")

    with sensorthings_server() as source:
        for street, series in sent.items():
            source.series(street, "aqi", series)
        first = run_connector(sqlite_city_db.url, instance(source.root), sqlite_city_db.catalog, timezone=ZONE,
                              now=now, archive_root=root, batch_size=2 * PAGE)
        assert first.run_id == 1 and first.archive == run_folder.relative_to(root).as_posix()

        # The run says what failed, where, and that the next run fetches again what was not stored (retriable:
        # once there is space the schedule carries on, nothing for an operator to unpause).
        assert first.status == "partial" and first.error_family == "retriable"
        assert first.error_message.startswith(f"could not write the raw payload {full} to the archive: No space "
                                              f"left on device;")
        with sqlite_city_db.session() as session:
            recorded = session.execute(text("SELECT status, error_family, error_message, archive FROM "
                                            "connector_runs WHERE id = 1")).one()
        assert tuple(recorded) == (first.status, first.error_family, first.error_message, first.archive)

        # What it committed came from payloads on disk; what it did not, the next run fetches: the cursor stayed.
        committed = stored(sqlite_city_db)
        all_sent = {(street, at): value for street, series in sent.items() for at, value in series}
        assert 0 < len(committed) == first.accepted < len(all_sent)
        assert committed.items() <= archived_observations(root, first.archive).items()
        with sqlite_city_db.session() as session:
            assert session.execute(text("SELECT count(*) FROM connector_cursors")).scalar() == 0

        # Space again: the next run stores everything the source has, the committed part as duplicates.
        full.unlink()
        second = run_connector(sqlite_city_db.url, instance(source.root), sqlite_city_db.catalog, timezone=ZONE,
                               now=now + 600, archive_root=root, batch_size=2 * PAGE)
    assert (second.status, second.accepted, second.duplicates) == ("ok", len(all_sent) - len(committed),
                                                                    len(committed))
    assert stored(sqlite_city_db) == all_sent
    assert archived_observations(root, second.archive) == all_sent
