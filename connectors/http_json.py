"""The `http_json` connector type: rows from another system's JSON API over HTTP(S), page by page.

Each page's body is archived as it came, then parsed; `records_path` points at the list of rows in it and the
instance's `mapping:` says which field of a row is the unit code, the time, the indicator and the value. A row
missing a mapped field, or holding a value the catalog refuses (unknown unit, "NaN", a negative count...), is
quarantined with its reason; the other rows of the page are stored.

Pagination: `none` (one request), `page` (page=1, 2, ... with `size_param`=`page_size`), `offset`
(offset=0, page_size, ... with `size_param`) or `next_link` (the body names the next page's URL at
`next_link_path`). Paging stops at an empty page, a page shorter than `page_size` (page, offset: so `page_size`
must not exceed the largest page the source serves) or when there is no next link. With `since_param`, each
run asks only for rows since the stored cursor (as ISO-8601 in the deployment's zone; the request is
inclusive, re-delivered rows are counted as duplicates, never stored twice).

Errors (see connectors/http.py): timeouts, 429 and 5xx are retried, then fail the run as retriable; 401/403,
404 and other 4xx fail it as fatal with what to check; a 200 that is not JSON (a gateway's HTML page) is
retriable; a body over `max_bytes` is fatal, with how to page instead.

Example connectors.yaml entry (the token is read from the environment variable HOTLINE_API_TOKEN):

    - name: hotline-api
      type: http_json
      levels: [community]
      schedule: {interval: 10m}
      timeout: 5m                 # the whole run (the instance's timeout)
      config:
        url: https://hotline.example.gov.cn/api/v2/complaints/counts
        records_path: data.items
        params: {district: "990101"}
        since_param: updated_since
        pagination: page
        page_size: 500
        auth: bearer
        token_env: HOTLINE_API_TOKEN
        timeout: 30               # seconds for one request to connect or send its next bytes
      mapping: {unit_code: community_code, observed_at: reported_at, indicator: metric, value: count,
                indicator_names: {热线投诉: hotline_complaints}}
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Iterator
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

from connectors.base import ConfigField, Connector, ConnectorError, FatalError, Health, Record, RecordBatch, register
from connectors.http import (AUTH_FIELDS, REQUEST_FIELDS, HttpClient, check_request_config, client_for,
                             declared_charset, decode_json, excerpt, shown_url)
from connectors.mapping import MISSING, PageSources, lookup
from connectors.read_ahead import read_ahead

PAGINATIONS = ("none", "page", "offset", "next_link")
AUTHS = ("none", "bearer", "header")
CHECK_METHODS = ("GET", "HEAD")
# A size parameter's usual name for each style, when the config does not name it.
DEFAULT_SIZE_PARAM = {"page": "page_size", "offset": "limit"}


@register
class HttpJsonConnector(Connector):
    type_name = "http_json"
    uses_mapping = True
    # Most APIs do not promise to sort by time: the cursor moves only once the whole run is committed.
    ordered = False
    config_schema = (
        ConfigField("url", str, required=True, help="the API endpoint, e.g. https://api.example.gov.cn/v1/readings"),
        ConfigField("records_path", str, default="",
                    help="dotted path to the list of rows in the body (e.g. data.items); empty: the body is the list"),
        ConfigField("params", dict, default={}, help="fixed query parameters sent with every request"),
        ConfigField("since_param", str, default="",
                    help="query parameter that receives the stored cursor as an ISO-8601 time (incremental fetch)"),
        ConfigField("pagination", str, default="none", help="none, page, offset or next_link"),
        ConfigField("page_param", str, default="page", help="page number parameter (pagination: page)"),
        ConfigField("first_page", int, default=1, help="number of the first page (pagination: page)"),
        ConfigField("offset_param", str, default="offset", help="row offset parameter (pagination: offset)"),
        ConfigField("size_param", str, default="",
                    help="page size parameter; default page_size (page) or limit (offset); with next_link, sent "
                         "on the first request only when given"),
        ConfigField("page_size", int, default=500, help="rows per page; not more than the source serves at once"),
        ConfigField("next_link_path", str, default="next",
                    help="dotted path in the body to the next page's URL (pagination: next_link), e.g. links.next"),
        ConfigField("max_pages", int, default=10000, help="safety stop: a run fails rather than page forever"),
        *AUTH_FIELDS,
        *REQUEST_FIELDS,
        ConfigField("check_method", str, default="GET",
                    help="GET (read the first page and count its rows) or HEAD (only see that it answers)"),
    )

    def __init__(self, name: str, config: dict, context, mapping=None):
        # Instances built in code (tests, the CLI) may skip resolve_config: fill in the schema's defaults here.
        defaults = {spec.name: spec.default for spec in self.config_schema}
        super().__init__(name, {**defaults, **config}, context, mapping)
        self._check_config()
        self.client = self._client(self.config["attempts"])

    # -- configuration -------------------------------------------------------------------------------

    def _check_config(self) -> None:
        where = f"connector {self.name} (http_json)"
        if self.mapping is None:
            raise FatalError(f"{where}: needs 'mapping:' naming the unit code, time, indicator and value fields")
        try:
            self.validate_config(self.config)
        except ValueError as error:
            raise FatalError(f"{where}: {error}") from None

    @classmethod
    def validate_config(cls, config: dict) -> None:
        config = {**{spec.name: spec.default for spec in cls.config_schema}, **config}
        for field, allowed in (("pagination", PAGINATIONS), ("auth", AUTHS), ("check_method", CHECK_METHODS)):
            if config[field] not in allowed:
                raise ValueError(f"{field} must be one of {', '.join(allowed)}, not {config[field]!r}")
        if urlsplit(config["url"]).scheme not in ("http", "https") or not urlsplit(config["url"]).hostname:
            raise ValueError(f"url must be an http:// or https:// address, not {config['url']!r}")
        check_request_config(config, ("page_size", "max_pages", "attempts", "max_bytes"))
        if not isinstance(config["params"], dict):
            raise ValueError("params must map parameter names to values")

    def _client(self, attempts: int) -> HttpClient:
        return client_for(self.name, self.config, attempts)

    # -- the contract --------------------------------------------------------------------------------

    def check(self) -> Health:
        # One attempt, nothing archived: health says how the source is now, and changes nothing.
        client = self._client(attempts=1)
        url, params = self._first_request(since=None)
        try:
            if self.config["check_method"] == "HEAD":
                response = client.head(url, params)
                return Health(True, f"reachable (HEAD answered HTTP {response.status_code})")
            response = client.get(url, params)
            document = decode_json(response.content, self._where(1, url), response.headers.get("Content-Type"),
                                   declared_charset(response))
            rows = self._rows(document, self._where(1, url))
        except ConnectorError as error:
            return Health(False, f"{error.family}: {error}")
        return Health(True, f"reachable, {len(rows)} rows on the first page")

    def fetch(self, since: str | None) -> Iterator[Record]:
        # Pages are validated together, BATCH_ROWS rows at a time: a thousand-row page alone would pay the fixed
        # cost of a batch for little. (The runner commits every 200,000 rows anyway.) Pages keep coming while the
        # runner validates and commits (read_ahead), up to about one such batch ahead: bounded memory.
        pending: list = []
        sources = PageSources()
        ahead = max(2, BATCH_ROWS // self.config["page_size"])
        for source, rows in read_ahead(self._pages(since), depth=ahead, name=f"{self.name} pages"):
            pending.extend(rows)
            sources.add(source, len(rows))
            if len(pending) >= BATCH_ROWS:
                yield from self.mapping.batch(pending, sources)
                pending, sources = [], PageSources()
        if pending:
            yield from self.mapping.batch(pending, sources)

    def _pages(self, since: str | None) -> Iterator[tuple[str, list]]:
        """(archive reference or label, rows) of each page, archived before it is parsed."""
        url, params = self._first_request(since)
        origin = urlsplit(url)[:2]
        seen_links: set[str] = set()
        for number in range(1, self.config["max_pages"] + 2):
            if number > self.config["max_pages"]:
                raise FatalError(f"{self.name}: still more pages after max_pages ({self.config['max_pages']}) pages "
                                 f"of {shown_url(self.config['url'])}; raise max_pages or use since_param to "
                                 f"fetch less per run")
            response = self.client.get(url, params)
            charset = declared_charset(response)
            label = page_label(number, charset)
            reference = self.archived(label, response.content, "application/json")
            where = self._where(number, url)
            document = decode_json(response.content, where, response.headers.get("Content-Type"), charset)
            rows = self._rows(document, where)
            yield reference or label, rows
            following = self._next_request(url, params, document, rows, where)
            if following is None:
                return
            url, params = following
            if params is None:  # a next link: it must stay on the configured host and not loop
                if urlsplit(url)[:2] != origin:
                    raise FatalError(f"{where}: the next link points to another host ({shown_url(url)}); the "
                                     f"credentials are only sent to {shown_url(self.config['url'])}: check "
                                     f"next_link_path or ask the source's operators")
                if url in seen_links:
                    raise FatalError(f"{where}: the next link repeats a page already read ({shown_url(url)}); "
                                     f"check next_link_path")
                seen_links.add(url)

    def replay(self, label: str, payload: bytes) -> Iterator[Record]:
        where = f"{self.name}: archived {label}"
        try:
            document = decode_json(payload, where, charset=label_charset(label))
        except ConnectorError as error:
            raise FatalError(str(error)) from None  # an archived payload will never become valid
        yield from self._records(self._rows(document, where), label)

    # -- pages ---------------------------------------------------------------------------------------

    def _first_request(self, since: str | None) -> tuple[str, dict]:
        config = self.config
        params = {str(k): v for k, v in config["params"].items()}
        if config["since_param"] and since is not None:
            params[config["since_param"]] = self._since_text(since)
        size_param = config["size_param"] or DEFAULT_SIZE_PARAM.get(config["pagination"])
        if config["pagination"] == "page":
            params[config["page_param"]] = config["first_page"]
        elif config["pagination"] == "offset":
            params[config["offset_param"]] = 0
        if size_param and config["pagination"] != "none":
            params[size_param] = config["page_size"]
        return config["url"], params

    def _since_text(self, since: str) -> str:
        """The stored cursor (epoch seconds) as ISO-8601 in the deployment's zone; a time text passes as it is."""
        try:
            seconds = float(since)
        except ValueError:
            return since  # a backfill's `since` given as a time already
        return datetime.fromtimestamp(seconds, ZoneInfo(self.context.timezone)).isoformat()

    def _next_request(self, url: str, params: dict, document: Any, rows: list, where: str):
        """(url, params) of the next page, params None for a next link; None when this page was the last."""
        style, size = self.config["pagination"], self.config["page_size"]
        if style == "none" or not rows:
            return None
        if style in ("page", "offset"):
            if len(rows) < size:
                return None
            name = self.config["page_param"] if style == "page" else self.config["offset_param"]
            step = 1 if style == "page" else len(rows)
            return url, {**params, name: params[name] + step}
        link = lookup(document, self.config["next_link_path"])
        if link is MISSING or link is None or link == "":
            return None
        if not isinstance(link, str):
            raise FatalError(f"{where}: next_link_path {self.config['next_link_path']!r} holds {link!r}, not a URL; "
                             f"check next_link_path")
        return urljoin(url, link), None

    def _rows(self, document: Any, where: str) -> list:
        path = self.config["records_path"]
        rows = document if not path else lookup(document, path)
        if rows is None:
            return []  # some APIs say "no rows" with null
        if rows is MISSING:
            keys = ", ".join(map(str, document)) if isinstance(document, dict) else type(document).__name__
            raise FatalError(f"{where}: no {path!r} in the body (it has: {keys[:200]}); check records_path. "
                             f"The body begins: '{excerpt(_text_of(document))}'")
        if not isinstance(rows, list):
            if isinstance(rows, dict):
                hint = f"it is an object with {', '.join(map(str, rows))[:200]}: set records_path to the list of rows"
            else:
                hint = f"it is {type(rows).__name__} '{excerpt(_text_of(rows))}': check records_path"
            raise FatalError(f"{where}: {'records_path ' + repr(path) if path else 'the body'} is not a list of "
                             f"rows; {hint}")
        return rows

    def _records(self, rows: list, source: str) -> Iterator[Record | RecordBatch]:
        # A page at a time, as one batch: validating a thousand rows with array operations costs what a few
        # single records would.
        yield from self.mapping.batch(rows, source)

    def _where(self, number: int, url: str) -> str:
        return f"{self.name}: page {number} of {shown_url(url)}"


BATCH_ROWS = 20_000

_LABEL = re.compile(r"page-(\d+)(?:\.([A-Za-z0-9_-]+))?\.json")


def page_label(number: int, charset: str | None) -> str:
    """The archive label of a page; a page in another charset than UTF-8 (GBK...) says which, for replay."""
    plain = charset is None or charset.lower().replace("-", "") == "utf8"
    return f"page-{number}.json" if plain else f"page-{number}.{charset}.json"


def label_charset(label: str) -> str | None:
    found = _LABEL.fullmatch(label)
    return found.group(2) if found else None


def _text_of(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, default=str).encode()
