"""The sources of bench/connector_types.py: for each connector type, a builder making a source of N records for
the demo city (files, databases, rendered API pages, a private MQTT broker) and the connectors.yaml entry that
reads it. The servers they run on (the page server, the broker) are in bench/source_servers.py.
"""

from __future__ import annotations

import json
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
from source_servers import (FROST_PATH, OPEN311_PATH, PAGE_ROWS, close_session, connect, mqtt_client,  # noqa: E402
                            open_session, start_broker, start_page_server)

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
# Source builders: one per connector type
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


def build_drop_folder(plan: Plan, folder: Path) -> Source:
    """One CSV as a street office's Excel exports it: Chinese headers and indicator names, loose times."""
    drop = folder / "drop"
    drop.mkdir()
    path = drop / "街道办-小时报表.csv"
    names = plan.city.names_zh
    with path.open("w", encoding="utf-8", newline="") as out:
        for number, frame in enumerate(plan.frames()):
            table = pd.DataFrame({
                "单位代码": frame["unit_code"], "指标": frame["indicator"].map(names),
                "时间": time_texts(frame["observed_at"], plan.city.timezone,
                                 lambda t: f"{t.year}/{t.month}/{t.day} {t.hour}:{t.minute:02d}"),
                "数值": frame["value"]})
            table.to_csv(out, header=number == 0, index=False, float_format="%.10g")
    entry = {"name": "bench-drop-folder", "type": "drop_folder", "levels": ["community", "street"],
             "schedule": {"interval": "5m"}, "timeout": "30m",
             "config": {"folder": str(drop), "settle_seconds": 0},
             "mapping": {"unit_code": "单位代码", "observed_at": "时间", "indicator": "指标", "value": "数值",
                         "indicator_names": {names[key]: key for key in (*COMMUNITY_HOURLY, *STREET_HOURLY)}}}
    return Source(entry, plan.records)


def build_sql_query(plan: Plan, folder: Path) -> Source:
    """A grid-management system's SQLite database with an hourly readings table, read from its first hour."""
    path = folder / "grid-system.db"
    connection = sqlite3.connect(path)
    try:
        connection.execute("CREATE TABLE hourly_readings (unit_code TEXT NOT NULL, metric TEXT NOT NULL, "
                           "hour TEXT NOT NULL, value REAL)")
        for frame in plan.frames():
            hours = time_texts(frame["observed_at"], plan.city.timezone, lambda t: t.strftime("%Y-%m-%d %H:%M:%S"))
            connection.executemany("INSERT INTO hourly_readings VALUES (?, ?, ?, ?)",
                                   zip(frame["unit_code"], frame["indicator"], hours, frame["value"].tolist()))
        connection.execute("CREATE INDEX hourly_readings_hour ON hourly_readings (hour)")
        connection.commit()
    finally:
        connection.close()
    start = datetime.fromtimestamp(plan.first_hour, ZoneInfo(plan.city.timezone)).isoformat()
    entry = {"name": "bench-sql-query", "type": "sql_query", "levels": ["community", "street"],
             "schedule": {"interval": "10m"}, "timeout": "30m",
             "config": {"url_env": SOURCE_URL_ENV,
                        "query": "SELECT unit_code, metric, hour, value FROM hourly_readings",
                        "time_column": "hour", "time_format": "timestamp", "start": start, "batch_rows": 50_000},
             "mapping": {"unit_code": "unit_code", "observed_at": "hour", "indicator": "metric", "value": "value"}}
    return Source(entry, plan.records, env={SOURCE_URL_ENV: common.sqlite_url(path)})


