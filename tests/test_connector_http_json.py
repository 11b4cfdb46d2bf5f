"""The http_json connector type and its HTTP client, against a real local HTTP server, through the real runner.

The server (http.server on 127.0.0.1, port 0, in a thread) answers as each test scripts it: pages, auth checks,
delays, error statuses, Retry-After, a gateway's HTML page, cut-off JSON, oversized bodies. Nothing is mocked.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

import connectors.http_json  # noqa: F401  (registers the type)
from cityops.hierarchy import Level
from cityops.tree import load_tree
from connectors.archive import RunArchive, open_payload, run_payloads
from connectors.base import ConnectorContext, FatalError, RetriableError
from connectors.config import ConnectorInstance, load_connectors
from connectors.http import HttpClient, parse_retry_after, shown_url
from connectors.mapping import FieldMapping
from connectors.runner import build_connector, run_connector

ZONE = "Asia/Shanghai"
SHANGHAI = ZoneInfo(ZONE)
NOW = int(datetime(2026, 11, 26, 10, 30, tzinfo=SHANGHAI).timestamp())
ALL_LEVELS = (Level.DISTRICT, Level.STREET, Level.COMMUNITY)
COMMUNITIES = [s + c for s in ("990101001", "990101002", "990102001", "990102002") for c in ("001", "002")]
MAPPING = {"unit_code": "code", "observed_at": "time", "indicator": "metric", "value": "value"}
# Retries in milliseconds, so the failure tests stay fast; the Retry-After test waits for real.
FAST = {"backoff": 0.01, "max_wait": 5.0, "timeout": 5.0}


# ------------------------------------------------------------------------------------------------
# The scripted API server
# ------------------------------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    at: float  # time.monotonic() on arrival


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-able, or bytes sent as they are
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_length: bool = True


class FakeApi:
    """What the server answers: the `script` replies first, one per request, then `answer(request)`."""

    def __init__(self, base: str):
        self.base = base
        self.seen: list[Seen] = []
        self.script: list[Reply] = []
        self.answer: Callable[[Seen], Reply] = lambda request: Reply(404, {"error": "no route"})
        self._lock = threading.Lock()

    def url(self, path: str = "/items") -> str:
        return self.base + path

    def reply_to(self, request: Seen) -> Reply:
        with self._lock:
            self.seen.append(request)
            scripted = self.script.pop(0) if self.script else None
        return scripted or self.answer(request)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self._serve(send_body=True)

    def do_HEAD(self):
        self._serve(send_body=False)

    def _serve(self, send_body: bool) -> None:
        parts = urlsplit(self.path)
        request = Seen(self.command, parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()},
                       {k.lower(): v for k, v in self.headers.items()}, time.monotonic())
        reply = self.server.api.reply_to(request)
        time.sleep(reply.delay)
        body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body, ensure_ascii=False).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            if reply.content_length:
                self.send_header("Content-Length", str(len(body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if send_body:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped waiting (timeout) or reading (oversized body)

    def log_message(self, *args):
        pass


def _serve():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.api = FakeApi(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server.api
    server.shutdown()
    server.server_close()


@pytest.fixture
def api():
    yield from _serve()


@pytest.fixture
def other_api():
    """A second server, standing for another host."""
    yield from _serve()


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, SHANGHAI).isoformat()


def epoch_of(text_time: str) -> int:
    return int(datetime.fromisoformat(text_time).timestamp())


def rows(count: int, start: int = 0) -> list[dict]:
    """Hotline counts, one minute apart, ending one minute before NOW; every (code, time) distinct."""
    return [{"code": COMMUNITIES[n % 8], "metric": "hotline_complaints", "time": iso(NOW - 60 * (100 - n)),
             "value": n} for n in range(start, start + count)]


def paged(data: list[dict], style: str, wrap: str | None = "data", since_param: str = "since",
          link_size: int = 3) -> Callable[[Seen], Reply]:
    """An API serving `data` page by page in `style`, filtering by `since_param` (inclusive) when asked."""

    def answer(request: Seen) -> Reply:
        q = request.query
        chosen = data
        if since_param in q:
            chosen = [r for r in data if epoch_of(r["time"]) >= epoch_of(q[since_param])]
        link = None
        if style == "page":
            page, size = int(q["page"]), int(q["page_size"])
            part = chosen[(page - 1) * size: page * size]
        elif style == "offset":
            offset, limit = int(q["offset"]), int(q["limit"])
            part = chosen[offset: offset + limit]
        elif style == "next_link":
            after = int(q.get("after", 0))
            part = chosen[after: after + link_size]
            if after + link_size < len(chosen):
                link = f"/items?after={after + link_size}"  # relative, as many APIs send it
        else:
            part = chosen
        body = part if wrap is None else {wrap: part, "links": {"next": link}, "total": len(chosen)}
        return Reply(body=body)

    return answer


def requiring(header: str, expected: str, refusal: int, then: Callable[[Seen], Reply]) -> Callable[[Seen], Reply]:
    def answer(request: Seen) -> Reply:
        if request.headers.get(header.lower()) != expected:
            return Reply(refusal, {"error": "invalid credentials"})
        return then(request)

    return answer


# ------------------------------------------------------------------------------------------------
# Running and looking at the database and archive
# ------------------------------------------------------------------------------------------------


def instance(api: FakeApi, name: str = "api", mapping: dict | None = None, **config) -> ConnectorInstance:
    return ConnectorInstance(name=name, type="http_json", levels=ALL_LEVELS, interval_seconds=300,
                             config={"url": api.url(), **FAST, **config},
                             mapping=FieldMapping.parse(mapping or MAPPING))


def run(db, inst: ConnectorInstance, tmp_path, **options):
    return run_connector(db.url, inst, db.catalog, timezone=ZONE, now=NOW, archive_root=tmp_path / "archive",
                         **options)


def fetch_all(db, sql: str, **params) -> list:
    with db.session() as session:
        return session.execute(text(sql), params).all()


def stored(db) -> dict[tuple[str, str, int], tuple[float, int]]:
    found = fetch_all(db, "SELECT u.code, i.key, o.observed_at, o.value, o.run_id FROM observations o "
                          "JOIN units u ON u.id = o.unit_id JOIN indicators i ON i.id = o.indicator_id")
    return {(code, key, int(at)): (value, run_id) for code, key, at, value, run_id in found}


def expected(data: list[dict]) -> dict[tuple[str, str, int], float]:
    return {(r["code"], r["metric"], epoch_of(r["time"])): float(r["value"]) for r in data}


def values(db) -> dict[tuple[str, str, int], float]:
    return {key: value for key, (value, _run) in stored(db).items()}


def quarantined(db) -> list[tuple[str, dict, str]]:
    return [(reason, json.loads(raw), source)
            for reason, raw, source in fetch_all(db, "SELECT reason, raw, source FROM quarantine ORDER BY id")]


def cursor_of(db, name: str = "api"):
    return fetch_all(db, "SELECT cursor FROM connector_cursors WHERE connector = :n", n=name)[0][0] \
        if fetch_all(db, "SELECT count(*) FROM connector_cursors WHERE connector = :n", n=name)[0][0] else None


def archived(tmp_path, summary) -> list[tuple[str, bytes]]:
    """(label, payload) of every page the run archived, in order."""
    root = tmp_path / "archive"
    found = []
    for reference in run_payloads(root, summary.archive):
        with open_payload(root, reference) as stream:
            found.append((reference.rsplit("/", 1)[-1].removesuffix(".gz").split("-", 1)[-1], stream.read()))
    return found


# ------------------------------------------------------------------------------------------------
# Pagination
# ------------------------------------------------------------------------------------------------


def test_page_pagination_reads_every_page_archives_each_and_stores_every_row(sqlite_city_db, api, tmp_path):
    data = rows(7)
    api.answer = paged(data, "page")
    inst = instance(api, records_path="data", pagination="page", page_size=3, params={"district": "990101"})
    summary = run(sqlite_city_db, inst, tmp_path)
    assert (summary.status, summary.fetched, summary.accepted, summary.rejected) == ("ok", 7, 7, 0)
    # The short third page ends the paging; fixed params go with every page.
    assert [(r.query["page"], r.query["page_size"], r.query["district"]) for r in api.seen] == \
        [("1", "3", "990101"), ("2", "3", "990101"), ("3", "3", "990101")]
    assert values(sqlite_city_db) == expected(data)
    pages = archived(tmp_path, summary)
    assert [label for label, _ in pages] == ["page-1.json", "page-2.json", "page-3.json"]
    assert [json.loads(body)["data"] for _, body in pages] == [data[:3], data[3:6], data[6:]]
    # No since_param configured: the request carries no cursor, and the cursor is the newest row's time.
    assert all("since" not in r.query for r in api.seen)
    assert cursor_of(sqlite_city_db) == str(epoch_of(data[-1]["time"]))


def test_offset_pagination_of_a_bare_list_stops_at_the_empty_page(sqlite_city_db, api, tmp_path):
    data = rows(6)
    api.answer = paged(data, "offset", wrap=None)
    summary = run(sqlite_city_db, instance(api, pagination="offset", page_size=3), tmp_path)
    assert (summary.status, summary.accepted) == ("ok", 6)
    assert [(r.query["offset"], r.query["limit"]) for r in api.seen] == [("0", "3"), ("3", "3"), ("6", "3")]
    assert values(sqlite_city_db) == expected(data)
    assert len(archived(tmp_path, summary)) == 3  # the empty page is archived too: it is what the source said


def test_next_link_pagination_follows_relative_links_on_sqlite_and_postgresql(city_db, api, tmp_path):
    data = rows(7)
    api.answer = paged(data, "next_link")
    summary = run(city_db, instance(api, records_path="data", pagination="next_link", next_link_path="links.next"),
                  tmp_path)
    assert (summary.status, summary.fetched, summary.accepted) == ("ok", 7, 7)
    assert [r.query.get("after") for r in api.seen] == [None, "3", "6"]
    assert values(city_db) == expected(data)
    assert cursor_of(city_db) == str(epoch_of(data[-1]["time"]))


@pytest.mark.parametrize("link, message", [
    ("http://other.example:8080/items?after=3", "points to another host"),
    ("/items", "repeats a page already read"),
])
def test_a_next_link_off_the_host_or_in_a_loop_fails_the_run(sqlite_city_db, api, tmp_path, link, message):
    api.answer = lambda request: Reply(body={"data": rows(3), "next": link})
    summary = run(sqlite_city_db, instance(api, records_path="data", pagination="next_link"), tmp_path)
    assert (summary.status, summary.error_family) == ("failed", "fatal")
    assert message in summary.error_message and "next_link_path" in summary.error_message
    assert len(api.seen) <= 2  # the foreign host is never asked, the loop stops at once


def test_more_pages_than_max_pages_fails_instead_of_paging_forever(sqlite_city_db, api, tmp_path):
    api.answer = lambda request: Reply(body=rows(3))  # every page full, forever
    summary = run(sqlite_city_db, instance(api, pagination="page", page_size=3, max_pages=4), tmp_path)
    assert (summary.status, summary.error_family) == ("failed", "fatal")
    assert "max_pages (4)" in summary.error_message and len(api.seen) == 4
    assert cursor_of(sqlite_city_db) is None


# ------------------------------------------------------------------------------------------------
# Authentication
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("auth, header_name, header, sent, refusal", [
    ("bearer", "", "Authorization", "Bearer s3cret-token", 401),
    ("header", "X-API-Key", "X-API-Key", "s3cret-token", 403),
])
def test_auth_sends_the_token_and_a_refusal_fails_fatally_naming_the_auth(sqlite_city_db, api, tmp_path, auth,
                                                                          header_name, header, sent, refusal):
    data = rows(3)
    api.answer = requiring(header, sent, refusal, paged(data, "none", wrap=None))
    good = run(sqlite_city_db, instance(api, auth=auth, header_name=header_name, token="s3cret-token"), tmp_path)
    assert (good.status, good.accepted) == ("ok", 3)
    assert api.seen[0].headers[header.lower()] == sent

    api.seen.clear()
    refused = run(sqlite_city_db, instance(api, auth=auth, header_name=header_name, token="stale-token"), tmp_path)
    assert (refused.status, refused.error_family) == ("failed", "fatal")
    assert f"authentication refused (HTTP {refusal}" in refused.error_message
    assert "token_env" in refused.error_message and header in refused.error_message
    assert "invalid credentials" in refused.error_message  # what the source said
    assert "stale-token" not in refused.error_message
    assert len(api.seen) == 1  # a refusal is not retried


def test_a_source_wanting_credentials_from_a_connector_without_auth_says_how_to_configure_them(sqlite_city_db, api,
                                                                                               tmp_path):
    api.answer = requiring("Authorization", "Bearer x", 401, paged([], "none", wrap=None))
    summary = run(sqlite_city_db, instance(api), tmp_path)
    assert (summary.status, summary.error_family) == ("failed", "fatal")
    assert "set auth (bearer or header) and token_env" in summary.error_message


def test_connectors_yaml_gives_the_token_through_its_environment_variable(sqlite_city_db, api, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("TEST_HOTLINE_TOKEN", "from-the-environment")
    data = rows(4)
    api.answer = requiring("Authorization", "Bearer from-the-environment", 401, paged(data, "page"))
    path = tmp_path / "connectors.yaml"
    path.write_text(f"""
