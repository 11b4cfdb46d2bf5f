"""A small HTTP client for connector types: it turns what can go wrong on the wire into the connector error families.

- no answer (connection refused or reset, timeout), HTTP 5xx, 408 and 429: retried with exponential backoff and
  a little jitter; 429 and 503 wait as long as `Retry-After` asks (seconds or an HTTP date). When the last
  attempt fails too, or the source asks for a longer wait than `max_wait`: `RetriableError` carrying that
  `retry_after` (the scheduler tries again at a later run).
- 401/403: `FatalError` telling the operator which credential to check; 404 and other 4xx: `FatalError` telling
  them to check the configured url and parameters. Retrying those would only hammer the source.
- a body larger than `max_bytes`: `FatalError` while it streams in (the rest is never read), telling how to page.

Bodies are read in full (bounded by `max_bytes`) and handed back as bytes, so a connector archives exactly what
the source sent before parsing it; `decode_json` then reads them, and says `RetriableError` for a gateway's HTML
page or a cut-off body. Messages name the source and the URL without its query string (which may hold tokens).
Credentials (`secret_headers`) go only to the host asked: redirects are followed here, not by requests, which
would carry an API-key header to wherever a redirect points.
"""

from __future__ import annotations

import json
import random
import re
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable
from urllib.parse import urljoin, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import orjson
import requests
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict

from connectors.base import ConfigField, FatalError, RetriableError

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
# Bodies are read in pieces this large: each piece is a call into the socket that gives up the interpreter lock and
# waits to take it back from the runner's thread (a page of 1,000 service requests: ~25 calls in 64 KB pieces,
# ~3 in 1 MB ones).
CHUNK = 1 << 20
MAX_REDIRECTS = 5
EXCERPT_CHARS = 200
USER_AGENT = "OneScreen-connector/1"


def shown_url(url: str) -> str:
    """The URL as it may appear in a message or a log: no credentials, no query string (tokens live there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", "")) + ("?…" if parts.query else "")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta seconds or an HTTP date); None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)  # HTTP dates are GMT
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def excerpt(body: bytes, html: bool = False, limit: int = EXCERPT_CHARS) -> str:
    """A short, one-line excerpt of a body for an error message; for HTML, its visible text."""
    text = body[: limit * 20].decode("utf-8", errors="replace")
    if html:
        text = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", text)
        text = re.sub(r"(?s)<[^>]*>", " ", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def looks_like_html(body: bytes, content_type: str | None) -> bool:
    head = body[:512].lstrip().lower()
    return "html" in (content_type or "").lower() or head.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def decode_json(body: bytes, where: str, content_type: str | None = None, charset: str | None = None) -> Any:
    """The parsed JSON of a body that was (ideally) archived already; RetriableError when it is not JSON.

    A 200 that is not JSON is nearly always transient: a gateway's error page, a proxy's login page, or a body
    cut off mid-way. Non-finite literals (NaN, Infinity) are accepted here: the validator quarantines them.
    """
    if not body.strip():
        raise RetriableError(f"{where}: the body is empty where JSON was expected; trying again at the next run")
    if looks_like_html(body, content_type):
        raise RetriableError(f"{where}: the source answered with an HTML page instead of JSON (often a gateway or "
                             f"proxy error page); trying again at the next run. The page says: "
                             f"'{excerpt(body, html=True)}'")
    try:
        text = body.decode(charset) if charset and charset.lower().replace("-", "") != "utf8" else body
        return parse_json(text)
    except (ValueError, LookupError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RetriableError(f"{where}: the body is not valid JSON ({error}); trying again at the next run. "
                             f"It begins: '{excerpt(body)}'") from None


def parse_json(text: bytes | str) -> Any:
    """JSON text as Python values: orjson (several times faster on a page of rows), and the standard library for
    what orjson refuses but a source may send and the validator should judge: NaN and Infinity literals,
    integers beyond 64 bits."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


