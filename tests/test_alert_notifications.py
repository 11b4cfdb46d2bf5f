"""Alert notifications against real receivers: a local HTTP server for webhooks and an aiosmtpd sink for e-mail.

Each test queues notifications for an alert row in a migrated database (the tiny city), delivers them with
`deliver_due` at chosen times, and checks what the receivers got and what the outbox rows record.
"""

from __future__ import annotations

import json
import socket
import threading
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import insert, select

from webhook_receiver import Receiver

from cityops.alerts.notify import (DeliveryReport, deliver_due, parse_notifications, queue_notifications,
                                   signature, verify_signature)
from cityops.alerts.rules import RuleError
from cityops.models import Alert, AlertNotification

SECRET = "s3cret-shared-with-dispatch"
ENVIRON = {"ONESCREEN_WEBHOOK_SECRET": SECRET, "ONESCREEN_SMTP_USER": "onescreen", "ONESCREEN_SMTP_PASSWORD": "pw"}


# ------------------------------------------------------------------------------------------------
# Receivers
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def closed_port():
    """A port nothing listens on: bound (so no one else takes it meanwhile) but never listening."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


class _PortZeroController(Controller):
    """aiosmtpd's Controller checks the server by connecting to `port`; with port 0 that is the one bound."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpSink:
    """Records every message and login; refuses the addresses in `unknown` as a real server refuses a mailbox."""

    def __init__(self):
        self.messages: list[dict] = []
        self.logins: list[str] = []
        self.unknown: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.unknown:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "message": message_from_bytes(envelope.original_content, policy=default_policy)})
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append(auth_data.login.decode())
        # handled=False: aiosmtpd then answers a refusal itself (535), as a real server would
        return AuthResult(success=auth_data.password == b"pw", handled=False, auth_data=auth_data)


@pytest.fixture
def smtp_sink():
    sink = SmtpSink()
    controller = _PortZeroController(sink, hostname="127.0.0.1", port=0, authenticator=sink.authenticate,
                                     auth_require_tls=False)
    controller.start()
    sink.port = controller.port
    yield sink
    controller.stop()


# ------------------------------------------------------------------------------------------------
# Database and configuration
# ------------------------------------------------------------------------------------------------


def add_alert(db, now: int, unit: str = "990101001001", indicator: str = "pm25", rule: str = "over-threshold",
              severity: str = "critical", phase: str = "firing", value: float = 180.0, line: float = 115.0) -> int:
    """An alert row as the engine would write it: fired at `now`, its breach started 10 minutes earlier."""
    with db.session() as session:
        return session.execute(insert(Alert).values(
            rule=rule, unit_id=db.unit_ids[unit], indicator_id=db.indicator_ids[indicator], started_at=now - 600,
            phase=phase, severity=severity, notified=severity, value=value, line=line, last_breach_at=now,
            evaluated_to=now, fired_at=now, resolved_at=None).returning(Alert.id)).scalar_one()


def config_for(tmp_path, webhooks=(), email=None, retry=None, environ=ENVIRON):
    entry = {"webhooks": [dict(hook, secret_env=hook.get("secret_env", "ONESCREEN_WEBHOOK_SECRET"))
                          for hook in webhooks]}
    if email is not None:
        entry["email"] = email
    if retry is not None:
        entry["retry"] = retry
    return parse_notifications(entry, tmp_path / "alerts.yaml", environ=environ)


def queue(db, config, alert_id: int, now: int, change: str = "firing", severity: str = "critical") -> int:
    with db.session() as session:
        return queue_notifications(session, config, alert_id, change, severity, now)


def outbox(db) -> list[AlertNotification]:
    with db.session() as session:
        return session.execute(select(AlertNotification).order_by(AlertNotification.id)).scalars().all()


# ------------------------------------------------------------------------------------------------
# Webhooks
# ------------------------------------------------------------------------------------------------


