"""Runs every configured connector on its schedule: one scheduler per deployment, never overlapping runs.
After each run the alert rules are evaluated on what it stored, and once a minute for silence
(cityops/alerts/job.py).

`start_scheduler` takes an exclusive lock file first, so a second web process, the reloader's child or a
separate `onescreen scheduler` on the same deployment cannot start a second copy.
"""

from __future__ import annotations

import fcntl
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import undefined

from cityops.alerts.job import TICK_SECONDS, AlertJob
from cityops.catalog import load_catalog
from cityops.memory import release_free_memory
from cityops.settings import Settings
from connectors.config import ConnectorConfigError, ConnectorInstance, load_connectors
from connectors.runner import run_connector

log = logging.getLogger(__name__)


@dataclass
class SchedulerHandle:
    scheduler: BackgroundScheduler | BlockingScheduler
    lock_file: object
    jobs: "ConnectorJobs | None" = None

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        fcntl.flock(self.lock_file, fcntl.LOCK_UN)
        self.lock_file.close()


def lock_path(settings: Settings) -> Path:
    return Path(os.environ.get("ONESCREEN_LOCK_DIR", settings.connectors_path.parent.parent / "var")) / "scheduler.lock"


def _acquire_lock(settings: Settings):
    path = lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


RELOAD_CHECK_SECONDS = 10