class _Retry(Exception):
    """One attempt failed in a way that another attempt may fix."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class HttpClient:
    """GET (and HEAD) with retries and error families, for one source.

    `sleep` is injectable so tests can count waits; they usually just pass a tiny `backoff`.
    """

    def __init__(self, source_name: str, timeout: float, headers: dict[str, str] | None = None, attempts: int = 4,
                 backoff: float = 1.0, max_wait: float = 60.0, session: requests.Session | None = None, *,
                 secret_headers: dict[str, str] | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
                 auth_hint: str | None = None, sleep: Callable[[float], None] = time.sleep):
        self.source_name = source_name
        self.timeout = timeout
        self.headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        # Credentials: sent only to the host asked, never after a redirect elsewhere or from https to http.
        self.secret_headers = dict(secret_headers or {})
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_wait = max_wait
        self.session = session or requests.Session()
        # requests reads the environment (proxies, CA bundle, netrc) on every request: about half the client's
        # time on a local network. It is read once per host here, with the same rules (NO_PROXY included), and
        # requests is told not to read it again (a session given by the caller is left as it is).
        self._environment: dict[tuple[str, str], dict] | None = {} if session is None else None
        if session is None:
            self._environment_reader = requests.Session()
            self.session.trust_env = False
        self.max_bytes = max_bytes
        # What to tell the operator on 401/403, e.g. "check token_env: …"; the client does not know the config.
        self.auth_hint = auth_hint or "check the credentials configured for this source"
        self.sleep = sleep

    def get(self, url: str, params: dict | None = None) -> requests.Response:
        """A successful response whose `.content` has been read (at most `max_bytes`)."""
        return self.request("GET", url, params)

    def head(self, url: str, params: dict | None = None) -> requests.Response:
        return self.request("HEAD", url, params)

    def get_json(self, url: str, params: dict | None = None) -> Any:
        """GET and parse, for callers with nothing to archive (a health check)."""
        response = self.get(url, params)
        return decode_json(response.content, f"{self.source_name}: {shown_url(response.url)}",
                           response.headers.get("Content-Type"), declared_charset(response))

    def request(self, method: str, url: str, params: dict | None = None) -> requests.Response:
        where = f"{self.source_name}: {method} {shown_url(url)}{'?…' if params and '?' not in url else ''}"
        failure = _Retry("no attempt was made")
        attempt = 0
        for attempt in range(1, self.attempts + 1):
            try:
                return self._attempt(method, url, params, where)
            except _Retry as retry:
                failure = retry
            if failure.retry_after is not None and failure.retry_after > self.max_wait:
                # Waiting less than the source asked would only be refused again: let the scheduler wait.
                raise RetriableError(
                    f"{where}: {failure.reason}; the source asks to wait "
                    f"{failure.retry_after:.0f} s (more than max_wait {self.max_wait:g} s), so this run stops "
                    f"after {attempt} attempt(s) and the next run tries again", retry_after=failure.retry_after)
            if attempt < self.attempts:
                self.sleep(self._delay(attempt, failure.retry_after))
        raise RetriableError(f"{where} failed after {attempt} attempt(s): "
                             f"{failure.reason}; the next run tries again", retry_after=failure.retry_after)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_wait)
        # Jitter keeps many connectors that failed together from retrying in lockstep.
        return min(self.backoff * 2 ** (attempt - 1) * (1 + random.uniform(0, 0.1)), self.max_wait)

    def _attempt(self, method: str, url: str, params: dict | None, where: str) -> requests.Response:
        try:
            response = self._send(method, url, params, where)
        except requests.exceptions.SSLError:
            raise FatalError(f"{where}: the TLS handshake failed (certificate not trusted or expired?); check the "
                             f"url, or install the source's CA certificate on this machine") from None
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema, requests.exceptions.InvalidHeader) as error:
            raise FatalError(f"{where}: cannot send the request ({type(error).__name__}); check the configured "
                             f"url (it must start with http:// or https://)") from None
        except requests.Timeout:
            raise _Retry(f"no answer within {self.timeout:g} s (timeout)") from None
        except requests.ConnectionError as error:
            raise _Retry(f"could not connect ({_connection_reason(error)})") from None
        try:
            self._raise_for_status(response, where)
            response._content = b"" if method == "HEAD" else self._read_body(response, where)
            # requests' own flag for "content read": .content, .text and .json() then use the bytes above.
            response._content_consumed = True
            return response
        finally:
            response.close()

    def _send(self, method: str, url: str, params: dict | None, where: str) -> requests.Response:
        """The response after following redirects. requests would strip only `Authorization` on a redirect to
        another host, not an API-key header, so redirects are followed here."""
        asked = urlsplit(url)
        for _ in range(MAX_REDIRECTS + 1):
            target = urlsplit(url)
            trusted = target.hostname == asked.hostname and not (asked.scheme == "https" and target.scheme == "http")
            response = self._request(method, url, params, trusted, target)
            if not response.is_redirect:
                return response
            url, params = urljoin(response.url, response.headers["Location"]), None
            response.close()
        raise FatalError(f"{where}: more than {MAX_REDIRECTS} redirects; check the configured url")

    def _request(self, method: str, url: str, params: dict | None, trusted: bool, target) -> requests.Response:
        """One request on the session, its credentials sent only when `trusted`."""
        headers = {**self.headers, **(self.secret_headers if trusted else {})}
        if self._environment is None:  # the caller's session, used as it is configured
            return self.session.request(method, url, params=params, timeout=self.timeout, stream=True,
                                        allow_redirects=False, headers=headers)
        # Our own session, sent what `Session.request` would send — its headers, the cookies the source set — by
        # its adapter directly: the request object it builds and merges its settings into on every call is about a
        # quarter of the client's time on a local network, where pages come one after another.
        merged = CaseInsensitiveDict(self.session.headers)
        merged.update(headers)
        prepared = requests.PreparedRequest()
        prepared.prepare(method=method, url=url, params=params, headers=merged, cookies=self.session.cookies)
        response = self.session.get_adapter(prepared.url).send(prepared, stream=True, timeout=self.timeout,
                                                               **self._environment_for(target))
        extract_cookies_to_jar(self.session.cookies, prepared, response.raw)
        return response

    def _environment_for(self, target) -> dict:
        """proxies, verify and cert for a host, as requests would take them from the environment."""
        if self._environment is None:
            return {}
        key = (target.scheme, target.netloc)
        if key not in self._environment:
            settings = self._environment_reader.merge_environment_settings(
                f"{target.scheme}://{target.netloc}/", {}, None, None, None)
            self._environment[key] = {name: settings[name] for name in ("proxies", "verify", "cert")}
        return self._environment[key]

    def _raise_for_status(self, response: requests.Response, where: str) -> None:
        status = response.status_code
        label = f"HTTP {status} {response.reason or ''}".strip()
        if 200 <= status < 300:
            return
        if status == 429 or status == 408 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After")) if status in (429, 503) else None
            raise _Retry(label, retry_after)
        detail = self._error_excerpt(response)
        if status in (401, 403):
            raise FatalError(f"{where}: authentication refused ({label}): {self.auth_hint}{detail}")
        if status == 404:
            raise FatalError(f"{where}: not found ({label}); check the configured url/path{detail}")
        if 400 <= status < 500:
            raise FatalError(f"{where}: the source rejected the request ({label}); check the configured url "
                             f"and params{detail}")
        raise FatalError(f"{where}: unexpected answer {label}; check the configured url{detail}")

    def _error_excerpt(self, response: requests.Response) -> str:
        """What the source says about a refused request (sources often name the bad parameter)."""
        try:
            head = next(response.iter_content(2048), b"")
        except requests.RequestException:
            return ""
        text = excerpt(head, html=looks_like_html(head, response.headers.get("Content-Type")))
        return f". The source says: '{text}'" if text else ""

    def _read_body(self, response: requests.Response, where: str) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise self._too_large(where, f"announces {int(declared):,} bytes")
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(CHUNK):
                size += len(chunk)
                if size > self.max_bytes:
                    raise self._too_large(where, f"went past {self.max_bytes:,} bytes and was not read further")
                chunks.append(chunk)
        except requests.Timeout:
            raise _Retry(f"the body stopped arriving for {self.timeout:g} s (timeout)") from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as error:
            raise _Retry(f"the connection broke while the body was read ({type(error).__name__})") from None
        return b"".join(chunks)

    def _too_large(self, where: str, what: str) -> FatalError:
        return FatalError(f"{where}: the response {what}, over the limit of {self.max_bytes:,} bytes "
                          f"(max_bytes). Page the source instead (pagination: page, offset or next_link with a "
                          f"smaller page_size, or a since_param for incremental fetches); raise max_bytes only if "
                          f"the source cannot page")


def declared_charset(response: requests.Response) -> str | None:
    """The charset the Content-Type names, if any (some city systems still send GBK)."""
    match = re.search(r"charset=\"?([\w.:-]+)", response.headers.get("Content-Type", ""), re.IGNORECASE)
    return match.group(1) if match else None


def _connection_reason(error: requests.ConnectionError) -> str:
    """The cause of a connection failure in a few words; requests' own text repeats the URL with its query."""
    text = str(error)
    found = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    if found:
        return found.group(0).strip()
    for marker, reason in (("RemoteDisconnected", "the server closed the connection without answering"),
                           ("Connection reset", "connection reset by the server"),
                           ("Connection refused", "connection refused"),
                           ("Connection aborted", "connection aborted")):
        if marker in text:
            return reason
    return type(error).__name__


