"""The broker side of the `mqtt` connector: one connection to a persistent MQTT 5 session.

connectors/mqtt.py says what a run does and why (persistent sessions, manual acknowledgement after the
commit, sizing the broker); this module holds the connection itself and the MQTT details of it.
"""

from __future__ import annotations

import logging
import queue
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from connectors.base import ConnectorError, FatalError, RetriableError

log = logging.getLogger("connectors.mqtt")  # one logger for the type: operators filter on it

KEEPALIVE_SECONDS = 60
# Received messages waiting for the run. The broker sends a whole session's backlog at once (up to the Receive
# Maximum); a full inbox stops reading the socket, so TCP holds the rest back and memory stays flat however long
# the backlog. A message that cannot be handed over for INBOX_STALL_SECONDS (the run is busy committing) is
# left unacknowledged instead: the broker delivers it again at the next run, and reading goes on, so keep-alive
# pings (every KEEPALIVE_SECONDS) are never held up long enough for the broker to drop the connection.
INBOX_MESSAGES = 1000  # as many as a run archives in one group
INBOX_STALL_SECONDS = KEEPALIVE_SECONDS / 3
RECEIVE_MAXIMUM = 65535  # MQTT 5's largest Receive Maximum: unacknowledged messages one connection may hold

# CONNACK reason codes (MQTT 5): an operator must fix the login, or the broker is only busy now.
LOGIN_REFUSED = {0x86, 0x87, 0x8C}  # bad user name or password, not authorized, bad authentication method
BUSY = {0x80, 0x88, 0x89, 0x97, 0x9F}  # unspecified, server unavailable, busy, quota exceeded, rate exceeded
SESSION_TAKEN_OVER = 0x8E


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int
    topics: tuple[str, ...]
    client_id: str
    username: str | None
    password: str | None
    tls: bool
    ca_file: str | None
    timeout: float
    session_expiry_seconds: int
    drain_seconds: float
    idle_seconds: float
    max_messages: int
    topic_field: str
    topic_pattern: re.Pattern | None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Message:
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_at: float  # epoch seconds, for the archive


