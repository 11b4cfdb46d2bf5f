"""The open311 connector type (GeoReport v2) against a real local server, through the real runner.

The server (http.server on 127.0.0.1, port 0, in a thread) keeps a list of service requests that tests change
between runs, and answers services.json and requests.json as a GeoReport v2 server does: start_date / end_date
filter by opening time (or updated_after by update time), `page` / `page_size` page, `service_request_id` asks for
given requests. Incidents land in the tiny city (tests/city_factory.py): community 990101001001 is the box
(0,0)-(1,1) in lon/lat, 990101001002 is (1,0)-(2,1), 990101002001 is (0,1)-(1,2), district 990102 is lon 2-4.
"""

from __future__ import annotations

import dataclasses

import json
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import inspect, text

import connectors.open311  # noqa: F401  (registers the type)
from cityops.hierarchy import Level
from cityops.incidents import COLUMNS
from cityops.tree import load_tree
from connectors.archive import open_payload, run_payloads
from connectors.base import ConnectorContext
from connectors.config import ConnectorConfigError, ConnectorInstance, load_connectors
from connectors.runner import build_connector, run_connector

ZONE = "Asia/Shanghai"
SHANGHAI = ZoneInfo(ZONE)
NOW = int(datetime(2026, 11, 26, 10, 30, tzinfo=SHANGHAI).timestamp())
HOUR = 3600
BUCKET = NOW - 30 * 60  # 10:00, the hour holding NOW
FAST = {"backoff": 0.01, "max_wait": 1.0, "timeout": 5.0, "attempts": 2}
A1, A2, B1 = "990101001001", "990101001002", "990101002001"  # boxes (0,0)-(1,1), (1,0)-(2,1), (0,1)-(1,2)
COMMUNITIES = [s + c for s in ("990101001", "990101002", "990102001", "990102002") for c in ("001", "002")]
PHONE, EMAIL, NAME, DEVICE = "13912345678", "li.lei@example.com", "李雷", "device-7f3a9c2e"


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, SHANGHAI).isoformat()


def epoch_of(text_time: str) -> int:
    return int(datetime.fromisoformat(text_time).timestamp())


def request(ident: str, lon: float, lat: float, opened: int, updated: int | None = None, status: str = "open",
            service: str = "道路破损", **extra) -> dict:
    """A GeoReport v2 service request as servers list it."""
    return {"service_request_id": ident, "status": status, "status_notes": None, "service_name": service,
            "service_code": f"code-{service}", "description": f"{service} near the school",
            "agency_responsible": "城管局", "requested_datetime": iso(opened),
            "updated_datetime": iso(updated if updated is not None else opened), "expected_datetime": None,
            "address": f"{ident} 号路口", "zipcode": "200000", "lat": lat, "long": lon, "media_url": None, **extra}


# ------------------------------------------------------------------------------------------------
# The GeoReport v2 server
# ------------------------------------------------------------------------------------------------


