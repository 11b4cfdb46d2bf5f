"""The `open311` connector type: service requests from an Open311 GeoReport v2 server become incidents.

GeoReport v2 has a standard shape, so there is no `mapping:`. Each run asks `<url>/requests.json` for the requests
of a time window — `start_date` (the cursor minus `lookback`; on the first run, `history` ago) to `end_date`
(now), in the deployment's zone as ISO 8601 — page by page (`page`, `page_size`) until a page is empty (or
repeats only requests already read: a server that ignores `page`). Each request becomes an incident (a page of
them one `IncidentBatch`): service_request_id, category (`service_name`, or `service_code`: `category_field`),
status (`status_closed` says which of the source's statuses mean closed; everything else is open), requested /
updated time, point (`long`, `lat`), address and description. The runner places it in the community whose
boundary holds its point, stores it (a newer `updated_datetime` replaces what is stored, an older one never does),
and after each run stores every community's open and overdue counts (open longer than `overdue_after`, or its
category's limit in `overdue_by_category`) as `open_indicator` and `overdue_indicator` at the hour holding the
run's time.
Keep the schedule well inside the indicators' interval (1h): each run refreshes the current hour's value.
Only one connector should feed a pair of count indicators (`counts: false` on any other).

The cursor is the newest `updated_datetime` stored. GeoReport v2's `start_date` filters by the time a request
was *opened*, so a request closed long after it was opened is not in later windows: every run therefore also
asks again about the requests stored as open that its window did not return (`recheck_open`, by
`service_request_id`, `recheck_batch` ids per request) — otherwise they would stay open and overdue forever.
Servers that filter by update time (`since_param: updated_after`, `until_param: updated_before`) return the
changes themselves; `recheck_open` is then off unless set.

Personal data: the requester's fields (`personal_fields`: email, phone, names, device and account ids) are masked
before anything is kept (cityops.incidents): the incident stores them only masked (contact_masked: phone
138****5678, e-mail z***@example.com, name 张*), its raw row without them, and their clear values, mobile
numbers and e-mail addresses are masked in every text (a description saying "call me at 138...").
Archived pages are masked the same way, deliberately not byte for byte: raw payloads sit on disk for the archive
retention, and a 311 archive in clear would be the largest store of citizens' phone numbers in the system. Replay
loses nothing by it — masks are idempotent, so a replayed page yields exactly the incidents that were stored —
but the archive shows requests as parsed JSON (UTF-8, keys in the source's order), not the source's exact bytes.
A page that is not JSON (a gateway's error page, a cut-off body) is archived as text with personal fields,
mobile numbers and e-mail addresses masked by pattern.

The API key (`api_key_env`) is sent as the `api_key` query parameter, as GeoReport v2 specifies. It never appears
in messages (URLs are shown without their query, and a server echoing the key has it replaced by ***) nor in
archive names (pages are archived as requests-<n>.json and recheck-<n>.json).

Errors (see connectors/http.py): timeouts, 429 and 5xx are retried, then fail the run as retriable; 401/403 fail
it as fatal naming api_key_env; 400 (a parameter the server does not take, e.g. a window over its 90-day limit)
and 404 (a wrong url) fail it as fatal with what the server said.

Example connectors.yaml entry (the key is read from the environment variable CITY311_API_KEY):

    - name: city-311
      type: open311
      levels: [community]
      schedule: {interval: 10m}
      config:
        url: https://311.example.gov.cn/open311/v2
        jurisdiction_id: sh.gov.cn
        api_key_env: CITY311_API_KEY
        page_size: 200
        lookback: 1h              # re-read this much before the cursor (requests published late)
        history: 30d              # the first run reads the requests of the last 30 days
        status_closed: [closed, 已办结]
        overdue_after: 72h
        overdue_by_category: {路灯故障: 24h, 占道经营: 48h}
        open_indicator: grid_incidents_open
        overdue_indicator: grid_incidents_overdue
        personal_fields: [email, phone, first_name, last_name, name, device_id, account_id]
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Iterator
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import orjson
import requests

from cityops.incident_masking import mask_rows, mask_rows_and_json, mask_text, mask_value, scrub
from connectors.base import (ConfigField, Connector, ConnectorError, FatalError, Health, IncidentBatch,
                             IncidentCounts, RetriableError, register)
from connectors.config import duration_seconds
from connectors.http import (REQUEST_FIELDS, HttpClient, declared_charset, decode_json, excerpt, shown_url,
                             since_seconds)
from connectors.open311_requests import request_ids, requests_batch
from connectors.read_ahead import read_ahead

PERSONAL_FIELDS = ["email", "phone", "first_name", "last_name", "name", "device_id", "account_id"]
CATEGORY_FIELDS = ("service_name", "service_code")
# Pages requested ahead of the runner: a page of requests with their text is ~1 MB in memory.
READ_AHEAD_PAGES = 4


@register
class Open311Connector(Connector):
    type_name = "open311"
    uses_mapping = False
    yields_incidents = True
    # Servers list requests newest first or by id, not by update time: the cursor moves once the run is committed.
    ordered = False
    config_schema = (
        ConfigField("url", str, required=True,
                    help="the GeoReport v2 endpoint base (requests.json and services.json below it), e.g. "
                         "https://311.example.gov.cn/open311/v2"),
        ConfigField("jurisdiction_id", str, default="", help="sent as jurisdiction_id when the server hosts several"),
        ConfigField("api_key", str, secret=True,
                    help="the API key, sent as the api_key query parameter; give its environment variable as "
                         "api_key_env"),
        ConfigField("page_size", int, default=100, help="requests per page (page_size); the server may serve fewer"),
        ConfigField("page_param", str, default="page", help="the page number parameter"),
        ConfigField("size_param", str, default="page_size", help="the page size parameter"),
        ConfigField("max_pages", int, default=1000, help="safety stop: a run fails rather than page forever"),
        ConfigField("since_param", str, default="start_date",
                    help="parameter receiving the window's start: start_date (opening time, the standard) or a "
                         "server's update-time filter such as updated_after"),
        ConfigField("until_param", str, default="end_date",
                    help="parameter receiving the window's end (now): end_date, or e.g. updated_before; empty: "
                         "not sent"),
        ConfigField("lookback", str, default="1h",
                    help="each run asks from the cursor minus this (requests published late); 0 for none"),
        ConfigField("history", str, default="30d", help="how far back the first run (no cursor yet) reads"),
        ConfigField("recheck_open", bool, default=None,
                    help="ask again about stored open requests the window did not return (their closing); "
                         "default: yes with since_param start_date, no otherwise"),
        ConfigField("recheck_batch", int, default=50, help="service_request_ids per recheck request"),
        ConfigField("status_closed", list, default=["closed"],
                    help="the source's statuses that mean closed (any case); every other status is open"),
        ConfigField("category_field", str, default="service_name",
                    help="the request field giving the category: service_name or service_code (the other is "
                         "used when it is missing)"),
        ConfigField("counts", bool, default=True,
                    help="store open and overdue counts per community after each run (false when another "
                         "connector feeds the same indicators)"),
        ConfigField("overdue_after", str, default="72h", help="an open request older than this is overdue"),
        ConfigField("overdue_by_category", dict, default={},
                    help="category → its own overdue limit, e.g. {路灯故障: 24h}"),
        ConfigField("open_indicator", str, default="grid_incidents_open",
                    help="catalog indicator (per community) receiving the open counts"),
        ConfigField("overdue_indicator", str, default="grid_incidents_overdue",
                    help="catalog indicator (per community) receiving the overdue counts"),
        ConfigField("personal_fields", list, default=PERSONAL_FIELDS,
                    help="request fields holding personal data (any case): stored only masked, never in raw"),
        *REQUEST_FIELDS,
    )

    def __init__(self, name: str, config: dict, context, mapping=None):
        # Instances built in code (tests, the CLI) may skip resolve_config: fill in the schema's defaults here.
        defaults = {spec.name: spec.default for spec in self.config_schema}
        super().__init__(name, {**defaults, **config}, context, mapping)
        try:
            self.validate_config(self.config)
        except ValueError as error:
            raise FatalError(f"connector {self.name} (open311): {error}") from None
        config = self.config
        self.base = config["url"].rstrip("/")
        self.lookback = duration_seconds(config["lookback"], "lookback", allow_zero=True)
        self.history = duration_seconds(config["history"], "history")
        self.closed = {str(status).strip().lower() for status in config["status_closed"]}
        self.personal = [str(name) for name in config["personal_fields"]]
        self.category_fields = (config["category_field"],
                                CATEGORY_FIELDS[1 - CATEGORY_FIELDS.index(config["category_field"])])
        self.recheck = (config["since_param"] == "start_date") if config["recheck_open"] is None \
            else config["recheck_open"]
        self.client = self._client(config["attempts"])

    @classmethod
    def validate_config(cls, config: dict) -> None:
        config = {**{spec.name: spec.default for spec in cls.config_schema}, **config}
        url = urlsplit(str(config.get("url") or ""))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"url must be the endpoint base as an http:// or https:// address (e.g. "
                             f"https://311.example.gov.cn/open311/v2), not {config.get('url')!r}")
        if url.query or url.path.endswith(".json"):
            raise ValueError("url must be the endpoint base without a query or file name; requests.json and "
                             "services.json are appended to it")
        for field in ("page_size", "max_pages", "recheck_batch", "attempts", "max_bytes"):
            if config[field] < 1:
                raise ValueError(f"{field} must be at least 1, not {config[field]}")
        if not config["since_param"] or not config["page_param"] or not config["size_param"]:
            raise ValueError("since_param, page_param and size_param must name query parameters")
        if config["category_field"] not in CATEGORY_FIELDS:
            raise ValueError(f"category_field must be one of {', '.join(CATEGORY_FIELDS)}, "
                             f"not {config['category_field']!r}")
        for field in ("status_closed", "personal_fields"):
            if not all(isinstance(item, str) and item.strip() for item in config[field]):
                raise ValueError(f"{field} must be a list of names, e.g. {config[field] or ['closed']}")
        duration_seconds(config["lookback"], "lookback", allow_zero=True)
        duration_seconds(config["history"], "history")
        duration_seconds(config["overdue_after"], "overdue_after")
        for category, limit in config["overdue_by_category"].items():
            duration_seconds(limit, f"overdue_by_category {category}")
        if config["counts"] and not (config["open_indicator"] and config["overdue_indicator"]):
            raise ValueError("open_indicator and overdue_indicator must name catalog indicators (or set counts: "
                             "false)")
        if config["counts"] and config["open_indicator"] == config["overdue_indicator"]:
            raise ValueError(f"open_indicator and overdue_indicator are both {config['open_indicator']!r}; "
                             f"they need an indicator each")

    def _client(self, attempts: int) -> HttpClient:
        config = self.config
        hint = ("check api_key_env: it must name an environment variable holding a key this server accepts (sent "
                "as the api_key parameter)" if config.get("api_key")
                else "the server wants an API key: set api_key_env to the name of an environment variable holding it")
        return HttpClient(self.name, config["timeout"], attempts=attempts, backoff=config["backoff"],
                          max_wait=config["max_wait"], max_bytes=config["max_bytes"], auth_hint=hint)

    # -- the contract --------------------------------------------------------------------------------

    def incident_counts(self) -> IncidentCounts | None:
        config = self.config
        if not config["counts"]:
            return None
        return IncidentCounts(config["open_indicator"], config["overdue_indicator"],
                              duration_seconds(config["overdue_after"], "overdue_after"),
                              {str(category): duration_seconds(limit, f"overdue_by_category {category}")
                               for category, limit in config["overdue_by_category"].items()})

    def check(self) -> Health:
        # One attempt per request, nothing archived: health says how the server is now, and changes nothing.
        client = self._client(attempts=1)
        try:
            services = self._guarded(lambda: client.get_json(f"{self.base}/services.json", self._common()))
            if not isinstance(services, list):
                return Health(False, f"{shown_url(self.base)}/services.json does not list services (it answered "
                                     f"{type(services).__name__} '{excerpt(_text_of(services))}'); check url")
            probe = self._guarded(lambda: client.get(f"{self.base}/requests.json", {
                **self._common(), self.config["page_param"]: 1, self.config["size_param"]: 1}))
            document = self._guarded(lambda: decode_json(probe.content, self._where("requests.json"),
                                                         probe.headers.get("Content-Type"), declared_charset(probe)))
            self._guarded(lambda: self._rows(document, self._where("requests.json")))
        except ConnectorError as error:
            return Health(False, f"{error.family}: {error}")
        return Health(True, f"{len(services)} services; requests.json answers")

    def fetch(self, since: str | None) -> Iterator[IncidentBatch]:
        # The next pages are requested, archived and made into batches of incidents while the runner places and
        # stores this one (read_ahead): the runner's thread is the busier of the two.
        yield from read_ahead(self._batches(since), depth=READ_AHEAD_PAGES, name=f"{self.name} pages")

    def _batches(self, since: str | None) -> Iterator[IncidentBatch]:
        for page, source in self._pages(since):
            yield self._batch(page, source)

    def _pages(self, since: str | None) -> Iterator[tuple[list, str]]:
        """Each answer's requests (masked) and archive reference: the window's pages, then the re-check."""
        params = {**self._common(), self.config["since_param"]: self._time_text(self._start(since))}
        if self.config["until_param"]:
            params[self.config["until_param"]] = self._time_text(self.context.now)
        seen: set[str] = set()
        size = self.config["page_size"]
        for number in range(1, self.config["max_pages"] + 2):
            if number > self.config["max_pages"]:
                raise FatalError(f"{self.name}: still more pages after max_pages ({self.config['max_pages']}) pages "
                                 f"of {shown_url(self.base)}/requests.json; raise max_pages or page_size, or "
                                 f"shorten lookback / history")
            page = {**params, self.config["page_param"]: number, self.config["size_param"]: size}
            requests, source = self._page(f"requests-{number}.json", page)
            idents = request_ids(requests)
            if not requests or seen.issuperset(idents):
                break  # the last page, or a server ignoring `page` and sending the same requests again
            seen.update(idents)
            yield requests, source
        yield from self._recheck(seen)

    def replay(self, label: str, payload: bytes) -> Iterator[IncidentBatch]:
        where = f"{self.name}: archived {label}"
        try:
            document = decode_json(payload, where)
        except ConnectorError as error:
            raise FatalError(str(error)) from None  # an archived payload will never become valid
        document, requests, _ = self._masked(document)
        self._rows(document, where)
        yield self._batch(requests, label)

    def from_quarantine(self, raw: Any, source: str) -> Iterator[IncidentBatch]:
        """A quarantined request (kept masked, without its personal fields) as an incident again."""
        yield self._batch([raw], source)

    # -- pages ---------------------------------------------------------------------------------------

    def _recheck(self, seen: set[str]) -> Iterator[tuple[list, str]]:
        """The stored open requests this run's window did not return, asked about by id."""
        if not self.recheck:
            return
        pending = [ident for ident in self.context.open_incidents if ident not in seen]
        step = self.config["recheck_batch"]
        for number, start in enumerate(range(0, len(pending), step), start=1):
            # GeoReport v2: service_request_id (comma-separated) overrides every other filter.
            params = {**self._common(), "service_request_id": ",".join(pending[start:start + step])}
            yield self._page(f"recheck-{number}.json", params)

    def _page(self, label: str, params: dict) -> tuple[list, str]:
        """The requests of one requests.json answer, archived (masked) before they are read, and its reference."""
        url = f"{self.base}/requests.json"
        where = self._where(label)
        response = self._guarded(lambda: self.client.get(url, params))
        try:
            document = self._guarded(lambda: decode_json(response.content, where, response.headers.get("Content-Type"),
                                                         declared_charset(response)))
        except ConnectorError:
            # Kept for diagnosis, as text with personal data masked by pattern (a cut-off body may hold requests).
            self.archived(label.replace(".json", ".txt"), self._masked_text(response.content), "text/plain")
            raise
        document, requests, text = self._masked(document)
        reference = self.archived(label, text if text is not None else _json_bytes(document), "application/json")
        self._rows(document, where)  # an answer that is no list of requests fails the run, once archived
        return requests, reference or label

    def _rows(self, document: Any, where: str) -> list:
        # GeoReport v2 answers with a list; some servers wrap it as the XML form does.
        if isinstance(document, dict) and isinstance(document.get("service_requests"), list):
            document = document["service_requests"]
        if document is None:
            return []
        if not isinstance(document, list):
            raise FatalError(f"{where}: the answer is not a list of service requests (it is "
                             f"{type(document).__name__} '{excerpt(_text_of(document))}'); check url")
        return document

    def _batch(self, page: list, source: str) -> IncidentBatch:
        return requests_batch(page, source, self.category_fields, self.closed, self.personal)

    # -- helpers -------------------------------------------------------------------------------------

    def _common(self) -> dict:
        params = {}
        if self.config["jurisdiction_id"]:
            params["jurisdiction_id"] = self.config["jurisdiction_id"]
        if self.config.get("api_key"):
            params["api_key"] = self.config["api_key"]
        return params

    def _start(self, since: str | None) -> float:
        if since is None:
            return self.context.now - self.history
        return since_seconds(self.name, since, self.context.timezone) - self.lookback

    def _time_text(self, seconds: float) -> str:
        """W3C date-time in the deployment's zone, as GeoReport v2 writes them: 2026-11-26T10:30:00+08:00."""
        return datetime.fromtimestamp(int(seconds), ZoneInfo(self.context.timezone)).isoformat()

    def _masked(self, document: Any) -> tuple[Any, list, bytes | None]:
        """The answer with every request's personal fields masked (cityops.incident_masking.mask_personal), its
        requests (masked; none when the answer holds no list of them), and the masked answer's JSON text when
        masking made it (a list that needed no masking: its text was searched), for the archive."""
        if isinstance(document, list):
            requests, text = mask_rows_and_json(document, self.personal)
            return requests, requests, text
        if isinstance(document, dict) and isinstance(document.get("service_requests"), list):
            requests = mask_rows(document["service_requests"], self.personal)
            return {key: requests if key == "service_requests" else scrub(value)
                    for key, value in document.items()}, requests, None
        return scrub(document), [], None

    def _masked_text(self, body: bytes) -> bytes:
        """A body that is not JSON, with `"<personal field>": "<value>"` pairs, mobile numbers and e-mail addresses
        masked (nothing else can be recognised in it)."""
        return self._masked_words(body.decode("utf-8", errors="replace")).encode("utf-8")

    def _masked_words(self, text: str) -> str:
        names = "|".join(re.escape(name) for name in self.personal)
        pairs = re.compile(rf'("(?i:{names})"\s*:\s*")([^"]*)(")')
        text = pairs.sub(lambda found: found.group(1) + mask_value(found.group(1).strip('": '), found.group(2))
                         + found.group(3) if found.group(2).strip() else found.group(0), text)
        return mask_text(text)

    def _guarded(self, call):
        """`call()`, its errors' messages made safe to show and keep: the API key replaced by *** (servers may echo
        it) and personal data masked (a cut-off page's excerpt may quote a request)."""
        try:
            return call()
        except ConnectorError as error:
            message = self._masked_words(str(error))
            key = self.config.get("api_key")
            if key:
                message = message.replace(key, "***")
            if message == str(error):
                raise
            if isinstance(error, RetriableError):
                raise RetriableError(message, error.retry_after) from None
            raise type(error)(message) from None
        except requests.RequestException as error:  # the client maps these; anything else must not show the URL
            raise RetriableError(f"{self.name}: {type(error).__name__} talking to {shown_url(self.base)}; the next "
                                 f"run tries again") from None

    def _where(self, label: str) -> str:
        return f"{self.name}: {label} of {shown_url(self.base)}"


def _json_bytes(document: Any) -> bytes:
    """A masked page as UTF-8 JSON: orjson (pages are large), the standard library for what it refuses (integers
    beyond 64 bits)."""
    try:
        return orjson.dumps(document)
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(document, ensure_ascii=False).encode("utf-8")


def _text_of(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, default=str).encode()
