"""What a notification says: the webhook's JSON and the e-mail, built from the alert as the database holds it.

Both are built when sent, not when queued, so a notification delivered late tells the alert's current times (a
firing notification retried after the recovery shows resolved_at). The words for severities are the screen's
(layouts/text.py: 预警 warning, 告警 critical), so a duty officer reads the same word in the mail and on the wall.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.hierarchy import Level
from cityops.models import Alert, Indicator, Unit

SEVERITY_WORDS = {"warning": ("预警", "Warning"), "critical": ("告警", "Critical")}
CHANGE_WORDS = {"firing": ("触发", "firing"), "escalated": ("升级", "escalated"), "resolved": ("恢复", "resolved")}
_TIMES = ("started_at", "fired_at", "resolved_at")


def notification_id(alert_id: int, change: str, severity: str) -> str:
    """The same for every attempt of one notification (and for every target): receivers de-duplicate by it."""
    return f"alert-{alert_id}-{change}-{severity}"


def alert_facts(session: Session, alert_ids: set[int]) -> dict[int, dict]:
    """Per alert id: the alert with its unit and indicator, as plain values (they outlive the session)."""
    if not alert_ids:
        return {}
    rows = session.execute(
        select(Alert, Unit.code, Unit.name_zh, Unit.name_en, Unit.level,
               Indicator.key, Indicator.name_zh, Indicator.name_en, Indicator.unit_of_measure,
               Indicator.unit_of_measure_en)
        .outerjoin(Unit, Unit.id == Alert.unit_id)
        .outerjoin(Indicator, Indicator.id == Alert.indicator_id)  # 0 (a rule about a source) joins nothing
        .where(Alert.id.in_(sorted(alert_ids))))
    facts = {}
    for alert, code, unit_zh, unit_en, level, key, indicator_zh, indicator_en, measure, measure_en in rows:
        facts[alert.id] = {
            "rule": alert.rule, "phase": alert.phase, "value": alert.value, "line": alert.line,
            **{name: getattr(alert, name) for name in _TIMES},
            "unit": None if code is None else {"code": code, "name_zh": unit_zh, "name_en": unit_en,
                                               "level": Level(level).name.lower()},
            "indicator": None if key is None else {"key": key, "name_zh": indicator_zh, "name_en": indicator_en,
                                                   "unit_of_measure": measure,
                                                   "unit_of_measure_en": measure_en or measure},
        }
    return facts


def payload(row, facts: dict, timezone: str) -> dict:
    """The webhook body for one notification row (alert_id, change, severity) of the alert `facts` describe."""
    zone = ZoneInfo(timezone)
    body = {"id": notification_id(row.alert_id, row.change, row.severity), "alert_id": row.alert_id,
            "change": row.change, "severity": row.severity, "rule": facts["rule"], "phase": facts["phase"],
            "unit": facts["unit"], "indicator": facts["indicator"], "value": facts["value"], "line": facts["line"]}
    for name in _TIMES:
        body[name] = facts[name]
        body[f"{name}_iso"] = None if facts[name] is None else datetime.fromtimestamp(facts[name], zone).isoformat()
    return body


def email_message(row, facts: dict, sender: str, now: int, timezone: str) -> EmailMessage:
    """A plain-text mail, Chinese then English, to `row.target`."""
    zone = ZoneInfo(timezone)
    severity_zh, severity_en = SEVERITY_WORDS.get(row.severity, (row.severity, row.severity))
    change_zh, change_en = CHANGE_WORDS.get(row.change, (row.change, row.change))
    unit, indicator = facts["unit"] or {}, facts["indicator"] or {}
    unit_zh, unit_en = unit.get("name_zh", "?"), unit.get("name_en", "?")
    # A rule about a source has no indicator: its name says what went wrong.
    what_zh, what_en = indicator.get("name_zh", facts["rule"]), indicator.get("name_en", facts["rule"])
    level = Level[unit["level"].upper()] if unit else None

    def when(name: str) -> str:
        moment = facts[name]
        return "—" if moment is None else datetime.fromtimestamp(moment, zone).strftime("%Y-%m-%d %H:%M")

    # The judged value is in the indicator's unit only for threshold rules (else %, z, seconds…), and the row
    # does not say which kind of rule made the alert: the number is shown bare, next to the line it crossed.
    reading, line = _number(facts["value"]), _number(facts["line"])
    code = unit.get("code", "?")
    text = "\n".join([
        f"{severity_zh} · {unit_zh}（{code}，{level.label_zh if level else '?'}）· {what_zh} · {change_zh}",
        f"规则：{facts['rule']}",
        f"判定值：{reading}（{severity_zh}线 {line}）",
        f"开始：{when('started_at')}　触发：{when('fired_at')}　恢复：{when('resolved_at')}（{timezone}）",
        "",
        f"{severity_en} · {unit_en} ({code}, {level.label_en if level else '?'}) · {what_en} · {change_en}",
        f"Rule: {facts['rule']}",
        f"Value judged: {reading} ({severity_en.lower()} line {line})",
        f"Started: {when('started_at')}  Fired: {when('fired_at')}  Resolved: {when('resolved_at')} ({timezone})",
        "",
        f"OneScreen · {notification_id(row.alert_id, row.change, row.severity)}",
    ])
    message = EmailMessage()
    message["Subject"] = f"[{severity_zh} {row.severity}] {unit_zh} · {what_zh} {change_zh} {row.change}"
    message["From"] = sender
    message["To"] = row.target
    message["Date"] = format_datetime(datetime.fromtimestamp(now, zone))
    message["Message-ID"] = make_msgid("onescreen", domain=sender.rpartition("@")[2])
    message["X-OneScreen-Notification"] = notification_id(row.alert_id, row.change, row.severity)
    message.set_content(text + "\n")
    return message


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"
