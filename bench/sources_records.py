"""What bench/connector_types.py's sources are made of (bench/connector_sources.py lists them by connector type): the
demo city as a source sees it, the planned records (`Plan.frames`, the same for every file-, database- and API-based
type), the source a builder returns (`Source`) and a type's own raw baseline (`RawBaseline`).
"""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import common  # noqa: E402

CHUNK_ROWS = 100_000
SEED = 2026
SOURCE_URL_ENV = "ONESCREEN_BENCH_SOURCE_URL"

# The hourly indicators a city's source systems report, by the level they are reported for.
COMMUNITY_HOURLY = ("hotline_complaints", "grid_incidents_open", "grid_incidents_overdue", "fire_alarms",
                    "waterlogging_depth")
STREET_HOURLY = ("aqi", "pm25", "population_inflow")


# ------------------------------------------------------------------------------------------------
# The records every synthetic source holds
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class City:
    """The demo city as a source sees it: which (unit, indicator) pairs report every hour, and the ids the
    raw baseline stores."""

    template: Path
    pair_codes: np.ndarray   # unit code of each pair, hour after hour in this order
    pair_keys: np.ndarray    # catalog key of each pair
    unit_ids: dict[str, int]
    indicator_ids: dict[str, int]
    names_zh: dict[str, str]  # catalog key → Chinese name, as an office's export would write it
    timezone: str

    @classmethod
    def load(cls, template: Path) -> "City":
        from cityops.catalog import load_catalog
        from cityops.hierarchy import Level

        settings = common.settings_for(template)
        connection = sqlite3.connect(template)
        try:
            units = connection.execute("SELECT code, id, level FROM units ORDER BY code").fetchall()
            indicator_ids = dict(connection.execute("SELECT key, id FROM indicators").fetchall())
        finally:
            connection.close()
        codes, keys = [], []
        for level, indicators in ((Level.COMMUNITY, COMMUNITY_HOURLY), (Level.STREET, STREET_HOURLY)):
            at_level = [code for code, _, unit_level in units if unit_level == int(level)]
            for key in indicators:
                codes += at_level
                keys += [key] * len(at_level)
        catalog = load_catalog(settings.catalog_path)
        return cls(template, np.array(codes, dtype=object), np.array(keys, dtype=object),
                   {code: ident for code, ident, _ in units}, indicator_ids,
                   {indicator.key: indicator.name_zh for indicator in catalog}, settings.timezone)

    @property
    def per_hour(self) -> int:
        return len(self.pair_codes)


@dataclass(frozen=True)
class Plan:
    """A source of `records` records ending at the last full hour before `now`."""

    records: int
    now: int
    city: City

    @property
    def first_hour(self) -> int:
        last_hour = self.now // 3600 * 3600 - 3600
        return last_hour - (math.ceil(self.records / self.city.per_hour) - 1) * 3600

    def frames(self, rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
        """The records in source order (hour by hour), `rows` at a time: unit_code, indicator, observed_at
        (epoch seconds), value. Deterministic: the same plan gives the same records."""
        city = self.city
        offset = _utc_offset(city.timezone, self.now)
        for start in range(0, self.records, rows):
            index = np.arange(start, min(start + rows, self.records))
            pair = index % city.per_hour
            observed = self.first_hour + (index // city.per_hour) * 3600
            keys = city.pair_keys[pair]
            rng = np.random.default_rng([SEED, start])
            values = realistic_values(keys, (observed + offset) % 86400 / 3600, rng)
            yield pd.DataFrame({"unit_code": city.pair_codes[pair], "indicator": keys, "observed_at": observed,
                                "value": values})

    def raw_rows(self) -> list[tuple]:
        """The records as the rows the baseline inserts: (unit_id, indicator_id, observed_at, value)."""
        rows: list[tuple] = []
        for frame in self.frames():
            units = frame["unit_code"].map(self.city.unit_ids).to_numpy(dtype=np.int64)
            indicators = frame["indicator"].map(self.city.indicator_ids).to_numpy(dtype=np.int64)
            rows += zip(units.tolist(), indicators.tolist(), frame["observed_at"].tolist(),
                        frame["value"].tolist())
        return rows


def realistic_values(keys: np.ndarray, local_hour: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Values of the magnitudes each indicator has in the catalog's thresholds, busier by day than by night."""
    daytime = np.clip(np.sin(np.pi * (local_hour - 6) / 14), 0, None)  # 0 at night, 1 early afternoon
    values = np.zeros(len(keys))
    models: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "hotline_complaints": lambda d: rng.poisson(0.2 + 1.3 * d),
        "grid_incidents_open": lambda d: rng.poisson(6 + 3 * d),
        "grid_incidents_overdue": lambda d: rng.poisson(0.9, len(d)),
        "fire_alarms": lambda d: rng.poisson(0.01, len(d)),
        "waterlogging_depth": lambda d: np.where(rng.random(len(d)) < 0.02,
                                                 np.round(rng.gamma(2, 4, len(d)), 1), 0.0),
        "aqi": lambda d: np.round(np.clip(rng.normal(62 + 18 * d, 14), 12, 300)),
        "pm25": lambda d: np.round(np.clip(rng.normal(34 + 12 * d, 9), 3, 250), 1),
        "population_inflow": lambda d: np.round(rng.gamma(4, 250 * (0.25 + d))),
        "noise": lambda d: np.round(np.clip(rng.normal(48 + 12 * d, 4), 30, 95), 1),
    }
    for key, model in models.items():
        chosen = keys == key
        if chosen.any():
            values[chosen] = model(daytime[chosen])
    return values


def time_texts(epochs: pd.Series, zone_name: str, style: Callable[[datetime], str]) -> np.ndarray:
    """Epoch seconds as a source writes them (each distinct hour formatted once)."""
    codes, distinct = pd.factorize(epochs)
    zone = ZoneInfo(zone_name)
    return np.array([style(datetime.fromtimestamp(int(t), zone)) for t in distinct], dtype=object)[codes]


def _utc_offset(zone_name: str, at: float) -> int:
    offset = datetime.fromtimestamp(at, ZoneInfo(zone_name)).utcoffset()
    return int(offset.total_seconds()) if offset else 0


# ------------------------------------------------------------------------------------------------
# What a builder returns
# ------------------------------------------------------------------------------------------------


@dataclass
class Source:
    """A built source and the connectors.yaml entry that reads it."""

    entry: dict
    records: int                       # how many records it holds
    since: str | None = None           # run_connector's `since` (a backfill start), None: the stored cursor
    env: dict = field(default_factory=dict)  # environment of the run (secrets named by *_env)
    module: str | None = None          # the module registering the type, when `import connectors` does not
    server: subprocess.Popen | None = None  # stopped when the run is over
    noun: str = "records"              # what the source's records are (incidents, readings), for the figures
    detail: str = ""                   # what the figures' labels must say about the source
    note: str = ""                     # how the source is built, for the report's notes
    cleanups: list[Callable[[], None]] = field(default_factory=list)  # run before the server is stopped

    def close(self) -> None:
        try:
            for cleanup in self.cleanups:
                cleanup()
        finally:
            if self.server is not None:
                common.stop_process(self.server)


@dataclass
class RawBaseline:
    """A type's own baseline: raw executemany of its source's records, as the source has them, into one plain table
    (bench/ingest.py run_raw_table). Types without one are compared with the observation rows (Plan.raw_rows)."""

    rows: list[tuple]
    table: str                # its name
    table_ddl: str            # CREATE TABLE
    columns: tuple[str, ...]  # of each row
    noun: str
    note: str