class ConnectorJobs:
    """The scheduler's jobs, kept in step with the connectors file.

    - Each enabled connector runs on its interval or cron schedule, never overlapping itself.
    - A run that fails with a *fatal* error (configuration, authentication) pauses that connector: retrying would
      only repeat the failure. It shows as paused (log, `onescreen connectors`, the screen's source panel) and
      resumes when the connectors file changes or at the next restart.
    - A run that fails because the source asked to wait (HTTP 429 or 503 with `Retry-After` longer than the
      client waits within a run) moves the connector's next run to when the source said, not before: calling a
      throttling API again on the usual schedule only prolongs the throttle.
    - The connectors file is checked every few seconds; when it changes, jobs are added, removed or rescheduled.
      A file with an error keeps the previous jobs running and logs the error (file, entry and fix).
    """

    def __init__(self, settings: Settings, scheduler, first_run_delay: float = 0.0):
        self.settings = settings
        self.scheduler = scheduler
        self.first_run_delay = first_run_delay
        self.catalog = load_catalog(settings.catalog_path)
        self.alerts = AlertJob(settings, self.catalog)
        self.instances: dict[str, ConnectorInstance] = {}
        self.paused: dict[str, str] = {}  # connector name → why
        self.signature = None

    def load(self) -> None:
        """(Re)read the connectors file and make the jobs match it."""
        path = self.settings.connectors_path
        signature = _signature(path)
        if signature == self.signature:
            return
        try:
            instances = {i.name: i for i in load_connectors(path, self.catalog.keys, self.settings.timezone)
                         if i.enabled}
        except (ConnectorConfigError, OSError) as error:
            self.signature = signature  # do not log the same broken file every few seconds
            log.error("connectors file not reloaded, previous schedule kept: %s", error)
            return
        first = self.signature is None
        self.signature = signature
        for name in set(self.instances) - set(instances):
            self.scheduler.remove_job(name)
            log.info("connector %s removed from the schedule", name)
        start = datetime.now(timezone.utc) + timedelta(seconds=self.first_run_delay if first else 0)
        for name, instance in instances.items():
            if self.instances.get(name) == instance and name not in self.paused:
                continue
            self.scheduler.add_job(self.run, _trigger(instance, self.settings.timezone), args=[name], id=name,
                                   name=name, replace_existing=True, max_instances=1, coalesce=True,
                                   misfire_grace_time=max(30, instance.interval_seconds // 2),
                                   # A rescheduled job keeps to its trigger (None would add it paused).
                                   next_run_time=start if first or name not in self.instances else undefined)
            if not first:
                log.info("connector %s %s", name, "scheduled" if name not in self.instances else "rescheduled")
        self.instances = instances
        self.paused.clear()

    def run(self, name: str) -> None:
        instance = self.instances.get(name)
        if instance is None:
            return
        summary = run_connector(self.settings.database_url, instance, self.catalog, timezone=self.settings.timezone,
                                archive_root=self.settings.archive_dir, timeout=instance.timeout_seconds)
        log.info("connector %s: %s (%d fetched, %d accepted, %d rejected) in %.1fs", name, summary.status,
                 summary.fetched, summary.accepted, summary.rejected, summary.seconds)
        self.alerts.after_run(summary.touched, summary.fresh)
        # A run builds and drops its frames (~100 MB for the demo city): give that back, not keep it (cityops/memory.py).
        release_free_memory()
        if summary.status in ("failed", "partial") and summary.retry_after:
            self._postpone(name, summary.retry_after)
        if summary.status == "failed" and summary.error_family == "fatal":
            self.paused[name] = summary.error_message or "fatal error"
            job = self.scheduler.get_job(name)
            if job is not None:
                job.pause()
            log.error("connector %s paused after a fatal error (fix %s or the source; it resumes when the file "
                      "changes): %s", name, self.settings.connectors_path, summary.error_message)

    def _postpone(self, name: str, seconds: float) -> None:
        job = self.scheduler.get_job(name)
        if job is None or job.next_run_time is None:
            return
        earliest = datetime.now(timezone.utc) + timedelta(seconds=seconds)
        if job.next_run_time < earliest:
            job.modify(next_run_time=earliest)
            log.warning("connector %s: the source asked to wait %.0f s (Retry-After); next run at %s", name, seconds,
                        earliest.isoformat(timespec="seconds"))


def _signature(path: Path):
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


def _trigger(instance: ConnectorInstance, zone: str):
    if instance.cron:
        from zoneinfo import ZoneInfo

        return CronTrigger.from_crontab(instance.cron, timezone=ZoneInfo(zone))
    return IntervalTrigger(seconds=instance.interval_seconds)


def start_scheduler(settings: Settings, *, blocking: bool = False, first_run_delay: float = 0.0):
    """Start the deployment's scheduler, or return None when another process already runs it."""
    lock = _acquire_lock(settings)
    if lock is None:
        log.info("scheduler already running in another process (%s); not starting a second", lock_path(settings))
        return None
    # APScheduler logs every job start and end at INFO, the file check every 10 s included: operators would read
    # nothing else. Runs are logged here, one line each; APScheduler's warnings and errors still come through.
    for name in ("apscheduler.executors", "apscheduler.scheduler"):
        logging.getLogger(name).setLevel(logging.WARNING)
    scheduler = (BlockingScheduler if blocking else BackgroundScheduler)(timezone=timezone.utc)
    jobs = ConnectorJobs(settings, scheduler, first_run_delay)
    try:
        jobs.load()
    except Exception:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
        raise
    scheduler.add_job(jobs.load, "interval", seconds=RELOAD_CHECK_SECONDS, id=RELOAD_JOB, name="reload connectors",
                      max_instances=1, coalesce=True)
    scheduler.add_job(jobs.alerts.tick, "interval", seconds=TICK_SECONDS, id=ALERTS_JOB, name="alerts",
                      max_instances=1, coalesce=True)

    def on_event(event):
        if event.code == EVENT_JOB_MISSED:
            log.warning("connector %s missed its run at %s (the previous run was still going?)",
                        event.job_id, event.scheduled_run_time)
        else:
            log.error("connector %s job raised: %s", event.job_id, event.exception)

    scheduler.add_listener(on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
    handle = SchedulerHandle(scheduler, lock, jobs)
    log.info("scheduler started with %d connector(s)", len(jobs.instances))
    scheduler.start()  # a BlockingScheduler returns only when stopped
    return handle


RELOAD_JOB = "reload-connectors"
ALERTS_JOB = "alerts"
