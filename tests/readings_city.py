"""The tiny city with two hours of hand-picked readings, for the tests of what the screen reads
(test_scope_and_readings.py, test_map_drill.py).

Thresholds are tuned in data/indicators.yaml as the city calibrates them, so the tests that check colours use the
`pinned_catalog` fixture below: the shipped catalog with the thresholds pinned here. `populate` loads these values:

    hotline_complaints (sum; community thresholds 3/5, street 14/22, district 140/190, city 1700/2300)
        previous hour (01:10 UTC): every community 1, except 990102002001 with 2
        this hour (02:10 UTC):     4, 1 | 6, 0 | 9, 6 | —, 1     (990102002001 is silent and so stale)
    aqi (street, population-weighted; 100/150):  80 | 120 | 160 | 90
    garbage_sorting_compliance (higher is better; 90/80): 95 everywhere except 85 and 75 in street 990101001
    grid incidents: 10 open everywhere; 2 overdue in 990101001001 only (overdue rate thresholds 10/15)
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from cityops.buckets import bucket_start
from cityops.catalog import Catalog, Thresholds
from cityops.hierarchy import Level
from cityops.rollup import refresh_rollups
from cityops.tree import load_tree

ZONE = ZoneInfo("Asia/Shanghai")
NOW = int(datetime(2026, 11, 26, 10, 30, tzinfo=ZONE).timestamp())  # 02:30 UTC
HOUR = bucket_start(NOW, 3600)
OFFSET = 8 * 3600

CITY, D1, D2 = "990000", "990101", "990102"
S11, S12, S21, S22 = "990101001", "990101002", "990102001", "990102002"
C = [s + c for s in (S11, S12, S21, S22) for c in ("001", "002")]  # C[0] … C[7], populations 1000 … 8000

HOTLINE_NOW = dict(zip(C, [4, 1, 6, 0, 9, 6, None, 1]))
AQI = dict(zip([S11, S12, S21, S22], [80, 120, 160, 90]))
GARBAGE = dict(zip(C, [95, 85, 75, 95, 95, 95, 95, 95]))


def populate(db) -> None:
    earlier, latest = HOUR - 3000, HOUR + 600
    observations = [(code, "hotline_complaints", earlier, 2 if code == C[6] else 1) for code in C]
    observations += [(code, "hotline_complaints", latest, v) for code, v in HOTLINE_NOW.items() if v is not None]
    observations += [(code, "aqi", NOW - 900, v) for code, v in AQI.items()]
    observations += [(code, "garbage_sorting_compliance", NOW - 5 * 3600, v) for code, v in GARBAGE.items()]
    observations += [(code, "grid_incidents_open", latest, 10) for code in C]
    observations += [(code, "grid_incidents_overdue", latest, 2 if code == C[0] else 0) for code in C]
    _, touched = db.store(observations)
    with db.session() as session:
        refresh_rollups(session, db.catalog, db.indicator_ids, load_tree(session), touched, NOW, OFFSET)
        session.execute(text("INSERT INTO connector_runs (connector, started_at, finished_at, status, fetched, "
                             "accepted, rejected, duplicates) VALUES ('sim', :s, :f, 'ok', 1, 1, 0, 0), "
                             "('sim', :s, :late, 'failed', 0, 0, 0, 0)"), {"s": NOW - 60, "f": NOW, "late": NOW + 60})


def _pairs(**levels):
    return {Level[name.upper()]: Thresholds(*pair) for name, pair in levels.items()}


PINNED_THRESHOLDS = {
    "hotline_complaints": _pairs(community=(3, 5), street=(14, 22), district=(140, 190), city=(1700, 2300)),
    "grid_overdue_rate": _pairs(community=(10, 15), street=(10, 15), district=(10, 15), city=(10, 15)),
    "garbage_sorting_compliance": _pairs(community=(90, 80), street=(90, 80), district=(90, 80), city=(90, 80)),
    "aqi": _pairs(street=(100, 150), district=(100, 150), city=(100, 150)),
}


# Registered as `catalog`: a test module importing `pinned_catalog` gets these thresholds wherever it asks for
# `catalog` (its own fixtures included), and every other module keeps conftest's shipped catalog.
@pytest.fixture(scope="module", name="catalog")
def pinned_catalog(catalog):
    """The shipped catalog with the thresholds the readings tests' expectations were worked out for."""
    return Catalog(tuple(replace(i, thresholds=PINNED_THRESHOLDS.get(i.key, i.thresholds)) for i in catalog),
                   catalog.source)
