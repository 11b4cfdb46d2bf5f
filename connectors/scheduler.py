"""Runs every configured connector on its interval: one scheduler per deployment, never overlapping runs.

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

from cityops.catalog import load_catalog
from cityops.settings import Settings
from connectors.config import load_connectors
from connectors.runner import run_connector

log = logging.getLogger(__name__)


@dataclass
class SchedulerHandle:
    scheduler: BackgroundScheduler | BlockingScheduler
    lock_file: object

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


def start_scheduler(settings: Settings, *, blocking: bool = False, first_run_delay: float = 0.0):
    """Start the deployment's scheduler, or return None when another process already runs it."""
    lock = _acquire_lock(settings)
    if lock is None:
        log.info("scheduler already running in another process (%s); not starting a second", lock_path(settings))
        return None
    catalog = load_catalog(settings.catalog_path)
    instances = [i for i in load_connectors(settings.connectors_path) if i.enabled]
    scheduler = (BlockingScheduler if blocking else BackgroundScheduler)(timezone=timezone.utc)

    def job(instance):
        summary = run_connector(settings.database_url, instance, catalog, timezone=settings.timezone)
        log.info("connector %s: %s (%d fetched, %d accepted, %d rejected) in %.1fs", instance.name,
                 summary.status, summary.fetched, summary.accepted, summary.rejected, summary.seconds)

    start = datetime.now(timezone.utc) + timedelta(seconds=first_run_delay)
    for instance in instances:
        scheduler.add_job(job, "interval", args=[instance], seconds=instance.interval_seconds, id=instance.name,
                          name=instance.name, next_run_time=start, max_instances=1, coalesce=True,
                          misfire_grace_time=max(30, instance.interval_seconds // 2))

    def on_event(event):
        if event.code == EVENT_JOB_MISSED:
            log.warning("connector %s missed its run at %s (the previous run was still going?)",
                        event.job_id, event.scheduled_run_time)
        else:
            log.error("connector %s job raised: %s", event.job_id, event.exception)

    scheduler.add_listener(on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
    handle = SchedulerHandle(scheduler, lock)
    log.info("scheduler started with %d connector(s)", len(instances))
    scheduler.start()  # a BlockingScheduler returns only when stopped
    return handle
