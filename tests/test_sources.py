"""Source health for the sources panel: freshness, last run, rejected and quarantined counts, the last error,
and the panel's callback deciding on the server what it shows."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from cityops.hierarchy import Level
from cityops.sources import SourceConfig, last_failure, open_quarantine, source_statuses
from connectors.base import Connector, Health, Record, RetriableError, register
from connectors.config import ConnectorInstance
from connectors.runner import run_connector

ZONE = "Asia/Shanghai"
NOW = int(datetime(2026, 11, 26, 10, 30, tzinfo=ZoneInfo(ZONE)).timestamp())
COMMUNITY = "990101001001"


@register
class ScriptedConnector(Connector):
    """Yields config["records"], then raises config["error"] when given."""

    type_name = "test-scripted"

    def check(self) -> Health:
        return Health(True, "test")

    def fetch(self, since):
        yield from self.config["records"]
        if self.config.get("error"):
            raise self.config["error"]


def scripted(name, records, error=None) -> ConnectorInstance:
    return ConnectorInstance(name=name, type="test-scripted", levels=(Level.COMMUNITY,), interval_seconds=300,
                             config={"records": records, "error": error})


GOOD = Record(COMMUNITY, "hotline_complaints", NOW - 600, 3)
BAD = Record("000000000000", "hotline_complaints", NOW - 600, 1, raw={"site": "000000000000", "n": 1})
SOURCES = [SourceConfig("street-office", "test-scripted", (Level.COMMUNITY,), 300),
           SourceConfig("district-api", "test-scripted", (Level.COMMUNITY,), 300),
           SourceConfig("never-ran", "test-scripted", (Level.COMMUNITY,), 3600, cron="0 * * * *")]


def test_statuses_tell_fresh_late_and_silent_sources_and_count_rejections(sqlite_city_db):
    url, catalog = sqlite_city_db.url, sqlite_city_db.catalog
    run_connector(url, scripted("street-office", [GOOD, BAD]), catalog, timezone=ZONE, now=NOW - 60)
    run_connector(url, scripted("district-api", [GOOD]), catalog, timezone=ZONE, now=NOW - 3000)
    run_connector(url, scripted("district-api", [], RetriableError("HTTP 503 from district-api after 4 attempts")),
                  catalog, timezone=ZONE, now=NOW - 60)
    with sqlite_city_db.session() as session:
        statuses = {s.config.name: s for s in source_statuses(session, SOURCES, NOW)}
        failure = last_failure(session, "district-api")
        rows = open_quarantine(session, "street-office")
    office, api, never = statuses["street-office"], statuses["district-api"], statuses["never-ran"]
    # Freshness is measured from the last *successful* run's end (the real clock), against the schedule.
    assert office.freshness == "fresh" and office.last_run.status == "partial"
    assert (office.last_run.accepted, office.last_run.rejected) == (1, 1)
    assert (office.rejected_recently, office.open_quarantine) == (1, 1)
    assert api.failing and api.last_run.error_family == "retriable"
    assert never.freshness == "silent" and never.last_run is None and not never.failing
    assert failure.error_message == "HTTP 503 from district-api after 4 attempts"
    assert [(r.reason, r.raw) for r in rows] == [("unknown unit code '000000000000'",
                                                  '{"site": "000000000000", "n": 1}')]


def test_the_panel_shows_configured_sources_and_details_only_for_a_configured_name(sqlite_city_db, tmp_path):
    from app import create_app
    from callbacks.context import CONFIG_KEY
    from callbacks.sources import sources_body
    from cityops.settings import Settings

    url, catalog = sqlite_city_db.url, sqlite_city_db.catalog
    run_connector(url, scripted("street-office", [GOOD, BAD]), catalog, timezone=ZONE)
    app = create_app(replace(Settings(), database_url=url, run_scheduler=False))
    app.server.config[CONFIG_KEY] = replace(app.server.config[CONFIG_KEY], sources=tuple(SOURCES))
    with app.server.test_request_context("/"):
        listing = str(sources_body(None))
        detail = str(sources_body("street-office"))
        forged = str(sources_body("'; DROP TABLE units; --"))
    for source in SOURCES:
        assert source.name in listing
    assert "unknown unit code '000000000000'" not in listing
    assert "unknown unit code '000000000000'" in detail and "000000000000" in detail
    assert forged == listing  # an unknown name shows the list, never an error or another source's records
