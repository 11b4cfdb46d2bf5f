"""Telling people about alerts: a signed JSON webhook and e-mail, written to an outbox with the alert change and
delivered with retries.

`queue_notifications` runs inside the transaction that records an alert change (firing, escalated, resolved) and
adds one alert_notifications row per target that wants it. The row's unique key (alert, change, severity,
channel, target) is what makes one breach notify each target once, however often the same data is evaluated.

`deliver_due` sends what is due, in three steps so no transaction is held open across the network: read and
claim the due rows (their next_attempt_at is pushed past the time the round may take, so a second deliverer
running meanwhile leaves them alone), send, then record each outcome on its row. Targets are sent to in
parallel, each target's rows oldest first; once a target fails in a round its remaining rows wait for its next
attempt rather than each waiting out the same timeout.

Webhook deliveries are signed (see `verify_signature`, for receivers): `X-OneScreen-Signature: sha256=<hex>` is
the HMAC-SHA256, keyed by the shared secret, of "<X-OneScreen-Timestamp>.<body bytes>". The body's `id`
("alert-<id>-<change>-<severity>") is the same on every retry, for receivers to drop duplicates: delivery is at
least once (a receiver that answers too slowly is sent the notification again).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import smtplib
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import Iterator, Mapping

import requests
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cityops.alerts.notify_config import (EmailSettings, NotificationConfig, RetryPolicy, Webhook,
                                          parse_notifications)
from cityops.alerts.notify_message import alert_facts, email_message, notification_id, payload
from cityops.db import session_scope
from cityops.models import AlertNotification
from cityops.storage import _dialect_insert

__all__ = ["DeliveryReport", "NotificationConfig", "deliver_due", "notification_id", "parse_notifications",
           "queue_notifications", "signature", "verify_signature"]

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
RESPONSE_BODY_START = 300  # characters of a receiver's answer kept on the row
MAX_PARALLEL_TARGETS = 8
CLAIM_MARGIN = 60  # seconds added to a round's longest possible duration when claiming its rows
_RETRY, _DEFERRED = "retry", "deferred"
_ONCE = ("alert_id", "change", "severity", "channel", "target")

log = logging.getLogger(__name__)


@dataclass
class DeliveryReport:
    delivered: int = 0
    retried: int = 0    # failed attempts that will be tried again
    failed: int = 0     # given up: a permanent refusal, attempts exhausted, or a target no longer configured
    deferred: int = 0   # not attempted this round because their target had just failed


@dataclass(frozen=True)
class _Due:
    id: int
    alert_id: int
    change: str
    severity: str
    channel: str
    target: str
    attempts: int


@dataclass(frozen=True)
class _Outcome:
    status: str                   # delivered / failed / retry / deferred
    response: str
    retry_at: int | None = None   # for deferred rows: when their target is tried again
    target_down: bool = True      # for retries: the target itself failed, so its other rows wait too


def queue_notifications(session: Session, config: NotificationConfig, alert_id: int, change: str, severity: str,
                        now: int) -> int:
    """Add one pending notification per target that wants this change at this severity; a notification already
    queued (or delivered) for the same target is left as it is. Returns the rows added."""
    rows = [{"alert_id": alert_id, "change": str(change), "severity": str(severity), "channel": channel,
             "target": target, "created_at": now, "status": PENDING, "attempts": 0, "next_attempt_at": now}
            for channel, target in config.targets(change, severity)]
    if not rows:
        return 0
    statement = (_dialect_insert(session, AlertNotification.__table__).values(rows)
                 .on_conflict_do_nothing(index_elements=list(_ONCE)).returning(AlertNotification.id))
    return len(session.execute(statement).all())  # RETURNING lists only the rows added (rowcount: -1 on psycopg)


def deliver_due(database_url: str, config: NotificationConfig, now: int | None = None,
                environ: Mapping[str, str] | None = None, limit: int = 500) -> DeliveryReport:
    """Send the notifications due at `now` (unix seconds, by default the clock's; also the signatures' timestamp),
    at most `limit` of them, and record how each went."""
    now = int(time.time()) if now is None else int(now)
    environ = os.environ if environ is None else environ
    with session_scope(database_url) as session:
        groups, facts, outcomes = _claim_due(session, config, now, limit)
    if groups:
        with ThreadPoolExecutor(min(len(groups), MAX_PARALLEL_TARGETS)) as pool:
            sent = [pool.submit(_deliver_group, config, key, rows, facts, environ, now)
                    for key, rows in groups.items()]
            for future in sent:
                outcomes.update(future.result())
    rows = {row.id: row for rows in groups.values() for row in rows}
    report = DeliveryReport()
    with session_scope(database_url) as session:
        for row_id, outcome in outcomes.items():
            _record(session, row_id, rows.get(row_id), outcome, config.retry, now, report)
    return report


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """The X-OneScreen-Signature value for a body sent at `timestamp` (unix seconds)."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify_signature(secret: str, timestamp: int | str, body: bytes | str, header: str | None, *,
                     now: int | None = None, max_age: int = 300) -> bool:
    """For a receiver: whether `header` (X-OneScreen-Signature) signs this exact body and timestamp
    (X-OneScreen-Timestamp) with the shared secret. Given `now`, a timestamp more than `max_age` seconds away
    from it is refused too, so a captured delivery cannot be replayed later."""
    timestamp = str(timestamp)
    if not header or not (timestamp.isascii() and timestamp.isdigit()):
        return False
    if now is not None and abs(int(now) - int(timestamp)) > max_age:
        return False
    body = body.encode("utf-8") if isinstance(body, str) else body
    return hmac.compare_digest(signature(secret, timestamp, body).encode("ascii"), header.strip().encode("utf-8"))