def test_a_webhook_gets_signed_json_that_verifies_and_a_tampered_body_does_not(sqlite_city_db, receiver, tmp_path,
                                                                                now):
    config = config_for(tmp_path, [{"name": "dispatch", "url": receiver.url()}])
    alert_id = add_alert(sqlite_city_db, now)
    assert queue(sqlite_city_db, config, alert_id, now) == 1

    report = deliver_due(sqlite_city_db.url, config, now=now, environ=ENVIRON)

    assert report == DeliveryReport(delivered=1)
    (request,) = receiver.requests
    headers, body = request["headers"], request["body"]
    assert request["path"] == "/hooks/onescreen"
    assert headers["Content-Type"].startswith("application/json") and headers["User-Agent"] == "OneScreen"
    assert headers["X-OneScreen-Timestamp"] == str(now)
    assert verify_signature(SECRET, headers["X-OneScreen-Timestamp"], body, headers["X-OneScreen-Signature"])
    assert verify_signature(SECRET, now, body, headers["X-OneScreen-Signature"], now=now + 60)
    tampered = body.replace(b"180", b"18")
    assert tampered != body
    assert not verify_signature(SECRET, now, tampered, headers["X-OneScreen-Signature"])
    assert not verify_signature("another secret", now, body, headers["X-OneScreen-Signature"])
    assert not verify_signature(SECRET, now + 1, body, headers["X-OneScreen-Signature"])
    assert not verify_signature(SECRET, now, body, headers["X-OneScreen-Signature"], now=now + 3600)  # a replay
    assert not verify_signature(SECRET, now, body, None)
    assert headers["X-OneScreen-Signature"] == signature(SECRET, now, body)

    assert "社区".encode("utf-8") in body  # UTF-8 as is, not \u escapes
    payload = json.loads(body)
    assert payload["id"] == f"alert-{alert_id}-firing-critical"
    assert payload["change"] == "firing" and payload["severity"] == "critical" and payload["rule"] == "over-threshold"
    assert payload["unit"] == {"code": "990101001001", "name_zh": "社区01001", "name_en": "Community 01001",
                               "level": "community"}
    assert payload["indicator"] == {"key": "pm25", "name_zh": "PM2.5浓度", "name_en": "PM2.5",
                                    "unit_of_measure": "μg/m³", "unit_of_measure_en": "μg/m³"}
    assert payload["value"] == 180.0 and payload["line"] == 115.0
    assert payload["fired_at"] == now and payload["fired_at_iso"] == "2026-11-26T10:30:00+08:00"
    assert payload["started_at"] == now - 600 and payload["started_at_iso"] == "2026-11-26T10:20:00+08:00"
    assert payload["resolved_at"] is None and payload["resolved_at_iso"] is None

    (row,) = outbox(sqlite_city_db)
    assert (row.status, row.attempts, row.delivered_at, row.last_attempt_at) == ("delivered", 1, now, now)
    assert row.response.startswith("HTTP 200") and "收到" in row.response


def test_the_payload_gives_the_unit_of_measure_in_both_languages(sqlite_city_db, now):
    """A receiver writing in English had "件/时" beside the English names."""
    from cityops.alerts.notify_message import alert_facts

    alert_id = add_alert(sqlite_city_db, now, indicator="hotline_complaints", value=5.0, line=4.0)
    with sqlite_city_db.session() as session:
        indicator = alert_facts(session, {alert_id})[alert_id]["indicator"]
    assert (indicator["unit_of_measure"], indicator["unit_of_measure_en"]) == ("件/时", "cases/h")