# The settings every HTTP connector type offers, read by `client_for`.
AUTH_FIELDS = (
    ConfigField("auth", str, default="none", help="none, bearer or header"),
    ConfigField("token", str, secret=True, help="the API token; give its environment variable as token_env"),
    ConfigField("header_name", str, default="",
                help="header carrying the token: default Authorization (bearer) or X-API-Key (header)"),
)
REQUEST_FIELDS = (
    ConfigField("timeout", float, default=30.0, help="seconds to wait for the source to connect or send data"),
    ConfigField("attempts", int, default=4, help="tries per request for timeouts, 429 and 5xx"),
    ConfigField("backoff", float, default=1.0, help="seconds before the first retry, doubling after each"),
    ConfigField("max_wait", float, default=60.0, help="longest wait between two tries (also for Retry-After)"),
    ConfigField("max_bytes", int, default=DEFAULT_MAX_BYTES, help="largest page body read, in bytes"),
)


def check_request_config(config: dict, counts: tuple[str, ...]) -> None:
    """What every HTTP type's config needs (defaults applied): a token when `auth` asks for one, and `counts`
    (page sizes, attempts, byte limits) of at least 1. A ValueError says what to write instead."""
    if config["auth"] != "none" and not config.get("token"):
        raise ValueError(f"auth {config['auth']} needs a token: set token_env to the name of an environment "
                         f"variable holding it")
    for field in counts:
        if config[field] < 1:
            raise ValueError(f"{field} must be at least 1, not {config[field]}")