# ------------------------------------------------------------------------------------------------
# Reading and recording (short transactions)
# ------------------------------------------------------------------------------------------------


def _claim_due(session: Session, config: NotificationConfig, now: int, limit: int):
    """The due rows grouped by where they go, the facts of their alerts, and the outcomes already known (rows that
    cannot be sent at all). Each row taken is claimed until the round is surely over."""
    due = session.execute(select(AlertNotification)
                          .where(AlertNotification.status == PENDING, AlertNotification.next_attempt_at <= now)
                          .order_by(AlertNotification.created_at, AlertNotification.id).limit(limit)).scalars().all()
    facts = alert_facts(session, {row.alert_id for row in due})
    groups: dict[tuple[str, str], list[_Due]] = {}
    outcomes: dict[int, _Outcome] = {}
    for row in due:
        key, problem = _destination(config, row)
        if row.alert_id not in facts:
            problem = f"alert {row.alert_id} no longer exists; nothing sent"
        if problem:
            outcomes[row.id] = _Outcome(FAILED, problem)
            continue
        groups.setdefault(key, []).append(_Due(row.id, row.alert_id, row.change, row.severity, row.channel,
                                               row.target, row.attempts))
    for key, rows in list(groups.items()):
        timeout = config.webhook_for(key[1]).timeout if key[0] == Webhook.channel else config.email.timeout
        until = now + 2 * timeout * len(rows) + CLAIM_MARGIN  # connect and answer, each within the timeout
        claimed = [row for row in rows if session.execute(
            update(AlertNotification)
            .where(AlertNotification.id == row.id, AlertNotification.status == PENDING,
                   AlertNotification.next_attempt_at <= now)
            .values(next_attempt_at=until)).rowcount == 1]
        if claimed:
            groups[key] = claimed
        else:
            del groups[key]
    return groups, facts, outcomes


def _destination(config: NotificationConfig, row: AlertNotification) -> tuple[tuple[str, str] | None, str | None]:
    if row.channel == Webhook.channel:
        if config.webhook_for(row.target) is None:
            return None, "no webhook in the notifications config posts to this URL any more; nothing sent"
        return (Webhook.channel, row.target), None
    if row.channel == EmailSettings.channel:
        if config.email is None or row.target not in config.email.to:
            return None, "this address is no longer among the notifications email recipients; nothing sent"
        return (EmailSettings.channel, f"{config.email.smtp_host}:{config.email.smtp_port}"), None
    return None, f"unknown channel {row.channel!r}; nothing sent"


def _record(session: Session, row_id: int, row: _Due | None, outcome: _Outcome, retry: RetryPolicy, now: int,
            report: DeliveryReport) -> None:
    values: dict = {"response": outcome.response}
    if outcome.status == _DEFERRED:
        values["next_attempt_at"] = outcome.retry_at
        report.deferred += 1
    elif row is None:  # nothing could be sent (target or alert gone): no attempt was made
        values["status"] = FAILED
        report.failed += 1
    else:
        attempts = row.attempts + 1
        values.update(attempts=attempts, last_attempt_at=now)
        if outcome.status == DELIVERED:
            values.update(status=DELIVERED, delivered_at=now)
            report.delivered += 1
        elif outcome.status == _RETRY and attempts < retry.attempts:
            values["next_attempt_at"] = now + retry.delay_after(attempts)
            report.retried += 1
        else:
            if outcome.status == _RETRY:
                values["response"] = f"{outcome.response} (gave up after {attempts} attempts)"
            values["status"] = FAILED
            report.failed += 1
    session.execute(update(AlertNotification).where(AlertNotification.id == row_id).values(**values))


# ------------------------------------------------------------------------------------------------
# Sending (no transaction open)
# ------------------------------------------------------------------------------------------------