def test_server_errors_are_retried_with_backoff_until_delivered(sqlite_city_db, receiver, tmp_path, now):
    config = config_for(tmp_path, [{"name": "dispatch", "url": receiver.url()}],
                        retry={"attempts": 5, "first_delay": "30s", "max_delay": "1h"})
    alert_id = add_alert(sqlite_city_db, now)
    queue(sqlite_city_db, config, alert_id, now)
    receiver.answers = [500, 503]

    assert deliver_due(sqlite_city_db.url, config, now=now, environ=ENVIRON) == DeliveryReport(retried=1)
    (row,) = outbox(sqlite_city_db)
    assert (row.status, row.attempts, row.last_attempt_at, row.next_attempt_at) == ("pending", 1, now, now + 30)
    assert row.response.startswith("HTTP 500")

    assert deliver_due(sqlite_city_db.url, config, now=now + 29, environ=ENVIRON) == DeliveryReport()  # not due
    assert len(receiver.requests) == 1

    assert deliver_due(sqlite_city_db.url, config, now=now + 30, environ=ENVIRON) == DeliveryReport(retried=1)
    (row,) = outbox(sqlite_city_db)
    assert (row.attempts, row.next_attempt_at) == (2, now + 30 + 60)  # the delay doubles
    assert row.response.startswith("HTTP 503")

    assert deliver_due(sqlite_city_db.url, config, now=now + 90, environ=ENVIRON) == DeliveryReport(delivered=1)
    (row,) = outbox(sqlite_city_db)
    assert (row.status, row.attempts, row.delivered_at) == ("delivered", 3, now + 90)
    assert [body["id"] for body in receiver.bodies()] == [f"alert-{alert_id}-firing-critical"] * 3
    assert deliver_due(sqlite_city_db.url, config, now=now + 9999, environ=ENVIRON) == DeliveryReport()
    assert len(receiver.requests) == 3


def test_a_client_error_fails_at_once(sqlite_city_db, receiver, tmp_path, now):
    config = config_for(tmp_path, [{"name": "dispatch", "url": receiver.url()}])
    queue(sqlite_city_db, config, add_alert(sqlite_city_db, now), now)
    receiver.answers = [400]

    assert deliver_due(sqlite_city_db.url, config, now=now, environ=ENVIRON) == DeliveryReport(failed=1)
    (row,) = outbox(sqlite_city_db)
    assert (row.status, row.attempts, row.delivered_at) == ("failed", 1, None)
    assert row.response.startswith("HTTP 400") and "retrying will not help" in row.response
    assert deliver_due(sqlite_city_db.url, config, now=now + 86400, environ=ENVIRON) == DeliveryReport()
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [408, 429, 502])
def test_timeouts_throttling_and_gateway_errors_are_retried(sqlite_city_db, receiver, tmp_path, now, status):
    config = config_for(tmp_path, [{"name": "dispatch", "url": receiver.url()}])
    queue(sqlite_city_db, config, add_alert(sqlite_city_db, now), now)
    receiver.answers = [status]
    assert deliver_due(sqlite_city_db.url, config, now=now, environ=ENVIRON) == DeliveryReport(retried=1)
    assert outbox(sqlite_city_db)[0].response.startswith(f"HTTP {status}")


def test_exhausted_attempts_give_up(sqlite_city_db, receiver, tmp_path, now):
    config = config_for(tmp_path, [{"name": "dispatch", "url": receiver.url()}],
                        retry={"attempts": 3, "first_delay": "1m", "max_delay": "90s"})
    queue(sqlite_city_db, config, add_alert(sqlite_city_db, now), now)
    receiver.answers = [500] * 10

    reports = []
    for at in (now, now + 60, now + 60 + 90):  # 1m, then 2m capped at max_delay 90s
        reports.append(deliver_due(sqlite_city_db.url, config, now=at, environ=ENVIRON))
    assert reports == [DeliveryReport(retried=1), DeliveryReport(retried=1), DeliveryReport(failed=1)]
    (row,) = outbox(sqlite_city_db)
    assert (row.status, row.attempts) == ("failed", 3)
    assert "gave up after 3 attempts" in row.response
    assert deliver_due(sqlite_city_db.url, config, now=now + 86400, environ=ENVIRON) == DeliveryReport()
    assert len(receiver.requests) == 3


