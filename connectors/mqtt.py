"""The `mqtt` connector type: sensor readings pushed to an MQTT broker, collected by scheduled runs, none lost.

OneScreen's connectors are pulled on a schedule, while sensors push whenever they like. The broker bridges the
two: the connector keeps a *persistent session* on the broker (a stable `client_id`, MQTT 5 with
`clean_start` false and a session expiry of `session_expiry_seconds`, QoS 1 subscriptions), so messages
published while no run is connected wait in the broker for the next run. Each run:

1. connects, subscribes to `topics` (again: harmless, and a topic added to the config takes effect);
2. listens for up to `drain_seconds`, stopping early once no message arrived for `idle_seconds` or after
   `max_messages`. A backlog is not read into memory at once: while 1000 received messages wait for the run,
   the connector stops reading the socket and TCP holds the rest back in the broker (a message that waits
   longer than 20 s is left unacknowledged for the next run, so keep-alive never lapses);
3. archives the messages in groups of up to 1000 as one JSON-lines payload (`messages.jsonl`, one line per
   message: `{"topic", "payload"` — or `"payload_base64"` for bytes that are not UTF-8 — `, "qos",
   "received_at"}`), then parses them; a record's source names the archived payload and the message's line,
   `…/0002-messages.jsonl.gz#417`. Groups, not a file per message: a busy broker delivers tens of thousands of
   small messages per run, and one gzip file each would cost an inode, a gzip header and a directory entry per
   reading while a line still points at exactly the message;
4. acknowledges the messages (PUBACK) only in `committed()`, once the runner has committed every record of the
   run, waits until the broker has processed the acknowledgements (see `SessionLink.acknowledge`), then disconnects.

Acknowledgement is manual, so until then the broker keeps every message of the run as unacknowledged in the
session: a crash, a failed database commit or a lost connection leaves them there and the broker delivers them
again to the next run (verified against mosquitto 2.0: unacknowledged QoS 1 messages of a disconnected
persistent session are re-sent on reconnect, DUP set). Nothing is lost, and the re-delivered records upsert:
the runner counts them as duplicates, never stores them twice. A run that fails while fetching disconnects at
once; one whose commit fails disconnects, unacknowledged, when the runner releases the connector at the end of the
run (`released()`), or at the latest `UNCOMMITTED_GRACE_SECONDS` (300) after its last record. Until then a later
run with the same `client_id` simply takes the session over. A run that
finds no session on the broker (other than the first) logs a warning: the session expired or the broker lost
it, and what was published since the last run is gone.

Each message payload is a JSON object, or a JSON list of objects, mapped by `mapping:`. Every row also carries
its topic under `topic_field` (default `_topic`; "" for none), and with `topic_pattern` (a regular expression
matched against the whole topic) its named groups are merged into the row, so the unit code and the indicator
may come from the topic: `city/(?P<unit_code>[0-9]{9})/air/(?P<indicator>[a-z0-9_]+)` reads
`city/990101001/air/aqi` as unit 990101001, indicator aqi. The topic wins over a payload field of the same
name: the broker's ACL controls who may publish to a topic, not what a payload claims. A payload that is not
JSON, JSON that is not an object or a list of objects, or a topic the pattern does not match becomes one
quarantined record with the reason, the topic and the payload text (truncated); the other messages of the
run are stored.

Example connectors.yaml entry (the password is read from the environment variable AIR_MQTT_PASSWORD):

    connectors:
      - name: air-sensors
        type: mqtt
        levels: [street]
        schedule: {interval: 1m}
        config:
          host: mqtt.city.example.gov.cn
          port: 8883
          tls: true
          topics: ["city/+/air/#"]
          client_id: onescreen-air-sensors    # stable and unique: the broker keeps this session's messages
          username: onescreen
          password_env: AIR_MQTT_PASSWORD
          topic_pattern: "city/(?P<unit_code>[0-9]{9})/air/(?P<indicator>[a-z0-9_]+)"
          drain_seconds: 5
          idle_seconds: 1
        mapping: {unit_code: unit_code, indicator: indicator, observed_at: time, value: value}

Sizing and the broker (what an operator must know; measured against mosquitto 2.0.11 as packaged)
- mosquitto keeps at most `max_queued_messages` messages (default 1000) per disconnected session, and it counts
  the unacknowledged in-flight messages of that session too. Above that it drops new messages silently (its log
  says "Outgoing messages are being dropped for client <client_id>"). Measured: 1500 published between two
  runs, 1000 delivered; after a crash that left 50 unacknowledged, 950 of the next 1500; after one that left
  1000, none. With the default, more than 1000 readings between two runs — a burst, an outage or crash of
  OneScreen — are lost. Set in mosquitto.conf
      max_queued_messages 0
      max_queued_bytes 268435456        # a memory bound instead of a count; size it for the longest outage
  (with both set, the first limit reached applies, so the count limit must be lifted: `max_queued_bytes` alone
  does not help). Also: `persistence true` (this host has it), and a shorter `autosave_interval` than the
  default 1800 s, since messages queued after the last save are lost if the broker itself crashes.
- Publishers must publish with QoS 1 or 2. A QoS 0 message is not queued for a disconnected session and cannot be
  acknowledged; it is stored only if it arrives while a run is listening.
- One run holds at most `max_messages` unacknowledged messages, and at most 65,535: MQTT's Receive Maximum,
  which the connector sends so the broker delivers no more than one run will process (mosquitto otherwise
  applies its `max_inflight_messages`, 20). More stay queued for the next run, so schedule runs often enough
  for the sensors' rate.
- `qos` must be 1. QoS 0 cannot be buffered; with QoS 2 the client acknowledges receipt (PUBREC) before the run
  is committed, and the broker would not deliver a message again after a crash. Messages published with QoS 2
  arrive at QoS 1.
- Every instance needs its own `client_id`: two connections with one id take the session from each other (the
  run fails; mosquitto 2.0 just closes the connection, and brokers that say "session taken over" fail it as
  fatal). A topic removed from `topics` stays subscribed in the broker's session until the session expires or
  the `client_id` is changed.
- Retained messages are delivered once, when a subscription is new, not again at every run.

Errors: a refused connection, a timeout, an unreachable or unresolvable host, a busy broker and a connection
lost during the run fail the run as retriable (nothing was acknowledged, the next run receives it all); bad
credentials, a refused subscription (ACL), a broker granting only QoS 0 and TLS failures as fatal.
`check()` logs in with a throw-away client id and a clean session and subscribes to nothing, so it neither
consumes nor acknowledges anything, nor disturbs a run in progress.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
import uuid
import weakref
from typing import Any, Iterator

from connectors.base import ConfigField, Connector, ConnectorError, FatalError, Health, Record, RecordBatch, register
from connectors.mqtt_messages import archive_lines, group_records
from connectors.mqtt_session import RECEIVE_MAXIMUM, Message, MqttSettings, SessionLink

log = logging.getLogger(__name__)

GROUP_MESSAGES = 1000  # messages per archived payload
GROUP_PAUSE_SECONDS = 0.05  # a group is archived when no further message comes within this pause
ARCHIVE_LABEL = "messages.jsonl"
# A run whose records were all yielded waits this long for committed(). The runner does not tell a connector that
# its commit failed, so after this the connection is closed unacknowledged (the broker keeps the messages for the
# next run); a commit slower than this only costs duplicates at the next run.
UNCOMMITTED_GRACE_SECONDS = 300


@register
class MqttConnector(Connector):
    type_name = "mqtt"
    uses_mapping = True
    # Messages arrive in no promised time order; the runner moves the cursor only once the run is committed.
    ordered = False
    config_schema = (
        ConfigField("host", str, default="127.0.0.1", help="the MQTT broker's host name or address"),
        ConfigField("port", int, default=1883, help="the broker's port (usually 1883, or 8883 with TLS)"),
        ConfigField("topics", list, required=True,
                    help="topic filters to subscribe to, e.g. [\"city/+/air/#\"] (+ one level, # the rest)"),
        ConfigField("client_id", str, required=True,
                    help="a stable id of this instance's session on the broker; never shared with another client"),
        ConfigField("qos", int, default=1,
                    help="subscription QoS; must be 1 (0 cannot be buffered, 2 is acknowledged before commit)"),
        ConfigField("username", str, default=None, help="user name for the broker (leave out for anonymous)"),
        ConfigField("password", str, secret=True, help="the broker password; give its environment variable as "
                                                       "password_env"),
        ConfigField("tls", bool, default=False, help="connect with TLS, verifying the broker's certificate"),
        ConfigField("ca_file", str, default=None,
                    help="PEM file of the CA that signed the broker's certificate (tls; default: the system's CAs)"),
        ConfigField("timeout", float, default=10.0, help="seconds to wait for the broker to connect and answer"),
        ConfigField("session_expiry_seconds", int, default=7 * 86400,
                    help="how long the broker keeps the session (and its queued messages) while no run is "
                         "connected"),
        ConfigField("drain_seconds", float, default=5.0,
                    help="how long one run listens for queued and new messages at most"),
        ConfigField("idle_seconds", float, default=1.0, help="a run stops once no message arrived for this long"),
        ConfigField("max_messages", int, default=RECEIVE_MAXIMUM,
                    help="messages one run takes at most (at most 65535); the rest wait for the next run"),
        ConfigField("topic_field", str, default="_topic",
                    help="row field that receives the message's topic (\"\": none)"),
        ConfigField("topic_pattern", str, default=None,
                    help="regular expression matching the whole topic; its named groups (e.g. unit_code, "
                         "indicator) are merged into each row"),
    )

    def __init__(self, name: str, config: dict, context, mapping=None):
        # Instances built in code (tests, the CLI) may skip resolve_config: fill in the schema's defaults here.
        defaults = {spec.name: spec.default for spec in self.config_schema}
        super().__init__(name, {**defaults, **config}, context, mapping)
        self._link: SessionLink | None = None
        self._owed: list[tuple[int, int]] = []  # (mid, qos) of the messages this run parsed, in arrival order

    # -- configuration -------------------------------------------------------------------------------

    @classmethod
    def validate_config(cls, config: dict) -> None:
        config = {**{spec.name: spec.default for spec in cls.config_schema}, **config}
        topics = config["topics"]
        if not isinstance(topics, list) or not topics:
            raise ValueError("topics must be a list of at least one topic filter, e.g. [\"city/+/air/#\"]")
        for topic in topics:
            problem = _filter_problem(topic)
            if problem:
                raise ValueError(f"topics: {problem}")
        if not isinstance(config["client_id"], str) or not config["client_id"].strip() \
                or config["client_id"] != config["client_id"].strip():
            raise ValueError("client_id must be a non-empty name without surrounding spaces, e.g. "
                             "onescreen-air-sensors (stable, so the broker keeps the session)")
        if config["qos"] == 0:
            raise ValueError("qos 0 cannot be buffered: the broker neither queues QoS 0 messages for the next run "
                             "nor waits for an acknowledgement; use qos: 1")
        if config["qos"] != 1:
            raise ValueError(f"qos must be 1, not {config['qos']!r} (with QoS 2 the client acknowledges receipt "
                             f"before the run is committed, so a crash would lose the messages)")
        if not 1 <= config["port"] <= 65535:
            raise ValueError(f"port must be between 1 and 65535, not {config['port']}")
        if not isinstance(config["host"], str) or not config["host"].strip():
            raise ValueError("host must name the broker")
        if config.get("password") and not config["username"]:
            raise ValueError("password_env is set but username is not: give the user name as username")
        if config["ca_file"] and not config["tls"]:
            raise ValueError("ca_file is only used with tls: true")
        for field in ("timeout", "drain_seconds", "idle_seconds"):
            if not config[field] > 0:
                raise ValueError(f"{field} must be more than 0 seconds, not {config[field]}")
        if not 1 <= config["max_messages"] <= RECEIVE_MAXIMUM:
            raise ValueError(f"max_messages must be between 1 and {RECEIVE_MAXIMUM} (MQTT's Receive Maximum: a "
                             f"run holds its messages unacknowledged until they are committed), not "
                             f"{config['max_messages']}")
        if not 1 <= config["session_expiry_seconds"] < 0xFFFFFFFF:
            raise ValueError(f"session_expiry_seconds must be between 1 and {0xFFFFFFFF - 1}: without a session "
                             f"the broker keeps nothing between runs")
        if not isinstance(config["topic_field"], str):
            raise ValueError("topic_field must be a field name, or \"\" for none")
        pattern = config["topic_pattern"]
        if pattern is not None:
            try:
                compiled = re.compile(pattern)
            except re.error as error:
                raise ValueError(f"topic_pattern {pattern!r} is not a regular expression: {error}") from None
            if not compiled.groupindex:
                raise ValueError(f"topic_pattern {pattern!r} has no named group; name the parts to read, e.g. "
                                 f"city/(?P<unit_code>[0-9]+)/(?P<indicator>[a-z0-9_]+)")

    def settings(self) -> MqttSettings:
        """The configuration with defaults applied; FatalError when it cannot work."""
        try:
            self.validate_config(self.config)
        except ValueError as error:
            raise FatalError(f"connector {self.name}: config: {error}") from None
        if self.mapping is None:
            raise FatalError(f"connector {self.name}: an mqtt connector needs 'mapping:' naming the payload fields")
        config = self.config
        pattern = re.compile(config["topic_pattern"]) if config["topic_pattern"] is not None else None
        return MqttSettings(config["host"].strip(), config["port"], tuple(config["topics"]), config["client_id"],
                            config["username"], config["password"], config["tls"], config["ca_file"],
                            float(config["timeout"]), config["session_expiry_seconds"],
                            float(config["drain_seconds"]), float(config["idle_seconds"]), config["max_messages"],
                            config["topic_field"], pattern)

    def _where(self, settings: MqttSettings) -> str:
        return f"{self.name}: MQTT broker {settings.address}"

    # -- the contract ----------------------------------------------------------------------------------

    def check(self) -> Health:
        try:
            settings = self.settings()
        except FatalError as error:
            return Health(False, str(error))
        # Another client id and a clean session: the instance's own session (and a run using it) is untouched.
        probe = SessionLink(settings, f"{settings.client_id}-check-{uuid.uuid4().hex[:8]}", self._where(settings))
        try:
            probe.open(persistent=False)
        except ConnectorError as error:
            return Health(False, f"{error.family}: {error}")
        finally:
            probe.close()
        return Health(True, f"broker {settings.address} reachable (MQTT 5{', TLS' if settings.tls else ''}), "
                            f"{len(settings.topics)} topic(s): {', '.join(settings.topics)}")

    def fetch(self, since: str | None) -> Iterator[Record]:
        """The messages waiting in the session and those arriving while the run listens. `since` is not used:
        the broker's session, not a cursor, says what is new."""
        settings = self.settings()
        self._release()  # a connector fetched twice without committing: the broker re-delivers the first
        link = SessionLink(settings, settings.client_id, self._where(settings), settings.max_messages)
        self._link, self._owed = link, []
        # When the runner never calls committed() (a failed commit) and lets go of the connector, disconnect
        # without acknowledging: the broker keeps the messages for the next run.
        weakref.finalize(self, link.close)
        finished = False
        try:
            link.open(persistent=True)
            if not link.session_present:
                log.warning("%s: the broker had no session for client_id %r: expected at the first run; otherwise "
                            "the session expired (session_expiry_seconds) or the broker lost it (no persistence), "
                            "and readings published since the last run are lost", link.where, settings.client_id)
            link.subscribe(settings.topics)
            for group in self._drain(link, settings):
                reference = self.archived(ARCHIVE_LABEL, archive_lines(group), "application/x-ndjson")
                yield from group_records(self.mapping, ((message.topic, message.payload,
                                                         f"{reference or ARCHIVE_LABEL}#{line}")
                                                        for line, message in enumerate(group, start=1)), settings)
                self._owed.extend((message.mid, message.qos) for message in group if message.qos)
            finished = True
            link.expire_after(UNCOMMITTED_GRACE_SECONDS)
        finally:
            if not finished:
                self._release()

    def committed(self) -> None:
        """Every record of the run is committed: acknowledge its messages, so the broker forgets them, and
        disconnect (the session stays for the next run)."""
        link, owed = self._link, self._owed
        self._link, self._owed = None, []
        if link is None:
            return
        link.cancel_expiry()
        if link.closed:
            log.warning("%s: the commit came more than %d s after the last record; the connection had been closed "
                        "with %d message(s) unacknowledged, which the broker delivers again at the next run "
                        "(they count as duplicates)", link.where, UNCOMMITTED_GRACE_SECONDS, len(owed))
            return
        try:
            unsent = link.acknowledge(owed)
            if unsent:
                log.warning("%s: %d of %d message(s) could not be acknowledged (%s); the broker delivers them "
                            "again at the next run, where they count as duplicates", link.where, unsent,
                            len(owed), link.lost or "not connected")
        finally:
            link.close()

    def released(self) -> None:
        """The run is over without `committed` (its commit failed): disconnect at once, unacknowledged, rather
        than when the grace timer runs out; the broker delivers the messages again to the next run."""
        self._release()

    def replay(self, label: str, payload: bytes) -> Iterator[Record | RecordBatch]:
        """Parse an archived group of messages again with the same code as fetch; the broker is not involved."""
        yield from group_records(self.mapping, self._archived_messages(label, payload), self.settings())

    def _archived_messages(self, label: str, payload: bytes) -> Iterator[tuple[str, bytes, str]]:
        for number, line in enumerate(payload.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                topic = entry["topic"]
                body = entry["payload"].encode("utf-8") if "payload" in entry \
                    else base64.b64decode(entry["payload_base64"], validate=True)
                if not isinstance(topic, str):
                    raise TypeError("topic is not text")
            except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
                raise FatalError(f"{self.name}: archived {label} line {number} is not a message as the mqtt "
                                 f"connector type archives them; replay payloads of this connector's own "
                                 f"runs") from None
            yield topic, body, f"{label}#{number}"

    # -- receiving -------------------------------------------------------------------------------------

    def _drain(self, link: SessionLink, settings: MqttSettings) -> Iterator[list[Message]]:
        """Groups of received messages, until the drain time is over, the broker is idle or max_messages."""
        deadline = time.monotonic() + settings.drain_seconds
        received = 0
        confirmed = False
        while received < settings.max_messages:
            link.raise_if_lost(received)
            confirmed = confirmed or link.subscribed(wait=False)
            now = time.monotonic()
            if now >= deadline:
                break
            # Idle is measured from the last arrival, not the last read: messages that arrived while the
            # runner was busy with earlier records are waiting in the inbox already. It cannot end the drain
            # before the broker confirmed the subscription (the first run's messages come only after that).
            wait = min(deadline, link.last_arrival + settings.idle_seconds) - now
            first = link.next(max(wait, 0.0 if confirmed else GROUP_PAUSE_SECONDS))
            if first is None:
                if confirmed and time.monotonic() >= link.last_arrival + settings.idle_seconds:
                    break
                continue
            group = [first]
            while len(group) < GROUP_MESSAGES and received + len(group) < settings.max_messages:
                message = link.next(max(0.0, min(GROUP_PAUSE_SECONDS, deadline - time.monotonic())))
                if message is None:
                    break
                group.append(message)
            received += len(group)
            yield group
        link.stop_receiving()
        link.subscribed(wait=True)
        link.raise_if_lost(received)
        if received >= settings.max_messages:
            log.info("%s: stopped at max_messages (%d); more may be waiting for the next run", link.where,
                     settings.max_messages)
        if link.left_for_next_run:
            log.info("%s: %d message(s) arrived while the run was busy or after it stopped listening; left "
                     "unacknowledged, the broker delivers them again at the next run", link.where,
                     link.left_for_next_run)

    def _release(self) -> None:
        """Disconnect without acknowledging anything: the broker delivers the run's messages again."""
        link, self._link, self._owed = self._link, None, []
        if link is not None:
            link.close()


def _filter_problem(topic: Any) -> str | None:
    """What is wrong with an MQTT topic filter, if anything."""
    if not isinstance(topic, str) or not topic:
        return f"each topic filter must be a non-empty text, not {topic!r}"
    if "\x00" in topic:
        return f"topic filter {topic!r} holds a NUL character"
    levels = topic.split("/")
    for position, level in enumerate(levels):
        if "#" in level and (level != "#" or position != len(levels) - 1):
            return f"topic filter {topic!r}: '#' must be the whole last level (e.g. city/#)"
        if "+" in level and level != "+":
            return f"topic filter {topic!r}: '+' must be a whole level (e.g. city/+/air)"
    return None
