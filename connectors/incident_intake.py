"""What the runner does with incidents: mask personal data before anything is kept, validate and place each one
in its community, and, after the run, store every community's open and overdue counts as observations.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from cityops.catalog import Catalog
from cityops.db import session_scope
from cityops.hierarchy import Level
from cityops.incidents import CommunityLocator, community_locator, count_open, incident_row, mask_incident
from cityops.rollup import bucket_start, queue_rollups
from cityops.storage import upsert_observations
from cityops.tree import UnitTree
from connectors.base import FatalError, Incident, IncidentCounts, Record
from connectors.validation import FUTURE_TOLERANCE_SECONDS, Rejected, Validator

class IncidentIntake:
    """Incidents made safe to keep (personal data masked) and turned into rows: validated, placed in a community.

    The community locator is built on the first incident, so runs without incidents never read boundaries."""

    def __init__(self, database_url: str, name: str, validator: Validator, run_id: int, now: int):
        self.database_url = database_url
        self.name = name
        self.validator = validator
        self.run_id = run_id
        self.now = now
        self._locator: CommunityLocator | None = None

    @staticmethod
    def masked(item: Incident) -> Incident:
        """The incident with `contact` masked and its values, phone numbers and e-mail addresses masked in `raw`,
        `address` and `description` (and `contact`'s keys dropped from `raw`): all that is stored or quarantined."""
        safe = mask_incident(item.contact, item.raw, item.address, item.description)
        return dataclasses.replace(item, contact=safe.contact, raw=safe.raw, address=safe.address,
                                   description=safe.description)

    @property
    def locator(self) -> CommunityLocator:
        if self._locator is None:
            with session_scope(self.database_url) as session:
                self._locator = community_locator(session)
        return self._locator

    def row(self, item: Incident) -> dict:
        """A row for cityops.incidents.upsert_incidents; Rejected or InvalidIncident with the reason."""
        if item.problem:
            raise Rejected(item.problem)
        if item.opened_at is None:
            raise Rejected("no opening time")
        opened_at = self.validator.timestamp(item.opened_at)
        updated_at = opened_at if item.updated_at is None else self.validator.timestamp(item.updated_at)
        closed_at = None if item.closed_at is None else self.validator.timestamp(item.closed_at)
        for what, given, seconds in (("opening", item.opened_at, opened_at), ("update", item.updated_at, updated_at)):
            # A future update time would outrank every real update that follows it.
            if seconds > self.now + FUTURE_TOLERANCE_SECONDS:
                raise Rejected(f"{what} time {given} is in the future "
                               f"(more than {FUTURE_TOLERANCE_SECONDS // 60} min ahead of the server clock)")
        return incident_row(self.locator, source=self.name, external_id=item.external_id, category=item.category,
                            status=item.status, source_status=item.source_status, opened_at=opened_at,
                            updated_at=updated_at, closed_at=closed_at, lon=item.lon, lat=item.lat,
                            address=item.address, description=item.description, contact_masked=item.contact,
                            raw=item.raw, run_id=self.run_id, now=self.now)


def check_counting(counting: IncidentCounts, validator: Validator, tree: UnitTree, name: str) -> None:
    """Fail before fetching when incident counts could not be stored (an indicator unknown, not reported per
    community, or a connector not configured for communities), rather than after every run's fetch."""
    communities = tree.at_level(Level.COMMUNITY)
    if communities.empty:
        return
    code = str(communities["code"].iloc[0])
    for key in (counting.open_indicator, counting.overdue_indicator):
        try:
            validator.validate(Record(code, key, validator.now, 0))
        except Rejected as reason:
            raise FatalError(f"{name}: incident counts cannot be stored as {key!r}: {reason}. Check "
                             f"open_indicator / overdue_indicator (catalog indicators reported per community) and "
                             f"that the connector's levels include community") from None


def store_counts(database_url: str, counting: IncidentCounts, name: str, catalog: Catalog, ids: dict[str, int],
                  tree: UnitTree, now: int, offset: int, run_id: int) -> pd.DataFrame:
    """Every community's open and overdue counts, stored at the bucket of each indicator's interval holding
    `now` (so runs within one bucket refine one value), with their roll-ups queued. Returns the rows stored.

    All communities, not only those whose incidents changed: overdue counts grow with time alone, and a
    community whose last incident closed must read 0 rather than keep its old count until it goes stale."""
    communities = tree.at_level(Level.COMMUNITY).index
    with session_scope(database_url) as session:
        counts = count_open(session, name, communities, now, counting.overdue_after, counting.overdue_by_category)
        frames = [pd.DataFrame({"unit_id": counts.index.to_numpy(dtype="int64"), "indicator_id": ids[key],
                                "observed_at": bucket_start(now, catalog[key].interval_seconds, offset),
                                "value": counts[column].to_numpy(dtype=float), "run_id": run_id})
                  for key, column in ((counting.open_indicator, "open"), (counting.overdue_indicator, "overdue"))]
        rows = pd.concat(frames, ignore_index=True)
        upsert_observations(session, rows)
        queue_rollups(session, catalog, ids, {key: frame["observed_at"].to_numpy() for key, frame in
                                              zip((counting.open_indicator, counting.overdue_indicator), frames)},
                      offset)
    return rows