connectors:
  - name: api
    type: http_json
    levels: [community]
    schedule: {{interval: 10m}}
    config:
      url: {api.url()}
      records_path: data
      params: {{district: "990101"}}
      pagination: page
      page_size: 3
      auth: bearer
      token_env: TEST_HOTLINE_TOKEN
      timeout: 5
      backoff: 0.01
    mapping: {{unit_code: code, observed_at: time, indicator: metric, value: value}}
""", encoding="utf-8")
    [inst] = load_connectors(path, catalog_keys=[i.key for i in sqlite_city_db.catalog])
    assert inst.config["token"] == "from-the-environment" and inst.config["max_pages"] == 10000
    summary = run(sqlite_city_db, inst, tmp_path)
    assert (summary.status, summary.accepted) == ("ok", 4)


@pytest.mark.parametrize("config, message", [
    ({"pagination": "cursor"}, "pagination must be one of none, page, offset, next_link"),
    ({"auth": "bearer"}, "auth bearer needs a token: set token_env"),
    ({"url": "ftp://files.example/items"}, "url must be an http:// or https:// address"),
])
def test_an_unusable_config_fails_the_run_with_what_to_change(sqlite_city_db, api, tmp_path, config, message):
    summary = run(sqlite_city_db, instance(api, **config), tmp_path)
    assert (summary.status, summary.error_family) == ("failed", "fatal")
    assert message in summary.error_message and not api.seen


# ------------------------------------------------------------------------------------------------
# Slow, busy and failing sources
# ------------------------------------------------------------------------------------------------


def test_a_timeout_is_retried_and_the_next_attempt_succeeds(sqlite_city_db, api, tmp_path):
    data = rows(3)
    api.script = [Reply(body=data, delay=2.0)]  # longer than the timeout
    api.answer = paged(data, "none", wrap=None)
    summary = run(sqlite_city_db, instance(api, timeout=0.5), tmp_path)
    assert (summary.status, summary.accepted) == ("ok", 3)
    assert len(api.seen) >= 2  # the delayed first answer was given up on
    assert len(archived(tmp_path, summary)) == 1  # only the body that arrived


def test_two_server_errors_then_success(sqlite_city_db, api, tmp_path):
    data = rows(3)
    api.script = [Reply(500, {"error": "database is locked"}), Reply(500, b"Internal Server Error", "text/plain")]
    api.answer = paged(data, "none", wrap=None)
    summary = run(sqlite_city_db, instance(api), tmp_path)
    assert (summary.status, summary.accepted) == ("ok", 3)
    assert len(api.seen) == 3


def test_429_waits_as_long_as_retry_after_asks(sqlite_city_db, api, tmp_path):
    data = rows(2)
    api.script = [Reply(429, {"error": "slow down"}, headers={"Retry-After": "1"})]
    api.answer = paged(data, "none", wrap=None)
    summary = run(sqlite_city_db, instance(api), tmp_path)  # backoff is 0.01 s: only Retry-After explains a wait
    assert (summary.status, summary.accepted) == ("ok", 2)
    assert len(api.seen) == 2
    assert api.seen[1].at - api.seen[0].at >= 0.95


def test_a_persistent_503_fails_retriable_after_every_attempt_and_keeps_the_cursor(sqlite_city_db, api, tmp_path):
    data = rows(3)
    api.answer = paged(data, "none", wrap=None)
    inst = instance(api, params={"district": "990101"}, since_param="since")
    first = run(sqlite_city_db, inst, tmp_path)
    assert first.status == "ok"
    cursor = cursor_of(sqlite_city_db)

    api.seen.clear()
    api.answer = lambda request: Reply(503, b"<html><body>maintenance</body></html>", "text/html")
    failed = run(sqlite_city_db, inst, tmp_path)
    assert (failed.status, failed.error_family, failed.accepted) == ("failed", "retriable", 0)
    assert len(api.seen) == 4
    message = failed.error_message
    assert "HTTP 503" in message and "after 4 attempt(s)" in message
    assert f"{api.url()}?…" in message and "990101" not in message  # the URL, never its query
    assert cursor_of(sqlite_city_db) == cursor
    assert values(sqlite_city_db) == expected(data)


def test_a_retry_after_longer_than_max_wait_stops_the_run_at_once(sqlite_city_db, api, tmp_path):
    api.answer = lambda request: Reply(503, {"error": "maintenance"}, headers={"Retry-After": "120"})
    summary = run(sqlite_city_db, instance(api), tmp_path)
    assert (summary.status, summary.error_family) == ("failed", "retriable")
    assert "asks to wait 120 s (more than max_wait 5 s)" in summary.error_message
    assert len(api.seen) == 1


def test_redirects_are_followed_but_the_token_stays_with_the_configured_host(sqlite_city_db, api, other_api,
                                                                            tmp_path):
    data = rows(3)
    elsewhere = other_api.url("/mirror").replace("127.0.0.1", "localhost")  # another host name, same machine
    api.answer = lambda request: (Reply(301, b"", headers={"Location": "/v2/items"}) if request.path == "/items"
                                  else Reply(302, b"", headers={"Location": elsewhere}))
    other_api.answer = paged(data, "none", wrap=None)
    summary = run(sqlite_city_db, instance(api, auth="header", token="s3cret-token"), tmp_path)
    assert (summary.status, summary.accepted) == ("ok", 3)
    assert [(r.path, r.headers.get("x-api-key")) for r in api.seen] == \
        [("/items", "s3cret-token"), ("/v2/items", "s3cret-token")]
    assert [(r.path, r.headers.get("x-api-key")) for r in other_api.seen] == [("/mirror", None)]


def test_a_page_in_gbk_is_read_by_its_declared_charset_and_replayed_the_same_way(sqlite_city_db, api, tmp_path):
    data = rows(2)
    for row in data:
        row["metric"] = "热线投诉"
    api.answer = lambda request: Reply(body=json.dumps(data, ensure_ascii=False).encode("gbk"),
                                       content_type="application/json; charset=GBK")
    inst = instance(api, mapping={**MAPPING, "indicator_names": {"热线投诉": "hotline_complaints"}})
    summary = run(sqlite_city_db, inst, tmp_path)
    assert (summary.status, summary.accepted) == ("ok", 2)
    assert [label for label, _ in archived(tmp_path, summary)] == ["page-1.GBK.json"]
    replayed = run(sqlite_city_db, inst, tmp_path, replay=run_payloads(tmp_path / "archive", summary.archive))
    assert (replayed.status, replayed.fetched, replayed.duplicates) == ("ok", 2, 2)


def test_404_fails_fatally_naming_the_url_to_check(sqlite_city_db, api, tmp_path):
    summary = run(sqlite_city_db, instance(api), tmp_path)  # the fake API answers 404 to anything not scripted
    assert (summary.status, summary.error_family) == ("failed", "fatal")
    assert f"GET {api.url()}: not found (HTTP 404" in summary.error_message
    assert "check the configured url/path" in summary.error_message
    assert len(api.seen) == 1


# ------------------------------------------------------------------------------------------------
# Bodies that are not what was asked for
# ------------------------------------------------------------------------------------------------


GATEWAY_PAGE = (b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title><style>body{color:red}</style></head>"
                b"<body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>")


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/json"])
def test_an_html_page_with_status_200_fails_retriable_with_an_excerpt(sqlite_city_db, api, tmp_path, content_type):
    api.answer = lambda request: Reply(200, GATEWAY_PAGE, content_type)
    summary = run(sqlite_city_db, instance(api), tmp_path)
    assert (summary.status, summary.error_family) == ("failed", "retriable")
    assert "HTML page instead of JSON" in summary.error_message
    assert "502 Bad Gateway 502 Bad Gateway nginx" in summary.error_message and "color:red" not in summary.error_message
    assert len(api.seen) == 1  # a page is parsed after it is archived: the next run tries again
    assert archived(tmp_path, summary) == [("page-1.json", GATEWAY_PAGE)]  # the evidence is kept


def test_malformed_json_fails_retriable_after_archiving_it_and_stores_nothing_of_the_run(sqlite_city_db, api,
                                                                                         tmp_path):
    cut_off = json.dumps(rows(3, start=3)).encode()[:150]
    api.answer = lambda request: Reply(body=rows(3) if request.query["page"] == "1" else cut_off)
    summary = run(sqlite_city_db, instance(api, pagination="page", page_size=3), tmp_path)
    assert (summary.status, summary.error_family, summary.accepted) == ("failed", "retriable", 0)
    assert "page 2 of" in summary.error_message and "is not valid JSON" in summary.error_message
    assert '[{"code": "990101002002"' in summary.error_message  # the excerpt
    assert [body for _, body in archived(tmp_path, summary)][1] == cut_off
    # Nothing of an unordered source's run is committed before its last page: the next run re-reads it all.
    assert stored(sqlite_city_db) == {} and cursor_of(sqlite_city_db) is None


@pytest.mark.parametrize("announced", [True, False])
def test_an_oversized_body_fails_fatally_explaining_the_limit_and_how_to_page(sqlite_city_db, api, tmp_path,
                                                                              announced):
    big = rows(100)
    api.answer = lambda request: Reply(body=big, content_length=announced)
    summary = run(sqlite_city_db, instance(api, max_bytes=2000), tmp_path)
    assert (summary.status, summary.error_family) == ("failed", "fatal")
    message = summary.error_message
    assert "over the limit of 2,000 bytes (max_bytes)" in message
    assert "announces" in message if announced else "went past 2,000 bytes" in message
    assert "pagination" in message and "page_size" in message
    assert len(api.seen) == 1 and archived(tmp_path, summary) == []


def test_records_path_that_is_not_in_the_body_names_what_is(sqlite_city_db, api, tmp_path):
    api.answer = lambda request: Reply(body={"code": 0, "msg": "ok", "result": {"rows": rows(2)}})
    summary = run(sqlite_city_db, instance(api, records_path="data"), tmp_path)
    assert (summary.status, summary.error_family) == ("failed", "fatal")
    assert "no 'data' in the body (it has: code, msg, result); check records_path" in summary.error_message
    fixed = run(sqlite_city_db, instance(api, records_path="result.rows"), tmp_path)
    assert (fixed.status, fixed.accepted) == ("ok", 2)


# ------------------------------------------------------------------------------------------------
# Bad rows: quarantined with their reason, the page's good rows stored
# ------------------------------------------------------------------------------------------------


def test_bad_rows_are_quarantined_with_reasons_and_the_good_rows_of_the_page_are_stored(sqlite_city_db, api,
                                                                                        tmp_path):
    good = rows(2)
    hotline = {"metric": "hotline_complaints"}
    c = COMMUNITIES
    page = [
        good[0],
        {"code": c[2], **hotline, "value": 4},                                           # no time
        {"code": "990199999999", **hotline, "time": iso(NOW - 120), "value": 1},         # unknown unit
        {"code": c[3], **hotline, "time": iso(NOW - 120), "value": "NaN"},               # "NaN" text
        {"code": c[4], **hotline, "time": iso(NOW - 120), "value": None},                # null
        {"code": c[5], **hotline, "time": iso(NOW - 120), "value": -3},                  # negative count
        {"code": c[6], **hotline, "time": "2026-11-26T09:00:00", "value": 5},            # naive: the city's zone
        {"code": c[7], **hotline, "time": "yesterday at noon", "value": 1},              # not a time
        {"code": c[2], "metric": "rainfall", "time": iso(NOW - 120), "value": 1},        # unknown indicator
        good[1],
    ]
    api.answer = lambda request: Reply(body={"data": page})
    summary = run(sqlite_city_db, instance(api, records_path="data"), tmp_path)
    assert (summary.status, summary.fetched, summary.accepted, summary.rejected) == ("partial", 10, 3, 7)
    naive_at = int(datetime(2026, 11, 26, 9, 0, tzinfo=SHANGHAI).timestamp())
    assert values(sqlite_city_db) == {**expected(good), (c[6], "hotline_complaints", naive_at): 5.0}
    found = quarantined(sqlite_city_db)
    assert [reason for reason, _raw, _source in found] == [
        "missing field 'time'",
        "unknown unit code '990199999999'",
        "value 'NaN' is not a finite number",
        "value None is not a number",
        "negative count -3.0 for hotline_complaints",
        "timestamp 'yesterday at noon' is not ISO 8601 (e.g. 2026-11-26T10:00:00+08:00)",
        "unknown indicator 'rainfall'",
    ]
    assert [raw for _reason, raw, _source in found] == [page[n] for n in (1, 2, 3, 4, 5, 7, 8)]
    # Each names the archived page and its place in it, for the drill-down and for replay.
    assert [source.rsplit("/", 1)[-1] for _reason, _raw, source in found] == \
        [f"0001-page-1.json.gz#{n}" for n in (1, 2, 3, 4, 5, 7, 8)]


def test_a_second_run_counts_duplicates_and_stores_nothing_new(sqlite_city_db, api, tmp_path):
    data = rows(5)
    api.answer = paged(data, "page")
    inst = instance(api, records_path="data", pagination="page", page_size=2)
    first = run(sqlite_city_db, inst, tmp_path)
    second = run(sqlite_city_db, inst, tmp_path)
    assert (first.status, first.accepted, first.duplicates) == ("ok", 5, 0)
    assert (second.status, second.fetched, second.accepted, second.duplicates) == ("ok", 5, 0, 5)
    assert {run_id for _value, run_id in stored(sqlite_city_db).values()} == {first.run_id}


def test_since_param_receives_the_stored_cursor_as_an_iso_time(sqlite_city_db, api, tmp_path):
    data = rows(4)
    api.answer = paged(data, "page")
    inst = instance(api, records_path="data", pagination="page", page_size=3, since_param="since")
    first = run(sqlite_city_db, inst, tmp_path)
    assert first.accepted == 4 and all("since" not in r.query for r in api.seen)
    newest = epoch_of(data[-1]["time"])
    assert cursor_of(sqlite_city_db) == str(newest)

    data.extend(rows(2, start=4))
    api.seen.clear()
    second = run(sqlite_city_db, inst, tmp_path)
    # Every page of the run asks from the same cursor (three rows fill page 1, so page 2 is asked for too).
    assert [r.query["since"] for r in api.seen] == ["2026-11-26T08:53:00+08:00"] * 2 == [iso(newest)] * 2
    # The cursor's own row comes again (since is inclusive): a duplicate, not a second copy.
    assert (second.status, second.fetched, second.accepted, second.duplicates) == ("ok", 3, 2, 1)
    assert cursor_of(sqlite_city_db) == str(epoch_of(data[-1]["time"]))


# ------------------------------------------------------------------------------------------------
# Archive and replay
# ------------------------------------------------------------------------------------------------


def test_archived_pages_replay_with_a_corrected_mapping(sqlite_city_db, api, tmp_path):
    """The source renamed its indicator; after the mapping learns the new name, a replay stores those rows."""
    data = rows(5)
    for row in data[3:]:
        row["metric"] = "热线投诉"
    api.answer = paged(data, "page")
    config = {"records_path": "data", "pagination": "page", "page_size": 3}
    first = run(sqlite_city_db, instance(api, **config), tmp_path)
    assert (first.status, first.accepted, first.rejected) == ("partial", 3, 2)
    references = run_payloads(tmp_path / "archive", first.archive)
    assert len(references) == 2

    requests_before = len(api.seen)
    fixed = instance(api, mapping={**MAPPING, "indicator_names": {"热线投诉": "hotline_complaints"}}, **config)
    replayed = run(sqlite_city_db, fixed, tmp_path, replay=references)
    assert len(api.seen) == requests_before  # parsed from the archive, not fetched
    assert (replayed.status, replayed.fetched, replayed.accepted, replayed.duplicates) == ("ok", 5, 2, 3)
    for row in data:
        row["metric"] = "hotline_complaints"
    assert values(sqlite_city_db) == expected(data)


def test_replay_of_an_archived_page_that_is_not_json_is_fatal(sqlite_city_db, api, tmp_path):
    with sqlite_city_db.session() as session:
        context = ConnectorContext(sqlite_city_db.catalog, load_tree(session), NOW, ZONE)
    connector = build_connector(instance(api), context)
    [batch] = connector.replay("page-1.json", json.dumps(rows(2)).encode())
    assert batch.frame["value"].tolist() == [0, 1]
    with pytest.raises(FatalError, match="archived page-1.json: the source answered with an HTML page"):
        list(connector.replay("page-1.json", GATEWAY_PAGE))


# ------------------------------------------------------------------------------------------------
# check()
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def checker(sqlite_city_db, tmp_path):
    """Builds a connector the way the runner does, with a run archive that check() must leave untouched."""
    with sqlite_city_db.session() as session:
        tree = load_tree(session)
    archive = RunArchive(tmp_path / "archive", "api", 1, NOW)

    def build(inst: ConnectorInstance):
        return build_connector(inst, ConnectorContext(sqlite_city_db.catalog, tree, NOW, ZONE, archive=archive))

    build.archive = archive
    return build


def test_check_reads_the_first_page_and_archives_nothing(checker, api):
    api.answer = paged(rows(7), "page")
    health = checker(instance(api, records_path="data", pagination="page", page_size=3)).check()
    assert (health.healthy, health.detail) == (True, "reachable, 3 rows on the first page")
    assert len(api.seen) == 1 and api.seen[0].query["page"] == "1"
    assert checker.archive.count == 0 and not checker.archive.folder.exists()


def test_check_with_head_only_asks_whether_the_source_answers(checker, api):
    api.answer = paged(rows(3), "none", wrap=None)
    health = checker(instance(api, check_method="HEAD")).check()
    assert (health.healthy, health.detail) == (True, "reachable (HEAD answered HTTP 200)")
    assert [r.method for r in api.seen] == ["HEAD"]


def test_check_says_exactly_why_the_source_is_not_healthy(checker, api):
    api.answer = requiring("X-API-Key", "right", 403, paged([], "none", wrap=None))
    refused = checker(instance(api, auth="header", token="wrong")).check()
    assert not refused.healthy
    assert refused.detail.startswith("fatal: api: GET ") and "authentication refused (HTTP 403" in refused.detail

    api.seen.clear()
    api.answer = lambda request: Reply(503, {"error": "maintenance"})
    busy = checker(instance(api)).check()
    assert not busy.healthy and busy.detail.startswith("retriable: ") and "HTTP 503" in busy.detail
    assert len(api.seen) == 1  # a health check tries once: it reports now, not after a minute of backoff

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/items"
    down = checker(instance(api, url=closed)).check()
    assert not down.healthy and "could not connect" in down.detail and "retriable" in down.detail
    assert checker.archive.count == 0


# ------------------------------------------------------------------------------------------------
# The client on its own
# ------------------------------------------------------------------------------------------------


def test_the_client_backs_off_exponentially_with_jitter_then_gives_up(api):
    api.answer = lambda request: Reply(502, b"Bad Gateway", "text/plain")
    waits: list[float] = []
    client = HttpClient("hotline", timeout=5, attempts=3, backoff=1.0, max_wait=60, sleep=waits.append)
    with pytest.raises(RetriableError, match=r"hotline: GET http://127\.0\.0\.1:\d+/items\?… failed after 3 "
                                             r"attempt\(s\): HTTP 502") as failure:
        client.get(api.url("/items?key=abc"))
    assert failure.value.retry_after is None
    assert len(waits) == 2 and 1.0 <= waits[0] <= 1.1 and 2.0 <= waits[1] <= 2.2
    assert "abc" not in str(failure.value)


def test_the_client_reports_what_the_source_says_about_a_refused_request(api):
    api.answer = lambda request: Reply(400, {"error": "unknown parameter 'distrct'"})
    client = HttpClient("hotline", timeout=5, backoff=0.01)
    with pytest.raises(FatalError, match="rejected the request \\(HTTP 400 Bad Request\\); check the configured "
                                         "url and params. The source says: .*unknown parameter 'distrct'"):
        client.get(api.url(), params={"distrct": "990101"})
    assert len(api.seen) == 1


def test_get_json_parses_json_and_refuses_a_gateway_page(api):
    api.answer = lambda request: Reply(body={"data": [1, 2]})
    client = HttpClient("hotline", timeout=5, backoff=0.01)
    assert client.get_json(api.url()) == {"data": [1, 2]}
    api.answer = lambda request: Reply(200, GATEWAY_PAGE, "text/html")
    with pytest.raises(RetriableError, match="HTML page instead of JSON"):
        client.get_json(api.url())


def test_the_client_passes_on_retry_after_when_it_gives_up(api):
    api.answer = lambda request: Reply(429, {"error": "quota"}, headers={"Retry-After": "0"})
    client = HttpClient("hotline", timeout=5, attempts=2, backoff=0.01)
    with pytest.raises(RetriableError) as failure:
        client.get(api.url())
    assert failure.value.retry_after == 0 and "HTTP 429" in str(failure.value)


def test_retry_after_reads_seconds_and_http_dates():
    now = time.time()
    assert parse_retry_after("1") == 1.0
    assert parse_retry_after(" 30 ") == 30.0
    in_a_minute = format_datetime(datetime.fromtimestamp(now + 60, timezone.utc), usegmt=True)
    assert 59 <= parse_retry_after(in_a_minute, now=now) <= 61
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 0.0  # already past
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_urls_in_messages_carry_no_credentials_or_query():
    assert shown_url("https://user:pw@api.example.gov.cn:8443/v1/items?token=abc&page=2") == \
        "https://api.example.gov.cn:8443/v1/items?…"
    assert shown_url("http://api.example/items") == "http://api.example/items"