def _deliver_group(config: NotificationConfig, key: tuple[str, str], rows: list[_Due], facts: dict,
                   environ: Mapping[str, str], now: int) -> dict[int, _Outcome]:
    """Send one target's rows in order; after a failure worth retrying, the rest wait for the target's retry."""
    outcomes: dict[int, _Outcome] = {}
    if key[0] == Webhook.channel:
        sends = _webhook_sends(config.webhook_for(key[1]), rows, facts, environ, now, config.timezone)
    else:
        sends = _email_sends(config.email, rows, facts, environ, now, config.timezone)
    try:
        with closing(sends):
            for row, outcome in zip(rows, sends):
                outcomes[row.id] = outcome
                if outcome.status == _RETRY and outcome.target_down:
                    break
    except Exception as error:  # noqa: BLE001 - one target's surprise must not lose the other targets' records
        log.exception("notifying %s failed unexpectedly", key[1])
        unsent = [row for row in rows if row.id not in outcomes]
        if not unsent:
            return outcomes
        row, outcome = unsent[0], _Outcome(_RETRY, f"{type(error).__name__}: {error}")
        outcomes[row.id] = outcome
    if len(outcomes) < len(rows):  # the target is down: its other rows wait for its next attempt
        retry_at = now + config.retry.delay_after(row.attempts + 1)
        for later in rows:
            outcomes.setdefault(later.id, _Outcome(_DEFERRED, f"not attempted: {key[1]} had just failed "
                                                              f"({outcome.response})", retry_at))
    return outcomes


def _webhook_sends(hook: Webhook, rows: list[_Due], facts: dict, environ: Mapping[str, str], now: int,
                   timezone: str) -> Iterator[_Outcome]:
    secret = environ.get(hook.secret_env)
    with requests.Session() as http:
        for row in rows:
            if not secret:
                yield _Outcome(_RETRY, f"environment variable {hook.secret_env} (secret_env of webhook "
                                       f"'{hook.name}') is not set; nothing sent")
                continue
            body = json.dumps(payload(row, facts[row.alert_id], timezone), ensure_ascii=False).encode("utf-8")
            yield _post(http, hook, secret, body, now)


def _post(http: requests.Session, hook: Webhook, secret: str, body: bytes, now: int) -> _Outcome:
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "OneScreen",
               "X-OneScreen-Timestamp": str(now), "X-OneScreen-Signature": signature(secret, now, body)}
    try:
        with http.post(hook.url, data=body, headers=headers, timeout=hook.timeout, allow_redirects=False,
                       stream=True) as answer:
            # iter_content, not raw.read: it turns a body that stalls or breaks off into a requests exception
            start = next(answer.iter_content(RESPONSE_BODY_START * 4), b"")
            text = start.decode(answer.encoding or "utf-8", errors="replace")[:RESPONSE_BODY_START]
    except (requests.RequestException, OSError) as error:
        return _Outcome(_RETRY, f"{type(error).__name__}: {error}")
    status = answer.status_code
    response = f"HTTP {status}: {text}".strip()
    if 200 <= status < 300:
        return _Outcome(DELIVERED, response)
    if 300 <= status < 400:
        return _Outcome(FAILED, f"{response} — redirected to {answer.headers.get('Location')!r}, not followed; "
                                f"put the receiver's current address in url:")
    if 400 <= status < 500 and status not in (408, 429):
        return _Outcome(FAILED, f"{response} — the receiver refused it; retrying will not help (check the "
                                f"receiver and the webhook's url and secret)")
    return _Outcome(_RETRY, response)


def _email_sends(settings: EmailSettings, rows: list[_Due], facts: dict, environ: Mapping[str, str], now: int,
                 timezone: str) -> Iterator[_Outcome]:
    server = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        smtp = _smtp_session(settings, environ)
    except (OSError, smtplib.SMTPException, LookupError) as error:
        yield _Outcome(_RETRY, f"{server}: {type(error).__name__}: {error}")
        return
    try:
        for row in rows:
            message = email_message(row, facts[row.alert_id], settings.sender, now, timezone)
            try:
                smtp.send_message(message, from_addr=settings.sender, to_addrs=[row.target])
            except smtplib.SMTPRecipientsRefused as error:
                code, reply = error.recipients.get(row.target, (0, b""))
                yield _smtp_refusal(server, code, reply)
            except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as error:
                yield _smtp_refusal(server, error.smtp_code, error.smtp_error)
            except (OSError, smtplib.SMTPException) as error:
                yield _Outcome(_RETRY, f"{server}: {type(error).__name__}: {error}")
                return
            else:
                yield _Outcome(DELIVERED, f"accepted by {server}")
    finally:
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()


def _smtp_session(settings: EmailSettings, environ: Mapping[str, str]) -> smtplib.SMTP:
    if settings.username_env and not (environ.get(settings.username_env) and environ.get(settings.password_env)):
        raise LookupError(f"environment variable {settings.username_env} or {settings.password_env} "
                          f"(username_env / password_env) is not set; nothing sent")
    smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout)
    try:
        if settings.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.username_env:
            smtp.login(environ[settings.username_env], environ[settings.password_env])
    except BaseException:
        smtp.close()
        raise
    return smtp


def _smtp_refusal(server: str, code: int, reply: bytes | str) -> _Outcome:
    reply = reply.decode("utf-8", errors="replace") if isinstance(reply, bytes) else str(reply)
    if code >= 500:
        return _Outcome(FAILED, f"{server} refused it: {code} {reply}; retrying will not help")
    return _Outcome(_RETRY, f"{server}: {code} {reply}", target_down=False)

