"""The `sensorthings` connector type: Observations from an OGC SensorThings API (v1.0/v1.1, e.g. FROST-Server).

SensorThings has a standard shape, so there is no `mapping:`; the config says instead how a Datastream maps to a
unit and an indicator. Each run:

1. lists the Datastreams (`$expand=Thing,ObservedProperty`, narrowed by `datastream_filter`), following
   `@iot.nextLink`, and resolves each to a unit code (`unit_code_from`) and a catalog indicator
   (`indicator_from`, translated by `indicator_names`). A datastream that cannot be resolved — property missing,
   observed property not in `indicator_names`, unknown unit, unit at the wrong level for the indicator, or a
   second datastream for a unit and indicator already taken — becomes one quarantined record naming the
   datastream and why; its observations are not fetched, the others are.
2. asks each resolved datastream for `Datastreams(<id>)/Observations?$filter=phenomenonTime ge <time>&$orderby=
   phenomenonTime asc&$top=<page_size>`, following `@iot.nextLink`. `result` is the value (a non-numeric result
   is quarantined by the validator); an interval phenomenonTime ("start/end") is stored at its end. Pages are
   handed to the runner as columnar batches (connectors/sensorthings_observations.py); a rejected observation is
   still quarantined alone, with the observation as sent and its place in the archived page.

The cursor is the newest stored observation time over all datastreams, saved when the whole run is committed.
Because one cursor serves every datastream, a sensor that delivers late (offline for a while, then uploading its
buffer), or an interval that began before the cursor (servers commonly compare an interval's start), would fall
behind it: each run therefore asks from the cursor minus `lookback` (default 1h). Re-delivered observations are
counted as duplicates, never stored twice. Set `lookback` to the longest delay or interval a sensor may have.
Without a cursor (the first run), `history` limits how far back to read (default: everything the server has).
A datastream added or fixed later starts at the cursor: `onescreen backfill <name> --days N` reads its past.

Archive and replay: every Datastreams page is archived as it came (`datastreams-<n>.json`). Every Observations
page is archived inside a small envelope, `{"datastream": <the datastream entity as listed>, "observations":
<the page, byte for byte>}` (`observations-<id>-<n>.json`): an Observations page alone does not say which
datastream it belongs to, and keeping the listed entity rather than its resolution means a replay resolves it
again with the config of the replay — so after correcting `indicator_names`, replaying a run stores the values
under the corrected indicator. Replaying a Datastreams page yields its unresolvable datastreams again.

Errors (see connectors/http.py): timeouts, 429 and 5xx are retried, then fail the run as retriable; 401/403 fail
it as fatal naming token_env; 400 (a `datastream_filter` the server cannot parse) and 404 (a wrong url) fail it
as fatal with what the server said. A next link to another host fails fatally: that is nearly always the
server's own `serviceRootUrl` setting pointing at an internal address.

Example connectors.yaml entry (the token is read from the environment variable IOT_PLATFORM_TOKEN):

    - name: iot-air
      type: sensorthings
      levels: [street]
      schedule: {interval: 10m}
      timeout: 10m
      config:
        url: https://iot.example.gov.cn/FROST-Server/v1.1
        datastream_filter: "properties/onescreen_indicator ne null"
        unit_code_from: thing_property:street_code
        indicator_from: datastream_property:onescreen_indicator
        page_size: 1000
        lookback: 1h              # re-read this much before the cursor: late sensors and intervals
        history: 30d              # the first run reads the last 30 days only
        auth: bearer
        token_env: IOT_PLATFORM_TOKEN

or, naming indicators by the observed property instead:

        indicator_from: observed_property_name
        indicator_names: {"PM2.5": pm25, "Air Quality Index": aqi, "Noise level": noise}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterator
from urllib.parse import quote, urljoin, urlsplit

from cityops.hierarchy import Level
from connectors.base import (ConfigField, Connector, ConnectorError, FatalError, Health, Record, RecordBatch,
                             register)
from connectors.config import duration_seconds
from connectors.http import (AUTH_FIELDS, REQUEST_FIELDS, HttpClient, check_request_config, client_for, decode_json,
                             excerpt, shown_url, since_seconds)
from connectors.read_ahead import read_ahead
from connectors.sensorthings_odata import entity_key, odata_time, safe_id
from connectors.sensorthings_observations import ObservationBatches, Stream

AUTHS = ("none", "bearer", "header")
# "<kind>:<name>" for kinds that read a named property, a bare kind otherwise.
UNIT_SOURCES = {"thing_property": True, "datastream_property": True, "thing_name": False}
INDICATOR_SOURCES = {"datastream_property": True, "observed_property_name": False,
                     "observed_property_definition": False}
# Left readable in URLs (logs, the archive); everything else in a query value is percent-encoded, spaces as %20
# rather than "+", which some OData servers read literally.
QUERY_SAFE = "',()/:"
EXPAND = "Thing,ObservedProperty"
READ_AHEAD_PAGES = 2


class Unresolved(Exception):
    """A datastream that cannot be mapped to a unit and an indicator; the message says why and what to change."""


@dataclass(frozen=True)
class Rule:
    """A parsed `unit_code_from` / `indicator_from`: what to read, and the property name when it is one."""

    kind: str
    name: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}" if self.name else self.kind


def parse_rule(text: Any, kinds: dict[str, bool], field: str) -> Rule:
    forms = ", ".join(f"{kind}:<name>" if named else kind for kind, named in kinds.items())
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{field} is required: one of {forms}")
    kind, _, name = text.strip().partition(":")
    if kind not in kinds or kinds[kind] != bool(name.strip()):
        raise ValueError(f"{field} must be one of {forms}, not {text!r}")
    return Rule(kind, name.strip())


@register
class SensorThingsConnector(Connector):
    type_name = "sensorthings"
    uses_mapping = False
    # Datastreams are read one after another, each in time order: the run as a whole is not, so the cursor moves
    # only once everything is committed, and an hour's roll-ups wait for the last datastream.
    ordered = False
    delivers_series = True
    config_schema = (
        ConfigField("url", str, required=True,
                    help="the service root, e.g. https://iot.example.gov.cn/FROST-Server/v1.1"),
        ConfigField("unit_code_from", str, required=True,
                    help="where a datastream's unit code is: thing_property:<name>, datastream_property:<name> "
                         "or thing_name"),
        ConfigField("indicator_from", str, required=True,
                    help="where its indicator is: datastream_property:<name>, observed_property_name or "
                         "observed_property_definition (translated by indicator_names)"),
        ConfigField("indicator_names", dict, default={},
                    help="source names (observed property names or definitions) → catalog keys"),
        ConfigField("datastream_filter", str, default="",
                    help="OData $filter choosing the datastreams, e.g. properties/onescreen_indicator ne null"),
        ConfigField("page_size", int, default=1000, help="$top: entities per page (the server may serve fewer)"),
        ConfigField("lookback", str, default="1h",
                    help="each run asks from the cursor minus this (late sensors, intervals); 0 for none"),
        ConfigField("history", str, default="",
                    help="how far back the first run (no cursor yet) reads, e.g. 30d; empty: everything"),
        ConfigField("max_pages", int, default=10000,
                    help="safety stop per listing: a run fails rather than page forever"),
        *AUTH_FIELDS,
        *REQUEST_FIELDS,
    )

    def __init__(self, name: str, config: dict, context, mapping=None):
        # Instances built in code (tests, the CLI) may skip resolve_config: fill in the schema's defaults here.
        defaults = {spec.name: spec.default for spec in self.config_schema}
        super().__init__(name, {**defaults, **config}, context, mapping)
        where = f"connector {self.name} (sensorthings)"
        try:
            self.validate_config(self.config)
        except ValueError as error:
            raise FatalError(f"{where}: {error}") from None
        self.root = self.config["url"].rstrip("/")
        self.unit_rule = parse_rule(self.config["unit_code_from"], UNIT_SOURCES, "unit_code_from")
        self.indicator_rule = parse_rule(self.config["indicator_from"], INDICATOR_SOURCES, "indicator_from")
        self.names = {str(k): v for k, v in self.config["indicator_names"].items()}
        self.reported = {i.key: i for i in context.catalog if not i.is_derived}
        unknown = sorted(set(self.names.values()) - set(context.catalog.keys))
        if unknown:
            raise FatalError(f"{where}: indicator_names maps to unknown indicator(s) {', '.join(unknown)}; "
                             f"the catalog has {', '.join(sorted(context.catalog.keys))}")
        self.lookback = duration_seconds(self.config["lookback"], "lookback", allow_zero=True)
        self.history = duration_seconds(self.config["history"], "history", allow_zero=True)
        self.client = self._client(self.config["attempts"])

    @classmethod
    def validate_config(cls, config: dict) -> None:
        config = {**{spec.name: spec.default for spec in cls.config_schema}, **config}
        url = urlsplit(str(config.get("url") or ""))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"url must be the service root as an http:// or https:// address (e.g. "
                             f"https://host/FROST-Server/v1.1), not {config.get('url')!r}")
        if url.query:
            raise ValueError("url must be the service root without a query; choose datastreams with "
                             "datastream_filter")
        parse_rule(config.get("unit_code_from"), UNIT_SOURCES, "unit_code_from")
        parse_rule(config.get("indicator_from"), INDICATOR_SOURCES, "indicator_from")
        names = config["indicator_names"]
        if not isinstance(names, dict) or not all(isinstance(v, str) for v in names.values()):
            raise ValueError("indicator_names must map source names to catalog keys, e.g. {\"PM2.5\": pm25}")
        if config["auth"] not in AUTHS:
            raise ValueError(f"auth must be one of {', '.join(AUTHS)}, not {config['auth']!r}")
        check_request_config(config, ("page_size", "max_pages", "attempts", "max_bytes"))
        for field in ("lookback", "history"):
            duration_seconds(config[field], field, allow_zero=True)

    def _client(self, attempts: int) -> HttpClient:
        return client_for(self.name, self.config, attempts, noun="server")

    # -- the contract --------------------------------------------------------------------------------

    def check(self) -> Health:
        # One attempt per request, nothing archived: health says how the server is now, and changes nothing.
        client = self._client(attempts=1)
        try:
            root = client.get_json(self.root)
            sets = [entry.get("name") for entry in root.get("value", []) if isinstance(entry, dict)] \
                if isinstance(root, dict) and isinstance(root.get("value"), list) else []
            if "Datastreams" not in sets:
                return Health(False, f"{shown_url(self.root)} is not a SensorThings service root (its answer lists "
                                     f"no Datastreams entity set); set url to the root, e.g. "
                                     f"https://host/FROST-Server/v1.1")
            counted = client.get_json(self._url("Datastreams", {"$count": "true", "$top": 0,
                                                                "$filter": self.config["datastream_filter"]}))
        except ConnectorError as error:
            return Health(False, f"{error.family}: {error}")
        count = counted.get("@iot.count") if isinstance(counted, dict) else None
        chosen = " matching datastream_filter" if self.config["datastream_filter"] else ""
        if not isinstance(count, int) or isinstance(count, bool):
            return Health(True, "Datastreams readable (the server does not count them)")
        if count == 0:
            return Health(False, f"no datastreams{chosen or ' on the server'}; "
                                 f"{'check datastream_filter' if chosen else 'check url'}")
        return Health(True, f"{count} datastreams{chosen}")

    def fetch(self, since: str | None) -> Iterator[Record | RecordBatch]:
        start = self._start(since)
        streams: list[Stream] = []
        claimed: dict[tuple[str, str], Stream] = {}
        listed: set[str] = set()
        first = self._url("Datastreams", {"$expand": EXPAND, "$filter": self.config["datastream_filter"],
                                          "$top": self.config["page_size"]})
        for source, entities in self._pages(first, "Datastreams", lambda n: f"datastreams-{n}.json"):
            for position, entity in enumerate(entities):
                ident = entity.get("@iot.id") if isinstance(entity, dict) else None
                if ident is not None:
                    if json.dumps(ident) in listed:
                        continue  # listed again by a page that shifted while the server was paging
                    listed.add(json.dumps(ident))
                try:
                    streams.append(self._resolve(entity, claimed))
                except Unresolved as reason:
                    yield self._unresolved(entity, reason, f"{source}#{position}")
        # The next pages are requested, archived and parsed while the runner validates and stores these. Two
        # pages ahead: a batch's worth (20) was measured a few percent faster at 1 M observations, within noise,
        # and ~7 MB higher at the peak.
        batches = ObservationBatches()
        for stream, source, observations in read_ahead(self._every_observation_page(streams, start),
                                                       depth=READ_AHEAD_PAGES, name=f"{self.name} pages"):
            yield from batches.add(stream, observations, source)
        yield from batches.flush()

    def replay(self, label: str, payload: bytes) -> Iterator[Record | RecordBatch]:
        where = f"{self.name}: archived {label}"
        try:
            document = decode_json(payload, where)
        except ConnectorError as error:
            raise FatalError(str(error)) from None  # an archived payload will never become valid
        if isinstance(document, dict) and {"datastream", "observations"} <= set(document):
            try:
                stream = self._resolve(document["datastream"], {})
            except Unresolved as reason:
                yield self._unresolved(document["datastream"], reason, label)
                return
            batches = ObservationBatches()
            yield from batches.add(stream, self._entities(document["observations"], where), label)
            yield from batches.flush()
            return
        claimed: dict[tuple[str, str], Stream] = {}
        for position, entity in enumerate(self._entities(document, where)):
            try:
                self._resolve(entity, claimed)
            except Unresolved as reason:
                yield self._unresolved(entity, reason, f"{label}#{position}")

    # -- datastreams ---------------------------------------------------------------------------------

    def _resolve(self, entity: Any, claimed: dict[tuple[str, str], Stream]) -> Stream:
        """The unit and indicator of a listed datastream; Unresolved saying why not. `claimed` holds the
        streams resolved so far: a second datastream for the same unit and indicator would overwrite the
        first's values at equal times and interleave with them at others."""
        if not isinstance(entity, dict) or entity.get("@iot.id") is None:
            raise Unresolved("the listed entity has no @iot.id; is url the service root?")
        unit_code = self._unit_code(entity)
        key = self._indicator(entity)
        unit_id = self.context.tree.id_by_code.get(unit_code)
        if unit_id is None:
            raise Unresolved(f"unit code {unit_code!r} (from {self.unit_rule}) is not a unit of this city; correct "
                             f"it at the source or import the unit")
        level, indicator = Level(int(self.context.tree.frame.at[unit_id, "level"])), self.reported[key]
        if level != indicator.level:
            raise Unresolved(f"{key} is reported per {indicator.level.name.lower()}, but {unit_code} (from "
                             f"{self.unit_rule}) is a {level.name.lower()}")
        stream = Stream(entity["@iot.id"], str(entity.get("name", "")), unit_code, key, entity)
        earlier = claimed.setdefault((unit_code, key), stream)
        if earlier is not stream:
            raise Unresolved(f"it resolves to {unit_code} / {key} like datastream {earlier.ident} "
                             f"'{earlier.name}', whose values it would overwrite; keep one datastream per unit and "
                             f"indicator")
        return stream

    def _unit_code(self, entity: dict) -> str:
        rule = self.unit_rule
        if rule.kind == "datastream_property":
            return _property(entity, rule.name, "the datastream")
        thing = entity.get("Thing")
        if not isinstance(thing, dict):
            raise Unresolved("it was listed without its Thing (the server ignored $expand=Thing)")
        if rule.kind == "thing_property":
            return _property(thing, rule.name, "its Thing")
        return _text(thing.get("name"), "its Thing's name")

    def _indicator(self, entity: dict) -> str:
        rule = self.indicator_rule
        if rule.kind == "datastream_property":
            name = _property(entity, rule.name, "the datastream")
            what = f"the datastream's property {rule.name!r}"
        else:
            observed = entity.get("ObservedProperty")
            if not isinstance(observed, dict):
                raise Unresolved("it was listed without its ObservedProperty (the server ignored "
                                 "$expand=ObservedProperty)")
            field = "name" if rule.kind == "observed_property_name" else "definition"
            name = _text(observed.get(field), f"its ObservedProperty's {field}")
            what = f"observed property {field} {name!r}"
        key = self.names.get(name, name)
        if key in self.reported:
            return key
        if key in self.context.catalog.keys:
            raise Unresolved(f"{what} names {key}, a derived indicator (a ratio) that cannot be reported")
        if name in self.names:
            raise Unresolved(f"indicator_names maps {name!r} to {key!r}, which is not in the catalog")
        raise Unresolved(f"{what} is not a catalog indicator and not in indicator_names; add it to "
                         f"indicator_names (e.g. {{{json.dumps(name, ensure_ascii=False)}: <catalog key>}})")

    def _unresolved(self, entity: Any, reason: Unresolved, source: str) -> Record:
        if isinstance(entity, dict):
            label = f"datastream {entity.get('@iot.id')} '{entity.get('name', '')}'"
        else:
            label = f"datastream entry {excerpt(json.dumps(entity, default=str).encode(), limit=60)!r}"
        problem = (f"{label}: {reason}. Its observations are not read until this is fixed (then `onescreen "
                   f"backfill {self.name}` reads what was missed), or leave it out with datastream_filter")
        return Record(None, None, None, None, raw={"datastream": entity}, problem=problem, source=source)

    # -- observations --------------------------------------------------------------------------------

    def _start(self, since: str | None) -> float | None:
        """Epoch seconds to ask observations from; None for everything the server has."""
        if since is None:
            return self.context.now - self.history if self.history else None
        return since_seconds(self.name, since, self.context.timezone) - self.lookback

    def _every_observation_page(self, streams: list[Stream],
                                start: float | None) -> Iterator[tuple[Stream, str, list]]:
        for stream in streams:
            for source, observations in self._observation_pages(stream, start):
                yield stream, source, observations

    def _observation_pages(self, stream: Stream, start: float | None) -> Iterator[tuple[str, list]]:
        """(archive reference or label, observations) of each Observations page of a datastream."""
        params = {"$filter": f"phenomenonTime ge {odata_time(start)}" if start is not None else "",
                  "$orderby": "phenomenonTime asc", "$top": self.config["page_size"]}
        url = self._url(f"Datastreams({entity_key(stream.ident)})/Observations", params)
        label = safe_id(stream.ident)
        envelope_head = b'{"datastream": ' + json.dumps(stream.entity, ensure_ascii=False).encode() + \
            b',\n "observations": '
        yield from self._pages(url, f"Observations of datastream {stream.ident}",
                               lambda n: f"observations-{label}-{n}.json", lambda body: envelope_head + body + b"}")

    # -- pages ---------------------------------------------------------------------------------------

    def _pages(self, url: str, what: str, label_of: Callable[[int], str],
               archive_as: Callable[[bytes], bytes] = lambda body: body) -> Iterator[tuple[str, list]]:
        """(archive reference or label, entities) of each page of a collection, following `@iot.nextLink`; each
        page is archived before it is parsed."""
        origin, seen = urlsplit(self.root)[:2], {url}
        for number in range(1, self.config["max_pages"] + 2):
            if number > self.config["max_pages"]:
                raise FatalError(f"{self.name}: {what}: still more pages after max_pages "
                                 f"({self.config['max_pages']}); raise max_pages or page_size, or narrow the run "
                                 f"(datastream_filter, history)")
            response = self.client.get(url)
            label = label_of(number)
            # The envelope copies the body: only worth it when there is an archive to keep it in.
            payload = archive_as(response.content) if self.context.archive is not None else response.content
            reference = self.archived(label, payload, "application/json")
            where = f"{self.name}: {what}, page {number} ({shown_url(url)})"
            document = decode_json(response.content, where, response.headers.get("Content-Type"))
            yield reference or label, self._entities(document, where)
            link = document.get("@iot.nextLink")
            if link in (None, ""):
                return
            if not isinstance(link, str):
                raise FatalError(f"{where}: @iot.nextLink is {link!r}, not a URL; the server is not following "
                                 f"SensorThings: ask its operators")
            url = urljoin(url, link)
            if urlsplit(url)[:2] != origin:
                raise FatalError(f"{where}: @iot.nextLink points to another host ({shown_url(url)}), where the "
                                 f"credentials are not sent; the server's own root URL setting (FROST: "
                                 f"serviceRootUrl) is probably an internal address: ask its operators to set it "
                                 f"to {shown_url(self.root)}")
            if url in seen:
                raise FatalError(f"{where}: @iot.nextLink repeats a page already read ({shown_url(url)}); the "
                                 f"server pages in a loop: ask its operators")
            seen.add(url)

    def _entities(self, document: Any, where: str) -> list:
        entities = document.get("value", MISSING_VALUE) if isinstance(document, dict) else MISSING_VALUE
        if entities is None:
            return []
        if not isinstance(entities, list):
            keys = ", ".join(map(str, document))[:200] if isinstance(document, dict) else type(document).__name__
            raise FatalError(f"{where}: not a SensorThings collection (no 'value' list; the body has: {keys}); "
                             f"check that url is the service root, e.g. https://host/FROST-Server/v1.1")
        return entities

    def _url(self, path: str, params: dict[str, Any]) -> str:
        query = "&".join(f"{name}={quote(str(value), safe=QUERY_SAFE)}" for name, value in params.items()
                         if value not in (None, ""))
        return f"{self.root}/{path}" + (f"?{query}" if query else "")


MISSING_VALUE = object()


def _property(container: dict, name: str, what: str) -> str:
    properties = container.get("properties")
    if not isinstance(properties, dict) or properties.get(name) is None:
        raise Unresolved(f"{what} has no property {name!r}")
    return _text(properties[name], f"{what}'s property {name!r}")


def _text(value: Any, what: str) -> str:
    """A name or code as text; numbers are fine as codes (990101001), other shapes are not."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Unresolved(f"{what} is {json.dumps(value, ensure_ascii=False, default=str)[:80]}, not a text")
    text = str(value).strip()
    if not text:
        raise Unresolved(f"{what} is empty")
    return text