def test_an_unreachable_webhook_is_retried_while_the_others_are_delivered(sqlite_city_db, receiver, closed_port,
                                                                           tmp_path, now):
    config = config_for(tmp_path, [{"name": "down", "url": f"http://127.0.0.1:{closed_port}/hook"},
                                   {"name": "dispatch", "url": receiver.url()}])
    first, second = add_alert(sqlite_city_db, now), add_alert(sqlite_city_db, now, unit="990101001002")
    queue(sqlite_city_db, config, first, now)
    queue(sqlite_city_db, config, second, now)

    report = deliver_due(sqlite_city_db.url, config, now=now, environ=ENVIRON)

    # The unreachable target is tried once; its second notification waits for that retry instead of failing too.
    assert report == DeliveryReport(delivered=2, retried=1, deferred=1)
    assert sorted(body["alert_id"] for body in receiver.bodies()) == [first, second]
    down = [row for row in outbox(sqlite_city_db) if row.target.endswith(f":{closed_port}/hook")]
    assert [(row.status, row.attempts, row.next_attempt_at) for row in down] == [("pending", 1, now + 30),
                                                                                 ("pending", 0, now + 30)]
    assert "ConnectionError" in down[0].response and "not attempted" in down[1].response


def test_a_slow_webhook_costs_only_its_timeout(sqlite_city_db, receiver, tmp_path, now):
    slow = Receiver()
    slow.hold = threading.Event()  # answers only when the test ends
    try:
        config = config_for(tmp_path, [{"name": "slow", "url": slow.url(), "timeout": "1s"},
                                       {"name": "dispatch", "url": receiver.url()}])
        queue(sqlite_city_db, config, add_alert(sqlite_city_db, now), now)
        report = deliver_due(sqlite_city_db.url, config, now=now, environ=ENVIRON)
    finally:
        slow.close()
    assert report == DeliveryReport(delivered=1, retried=1)
    rows = {row.target: row for row in outbox(sqlite_city_db)}
    assert rows[receiver.url()].status == "delivered"
    assert rows[slow.url()].status == "pending" and "Timeout" in rows[slow.url()].response


def test_a_secret_unset_when_sending_is_named_in_the_record(sqlite_city_db, receiver, tmp_path, now):
    config = config_for(tmp_path, [{"name": "dispatch", "url": receiver.url()}])
    queue(sqlite_city_db, config, add_alert(sqlite_city_db, now), now)
    assert deliver_due(sqlite_city_db.url, config, now=now, environ={}) == DeliveryReport(retried=1)
    assert receiver.requests == []
    assert "ONESCREEN_WEBHOOK_SECRET" in outbox(sqlite_city_db)[0].response


def test_a_target_removed_from_the_config_is_not_sent_to(sqlite_city_db, receiver, tmp_path, now):
    before = config_for(tmp_path, [{"name": "dispatch", "url": receiver.url()}])
    queue(sqlite_city_db, before, add_alert(sqlite_city_db, now), now)
    after = config_for(tmp_path, [{"name": "dispatch", "url": receiver.url("/v2")}])
    assert deliver_due(sqlite_city_db.url, after, now=now, environ=ENVIRON) == DeliveryReport(failed=1)
    assert receiver.requests == []
    (row,) = outbox(sqlite_city_db)
    assert row.status == "failed" and "no webhook" in row.response


# ------------------------------------------------------------------------------------------------
# Once per breach, and who wants what
# ------------------------------------------------------------------------------------------------


def test_queueing_the_same_change_twice_notifies_once(city_db, receiver, tmp_path, now):
    """On SQLite and on PostgreSQL: the outbox's unique key makes the second queueing a no-op."""
    config = config_for(tmp_path, [{"name": "dispatch", "url": receiver.url()}],
                        email={"smtp_host": "127.0.0.1", "sender": "onescreen@city.gov",
                               "to": ["duty@city.gov", "chief@city.gov"]})
    alert_id = add_alert(city_db, now)
    assert queue(city_db, config, alert_id, now) == 3
    assert queue(city_db, config, alert_id, now + 60) == 0
    assert queue(city_db, config, alert_id, now, change="escalated") == 3  # a new change is news again
    assert len(outbox(city_db)) == 6

    webhook_only = config_for(tmp_path, [{"name": "dispatch", "url": receiver.url()}])
    assert deliver_due(city_db.url, webhook_only, now=now, environ=ENVIRON).delivered == 2
    assert deliver_due(city_db.url, webhook_only, now=now + 60, environ=ENVIRON).delivered == 0
    assert queue(city_db, config, alert_id, now + 120) == 0  # delivered already: still not again
    assert sorted(body["change"] for body in receiver.bodies()) == ["escalated", "firing"]


