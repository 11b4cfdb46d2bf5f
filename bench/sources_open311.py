"""The Open311 source for bench/connector_types.py: a GeoReport v2 server's service requests, pages rendered
beforehand and served by a subprocess, and their own raw baseline (the same requests into an incidents-shaped
table).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from datetime import datetime
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from source_servers import OPEN311_PATH, PAGE_ROWS, start_page_server  # noqa: E402
from sources_records import SEED, Plan, RawBaseline, Source  # noqa: E402


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