def build_http_json(plan: Plan, folder: Path) -> Source:
    """A JSON API paged by page number, served from pages rendered beforehand by a subprocess."""
    pages = folder / "pages"
    pages.mkdir()
    number = 0
    for frame in plan.frames(rows=CHUNK_ROWS - CHUNK_ROWS % PAGE_ROWS):
        rows = pd.DataFrame({
            "unit_code": frame["unit_code"], "metric": frame["indicator"],
            "reported_at": time_texts(frame["observed_at"], plan.city.timezone, lambda t: t.isoformat()),
            "value": frame["value"]})
        for start in range(0, len(rows), PAGE_ROWS):
            number += 1
            items = rows.iloc[start:start + PAGE_ROWS].to_json(orient="records", force_ascii=False)
            (pages / f"page-{number}.json").write_bytes(
                b'{"code": 0, "data": {"total": %d, "items": ' % plan.records + items.encode() + b"}}")
    port = common.free_port()
    server = start_page_server("readings", pages, port, folder)
    entry = {"name": "bench-http-json", "type": "http_json", "levels": ["community", "street"],
             "schedule": {"interval": "10m"}, "timeout": "30m",
             "config": {"url": f"http://127.0.0.1:{port}/api/v1/readings", "records_path": "data.items",
                        "pagination": "page", "page_size": PAGE_ROWS, "max_pages": number + 10, "timeout": 30},
             "mapping": {"unit_code": "unit_code", "observed_at": "reported_at", "indicator": "metric",
                         "value": "value"}}
    return Source(entry, plan.records, server=server,
                  note="http_json pages (1,000 rows each) come from a separate http.server process, rendered "
                       "beforehand")


def build_simulator(plan: Plan, folder: Path) -> Source:
    """The configured simulator, from the `since` whose window holds (at least) the planned records."""
    import yaml

    settings = common.settings_for(plan.city.template)
    document = yaml.safe_load(settings.connectors_path.read_text(encoding="utf-8"))
    entry = next(item for item in document["connectors"] if item["type"] == "simulator")
    since, records = simulator_window(plan)
    return Source(dict(entry, name="bench-simulator"), records, since=str(since))


def simulator_window(plan: Plan) -> tuple[int, int]:
    """(since, records): the latest start whose window up to `now` holds at least `plan.records` records.
    The simulator's records are a function of time alone, so a window generated once tells."""
    from cityops.catalog import load_catalog
    from cityops.db import session_scope
    from cityops.tree import load_tree
    from connectors.base import ConnectorContext
    from connectors.runner import build_connector

    settings = common.settings_for(plan.city.template)
    with session_scope(settings.database_url) as session:
        tree = load_tree(session)
    common.release(settings.database_url)
    context = ConnectorContext(catalog=load_catalog(settings.catalog_path), tree=tree, now=plan.now,
                               timezone=settings.timezone)
    connector = build_connector(common.simulator_instance(settings), context)
    window = max(3600, int(plan.records / 800_000 * 86400))  # the demo city reports ~0.9-1 M records a day
    while True:
        times = np.concatenate([batch.frame["observed_at"].to_numpy()
                                for batch in connector.fetch(str(plan.now - window))])
        if len(times) >= plan.records:
            since = int(np.sort(times)[::-1][plan.records - 1])
            return since, int((times >= since).sum())
        window *= 2


# Street-level indicators a SensorThings air/noise network reports, by the ObservedProperty names it uses.
SENSOR_PROPERTIES = {"aqi": "Air Quality Index", "pm25": "PM2.5", "noise": "Noise level"}
SENSOR_UNITS = {"aqi": ("AQI", "AQI"), "pm25": ("microgram per cubic metre", "µg/m³"), "noise": ("decibel", "dB(A)")}


