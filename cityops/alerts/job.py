"""The alert work of a running deployment: evaluate after every ingest, watch for silence, send notifications.

The scheduler (connectors/scheduler.py, one per deployment) calls `after_run` when a connector has stored values
and `tick` once a minute. Evaluations never overlap (one lock): two connectors finishing together would
otherwise both take the same episode through the state machine. The alerts file is re-read when it changes;
a broken file keeps the previous rules running and logs the error (file, rule and fix).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from cityops.alerts.evaluate import EvaluationReport, evaluate_alerts
from cityops.alerts.rules import AlertConfig, RuleError, load_alert_config
from cityops.catalog import Catalog
from cityops.db import session_scope
from cityops.settings import Settings
from cityops.storage import indicator_ids
from cityops.tree import load_tree

log = logging.getLogger(__name__)

TICK_SECONDS = 60


def _utc_offset(zone_name: str, at: float) -> int:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    offset = datetime.fromtimestamp(at, ZoneInfo(zone_name)).utcoffset()
    return int(offset.total_seconds()) if offset else 0


class AlertJob:
    def __init__(self, settings: Settings, catalog: Catalog):
        self.settings = settings
        self.catalog = catalog
        self._lock = threading.Lock()
        self._config: AlertConfig | None = None
        self._signature = None

    @property
    def config(self) -> AlertConfig | None:
        path = Path(self.settings.alerts_path)
        try:
            stat = path.stat()
            signature = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            signature = None
        if signature != self._signature:
            self._signature = signature
            try:
                self._config = load_alert_config(path, self.catalog, timezone=self.settings.timezone)
                log.info("alert rules loaded: %d rule(s) from %s", len(self._config.rules), path)
            except (RuleError, OSError) as error:
                log.error("alert rules not (re)loaded%s: %s",
                          ", previous rules kept" if self._config else "; no alerts are evaluated", error)
        return self._config

    def evaluate(self, touched: set[str] | None = None, now: int | None = None,
                 fresh=None) -> EvaluationReport | None:
        """Evaluate what `touched` changed (None: every indicator; an empty set: only the silence rules); `fresh`:
        the rows an ingest committed, judged from memory (see evaluate_alerts)."""
        config = self.config
        if config is None:
            return None
        now = int(time.time()) if now is None else now
        with self._lock, session_scope(self.settings.database_url) as session:
            report = evaluate_alerts(session, self.catalog, indicator_ids(session, self.catalog), load_tree(session),
                                     config, now, touched, _utc_offset(self.settings.timezone, now), fresh,
                                     self.sources())
        changes = dict(report.stored.changes)
        if changes or report.closed:
            log.info("alerts: %s%s (%d judgements in %.2fs)", ", ".join(f"{n} {c}" for c, n in changes.items()),
                     f", {report.closed} closed after recovery" if report.closed else "", report.judged,
                     report.seconds)
        return report

    def sources(self) -> dict[str, int]:
        """The enabled connectors and their intervals, for the rules about sources' silence (the connectors file
        as it is now; a broken file leaves the sources unwatched until fixed, and says so)."""
        import connectors  # noqa: F401  (registers the built-in types)
        from connectors.config import ConnectorConfigError, load_connectors

        try:
            instances = load_connectors(self.settings.connectors_path, self.catalog.keys, self.settings.timezone)
        except (ConnectorConfigError, OSError) as error:
            log.error("sources not watched for silence until the connectors file is fixed: %s", error)
            return {}
        return {instance.name: instance.interval_seconds for instance in instances if instance.enabled}

    def deliver(self, now: int | None = None) -> None:
        config = self.config
        if config is None or config.notifications is None:
            return
        from cityops.alerts.notify import deliver_due

        report = deliver_due(self.settings.database_url, config.notifications, now)
        if report.delivered or report.retried or report.failed or report.deferred:
            log.info("notifications: %d delivered, %d to retry, %d given up, %d waiting for their target",
                     report.delivered, report.retried, report.failed, report.deferred)

    def after_run(self, touched: set[str], fresh=None) -> None:
        if not touched:
            return
        try:
            self.evaluate(set(touched), fresh=fresh)
            self.deliver()
        except Exception:  # noqa: BLE001 - alerts failing must not stop the connectors; the next run retries
            log.exception("alert evaluation after an ingest failed; it is retried after the next one")

    def tick(self) -> None:
        """Silence is noticed without any ingest; notifications due for a retry go out."""
        try:
            self.evaluate(set())
            self.deliver()
        except Exception:  # noqa: BLE001
            log.exception("alert evaluation failed; retried in %d s", TICK_SECONDS)
