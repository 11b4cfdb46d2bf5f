"""Who hears about alerts, and how hard to try: the `notifications:` part of data/alerts.yaml, validated up front.

    notifications:
      webhooks:
        - name: dispatch-center                      # unique; named in errors and in the delivery records
          url: http://dispatch.intranet/hooks/onescreen
          secret_env: ONESCREEN_WEBHOOK_SECRET       # the variable holding the shared secret that signs the body
          severities: [warning, critical]            # default: both
          changes: [firing, escalated, resolved]     # default: all three
          timeout: 10s                               # default 10s
      email:
        smtp_host: mail.intranet
        smtp_port: 25                                # default 25 (587 with starttls: true)
        starttls: false
        username_env: ONESCREEN_SMTP_USER            # optional, together with password_env
        password_env: ONESCREEN_SMTP_PASSWORD
        sender: onescreen@city.gov
        to: [duty-officer@city.gov]
        severities: [critical]
        changes: [firing, escalated]
        timeout: 10s                                 # default 10s
      retry: {attempts: 8, first_delay: 30s, max_delay: 1h}   # exponential backoff

Secrets never live in the file, only the names of the environment variables that hold them. Those variables are
checked when the file is loaded (the `environ` given, os.environ by default), so a deployment that forgot one
fails at start-up rather than at the first alert; they are read again when sending, so a rotated secret is used
without reloading. As in rules.py, an error names the file, the entry and what to change, and nothing half-loads.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Mapping
from urllib.parse import urlsplit

from cityops.alerts.rules import RuleError
from cityops.catalog import parse_duration

SEVERITIES = ("warning", "critical")
CHANGES = ("firing", "escalated", "resolved")  # a pending breach is not news: it may still end as a blip
TARGET_MAX_LENGTH = 255  # alert_notifications.target
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ADDRESS = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+$")

_WEBHOOK_KEYS = {"name", "url", "secret_env", "severities", "changes", "timeout"}
_EMAIL_KEYS = {"smtp_host", "smtp_port", "starttls", "username_env", "password_env", "sender", "to", "severities",
               "changes", "timeout"}
_RETRY_KEYS = {"attempts", "first_delay", "max_delay"}
_SECRET_HINT = ("secrets never go in the file: put the value in an environment variable and name the variable "
                "with secret_env / username_env / password_env")


@dataclass(frozen=True)
class _Filter:
    severities: frozenset[str]
    changes: frozenset[str]

    def wants(self, change: str, severity: str) -> bool:
        return str(change) in self.changes and str(severity) in self.severities


@dataclass(frozen=True)
class Webhook(_Filter):
    channel: ClassVar[str] = "webhook"
    name: str = ""
    url: str = ""
    secret_env: str = ""
    timeout: int = 10


@dataclass(frozen=True)
class EmailSettings(_Filter):
    channel: ClassVar[str] = "email"
    smtp_host: str = ""
    smtp_port: int = 25
    starttls: bool = False
    username_env: str | None = None
    password_env: str | None = None
    sender: str = ""
    to: tuple[str, ...] = ()
    timeout: int = 10


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    first_delay: int = 30
    max_delay: int = 3600

    def delay_after(self, attempts: int) -> int:
        """Seconds to wait after the `attempts`-th failed attempt: first_delay, doubling, at most max_delay."""
        return min(self.first_delay * 2 ** max(attempts - 1, 0), self.max_delay)


@dataclass(frozen=True)
class NotificationConfig:
    webhooks: tuple[Webhook, ...] = ()
    email: EmailSettings | None = None
    retry: RetryPolicy = RetryPolicy()
    timezone: str = "Asia/Shanghai"  # for the times people read (the e-mail); the JSON carries UTC offsets too

    def targets(self, change: str, severity: str) -> list[tuple[str, str]]:
        """(channel, target) for every recipient of this change at this severity: webhook URLs, e-mail addresses."""
        found = [(hook.channel, hook.url) for hook in self.webhooks if hook.wants(change, severity)]
        if self.email is not None and self.email.wants(change, severity):
            found += [(self.email.channel, address) for address in self.email.to]
        return found

    def webhook_for(self, url: str) -> Webhook | None:
        return next((hook for hook in self.webhooks if hook.url == url), None)


def parse_notifications(entry: object, path: Path, environ: Mapping[str, str] | None = None,
                        timezone: str = "Asia/Shanghai") -> NotificationConfig:
    """The `notifications:` mapping of the alerts file (None: nobody is notified) → NotificationConfig."""
    environ = os.environ if environ is None else environ
    if entry is None:
        return NotificationConfig(timezone=timezone)
    if not isinstance(entry, dict):
        raise RuleError(f"{path}: notifications: expected a mapping with webhooks, email and/or retry, "
                        f"not {type(entry).__name__}")
    _no_unknown(entry, {"webhooks", "email", "retry"}, f"{path}: notifications")
    webhooks = _webhooks(entry.get("webhooks", []), path, environ)
    email = None
    if entry.get("email") is not None:
        where = f"{path}: notifications email"
        try:
            email = _email(entry["email"], environ)
        except ValueError as error:
            raise RuleError(f"{where}: {error}") from None
    try:
        retry = _retry(entry.get("retry") or {})
    except ValueError as error:
        raise RuleError(f"{path}: notifications retry: {error}") from None
    return NotificationConfig(webhooks, email, retry, timezone)


def _webhooks(entries: object, path: Path, environ: Mapping[str, str]) -> tuple[Webhook, ...]:
    if not isinstance(entries, list):
        raise RuleError(f"{path}: notifications webhooks: expected a list of webhooks (- name: …, url: …)")
    hooks: list[Webhook] = []
    for position, item in enumerate(entries, start=1):
        where = f"{path}: notifications webhook #{position}"
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            where = f"{path}: notifications webhook '{item['name']}' (#{position})"
        try:
            hook = _webhook(item, environ)
        except ValueError as error:
            raise RuleError(f"{where}: {error}") from None
        if any(other.name == hook.name for other in hooks):
            raise RuleError(f"{where}: duplicate name; give every webhook its own")
        if any(other.url == hook.url for other in hooks):
            raise RuleError(f"{where}: another webhook already posts to {hook.url} (deliveries are recorded by "
                            f"URL); merge the two entries")
        hooks.append(hook)
    return tuple(hooks)


def _webhook(item: object, environ: Mapping[str, str]) -> Webhook:
    if not isinstance(item, dict):
        raise ValueError("expected a mapping with name, url and secret_env")
    _no_unknown(item, _WEBHOOK_KEYS)
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("needs a name (text), e.g. name: dispatch-center")
    url = item.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"url must be an http:// or https:// address, not {url!r}")
    if len(url) > TARGET_MAX_LENGTH:
        raise ValueError(f"url is longer than {TARGET_MAX_LENGTH} characters; use a shorter address")
    secret_env = item.get("secret_env")
    if secret_env is None:
        raise ValueError("needs secret_env: the environment variable holding the shared secret that signs each "
                         "delivery, e.g. secret_env: ONESCREEN_WEBHOOK_SECRET")
    _check_env("secret_env", secret_env, environ)
    return Webhook(*_filter(item), name=name.strip(), url=url, secret_env=secret_env,
                   timeout=_duration(item, "timeout", 10))


def _email(item: object, environ: Mapping[str, str]) -> EmailSettings:
    if not isinstance(item, dict):
        raise ValueError("expected a mapping with smtp_host, sender and to")
    _no_unknown(item, _EMAIL_KEYS)
    host = item.get("smtp_host")
    if not isinstance(host, str) or not host.strip():
        raise ValueError("needs smtp_host: the mail server's name, e.g. smtp_host: mail.intranet")
    starttls = item.get("starttls", False)
    if not isinstance(starttls, bool):
        raise ValueError(f"starttls must be true or false, not {starttls!r}")
    port = item.get("smtp_port", 587 if starttls else 25)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"smtp_port must be a port number (1-65535), not {port!r}")
    if ("username_env" in item) != ("password_env" in item):
        raise ValueError("username_env and password_env go together (both, for a server that wants a login, "
                         "or neither)")
    for key in ("username_env", "password_env"):
        if key in item:
            _check_env(key, item[key], environ)
    sender = item.get("sender")
    if not isinstance(sender, str) or not _ADDRESS.match(sender):
        raise ValueError(f"sender must be an e-mail address, e.g. sender: onescreen@city.gov, not {sender!r}")
    given = item.get("to")
    to = [given] if isinstance(given, str) else given
    if not isinstance(to, list) or not to:
        raise ValueError("to must list the recipients' addresses, e.g. to: [duty-officer@city.gov]")
    bad = [address for address in to if not isinstance(address, str) or not _ADDRESS.match(address)
           or len(address) > TARGET_MAX_LENGTH]
    if bad:
        raise ValueError(f"to: {', '.join(map(repr, bad))} is not an e-mail address")
    return EmailSettings(*_filter(item), smtp_host=host.strip(), smtp_port=port, starttls=starttls,
                         username_env=item.get("username_env"), password_env=item.get("password_env"),
                         sender=sender, to=tuple(dict.fromkeys(to)), timeout=_duration(item, "timeout", 10))


def _retry(item: object) -> RetryPolicy:
    if not isinstance(item, dict):
        raise ValueError("expected a mapping, e.g. retry: {attempts: 8, first_delay: 30s, max_delay: 1h}")
    _no_unknown(item, _RETRY_KEYS)
    attempts = item.get("attempts", RetryPolicy.attempts)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"attempts must be a whole number of at least 1, not {attempts!r}")
    first_delay = _duration(item, "first_delay", RetryPolicy.first_delay)
    max_delay = _duration(item, "max_delay", RetryPolicy.max_delay)
    if first_delay > max_delay:
        raise ValueError(f"first_delay ({first_delay}s) must not exceed max_delay ({max_delay}s)")
    return RetryPolicy(attempts, first_delay, max_delay)


def _filter(item: dict) -> tuple[frozenset[str], frozenset[str]]:
    return _choice(item, "severities", SEVERITIES), _choice(item, "changes", CHANGES)


def _choice(item: dict, key: str, allowed: tuple[str, ...]) -> frozenset[str]:
    given = item.get(key, list(allowed))
    names = [given] if isinstance(given, str) else given
    if not isinstance(names, list) or not names or any(name not in allowed for name in names):
        raise ValueError(f"{key} must list some of {', '.join(allowed)}, not {given!r}")
    return frozenset(names)


def _duration(item: dict, key: str, default: int) -> int:
    try:
        return parse_duration(item.get(key, default))
    except ValueError as error:
        raise ValueError(f"{key}: {error}") from None


def _check_env(key: str, name: object, environ: Mapping[str, str]) -> None:
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        raise ValueError(f"{key} must name an environment variable (e.g. ONESCREEN_WEBHOOK_SECRET), not {name!r}; "
                         f"{_SECRET_HINT}")
    if not environ.get(name):
        raise ValueError(f"environment variable {name} ({key}) is not set; set it where OneScreen runs, or remove "
                         f"this entry")


def _no_unknown(item: dict, allowed: set[str], where: str | None = None) -> None:
    unknown = sorted(map(str, set(item) - allowed))
    if not unknown:
        return
    message = f"unknown option(s) {', '.join(unknown)}; it takes {', '.join(sorted(allowed))}"
    if any(word in key for key in unknown for word in ("secret", "password", "token")):
        message += f" ({_SECRET_HINT})"
    if where is None:
        raise ValueError(message)
    raise RuleError(f"{where}: {message}")