def build_sensorthings(plan: Plan, folder: Path) -> Source:
    """A SensorThings server: a Datastream per street and air/noise indicator, the planned number of hourly
    Observations spread over them (each datastream's in time order), pages rendered beforehand."""
    pages = folder / "pages"
    pages.mkdir()
    port = common.free_port()
    root = f"http://127.0.0.1:{port}{FROST_PATH}"
    city = plan.city
    streets = sorted(city.pair_codes[city.pair_keys == STREET_HOURLY[0]])
    streams = [(code, key) for code in streets for key in SENSOR_PROPERTIES]
    if len(streams) > PAGE_ROWS:
        raise RuntimeError(f"{len(streams)} datastreams do not fit one Datastreams page of {PAGE_ROWS}")
    entities = [datastream_entity(root, ident, code, key, streets.index(code) + 1)
                for ident, (code, key) in enumerate(streams, start=1)]
    (pages / "datastreams.json").write_text(json.dumps({"value": entities}, ensure_ascii=False), encoding="utf-8")

    per_stream, extra = divmod(plan.records, len(streams))
    last_hour = plan.now // 3600 * 3600 - 3600
    longest = per_stream + (extra > 0)
    # phenomenonTime as FROST writes it (UTC), each hour formatted once.
    hours = last_hour - np.arange(longest - 1, -1, -1) * 3600
    texts = [datetime.fromtimestamp(int(t), ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%S.000Z") for t in hours]
    offset = _utc_offset(city.timezone, plan.now)
    observation_id = 0
    for ident, (code, key) in enumerate(streams, start=1):
        count = per_stream + (ident <= extra)
        if count == 0:
            continue
        times = hours[longest - count:]
        values = realistic_values(np.full(count, key, dtype=object), (times + offset) % 86400 / 3600,
                                  np.random.default_rng([SEED, ident])).tolist()
        for number, start in enumerate(range(0, count, PAGE_ROWS), start=1):
            value = [{"@iot.id": observation_id + position + 1, "phenomenonTime": texts[longest - count + position],
                      "resultTime": texts[longest - count + position], "result": values[position]}
                     for position in range(start, min(start + PAGE_ROWS, count))]
            page: dict = {"value": value}
            if start + PAGE_ROWS < count:
                page["@iot.nextLink"] = (f"{root}/Datastreams({ident})/Observations?$orderby=phenomenonTime%20asc"
                                         f"&$top={PAGE_ROWS}&$skip={start + PAGE_ROWS}")
            (pages / f"observations-{ident}-{number}.json").write_text(json.dumps(page), encoding="utf-8")
        observation_id += count
    server = start_page_server("sensorthings", pages, port, folder)
    entry = {"name": "bench-sensorthings", "type": "sensorthings", "levels": ["street"],
             "schedule": {"interval": "10m"}, "timeout": "30m",
             "config": {"url": root, "unit_code_from": "thing_property:street_code",
                        "indicator_from": "observed_property_name",
                        "indicator_names": {name: key for key, name in SENSOR_PROPERTIES.items()},
                        "page_size": PAGE_ROWS, "history": "", "timeout": 30}}
    return Source(entry, plan.records, server=server,
                  detail=f", {len(streams)} Datastreams: {len(streets)} streets × {'/'.join(SENSOR_PROPERTIES)}, "
                         f"hourly",
                  note=f"sensorthings: {len(streams)} Datastreams ({len(streets)} streets × "
                       f"{', '.join(SENSOR_PROPERTIES)}; Thing and ObservedProperty expanded, resolved by "
                       f"thing_property:street_code and observed_property_name) with N hourly Observations spread "
                       f"evenly over them ({per_stream:,}-{longest:,} each at {plan.records:,}, so they reach "
                       f"{longest / 24:,.0f} days back), pages of {PAGE_ROWS:,} (@iot.nextLink with $skip) from a "
                       f"separate http.server process, rendered beforehand; its records are not the raw baseline's "
                       f"(street air/noise readings only), the count is the same")


def datastream_entity(root: str, ident: int, code: str, key: str, thing: int) -> dict:
    """A Datastream as FROST lists it with $expand=Thing,ObservedProperty."""
    name, symbol = SENSOR_UNITS[key]
    observed = list(SENSOR_PROPERTIES).index(key) + 1
    return {"@iot.id": ident, "@iot.selfLink": f"{root}/Datastreams({ident})",
            "name": f"{SENSOR_PROPERTIES[key]} {code}", "description": f"{SENSOR_PROPERTIES[key]} at street {code}",
            "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
            "unitOfMeasurement": {"name": name, "symbol": symbol, "definition": ""},
            "Thing": {"@iot.id": thing, "@iot.selfLink": f"{root}/Things({thing})", "name": f"街道监测站 {code}",
                      "description": "street air and noise monitor", "properties": {"street_code": code}},
            "ObservedProperty": {"@iot.id": observed, "@iot.selfLink": f"{root}/ObservedProperties({observed})",
                                 "name": SENSOR_PROPERTIES[key], "definition": f"urn:onescreen:bench:{key}",
                                 "description": SENSOR_PROPERTIES[key]}}


OPEN311_SHARE = 5  # an open311 source holds N / 5 incidents: each is also placed by point-in-polygon
OPEN311_HISTORY_DAYS = 30
OPEN311_SERVICES = {"001": "路灯故障", "002": "占道经营", "003": "噪声扰民", "004": "垃圾堆放", "005": "道路破损",
                    "006": "违章停车", "007": "井盖缺失", "008": "绿化养护"}


def open311_requests(plan: Plan) -> Iterator[list[dict]]:
    """The service requests of the plan's GeoReport v2 source, page by page (PAGE_ROWS each), as the server sends
    them: N/5 requests of the last 30 days at points inside real communities. Deterministic."""
    incidents = open311_count(plan)
    names, longs, lats = community_points(plan.city.template, incidents, np.random.default_rng([SEED, incidents]))
    rng = np.random.default_rng([SEED, incidents, 1])
    zone = ZoneInfo(plan.city.timezone)
    now = plan.now
    requested = now - 3600 - rng.uniform(0, OPEN311_HISTORY_DAYS * 86400 - 7200, incidents).astype(np.int64)
    closed = rng.random(incidents) < 0.7
    # Closed ones closed hours to days after they were opened; open ones were last updated somewhere between.
    handled = np.minimum(requested + rng.exponential(20 * 3600, incidents).astype(np.int64), now - 60)
    updated = np.where(closed, handled, requested + ((now - 60 - requested) * rng.random(incidents)).astype(np.int64))
    codes = rng.choice(list(OPEN311_SERVICES), incidents)

    def when(seconds: int) -> str:
        return datetime.fromtimestamp(int(seconds), zone).isoformat()

    for start in range(0, incidents, PAGE_ROWS):
        rows = []
        for i in range(start, min(start + PAGE_ROWS, incidents)):
            service = OPEN311_SERVICES[codes[i]]
            address = f"{names[i]}{i % 97 + 1}号"
            rows.append({
                "service_request_id": f"SR{i + 1:09d}", "status": "closed" if closed[i] else "open",
                "status_notes": "已办结" if closed[i] else None, "service_name": service,
                "service_code": codes[i], "description": f"{service}：{address}附近，请尽快处理",
                "agency_responsible": "街道城运中心", "service_notice": None,
                "requested_datetime": when(requested[i]), "updated_datetime": when(updated[i]),
                "expected_datetime": when(requested[i] + 72 * 3600), "address": address, "address_id": None,
                "zipcode": None, "lat": round(float(lats[i]), 6), "long": round(float(longs[i]), 6),
                "media_url": None})
        yield rows


def open311_count(plan: Plan) -> int:
    return max(1, plan.records // OPEN311_SHARE)


def build_open311(plan: Plan, folder: Path) -> Source:
    """A GeoReport v2 server with N/5 service requests of the last 30 days at points inside real communities."""
    pages = folder / "pages"
    pages.mkdir()
    incidents = open311_count(plan)
    for number, rows in enumerate(open311_requests(plan), start=1):
        (pages / f"requests-{number}.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    (pages / "services.json").write_text(json.dumps(
        [{"service_code": code, "service_name": name, "metadata": False, "type": "realtime", "keywords": "",
          "group": "城市管理"} for code, name in OPEN311_SERVICES.items()], ensure_ascii=False), encoding="utf-8")
    port = common.free_port()
    server = start_page_server("open311", pages, port, folder)
    entry = {"name": "bench-open311", "type": "open311", "levels": ["community"],
             "schedule": {"interval": "10m"}, "timeout": "30m",
             "config": {"url": f"http://127.0.0.1:{port}{OPEN311_PATH}", "jurisdiction_id": "bench.onescreen",
                        "page_size": PAGE_ROWS, "max_pages": incidents // PAGE_ROWS + 10,
                        "history": f"{OPEN311_HISTORY_DAYS}d", "status_closed": ["closed"], "overdue_after": "72h",
                        "overdue_by_category": {"路灯故障": "24h", "占道经营": "48h"}, "timeout": 30}}
    return Source(entry, incidents, server=server, noun="incidents",
                  detail=f": N/{OPEN311_SHARE}, each also placed by point-in-polygon; the run then stores every "
                         f"community's open and overdue counts",
                  note=f"open311: its records are service requests turned into incidents, so a source holds "
                       f"N/{OPEN311_SHARE} of them ({incidents:,} at N = {plan.records:,}; N incidents would take "
                       f"minutes); the rate counts incidents (masked, validated, placed in a community by "
                       f"point-in-polygon among the demo city's communities, upserted) and its time includes storing "
                       f"every community's open and overdue counts (2 observations per community) after the "
                       f"requests; requests opened over the last {OPEN311_HISTORY_DAYS} days, 70 % closed, at "
                       f"random communities' centroids with a jitter of up to 15 % of their extent (kept inside the "
                       f"boundary), pages of {PAGE_ROWS:,} from a separate http.server process, rendered "
                       f"beforehand; its baseline is raw executemany of the same {incidents:,} requests (see the baselines)")


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


def open311_baseline(plan: Plan) -> RawBaseline:
    """The same service requests as build_open311's, each a row of a plain table shaped like `incidents` (its
    columns and types and its key, UNIQUE (source, external_id); not its two query indexes), filled with what the
    source sent (times as its text, its own status word, the request as JSON in `raw`), placed nowhere, masked not
    at all: what storing the incidents would cost with no work of the connector's, the runner's or the intake's."""
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateTable

    from cityops.models import Incident

    ddl = str(CreateTable(Incident.__table__).compile(dialect=sqlite.dialect())).strip()
    table_ddl = ddl.replace("CREATE TABLE incidents", "CREATE TABLE raw_incidents", 1)
    columns = ("source", "external_id", "category", "status", "source_status", "opened_at", "updated_at",
               "closed_at", "lon", "lat", "unit_id", "address", "description", "raw", "run_id", "first_seen_at",
               "last_seen_at")
    # unit_id is NOT NULL: 0 stands for "not placed".
    rows = [("bench-open311", row["service_request_id"], row["service_name"], row["status"], row["status"],
             row["requested_datetime"], row["updated_datetime"], row.get("closed_datetime"), row["long"],
             row["lat"], 0, row["address"], row["description"], json.dumps(row, ensure_ascii=False), 1, plan.now,
             plan.now)
            for page in open311_requests(plan) for row in page]
    return RawBaseline(rows, "raw_incidents", table_ddl, columns, "incidents",
                       note=f"open311 baseline: sqlite3 executemany of the same {len(rows):,} service requests, in "
                            f"source order, into one plain table shaped like incidents (its columns and types, its "
                            f"key UNIQUE (source, external_id), not its two query indexes): {len(columns)} columns "
                            f"as the source has them (times as its text, its status word, the request as its JSON "
                            f"in raw, unit_id 0: no placement, no masking), in a copy of the same database with the app "
                            f"connections' pragmas, 50,000 rows per commit")


BASELINES: dict[str, Callable[[Plan], RawBaseline]] = {"open311": open311_baseline}


def community_points(template: Path, count: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray,
                                                                                     np.ndarray]:
    """`count` points inside random communities of the city (names, longitudes, latitudes): each community's
    centroid moved by a small jitter, or, where that leaves the boundary, a point certainly inside it."""
    import shapely

    from cityops.hierarchy import Level

    connection = sqlite3.connect(template)
    try:
        rows = connection.execute("SELECT name_zh, center_lon, center_lat, min_lon, min_lat, max_lon, max_lat, "
                                  "geometry FROM units WHERE level = ? ORDER BY code",
                                  (int(Level.COMMUNITY),)).fetchall()
    finally:
        connection.close()
    names = [row[0] for row in rows]
    center_lon, center_lat, min_lon, min_lat, max_lon, max_lat = (np.array([row[i] for row in rows], dtype=float)
                                                                  for i in range(1, 7))
    shapes = shapely.from_geojson([row[7] for row in rows])
    shapely.prepare(shapes)
    inside = shapely.contains_xy(shapes, center_lon, center_lat)
    surface = shapely.point_on_surface(shapes)
    anchor_lon = np.where(inside, center_lon, shapely.get_x(surface))
    anchor_lat = np.where(inside, center_lat, shapely.get_y(surface))
    pick = rng.integers(0, len(rows), count)
    lons = center_lon[pick] + rng.uniform(-0.15, 0.15, count) * (max_lon - min_lon)[pick]
    lats = center_lat[pick] + rng.uniform(-0.15, 0.15, count) * (max_lat - min_lat)[pick]
    kept = shapely.contains_xy(shapes[pick], lons, lats)
    lons = np.where(kept, lons, anchor_lon[pick])
    lats = np.where(kept, lats, anchor_lat[pick])
    return [names[i] for i in pick], lons, lats


MQTT_PER_MESSAGE = 100  # readings per message (a JSON list): 1 M readings are 10,000 messages


def build_mqtt(plan: Plan, folder: Path) -> Source:
    """A private mosquitto holding the planned readings, in QoS 1 messages of JSON lists, in the connector's
    persistent session (created first, as the connector's first run would)."""
    import uuid

    port, broker = start_broker(folder)
    client_id = f"onescreen-bench-{uuid.uuid4().hex[:12]}"
    topic = f"onescreen-bench/{client_id}/readings"
    try:
        open_session(port, client_id, topic)
        messages = publish_readings(plan, port, f"{client_id}-publisher", topic)
    except BaseException:
        common.stop_process(broker)
        raise
    entry = {"name": "bench-mqtt", "type": "mqtt", "levels": ["community", "street"],
             "schedule": {"interval": "1m"}, "timeout": "30m",
             "config": {"host": "127.0.0.1", "port": port, "topics": [topic], "client_id": client_id,
                        "session_expiry_seconds": 3600, "drain_seconds": 1200, "idle_seconds": 1},
             "mapping": {"unit_code": "unit_code", "observed_at": "time", "indicator": "indicator",
                         "value": "value"}}
    return Source(entry, plan.records, server=broker, noun="readings",
                  detail=f" in {messages:,} QoS 1 messages, each a JSON list of {MQTT_PER_MESSAGE}",
                  note=f"mqtt: the same records as the file, database and API sources, as readings "
                       f"({{unit_code, indicator, time (ISO with offset), value}}) in QoS 1 messages each holding a "
                       f"JSON list of {MQTT_PER_MESSAGE} ({messages:,} messages at {plan.records:,}), published "
                       f"before the run to the connector's persistent session on a private mosquitto 2.0 "
                       f"(max_queued_messages 0, no persistence) on a free port, the session created first by "
                       f"connecting with the connector's client id and removed after the run; the run receives "
                       f"them all in one connection (Receive Maximum 65,535), acknowledges them after its commit "
                       f"and stops once no message came for idle_seconds (1 s, the default: its time includes up "
                       f"to 1 s of waiting when it reads faster than the broker delivers)",
                  cleanups=[lambda: close_session(port, client_id)])


def publish_readings(plan: Plan, port: int, client_id: str, topic: str) -> int:
    """Publish the plan's records as JSON lists of MQTT_PER_MESSAGE readings, QoS 1, each acknowledged by the
    broker; returns how many messages."""
    publisher = mqtt_client(client_id)
    publisher.max_inflight_messages_set(0)  # no window: the broker acknowledges as fast as it stores
    connect(publisher, port)
    messages = 0
    try:
        for frame in plan.frames():
            rows = pd.DataFrame({
                "unit_code": frame["unit_code"], "indicator": frame["indicator"],
                "time": time_texts(frame["observed_at"], plan.city.timezone, lambda t: t.isoformat()),
                "value": frame["value"]})
            sent = [publisher.publish(topic, rows.iloc[start:start + MQTT_PER_MESSAGE].to_json(
                        orient="records", force_ascii=False).encode("utf-8"), qos=1)
                    for start in range(0, len(rows), MQTT_PER_MESSAGE)]
            for info in sent:
                info.wait_for_publish(timeout=60)
                if not info.is_published():
                    raise RuntimeError(f"mosquitto did not acknowledge message {info.mid} within 60 s")
            messages += len(sent)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
    if messages > 65_535:
        raise RuntimeError(f"{messages:,} messages: more than one run takes (max_messages ≤ 65,535); raise "
                           f"MQTT_PER_MESSAGE")
    return messages


BUILDERS: dict[str, Callable[[Plan, Path], Source]] = {
    "drop_folder": build_drop_folder,
    "sql_query": build_sql_query,
    "http_json": build_http_json,
    "simulator": build_simulator,
    "sensorthings": build_sensorthings,
    "open311": build_open311,
    "mqtt": build_mqtt,
}
