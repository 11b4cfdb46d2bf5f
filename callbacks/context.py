"""What every callback needs: the deployment's settings and catalog, a session, the viewer's scope, and who acts.

A callback is a public HTTP endpoint: whatever unit the page sends, the scope is decided here, on the server,
from the request — never from the page's inputs. Likewise who acts on an alert: a name the page sends is recorded
as unverified, and only a trusted reverse proxy's header names a person outright (`current_actor`).
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator

from flask import Flask, Response, current_app, request as http_request
from sqlalchemy.orm import Session

from callbacks.cached_callbacks import current_data_version
from cityops.alerts.rules import Rule, RuleError, load_rules
from cityops.catalog import Catalog
from cityops.request_basics import LazySession, PinnedVersion, request_basics
from cityops.scope import Scope, Viewer
from cityops.settings import Settings
from cityops.sources import SourceConfig
from cityops.tree import UnitTree
from layouts.text import t

CONFIG_KEY = "ONESCREEN"
# The header a deployment's reverse proxy sets to the signed-in user's name, e.g. "X-Remote-User" (the proxy must
# also drop any such header a browser sends). Unset (the default): no proxy vouches for anyone, and the screen
# asks the operator for a name.
USER_HEADER_ENV = "ONESCREEN_USER_HEADER"
# The viewer's choice of language (the screen's 中/EN switch sets it); without it, the deployment's default.
LANGUAGE_COOKIE = "onescreen-language"
LANGUAGES = ("zh", "en")
LANGUAGE_COOKIE_SECONDS = 365 * 86400  # the switch in assets/navigation.js keeps it as long

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScreenContext:
    settings: Settings
    catalog: Catalog
    sources: tuple[SourceConfig, ...] = ()  # the configured connectors, for source health

    @property
    def connector_intervals(self) -> dict[str, int]:
        return {source.name: source.interval_seconds for source in self.sources}

    @cached_property
    def alert_rules(self) -> dict[str, Rule]:
        """The alert rules by name, read once per process, for what the screen says about an alert's rule.
        A file that cannot be read leaves the screen working: alerts are then shown without their rule's terms
        (the scheduler, which evaluates the rules, reports the file's error)."""
        try:
            return {rule.name: rule for rule in load_rules(self.settings.alerts_path, self.catalog)}
        except (OSError, RuleError):
            log.exception("could not read the alert rules; alerts are shown without their rules' descriptions")
            return {}


@dataclass(frozen=True)
class Request:
    """One callback's view of the world: settings, catalog, session, scope, ids, tree and the time."""

    settings: Settings
    catalog: Catalog
    scope: Scope
    ids: dict[str, int]
    tree: UnitTree
    now: int
    open_session: LazySession
    version: PinnedVersion | None  # the data version this request reads (None: the response cache is off)

    @property
    def session(self) -> Session:
        """The viewer's database session, opened by the first query (most answers of a data version need none)."""
        return self.open_session()

    @cached_property
    def language(self) -> str:
        return current_language(self.settings)

    def unit_id(self, code: str | None) -> int:
        """The id of a unit the page asked for, if the viewer may see it; otherwise the scope's root."""
        unit_id = self.tree.id_by_code.get(code) if code else None
        if unit_id is None or not self.scope.contains(self.tree, unit_id):
            return self.scope.root_id
        return unit_id


def screen_context() -> ScreenContext:
    return current_app.config[CONFIG_KEY]


def current_language(settings: Settings | None = None) -> str:
    """The language this viewer reads: their own choice (a cookie, so every request of the page carries it,
    the layout's included; on the page's own request a `?lang=` it carries chooses first, as the cookie it sets
    will for the rest), else the deployment's default."""
    for chosen in ((http_request.args.get("lang"), http_request.cookies.get(LANGUAGE_COOKIE)) if http_request else ()):
        if chosen in LANGUAGES:
            return chosen
    return (settings or screen_context().settings).language


def remember_language_parameter(server: Flask) -> None:
    """`?lang=en` (or zh) in a page's URL chooses the viewer's language as the screen's 中/EN switch does: the
    response sets the cookie, so the layout the page asks for next is drawn in that language."""

    @server.after_request
    def remember_language(response: Response) -> Response:
        chosen = http_request.args.get("lang")
        if http_request.method == "GET" and chosen in LANGUAGES:
            response.set_cookie(LANGUAGE_COOKIE, chosen, max_age=LANGUAGE_COOKIE_SECONDS, path="/", samesite="Lax")
        return response


def current_viewer() -> Viewer:
    """Who is asking. Login arrives with access control; until then everyone is the anonymous viewer."""
    return Viewer()


def current_actor(typed_name: str | None, language: str) -> str | None:
    """Who is acting on an alert, as the audit trail should record them.

    The name the deployment's reverse proxy vouches for (the ONESCREEN_USER_HEADER header), when it configures
    one and the request carries it; else the name the operator typed, marked unverified ("王值班 (未认证)"), so
    the trail never passes a typed name off as a signed-in person; else None: the action must be refused.
    """
    header = os.environ.get(USER_HEADER_ENV, "").strip()
    if header:
        vouched = http_request.headers.get(header, "").strip()
        if vouched:
            return vouched[:120]
    typed = " ".join((typed_name or "").split())[:60] if isinstance(typed_name, str) else ""
    if not typed:
        return None
    return f"{typed} ({t('unverified', language)})"


@contextmanager
def viewer_request() -> Iterator[Request]:
    """The viewer's request, its scope decided here from the server's side. Its session is opened only when a
    query runs, and then committed (or rolled back) and closed as the block ends (cityops/request_basics.py)."""
    context = screen_context()
    version = current_data_version()
    version = PinnedVersion(version) if version is not None else None
    with LazySession(context.settings.database_url) as open_session:
        # Read once per data version, not by every request (cityops/request_basics.py).
        ids, tree, scope = request_basics.read(open_session, context.catalog, current_viewer(), version)
        yield Request(context.settings, context.catalog, scope, ids, tree, int(time.time()), open_session, version)


@dataclass(frozen=True)
class View:
    """The selection, checked against the viewer's scope and resolved to ids."""

    unit_id: int
    unit_code: str
    map_parent_id: int   # whose children the map and the children ranking show
    indicator_key: str


def resolve_view(request: Request, selection: dict | None) -> View:
    selection = selection or {}
    unit_id = request.unit_id(selection.get("unit"))
    indicator_key = selection.get("indicator")
    if indicator_key not in request.catalog:
        from layouts.page import default_indicator

        indicator_key = default_indicator(request.catalog)
    # The tree's dict indexes, not pandas look-ups: every panel's callback resolves the selection first.
    unit = request.tree.row(unit_id)
    has_children = bool(request.tree.child_ids(unit_id))
    map_parent = unit_id if has_children or unit.parent_id is None else unit.parent_id
    if not request.scope.contains(request.tree, map_parent):
        map_parent = unit_id
    return View(unit_id, unit.code, map_parent, indicator_key)