@pytest.mark.parametrize("change, severity, expected", [
    ("firing", "critical", {"webhook"}),             # the mail wants escalations only
    ("firing", "warning", set()),                    # the webhook wants critical only
    ("escalated", "warning", {"duty@city.gov"}),
    ("escalated", "critical", {"webhook", "duty@city.gov"}),
    ("resolved", "critical", set()),
    ("pending", "critical", set()),                  # a breach still pending is never sent
])
def test_targets_get_only_the_severities_and_changes_they_asked_for(sqlite_city_db, tmp_path, now, change, severity,
                                                                    expected):
    config = config_for(tmp_path, [{"name": "dispatch", "url": "http://dispatch.intranet/hook",
                                    "severities": ["critical"], "changes": ["firing", "escalated"]}],
                        email={"smtp_host": "mail.intranet", "sender": "onescreen@city.gov", "to": "duty@city.gov",
                               "changes": ["escalated"]})
    assert config.email.severities == {"warning", "critical"}  # by default, both
    added = queue(sqlite_city_db, config, add_alert(sqlite_city_db, now), now, change=change, severity=severity)
    targets = {row.channel if row.channel == "webhook" else row.target for row in outbox(sqlite_city_db)}
    assert (added, targets) == (len(expected), expected)


# ------------------------------------------------------------------------------------------------
# E-mail
# ------------------------------------------------------------------------------------------------


def test_an_email_reaches_the_sink_with_its_chinese_subject_and_body(sqlite_city_db, smtp_sink, tmp_path, now):
    config = config_for(tmp_path, email={
        "smtp_host": "127.0.0.1", "smtp_port": smtp_sink.port, "sender": "onescreen@city.gov",
        "to": ["duty-officer@city.gov"], "username_env": "ONESCREEN_SMTP_USER",
        "password_env": "ONESCREEN_SMTP_PASSWORD"})
    alert_id = add_alert(sqlite_city_db, now, unit="990101", indicator="pm25")
    queue(sqlite_city_db, config, alert_id, now)

    assert deliver_due(sqlite_city_db.url, config, now=now, environ=ENVIRON) == DeliveryReport(delivered=1)

    assert smtp_sink.logins == ["onescreen"]
    (mail,) = smtp_sink.messages
    assert mail["from"] == "onescreen@city.gov" and mail["to"] == ["duty-officer@city.gov"]
    message = mail["message"]
    assert message["Subject"] == "[告警 critical] 区1 · PM2.5浓度 触发 firing"
    assert message["X-OneScreen-Notification"] == f"alert-{alert_id}-firing-critical"
    text = message.get_body(("plain",)).get_content()
    assert "告警 · 区1（990101，区）· PM2.5浓度 · 触发" in text
    assert "判定值：180（告警线 115）" in text
    assert "开始：2026-11-26 10:20" in text and "触发：2026-11-26 10:30" in text
    assert "Critical · District 1 (990101, District) · PM2.5 · firing" in text
    (row,) = outbox(sqlite_city_db)
    assert (row.channel, row.target, row.status, row.attempts) == ("email", "duty-officer@city.gov", "delivered", 1)
    assert str(smtp_sink.port) in row.response