@dataclass
class Georeport:
    base: str
    requests: list[dict] = field(default_factory=list)
    services: list[dict] = field(default_factory=lambda: [
        {"service_code": "001", "service_name": "道路破损", "type": "realtime"},
        {"service_code": "002", "service_name": "路灯故障", "type": "realtime"}])
    api_key: str | None = None
    ignores_paging: bool = False
    raw_body: bytes | None = None  # sent as it is instead of any JSON answer
    seen: list[tuple[str, dict]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"{self.base}/open311/v2"

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        with self.lock:
            self.seen.append((path, query))
        if self.api_key is not None and query.get("api_key") != self.api_key:
            return 401, [{"code": 401, "description": f"api_key {query.get('api_key')} is not valid"}]
        if path == "/open311/v2/services.json":
            return 200, self.services
        if path != "/open311/v2/requests.json":
            return 404, [{"code": 404, "description": "not found"}]
        if "service_request_id" in query:
            wanted = query["service_request_id"].split(",")
            return 200, [r for r in self.requests if r["service_request_id"] in wanted]
        chosen = list(self.requests)
        for param, column, keep in (("start_date", "requested_datetime", lambda at, bound: at >= bound),
                                    ("end_date", "requested_datetime", lambda at, bound: at <= bound),
                                    ("updated_after", "updated_datetime", lambda at, bound: at >= bound)):
            if param in query:
                # A request whose time cannot be read is served anyway: the client must cope with it.
                chosen = [r for r in chosen if _when(r[column]) is None or keep(_when(r[column]),
                                                                                 epoch_of(query[param]))]
        if self.ignores_paging:
            return 200, chosen
        page, size = int(query.get("page", 1)), int(query.get("page_size", 1000))
        return 200, chosen[(page - 1) * size: page * size]

    def asked(self, path: str = "requests.json") -> list[dict]:
        """The queries of the requests made to `path`, in order."""
        return [query for seen_path, query in self.seen if seen_path.endswith(path)]


def _when(text_time: Any) -> int | None:
    try:
        return epoch_of(text_time)
    except (TypeError, ValueError):
        return None


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        parts = urlsplit(self.path)
        georeport = self.server.georeport
        status, body = georeport.answer(parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()})
        payload = georeport.raw_body or json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.georeport = Georeport(f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd.georeport
    httpd.shutdown()
    httpd.server_close()


# ------------------------------------------------------------------------------------------------
# Running and looking
# ------------------------------------------------------------------------------------------------


def instance(server: Georeport, name: str = "city-311", levels=(Level.COMMUNITY,), **config) -> ConnectorInstance:
    return ConnectorInstance(name=name, type="open311", levels=levels, interval_seconds=600,
                             config={"url": server.url, **FAST, **config})


def run(db, inst, tmp_path, now: int = NOW, **options):
    return run_connector(db.url, inst, db.catalog, timezone=ZONE, now=now, archive_root=tmp_path / "archive",
                         **options)


def fetch_all(db, sql: str, **params) -> list:
    with db.session() as session:
        return session.execute(text(sql), params).all()


def incidents(db) -> dict[str, dict]:
    rows = fetch_all(db, "SELECT i.*, u.code FROM incidents i JOIN units u ON u.id = i.unit_id")
    return {row._mapping["external_id"]: dict(row._mapping) for row in rows}


def counts(db, key: str, at: int = BUCKET) -> dict[str, float]:
    rows = fetch_all(db, "SELECT u.code, o.value FROM observations o JOIN units u ON u.id = o.unit_id "
                         "JOIN indicators i ON i.id = o.indicator_id WHERE i.key = :k AND o.observed_at = :t",
                     k=key, t=at)
    return {code: value for code, value in rows}


def expected_counts(**nonzero: float) -> dict[str, float]:
    return {code: float(nonzero.get(f"c{code}", 0)) for code in COMMUNITIES}


def quarantined(db) -> list[tuple[str, dict]]:
    rows = fetch_all(db, "SELECT reason, raw FROM quarantine ORDER BY id")
    return [(reason, json.loads(raw)) for reason, raw in rows]


def cursor_of(db, name: str = "city-311"):
    found = fetch_all(db, "SELECT cursor FROM connector_cursors WHERE connector = :n", n=name)
    return found[0][0] if found else None


def every_text_in_the_database(db) -> str:
    """Every text column of every table, concatenated: what a leak would show up in."""
    with db.session() as session:
        inspector = inspect(session.connection())
        chunks = []
        for table in inspector.get_table_names():
            for column in inspector.get_columns(table):
                if any(word in str(column["type"]).upper() for word in ("CHAR", "TEXT")):
                    chunks.extend(str(value) for (value,) in session.execute(
                        text(f'SELECT "{column["name"]}" FROM "{table}"')) if value is not None)
    return "\n".join(chunks)


def archived(tmp_path, summary) -> list[tuple[str, bytes]]:
    root = tmp_path / "archive"
    found = []
    for reference in run_payloads(root, summary.archive):
        with open_payload(root, reference) as stream:
            found.append((reference, stream.read()))
    return found


# ------------------------------------------------------------------------------------------------
# Incidents, communities and counts
# ------------------------------------------------------------------------------------------------


def test_requests_become_incidents_in_their_communities_and_counts_on_sqlite_and_postgresql(city_db, server,
                                                                                           tmp_path):
    server.requests = [
        request("r1", 0.5, 0.5, NOW - 2 * HOUR),                                   # A1, open, fresh
        request("r2", 1.5, 0.5, NOW - 80 * HOUR, NOW - 3 * HOUR),                  # A2, open, overdue
        request("r3", 1.5, 0.6, NOW - 5 * HOUR, NOW - HOUR, status="closed"),      # A2, closed
        request("r4", 0.5, 1.5, NOW - 4 * HOUR, status="in_progress"),             # B1, open
    ]
    summary = run(city_db, instance(server, history="7d"), tmp_path)
    assert (summary.status, summary.fetched, summary.accepted, summary.rejected) == ("ok", 4, 4, 0), summary
    stored = incidents(city_db)
    assert {ident: row["code"] for ident, row in stored.items()} == {"r1": A1, "r2": A2, "r3": A2, "r4": B1}
    r3, r4 = stored["r3"], stored["r4"]
    assert (r3["status"], r3["source_status"], r3["closed_at"]) == ("closed", "closed", NOW - HOUR)
    assert (r4["status"], r4["source_status"], r4["closed_at"]) == ("open", "in_progress", None)
    assert (r4["category"], r4["opened_at"], r4["updated_at"], r4["lon"], r4["lat"], r4["address"]) == \
        ("道路破损", NOW - 4 * HOUR, NOW - 4 * HOUR, 0.5, 1.5, "r4 号路口")
    assert (r4["source"], r4["run_id"], r4["first_seen_at"], r4["last_seen_at"]) == \
        ("city-311", summary.run_id, NOW, NOW)
    # Every community gets its counts at the hour holding the run's time; those without incidents get 0.
    assert counts(city_db, "grid_incidents_open") == expected_counts(c990101001001=1, c990101001002=1,
                                                                     c990101002001=1)
    assert counts(city_db, "grid_incidents_overdue") == expected_counts(c990101001002=1)
    # ...and their roll-ups follow: district 990101 has three open incidents, one overdue (a third of them).
    rolled = dict(fetch_all(city_db, "SELECT i.key, r.value FROM rollup_history r JOIN units u ON u.id = r.unit_id "
                                     "JOIN indicators i ON i.id = r.indicator_id WHERE u.code = '990101' "
                                     "AND r.bucket_start = :b", b=BUCKET))
    assert rolled["grid_incidents_open"] == 3 and rolled["grid_incidents_overdue"] == 1
    assert rolled["grid_overdue_rate"] == pytest.approx(100 / 3)
    # The cursor is the newest update stored; the window asked was history .. now, by opening time.
    assert cursor_of(city_db) == str(NOW - HOUR)
    (first,) = server.asked()[:1]
    assert (first["start_date"], first["end_date"], first["page"]) == (iso(NOW - 7 * 86400), iso(NOW), "1")


def test_a_closing_in_a_later_run_updates_the_incident_and_the_counts_drop(city_db, server, tmp_path):
    server.requests = [request("r1", 0.5, 0.5, NOW - 100 * HOUR), request("r2", 1.5, 0.5, NOW - HOUR)]
    run(city_db, instance(server), tmp_path)
    assert counts(city_db, "grid_incidents_open")[A1] == 1 and counts(city_db, "grid_incidents_overdue")[A1] == 1
    # r1 was opened long before the next run's window (start_date filters by opening time): only asking again
    # about the open incidents finds its closing.
    server.requests[0] = request("r1", 0.5, 0.5, NOW - 100 * HOUR, NOW + 300, status="closed")
    later = NOW + 600
    summary = run(city_db, instance(server), tmp_path, now=later)
    assert (summary.status, summary.accepted, summary.duplicates) == ("ok", 1, 1), summary
    assert [q["service_request_id"] for q in server.asked() if "service_request_id" in q] == ["r1"]
    r1 = incidents(city_db)["r1"]
    assert (r1["status"], r1["closed_at"], r1["updated_at"], r1["run_id"]) == \
        ("closed", NOW + 300, NOW + 300, summary.run_id)
    # The same hour's counts are refined: A1 now has nothing open, nothing overdue.
    assert counts(city_db, "grid_incidents_open") == expected_counts(c990101001002=1)
    assert counts(city_db, "grid_incidents_overdue") == expected_counts()


def test_a_late_older_update_never_overwrites_a_newer_one(sqlite_city_db, server, tmp_path):
    server.requests = [request("r1", 0.5, 0.5, NOW - 5 * HOUR, NOW - HOUR, status="closed")]
    run(sqlite_city_db, instance(server), tmp_path)
    # A lagging mirror still serves the request as it was before it was closed.
    server.requests = [request("r1", 0.5, 0.5, NOW - 5 * HOUR, NOW - 2 * HOUR, status="open")]
    summary = run(sqlite_city_db, instance(server, lookback="12h"), tmp_path, now=NOW + 60)
    assert (summary.accepted, summary.duplicates) == (0, 1)
    r1 = incidents(sqlite_city_db)["r1"]
    assert (r1["status"], r1["updated_at"], r1["last_seen_at"]) == ("closed", NOW - HOUR, NOW + 60)
    assert counts(sqlite_city_db, "grid_incidents_open")[A1] == 0


def test_a_server_filtering_by_update_time_is_not_asked_again_about_open_requests(sqlite_city_db, server,
                                                                                 tmp_path):
    server.requests = [request("r1", 0.5, 0.5, NOW - 100 * HOUR, NOW - 2 * HOUR)]
    inst = instance(server, since_param="updated_after", until_param="", lookback="0")
    run(sqlite_city_db, inst, tmp_path)
    server.requests = [request("r1", 0.5, 0.5, NOW - 100 * HOUR, NOW + 100, status="closed")]
    summary = run(sqlite_city_db, inst, tmp_path, now=NOW + 600)
    assert summary.accepted == 1 and incidents(sqlite_city_db)["r1"]["status"] == "closed"
    assert [q["updated_after"] for q in server.asked()] == [iso(NOW - 30 * 86400)] * 2 + [iso(NOW - 2 * HOUR)] * 2
    assert not any("service_request_id" in q for q in server.asked()) and all("end_date" not in q
                                                                             for q in server.asked())


def test_overdue_follows_overdue_after_and_the_category_limits(sqlite_city_db, server, tmp_path):
    server.requests = [
        request("lamp", 0.5, 0.5, NOW - 2 * HOUR, service="路灯故障"),   # over its own 1h limit
        request("road", 0.5, 0.5, NOW - 2 * HOUR, service="道路破损"),   # under the general 3h
        request("old", 0.5, 0.5, NOW - 4 * HOUR, service="道路破损"),    # over the general 3h
        request("code", 1.5, 0.5, NOW - 2 * HOUR, service="002", service_name=None),  # category by code
    ]
    run(sqlite_city_db, instance(server, overdue_after="3h", overdue_by_category={"路灯故障": "1h", "code-002": "1h"}),
        tmp_path)
    assert counts(sqlite_city_db, "grid_incidents_open") == expected_counts(c990101001001=3, c990101001002=1)
    assert counts(sqlite_city_db, "grid_incidents_overdue") == expected_counts(c990101001001=2, c990101001002=1)
    assert incidents(sqlite_city_db)["code"]["category"] == "code-002"


def test_other_indicators_and_no_counts_at_all(sqlite_city_db, server, tmp_path):
    server.requests = [request("r1", 0.5, 0.5, NOW - 100 * HOUR)]
    run(sqlite_city_db, instance(server, open_indicator="hotline_complaints", overdue_indicator="grid_incidents_open"),
        tmp_path)
    assert counts(sqlite_city_db, "hotline_complaints")[A1] == 1 and counts(sqlite_city_db, "grid_incidents_open")[A1]
    quiet = instance(server, name="second-311", counts=False)
    assert run(sqlite_city_db, quiet, tmp_path).accepted == 1
    assert fetch_all(sqlite_city_db, "SELECT count(*) FROM observations")[0][0] == 2 * len(COMMUNITIES)


def test_counts_that_cannot_be_stored_fail_before_anything_is_fetched(sqlite_city_db, server, tmp_path):
    server.requests = [request("r1", 0.5, 0.5, NOW - HOUR)]
    street_only = run(sqlite_city_db, instance(server, levels=(Level.STREET,)), tmp_path)
    assert street_only.status == "failed" and street_only.error_family == "fatal"
    assert "levels include community" in street_only.error_message and "not community" in street_only.error_message
    per_street = run(sqlite_city_db, instance(server, open_indicator="aqi"), tmp_path)
    assert "reported per street" in per_street.error_message
    assert server.asked() == [] and incidents(sqlite_city_db) == {}


# ------------------------------------------------------------------------------------------------
# Quarantine and personal data
# ------------------------------------------------------------------------------------------------


def test_requests_that_cannot_be_placed_or_read_are_quarantined_with_reasons(sqlite_city_db, server, tmp_path):
    good = request("good", 3.5, 1.5, NOW - HOUR)
    server.requests = [
        good,
        request("far", 5.0, 5.0, NOW - HOUR),
        request("swapped", 0.5, 3.5, NOW - HOUR),  # (lat 3.5, long 0.5) is outside; (0.5, 3.5) the other way is in
        {**request("noid", 0.5, 0.5, NOW - HOUR), "service_request_id": None},
        request("badtime", 0.5, 0.5, NOW - HOUR, requested_datetime="yesterday"),
        {**request("nowhere", 0.5, 0.5, NOW - HOUR), "lat": None},
        request("future", 0.5, 0.5, NOW - HOUR, NOW + 86400),
    ]
    summary = run(sqlite_city_db, instance(server), tmp_path)
    assert (summary.status, summary.fetched, summary.accepted, summary.rejected) == ("partial", 7, 1, 6)
    reasons = {raw.get("service_request_id"): reason for reason, raw in quarantined(sqlite_city_db)}
    assert reasons["far"] == "point (5, 5) is outside the city"
    assert reasons["swapped"] == "point (0.5, 3.5) is outside the city; lat and long look swapped"
    assert reasons[None] == "no service_request_id"
    assert "'yesterday' is not ISO 8601" in reasons["badtime"]
    assert reasons["nowhere"] == "no readable location (long 0.5, lat None)"
    assert "is in the future" in reasons["future"]
    assert list(incidents(sqlite_city_db)) == ["good"] and incidents(sqlite_city_db)["good"]["code"] == "990102002002"
    # The quarantined rows point at the page they came from.
    sources = [source for (source,) in fetch_all(sqlite_city_db, "SELECT source FROM quarantine ORDER BY id")]
    assert all(source.endswith(f"requests-1.json.gz#{n}") for n, source in zip(range(1, 7), sources))


def test_quarantined_requests_are_placed_once_the_boundaries_cover_them(sqlite_city_db, server, tmp_path):
    """A request outside every community is quarantined; after a boundary import that covers its point,
    re-processing the quarantine places it, and the others are judged again with their own reasons."""
    from shapely import affinity

    from cityops.boundaries import replace_units
    from city_factory import tiny_city
    from connectors.quarantine import list_quarantine, reprocess

    server.requests = [request("good", 3.5, 1.5, NOW - HOUR), request("far", 5.0, 5.0, NOW - HOUR, phone=PHONE),
                       request("badtime", 0.5, 0.5, NOW - HOUR, requested_datetime="yesterday")]
    inst = instance(server)
    assert run(sqlite_city_db, inst, tmp_path).rejected == 2
    grown = [dataclasses.replace(unit, geometry=affinity.scale(unit.geometry, 3, 3, origin=(0, 0)))
             for unit in tiny_city()]  # the same units, three times the size: (5, 5) is now in 990101002002
    with sqlite_city_db.session() as session:
        replace_units(session, grown)
    summary, outcomes = reprocess(sqlite_city_db.url, inst, sqlite_city_db.catalog, timezone=ZONE, now=NOW)
    assert incidents(sqlite_city_db)["good"]["code"] == "990101001002"  # placed again by the import
    assert outcomes == {"accepted": 1, "rejected": 1} and summary.accepted == 1
    far = incidents(sqlite_city_db)["far"]
    assert far["code"] == "990101002002" and PHONE not in json.dumps(far, default=str)
    still = list_quarantine(sqlite_city_db.url, inst.name)
    assert [json.loads(entry.raw)["service_request_id"] for entry in still] == ["badtime"]
    assert "'yesterday' is not ISO 8601" in still[0].reason

def test_personal_fields_are_stored_only_masked_anywhere_on_sqlite_and_postgresql(city_db, server, tmp_path):
    personal = {"phone": PHONE, "email": EMAIL, "first_name": NAME, "last_name": "Li", "device_id": DEVICE,
                "Account_ID": "acct-00998877"}
    server.requests = [
        request("r1", 0.5, 0.5, NOW - HOUR, description=f"{NAME}反映路灯不亮，回电 {PHONE} 或 {EMAIL}", **personal),
        request("r2", 9.0, 9.0, NOW - HOUR, **personal),  # quarantined: outside the city
    ]
    summary = run(city_db, instance(server), tmp_path)
    assert (summary.accepted, summary.rejected) == (1, 1)
    r1 = incidents(city_db)["r1"]
    assert json.loads(r1["contact_masked"]) == {"phone": "139****5678", "email": "l***@example.com",
                                                 "first_name": "李*", "last_name": "L*", "device_id": "****9c2e",
                                                 "Account_ID": "****8877"}
    raw = json.loads(r1["raw"])
    assert not set(personal) & set(raw) and raw["service_request_id"] == "r1"
    assert r1["description"] == raw["description"] == "李*反映路灯不亮，回电 139****5678 或 l***@example.com"
    ((_, quarantined_raw),) = quarantined(city_db)
    assert not set(personal) & set(quarantined_raw)
    everything = every_text_in_the_database(city_db)
    assert "139****5678" in everything
    for clear in (PHONE, EMAIL, NAME, DEVICE, "acct-00998877"):
        assert clear not in everything, f"{clear} is stored in clear"
    # The archive keeps the pages masked too, and they replay into exactly what was stored.
    pages = archived(tmp_path, summary)
    assert pages and all(clear.encode() not in payload for _, payload in pages
                         for clear in (PHONE, EMAIL, NAME, DEVICE))
    assert json.loads(pages[0][1])[0]["phone"] == "139****5678"
    before = incidents(city_db)
    with city_db.session() as session:
        session.execute(text("DELETE FROM incidents"))
    replay = run(city_db, instance(server), tmp_path, replay=[reference for reference, _ in pages])
    assert (replay.status, replay.accepted, replay.rejected) == ("partial", 1, 1)
    after = incidents(city_db)
    ignored = {"id", "run_id"}
    assert {k: v for k, v in after["r1"].items() if k not in ignored} == \
        {k: v for k, v in before["r1"].items() if k not in ignored}


def test_a_page_that_is_not_json_is_archived_masked_and_fails_retriable(sqlite_city_db, server, tmp_path):
    whole = json.dumps([{"phone": PHONE, "first_name": NAME, **request("r1", 0.5, 0.5, NOW - HOUR)}],
                       ensure_ascii=False)
    server.raw_body = whole[: len(whole) // 2].encode("utf-8")  # cut off mid-way, as a dropped connection leaves it
    summary = run(sqlite_city_db, instance(server), tmp_path)
    assert (summary.status, summary.error_family) == ("failed", "retriable")
    assert "not valid JSON" in summary.error_message
    ((reference, payload),) = archived(tmp_path, summary)
    assert reference.endswith("requests-1.txt.gz")
    assert PHONE.encode() not in payload and NAME.encode() not in payload and b'"phone": "139****5678"' in payload
    # The message quotes the page's beginning, masked like the archive.
    assert "139****5678" in summary.error_message and PHONE not in every_text_in_the_database(sqlite_city_db)
    # A failed run refreshes no counts: the indicators go stale, as the source has.
    assert fetch_all(sqlite_city_db, "SELECT count(*) FROM observations")[0][0] == 0


# ------------------------------------------------------------------------------------------------
# Runs again, replay, paging
# ------------------------------------------------------------------------------------------------


def test_a_second_run_stores_nothing_new_and_counts_duplicates(sqlite_city_db, server, tmp_path):
    server.requests = [request(f"r{n}", 0.5 + n / 10, 0.5, NOW - HOUR * (n + 1)) for n in range(3)]
    first = run(sqlite_city_db, instance(server), tmp_path)
    again = run(sqlite_city_db, instance(server), tmp_path, now=NOW + 60)
    assert (first.accepted, first.duplicates) == (3, 0)
    assert (again.status, again.fetched, again.accepted, again.duplicates) == ("ok", 3, 0, 3)
    stored = incidents(sqlite_city_db)
    assert len(stored) == 3 and {(r["first_seen_at"], r["last_seen_at"], r["run_id"]) for r in stored.values()} == \
        {(NOW, NOW + 60, first.run_id)}
    # The second run asked from its cursor (the newest update) minus the default hour of lookback, and again
    # about r2, opened before that.
    assert server.asked()[2]["start_date"] == iso(NOW - 2 * HOUR)
    assert server.asked()[-1]["service_request_id"] == "r2"


def test_replay_stores_duplicates_and_keeps_the_cursor(sqlite_city_db, server, tmp_path):
    server.requests = [request("r1", 0.5, 0.5, NOW - HOUR), request("r2", 1.5, 0.5, NOW - 2 * HOUR)]
    first = run(sqlite_city_db, instance(server), tmp_path)
    cursor = cursor_of(sqlite_city_db)
    pages = [reference for reference, _ in archived(tmp_path, first)]
    assert [p.rsplit("/", 1)[-1] for p in pages] == ["0001-requests-1.json.gz", "0002-requests-2.json.gz"]
    replay = run(sqlite_city_db, instance(server), tmp_path, now=NOW + 600, replay=pages)
    assert (replay.status, replay.fetched, replay.accepted, replay.duplicates) == ("ok", 2, 0, 2)
    assert cursor_of(sqlite_city_db) == cursor and len(server.asked()) == 2


def test_pages_are_read_until_an_empty_one(sqlite_city_db, server, tmp_path):
    server.requests = [request(f"r{n}", 0.1 + n / 10, 0.5, NOW - HOUR) for n in range(5)]
    summary = run(sqlite_city_db, instance(server, page_size=2, jurisdiction_id="sh.gov.cn"), tmp_path)
    assert summary.accepted == 5
    assert [(q["page"], q["page_size"], q["jurisdiction_id"]) for q in server.asked()] == \
        [("1", "2", "sh.gov.cn"), ("2", "2", "sh.gov.cn"), ("3", "2", "sh.gov.cn"), ("4", "2", "sh.gov.cn")]


def test_a_server_ignoring_page_is_read_once(sqlite_city_db, server, tmp_path):
    server.ignores_paging = True
    server.requests = [request(f"r{n}", 0.1 + n / 10, 0.5, NOW - HOUR) for n in range(3)]
    summary = run(sqlite_city_db, instance(server, page_size=2), tmp_path)
    assert (summary.status, summary.fetched, summary.accepted) == ("ok", 3, 3)
    assert len(server.asked()) == 2  # the second page repeated the first: the end


# ------------------------------------------------------------------------------------------------
# The API key, check() and the YAML
# ------------------------------------------------------------------------------------------------


def test_the_api_key_is_sent_as_a_parameter_and_never_shown(sqlite_city_db, server, tmp_path, monkeypatch):
    server.api_key = "k-5ecret-311"
    server.requests = [request("r1", 0.5, 0.5, NOW - HOUR)]
    ok = run(sqlite_city_db, instance(server, api_key="k-5ecret-311"), tmp_path)
    assert ok.status == "ok" and all(q["api_key"] == "k-5ecret-311" for q in server.asked())
    assert all("5ecret" not in reference for reference, _ in archived(tmp_path, ok))
    # The server refuses another key and echoes it in its answer: the message names the fix, not the key.
    server.api_key = "k-rotated"
    refused = run(sqlite_city_db, instance(server, api_key="k-5ecret-311"), tmp_path, now=NOW + 60)
    assert (refused.status, refused.error_family) == ("failed", "fatal")
    assert "api_key_env" in refused.error_message and "api_key *** is not valid" in refused.error_message
    assert "5ecret" not in every_text_in_the_database(sqlite_city_db)


def _context(db) -> ConnectorContext:
    with db.session() as session:
        tree = load_tree(session)
    return ConnectorContext(catalog=db.catalog, tree=tree, now=NOW, timezone=ZONE)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_check_counts_services_and_says_why_not(sqlite_city_db, server):
    context = _context(sqlite_city_db)
    health = build_connector(instance(server), context).check()
    assert (health.healthy, health.detail) == (True, "2 services; requests.json answers")
    server.api_key = "k-right"
    refused = build_connector(instance(server, api_key="k-wrong"), context).check()
    assert not refused.healthy and "authentication refused" in refused.detail and "k-wrong" not in refused.detail
    gone = build_connector(instance(server, url=f"http://127.0.0.1:{_closed_port()}/open311/v2"), context).check()
    assert not gone.healthy and "could not connect" in gone.detail
    assert fetch_all(sqlite_city_db, "SELECT count(*) FROM incidents")[0][0] == 0


def test_connectors_yaml_entry_and_its_mistakes(tmp_path, catalog, monkeypatch, server):
    monkeypatch.setenv("CITY311_API_KEY", "k-from-env")
    doc = connectors.open311.__doc__
    example = doc[doc.index("    - name: city-311"):].split("\n\n")[0]
    example = "\n".join(line[4:] for line in example.splitlines()).replace(
        "https://311.example.gov.cn/open311/v2", server.url)
    path = tmp_path / "connectors.yaml"
    path.write_text("connectors:\n" + "\n".join("  " + line for line in example.splitlines()), encoding="utf-8")
    (found,) = load_connectors(path, catalog.keys, ZONE)
    assert (found.type, found.config["api_key"], found.config["overdue_by_category"]["路灯故障"]) == \
        ("open311", "k-from-env", "24h")
    for wrong, message in ((("category_field: service_type"), "category_field must be one of"),
                           (("overdue_after: soon"), "overdue_after"),
                           (("api_key: plain"), "must not be written in the file"),
                           (("url: https://311.example.gov.cn/v2/requests.json"), "without a query or file name"),
                           (("overdue_indicator: grid_incidents_open"), "need an indicator each")):
        path.write_text(f"connectors:\n  - name: x\n    type: open311\n    levels: [community]\n"
                        f"    schedule: {{interval: 10m}}\n    config: {{url: {server.url}, {wrong}}}\n"
                        .replace(f"url: {server.url}, url:", "url:"), encoding="utf-8")
        with pytest.raises(ConnectorConfigError, match=message):
            load_connectors(path, catalog.keys, ZONE)


def test_fetch_is_lazy_and_archives_nothing_outside_a_run(sqlite_city_db, server):
    server.requests = [request("r1", 0.5, 0.5, NOW - HOUR)]
    items = build_connector(instance(server), _context(sqlite_city_db)).fetch(None)
    assert server.asked() == []
    first = next(items).incident(0)  # a page of incidents
    assert (first.external_id, first.status, first.lon, first.lat) == ("r1", "open", 0.5, 0.5)


# ------------------------------------------------------------------------------------------------
# A page at once: exactly what each request alone gives
# ------------------------------------------------------------------------------------------------


_TIMES = st.sampled_from([
    iso(NOW - HOUR), iso(NOW - 80 * HOUR), iso(NOW - 30), "2026-11-26 09:00:00+08:00", "2026-11-26T09:00:00",
    "2026-11-26T01:00:00Z", " 2026-11-26T09:00:00+08:00 ", "2026-11-26T09:00:00.250+08:00", "2026-11-26",
    "2026-02-30T10:00:00+08:00", "2026-11-26T24:00:00+08:00", "2026-11-26x09:00:00+08:00", "0001-01-02T00:00:00+08:00",
    "yesterday", "", iso(NOW + 86400), iso(NOW + 200), NOW - HOUR, float(NOW - 2 * HOUR), True, None])
_POINTS = st.sampled_from([(0.5, 0.5), (1.5, 0.5), (0.5, 1.5), (3.5, 1.5), (1.0, 0.5), (5.0, 5.0), (0.5, 3.5),
                           (None, 0.5), ("1.5", "0.5"), ("east", 0.5), (float("nan"), 0.5), (0.5, float("inf")),
                           (10 ** 400, 0.5)])
_TEXTS = st.sampled_from([None, "路灯不亮", f"回电 {PHONE}", f"mail {EMAIL}", f"{NAME}反映", "x@y", 12, {"nested": PHONE}])


@st.composite
def _service_requests(draw) -> Any:
    """A service request as servers send them, good or bad in every way the intake judges."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.sampled_from(["just text", 7, None, [PHONE]]))
    lon, lat = draw(_POINTS)
    row = {"service_request_id": draw(st.sampled_from(["r1", "r2", "r3", " r4 ", "", None, 17, "x" * 200])),
           "status": draw(st.sampled_from(["open", "closed", " Closed ", "in_progress", None, 3])),
           "service_name": draw(st.sampled_from(["道路破损", "", None])), "service_code": "001",
           "requested_datetime": draw(_TIMES), "long": lon, "lat": lat,
           "description": draw(_TEXTS), "address": draw(_TEXTS)}
    for key, values in (("updated_datetime", _TIMES), ("closed_datetime", _TIMES), ("phone", st.just(PHONE)),
                        ("first_name", st.just(NAME)), ("email", st.sampled_from([EMAIL, "", None])),
                        ("notes", st.just([f"call {PHONE}", {"email": EMAIL}]))):
        if draw(st.booleans()):
            row[key] = draw(values)
    return row


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(page=st.lists(_service_requests(), max_size=12))
def test_a_page_gives_exactly_the_rows_and_quarantine_its_requests_give_alone(sqlite_city_db, page):
    from connectors.incident_intake import IncidentIntake
    from connectors.runner import _quarantine_row
    from connectors.validation import Validator

    context = _context(sqlite_city_db)
    connector = build_connector(ConnectorInstance(name="city-311", type="open311", levels=(Level.COMMUNITY,),
                                                  interval_seconds=600, config={"url": "http://127.0.0.1:9/v2"}),
                                context)
    validator = Validator.build(sqlite_city_db.catalog, sqlite_city_db.indicator_ids, context.tree,
                                (Level.COMMUNITY,), ZONE, NOW)
    intake = IncidentIntake(sqlite_city_db.url, "city-311", validator, 1, NOW)
    _, requests, _ = connector._masked(page)
    batch = connector._batch(requests, "requests-1.json")
    rows, rejected, newest = intake.batch(batch)

    alone_rows, alone_rejected = [], []
    for position in range(len(batch)):
        safe = intake.masked(batch.incident(position))  # what the page's incident would be on its own
        try:
            alone_rows.append(intake.row(safe))
        except ValueError as reason:  # Rejected or InvalidIncident
            alone_rejected.append((str(reason), safe))
    assert [dict(zip(COLUMNS, row)) for row in rows] == alone_rows
    assert [_quarantine_row(1, "city-311", reason, item, NOW) for reason, item in rejected] == \
        [_quarantine_row(1, "city-311", reason, item, NOW) for reason, item in alone_rejected]
    assert newest == max((row["updated_at"] for row in alone_rows), default=None)
    assert len(rows) + len(rejected) == len(page)
    stored = json.dumps([rows, [_quarantine_row(1, "city-311", reason, item, NOW) for reason, item in rejected]],
                        ensure_ascii=False, default=str)
    assert PHONE not in stored and EMAIL not in stored  # (a name is masked only where it is a requester's)
