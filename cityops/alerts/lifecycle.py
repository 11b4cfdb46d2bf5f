"""What people do with an alert: acknowledge, assign, comment, close with a resolution — each recorded with who
and when (`alert_events`), each authorised against the viewer's scope.

These are the only writers of the people's columns of `alerts`; the screen's callbacks call them with the
viewer taken from the request, never from what the page sent.
"""

from __future__ import annotations

import json

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from cityops.models import Alert, AlertEvent
from cityops.scope import Scope
from cityops.tree import UnitTree

MAX_TEXT = 2000


class AlertActionError(ValueError):
    """An action that cannot be taken; the message says why, in words for the person who tried."""


def _open_alert(session: Session, scope: Scope, tree: UnitTree, alert_id: int, *, allow_closed: bool = False) -> Alert:
    alert = session.get(Alert, int(alert_id), with_for_update=True)
    if alert is None:
        raise AlertActionError(f"alert {alert_id} does not exist")
    scope.require(tree, alert.unit_id)  # OutOfScope: the unit is outside what this viewer may see
    if alert.phase == "pending":
        raise AlertActionError(f"alert {alert_id} has not fired yet (its breach has not held long enough)")
    if alert.closed_at is not None and not allow_closed:
        raise AlertActionError(f"alert {alert_id} was closed by {alert.closed_by}; it cannot be changed")
    return alert


def _actor(actor: str) -> str:
    actor = (actor or "").strip()
    if not actor:
        raise AlertActionError("who is acting must be known (sign in first)")
    return actor[:120]


def _text(text: str, what: str) -> str:
    text = (text or "").strip()
    if not text:
        raise AlertActionError(f"{what} must not be empty")
    if len(text) > MAX_TEXT:
        raise AlertActionError(f"{what} is {len(text)} characters; keep it under {MAX_TEXT}")
    return text


def _record(session: Session, alert: Alert, actor: str, action: str, now: int, **detail) -> None:
    session.execute(insert(AlertEvent).values(alert_id=alert.id, at=now, actor=actor, action=action,
                                              detail=json.dumps(detail, ensure_ascii=False) if detail else None))


def acknowledge(session: Session, scope: Scope, tree: UnitTree, alert_id: int, actor: str, now: int) -> Alert:
    """Someone has seen it and owns getting it handled. Acknowledging twice changes nothing."""
    actor = _actor(actor)
    alert = _open_alert(session, scope, tree, alert_id)
    if alert.acknowledged_at is None:
        alert.acknowledged_at, alert.acknowledged_by = now, actor
        _record(session, alert, actor, "acknowledged", now)
    return alert


def assign(session: Session, scope: Scope, tree: UnitTree, alert_id: int, assignee: str, actor: str,
           now: int) -> Alert:
    """Hand it to a unit or a person to handle (assigning also counts as dispatched)."""
    actor, assignee = _actor(actor), _text(assignee, "the assignee")[:120]
    alert = _open_alert(session, scope, tree, alert_id)
    if alert.assignee != assignee:
        alert.assignee, alert.assigned_at = assignee, now
        _record(session, alert, actor, "assigned", now, assignee=assignee)
    return alert


def comment(session: Session, scope: Scope, tree: UnitTree, alert_id: int, text: str, actor: str,
            now: int) -> Alert:
    """A note on the alert (also after it is closed: what was found later belongs with it)."""
    actor, text = _actor(actor), _text(text, "the comment")
    alert = _open_alert(session, scope, tree, alert_id, allow_closed=True)
    _record(session, alert, actor, "commented", now, text=text)
    return alert


def close(session: Session, scope: Scope, tree: UnitTree, alert_id: int, resolution: str, actor: str,
          now: int) -> Alert:
    """Close it with what was done. A breach still going on afterwards stays with this alert (it does not
    fire again until it has recovered and breached anew)."""
    actor, resolution = _actor(actor), _text(resolution, "the resolution")
    alert = _open_alert(session, scope, tree, alert_id)
    alert.closed_at, alert.closed_by, alert.resolution = now, actor, resolution
    _record(session, alert, actor, "closed", now, resolution=resolution)
    return alert


def history(session: Session, scope: Scope, tree: UnitTree, alert_id: int) -> list[dict]:
    """The alert's events, oldest first: {at, actor, action, detail}."""
    alert = session.get(Alert, int(alert_id))
    if alert is None:
        raise AlertActionError(f"alert {alert_id} does not exist")
    scope.require(tree, alert.unit_id)
    rows = session.execute(select(AlertEvent.at, AlertEvent.actor, AlertEvent.action, AlertEvent.detail)
                           .where(AlertEvent.alert_id == alert.id).order_by(AlertEvent.id)).all()
    return [{"at": at, "actor": actor, "action": action, "detail": json.loads(detail) if detail else {}}
            for at, actor, action, detail in rows]