def test_a_refused_login_is_retried_and_an_unreachable_mail_server_too(sqlite_city_db, smtp_sink, closed_port,
                                                                         tmp_path, now):
    email = {"smtp_host": "127.0.0.1", "smtp_port": smtp_sink.port, "sender": "onescreen@city.gov",
             "to": ["a@city.gov", "b@city.gov"], "username_env": "ONESCREEN_SMTP_USER",
             "password_env": "ONESCREEN_SMTP_PASSWORD"}
    config = config_for(tmp_path, email=email)
    queue(sqlite_city_db, config, add_alert(sqlite_city_db, now), now)

    wrong_password = dict(ENVIRON, ONESCREEN_SMTP_PASSWORD="wrong")
    assert deliver_due(sqlite_city_db.url, config, now=now, environ=wrong_password) == DeliveryReport(retried=1,
                                                                                                     deferred=1)
    assert smtp_sink.messages == []
    assert "SMTPAuthenticationError" in outbox(sqlite_city_db)[0].response

    unreachable = config_for(tmp_path, email=dict(email, smtp_port=closed_port))
    assert deliver_due(sqlite_city_db.url, unreachable, now=now + 30, environ=ENVIRON).retried == 1
    assert deliver_due(sqlite_city_db.url, config, now=now + 90, environ=ENVIRON).delivered == 2
    assert sorted(to for mail in smtp_sink.messages for to in mail["to"]) == ["a@city.gov", "b@city.gov"]


def test_a_refused_mailbox_fails_at_once_and_the_other_recipients_still_get_theirs(sqlite_city_db, smtp_sink,
                                                                                     tmp_path, now):
    config = config_for(tmp_path, email={"smtp_host": "127.0.0.1", "smtp_port": smtp_sink.port,
                                         "sender": "onescreen@city.gov", "to": ["gone@city.gov", "duty@city.gov"]})
    smtp_sink.unknown = {"gone@city.gov"}
    queue(sqlite_city_db, config, add_alert(sqlite_city_db, now), now)

    assert deliver_due(sqlite_city_db.url, config, now=now, environ=ENVIRON) == DeliveryReport(delivered=1, failed=1)
    assert [mail["to"] for mail in smtp_sink.messages] == [["duty@city.gov"]]
    rows = {row.target: row for row in outbox(sqlite_city_db)}
    assert rows["gone@city.gov"].status == "failed" and "550" in rows["gone@city.gov"].response
    assert rows["duty@city.gov"].status == "delivered"


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------


def test_no_notifications_entry_notifies_nobody(sqlite_city_db, tmp_path, now):
    config = parse_notifications(None, tmp_path / "alerts.yaml", environ={})
    assert config.targets("firing", "critical") == []
    assert queue(sqlite_city_db, config, add_alert(sqlite_city_db, now), now) == 0
    assert (config.retry.attempts, config.retry.first_delay, config.retry.max_delay) == (8, 30, 3600)


def test_the_documented_example_parses(tmp_path):
    config = parse_notifications(yaml.safe_load("""
        webhooks:
          - {name: dispatch-center, url: "http://dispatch.intranet/hooks/onescreen",
             secret_env: ONESCREEN_WEBHOOK_SECRET, severities: [warning, critical],
             changes: [firing, escalated, resolved], timeout: 10s}
        email:
          smtp_host: mail.intranet
          starttls: true
          username_env: ONESCREEN_SMTP_USER
          password_env: ONESCREEN_SMTP_PASSWORD
          sender: onescreen@city.gov
          to: [duty-officer@city.gov]
          severities: [critical]
          changes: [firing, escalated]
        retry: {attempts: 8, first_delay: 30s, max_delay: 1h}
    """), tmp_path / "alerts.yaml", environ=ENVIRON)
    (hook,) = config.webhooks
    assert (hook.name, hook.timeout, hook.secret_env) == ("dispatch-center", 10, "ONESCREEN_WEBHOOK_SECRET")
    assert (config.email.smtp_port, config.email.starttls) == (587, True)  # starttls: the submission port
    assert [config.retry.delay_after(n) for n in (1, 2, 3, 8)] == [30, 60, 120, 3600]
    assert SECRET not in repr(config)  # only the variable's name is kept