def client_for(name: str, config: dict, attempts: int, noun: str = "source") -> HttpClient:
    """The HttpClient a connector's config asks for: timeout, retries, size limit, and `auth` none / bearer /
    header with the secret `token` (in `header_name`, by default Authorization for bearer, X-API-Key for header)."""
    header = config.get("header_name") or ("Authorization" if config["auth"] == "bearer" else "X-API-Key")
    secrets = {}
    if config["auth"] == "bearer":
        secrets[header] = f"Bearer {config['token']}"
        hint = f"check token_env: it must name an environment variable holding a token the {noun} accepts " \
               f"(sent as {header}: Bearer …)"
    elif config["auth"] == "header":
        secrets[header] = config["token"]
        hint = f"check token_env: it must name an environment variable holding a key the {noun} accepts " \
               f"(sent in the {header} header)"
    else:
        hint = f"the {noun} wants credentials: set auth (bearer or header) and token_env"
    return HttpClient(name, config["timeout"], attempts=attempts, backoff=config["backoff"],
                      max_wait=config["max_wait"], secret_headers=secrets, max_bytes=config["max_bytes"],
                      auth_hint=hint)


def since_seconds(name: str, since: str, zone: str) -> float:
    """A cursor as epoch seconds: the runner's own (seconds as text) or a backfill's ISO 8601 time (zone-less
    times are in the deployment's zone)."""
    try:
        return float(since)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
    except ValueError:
        raise FatalError(f"{name}: since {since!r} is neither epoch seconds nor an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return moment.timestamp()