class SessionLink:
    """One MQTT 5 connection with its own network thread; delivered messages wait in an inbox.

    Acknowledgements are manual: paho sends no PUBACK until `acknowledge`. The thread never reconnects by
    itself: a connection lost mid-run ends the run, and the broker re-delivers what was not acknowledged.
    `expire_after` bounds how long a connection waits for acknowledgements that may never come.
    Callbacks reference only this object, never the connector, so a connector the runner lets go of is
    collected (and its finalizer closes the link)."""

    def __init__(self, settings: MqttSettings, client_id: str, where: str, receive_maximum: int = RECEIVE_MAXIMUM):
        self.settings = settings
        self.where = where
        self.receive_maximum = receive_maximum
        self.inbox: queue.Queue[Message | None] = queue.Queue(maxsize=INBOX_MESSAGES)
        self.left_for_next_run = 0  # received, never handed to the run, so never acknowledged: re-delivered
        self._receiving = threading.Event()
        self._receiving.set()
        self.last_arrival = time.monotonic()
        self.lost: str | None = None
        self._lost_code: int | None = None
        self._closing = False
        self._closed = False
        self._expiry: threading.Timer | None = None
        self._connack: ReasonCode | None = None
        self.session_present = False
        self._granted: list[ReasonCode] | None = None
        self._answered = threading.Event()
        self._subscribed = threading.Event()
        self._topics: tuple[str, ...] = ()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
                             reconnect_on_failure=False, manual_ack=True)
        client.connect_timeout = settings.timeout
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self.client = client

    # Callbacks run in the network thread.

    def _on_connect(self, client, userdata, flags, reason: ReasonCode, properties) -> None:
        self._connack = reason
        self.session_present = bool(flags.session_present)
        self._answered.set()

    def _on_disconnect(self, client, userdata, flags, reason: ReasonCode, properties) -> None:
        # paho may report a loss twice: the broker's DISCONNECT (with its reason) and then the closed socket.
        if not self._closing and self.lost is None:
            self.lost = str(reason)
            self._lost_code = reason.value if isinstance(reason, ReasonCode) else None
            try:
                self.inbox.put_nowait(None)  # wakes a run waiting for messages: it ends now, not after idle_seconds
            except queue.Full:
                pass  # the run is not waiting: it sees the loss at its next look (raise_if_lost)
        self._answered.set()
        self._subscribed.set()

    def _on_subscribe(self, client, userdata, mid, reasons: list[ReasonCode], properties) -> None:
        self._granted = list(reasons)
        self.last_arrival = max(self.last_arrival, time.monotonic())  # idle counts from the subscription on
        self._subscribed.set()

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        received = Message(message.mid, message.qos, message.topic, bytes(message.payload), time.time())
        stall_until = time.monotonic() + INBOX_STALL_SECONDS
        while self._receiving.is_set():
            try:
                self.inbox.put(received, timeout=min(0.2, max(0.0, stall_until - time.monotonic())))
                self.last_arrival = time.monotonic()
                return
            except queue.Full:
                if time.monotonic() >= stall_until:
                    break
        self.left_for_next_run += 1

    def stop_receiving(self) -> None:
        """The run takes no more messages: later ones stay unacknowledged, for the next run."""
        self._receiving.clear()

    # Called by the run.

    def open(self, persistent: bool) -> None:
        """Connect and wait for the broker's answer; ConnectorError (retriable or fatal) when refused."""
        settings, client = self.settings, self.client
        if settings.username:
            client.username_pw_set(settings.username, settings.password)
        if settings.tls:
            try:
                client.tls_set(ca_certs=settings.ca_file)
            except (OSError, ssl.SSLError) as error:
                raise FatalError(f"{self.where}: cannot load the CA certificates of ca_file {settings.ca_file!r} "
                                 f"({error}); check ca_file") from None
        properties = Properties(PacketTypes.CONNECT)
        if persistent:
            properties.SessionExpiryInterval = settings.session_expiry_seconds
            # Without it mosquitto sends only max_inflight_messages (20) unacknowledged messages per run.
            properties.ReceiveMaximum = self.receive_maximum
        try:
            client.connect(settings.host, settings.port, keepalive=KEEPALIVE_SECONDS, clean_start=not persistent,
                           properties=properties)
        except socket.gaierror as error:
            raise RetriableError(f"{self.where}: cannot resolve host {settings.host!r} ({error.strerror}); check "
                                 f"config.host (trying again at the next run)") from None
        except ConnectionRefusedError:
            raise RetriableError(f"{self.where}: connection refused; is the broker running and listening on port "
                                 f"{settings.port}? (trying again at the next run)") from None
        except ssl.SSLError as error:
            raise FatalError(f"{self.where}: the TLS handshake failed ({error.reason or error}); check tls, port "
                             f"and ca_file, or the broker's certificate") from None
        except (TimeoutError, socket.timeout):
            raise RetriableError(f"{self.where}: no connection within {settings.timeout:g} s (timeout); trying "
                                 f"again at the next run") from None
        except OSError as error:
            raise RetriableError(f"{self.where}: cannot connect ({error.strerror or error}); trying again at the "
                                 f"next run") from None
        client.loop_start()
        if not self._answered.wait(settings.timeout):
            raise RetriableError(f"{self.where}: connected, but no MQTT answer (CONNACK) within "
                                 f"{settings.timeout:g} s; is it an MQTT broker, and is tls right? Trying again "
                                 f"at the next run")
        reason = self._connack
        if reason is None:
            raise RetriableError(f"{self.where}: the broker closed the connection without answering ({self.lost}); "
                                 f"is it an MQTT 5 broker, and is tls right? Trying again at the next run")
        if reason.is_failure:
            raise refused(self.where, reason, settings)

    def subscribe(self, topics: tuple[str, ...]) -> None:
        """Ask for the subscriptions; `subscribed` says when the broker has confirmed them. A persistent session's
        queued messages may arrive before the confirmation (they fill the inbox), so the run starts taking
        them without waiting for it."""
        self._subscribed.clear()
        self._granted = None
        self._topics = topics
        if not self._send_subscribe(topics):
            self.raise_if_lost(0)
            raise RetriableError(f"{self.where}: could not send the subscription; trying again at the next run")

    def subscribed(self, wait: bool) -> bool:
        """Whether the broker has confirmed the subscriptions (with `wait`: waiting up to the timeout, else
        RetriableError); FatalError when it refused one."""
        if not self._subscribed.is_set():
            if not wait:
                return False
            if not self._subscribed.wait(self.settings.timeout) or self._granted is None:
                self.raise_if_lost(0)
                raise RetriableError(f"{self.where}: the broker did not confirm the subscription within "
                                     f"{self.settings.timeout:g} s; trying again at the next run")
        self.raise_if_lost(0)
        if self._granted is None:
            raise RetriableError(f"{self.where}: the broker did not confirm the subscription; trying again at the "
                                 f"next run")
        for topic, reason in zip(self._topics, self._granted):
            if reason.is_failure:
                raise FatalError(f"{self.where}: the broker refused the subscription to {topic!r} ({reason}); "
                                 f"check the topic filter and the broker's ACL for this user and client_id")
            if reason.value == 0:
                raise FatalError(f"{self.where}: the broker grants only QoS 0 for {topic!r}, which it cannot "
                                 f"queue while no run is connected; allow QoS 1 (mosquitto: max_qos)")
        return True

    def _send_subscribe(self, topics: tuple[str, ...]) -> bool:
        # Retained messages only for a new subscription: subscribing again at every run (and after the acks)
        # must not re-deliver them.
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        result, _mid = self.client.subscribe([(topic, options) for topic in topics])
        return result == MQTTErrorCode.MQTT_ERR_SUCCESS

    def _round_trip(self, topics: tuple[str, ...]) -> bool:
        """Subscribe and wait for the SUBACK; False when it did not come."""
        self._subscribed.clear()
        self._granted = None
        return (self._send_subscribe(topics) and self._subscribed.wait(self.settings.timeout)
                and self._granted is not None)

    def next(self, timeout: float) -> Message | None:
        try:
            return self.inbox.get(timeout=timeout) if timeout > 0 else self.inbox.get_nowait()
        except queue.Empty:
            return None

    def raise_if_lost(self, received: int) -> None:
        if self.lost is None:
            return
        if self._lost_code == SESSION_TAKEN_OVER:
            raise FatalError(f"{self.where}: another client connected with client_id "
                             f"{self.settings.client_id!r} and took the session over; every connector instance "
                             f"(and every other program) needs its own client_id")
        # mosquitto 2.0 closes a taken-over connection without saying why, so the hint is given here too.
        raise RetriableError(f"{self.where}: the connection was lost during the run ({self.lost}) after "
                             f"{received} message(s); none was acknowledged, so the broker delivers them again at "
                             f"the next run. If this repeats, check that no other client uses client_id "
                             f"{self.settings.client_id!r}")

    def acknowledge(self, owed: list[tuple[int, int]]) -> int:
        """Send the PUBACKs, in the order the messages arrived; returns how many could not be sent."""
        if self.lost is not None or not self.client.is_connected():
            return len(owed)
        unsent = sum(self.client.ack(mid, qos) != MQTTErrorCode.MQTT_ERR_SUCCESS for mid, qos in owed)
        # Wait until the broker has processed the PUBACKs before disconnecting. Once acknowledged messages leave
        # the window, the broker sends the next ones at once; paho closes the socket right after writing
        # DISCONNECT, with those unread, so the kernel resets the connection and the broker may lose the last
        # PUBACKs (measured: some runs' last few messages came again). The broker answers a connection's packets in
        # order, so a SUBACK (for the same, unchanged subscriptions) means every PUBACK before it was processed.
        if owed and not self._round_trip(self.settings.topics):
            return len(owed)
        return unsent

    def expire_after(self, seconds: float) -> None:
        """Close the connection (unacknowledged) unless `acknowledge` comes first."""
        self._expiry = threading.Timer(seconds, self.close)
        self._expiry.daemon = True
        self._expiry.start()

    def cancel_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Disconnect normally (the session stays on the broker), then stop the thread. Safe to call twice,
        from the finalizer or the expiry timer too."""
        if self._closed:
            return
        self._closed = self._closing = True
        self.stop_receiving()
        self.cancel_expiry()
        try:
            self.client.disconnect()
            self.client.loop_stop()
        except Exception:  # noqa: BLE001 - closing must never hide the run's own outcome
            log.exception("%s: could not disconnect cleanly", self.where)


def refused(where: str, reason: ReasonCode, settings: MqttSettings) -> ConnectorError:
    code = reason.value
    if code in LOGIN_REFUSED:
        who = f"user {settings.username!r}" if settings.username else "anonymous clients"
        return FatalError(f"{where}: the broker refused the login of {who} ({reason}); check username and "
                          f"password_env (leave both out only if the broker allows anonymous clients)")
    if code == 0x85:
        return FatalError(f"{where}: the broker refused client_id {settings.client_id!r} ({reason}); choose "
                          f"another client_id")
    if code in BUSY:
        return RetriableError(f"{where}: the broker is unavailable or busy ({reason}); trying again at the next "
                              f"run")
    return FatalError(f"{where}: the broker refused the connection ({reason}); check host, port, tls and the "
                      f"broker's settings for MQTT 5 clients")