@pytest.mark.parametrize("entry, where, message", [
    ("[]", "notifications", "expected a mapping"),
    ("{hooks: []}", "notifications", "unknown option(s) hooks"),
    ("{webhooks: [{url: 'http://x/h', secret_env: ONESCREEN_WEBHOOK_SECRET}]}", "webhook #1", "needs a name"),
    ("{webhooks: [{name: d, url: 'ftp://x/h', secret_env: ONESCREEN_WEBHOOK_SECRET}]}", "webhook 'd' (#1)",
     "url must be an http:// or https:// address"),
    ("{webhooks: [{name: d, url: 'http://x/h'}]}", "webhook 'd' (#1)", "needs secret_env"),
    ("{webhooks: [{name: d, url: 'http://x/h', secret: abc}]}", "webhook 'd' (#1)", "secrets never go in the file"),
    ("{webhooks: [{name: d, url: 'http://x/h', secret_env: 'my secret!'}]}", "webhook 'd' (#1)",
     "secret_env must name an environment variable"),
    ("{webhooks: [{name: d, url: 'http://x/h', secret_env: ONESCREEN_UNSET}]}", "webhook 'd' (#1)",
     "environment variable ONESCREEN_UNSET (secret_env) is not set"),
    ("{webhooks: [{name: d, url: 'http://x/h', secret_env: ONESCREEN_WEBHOOK_SECRET, severities: [major]}]}",
     "webhook 'd' (#1)", "severities must list some of warning, critical"),
    ("{webhooks: [{name: d, url: 'http://x/h', secret_env: ONESCREEN_WEBHOOK_SECRET, changes: [pending]}]}",
     "webhook 'd' (#1)", "changes must list some of firing, escalated, resolved"),
    ("{webhooks: [{name: d, url: 'http://x/h', secret_env: ONESCREEN_WEBHOOK_SECRET, timeout: soon}]}",
     "webhook 'd' (#1)", "timeout: 'soon' is not a duration"),
    ("{webhooks: [{name: d, url: 'http://x/h', secret_env: ONESCREEN_WEBHOOK_SECRET},"
     " {name: d, url: 'http://y/h', secret_env: ONESCREEN_WEBHOOK_SECRET}]}", "webhook 'd' (#2)", "duplicate name"),
    ("{webhooks: [{name: d, url: 'http://x/h', secret_env: ONESCREEN_WEBHOOK_SECRET},"
     " {name: e, url: 'http://x/h', secret_env: ONESCREEN_WEBHOOK_SECRET}]}", "webhook 'e' (#2)",
     "already posts to http://x/h"),
    ("{email: {sender: a@b.c, to: [d@e.f]}}", "notifications email", "needs smtp_host"),
    ("{email: {smtp_host: m, sender: nobody, to: [d@e.f]}}", "notifications email", "sender must be an e-mail"),
    ("{email: {smtp_host: m, sender: a@b.c}}", "notifications email", "to must list the recipients"),
    ("{email: {smtp_host: m, sender: a@b.c, to: [d@e.f, 'not an address']}}", "notifications email",
     "'not an address' is not an e-mail address"),
    ("{email: {smtp_host: m, smtp_port: 70000, sender: a@b.c, to: [d@e.f]}}", "notifications email",
     "smtp_port must be a port number"),
    ("{email: {smtp_host: m, starttls: maybe, sender: a@b.c, to: [d@e.f]}}", "notifications email",
     "starttls must be true or false"),
    ("{email: {smtp_host: m, username_env: ONESCREEN_SMTP_USER, sender: a@b.c, to: [d@e.f]}}",
     "notifications email", "username_env and password_env go together"),
    ("{email: {smtp_host: m, password: hunter2, sender: a@b.c, to: [d@e.f]}}", "notifications email",
     "secrets never go in the file"),
    ("{retry: {attempts: 0}}", "notifications retry", "attempts must be a whole number of at least 1"),
    ("{retry: {first_delay: 2h, max_delay: 1h}}", "notifications retry", "first_delay (7200s) must not exceed"),
    ("{retry: {backoff: 2}}", "notifications retry", "unknown option(s) backoff"),
])
def test_mistakes_name_the_file_the_entry_and_the_fix(tmp_path, entry, where, message):
    path = tmp_path / "alerts.yaml"
    with pytest.raises(RuleError) as raised:
        parse_notifications(yaml.safe_load(entry), path, environ=ENVIRON)
    assert str(raised.value).startswith(f"{path}: ")
    assert where in str(raised.value) and message in str(raised.value)
