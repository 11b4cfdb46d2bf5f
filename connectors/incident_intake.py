"""What the runner does with incidents: mask personal data before anything is kept, validate and place each one
in its community, and, after the run, store every community's open and overdue counts as observations.

The runner takes incidents in one at a time. A type that reads them by the page yields `PagedIncident`s of one
`IncidentPage`: the intake then does that work for the whole page when the first of them comes in (masking with
one search over the page's texts, placing all points in one query of the community tree, timestamps and rows
in one pass) and hands each incident its outcome as the runner asks, which is what it would have been alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pandas as pd

from cityops.catalog import Catalog
from cityops.db import session_scope
from cityops.hierarchy import Level
from cityops.incident_masking import MaskedIncident, mask_incident, mask_incidents, mask_rows
from cityops.incidents import CommunityLocator, community_locator, count_open, incident_rows
from cityops.rollup import bucket_start, queue_rollups
from cityops.storage import upsert_observations
from cityops.tree import UnitTree
from connectors.base import FatalError, Incident, IncidentCounts, Record
from connectors.validation import FUTURE_TOLERANCE_SECONDS, Rejected, Validator


@dataclass(eq=False)
class IncidentPage:
    """Incidents a type read together (one page of its source), taken in by the intake as one. Made by `masked`
    from the page's source rows, so that an incident keeping one of those rows as its `raw` need not have it
    searched for personal data again."""

    rows: list = field(default_factory=list, init=False)  # the source's rows, masked by `masked`
    items: list[Incident] | None = None
    # Per position, once the intake took the page in: (masked fields, None when masking changed nothing; the row,
    # or the reason it is quarantined).
    outcomes: list[tuple[MaskedIncident | None, dict | Exception]] | None = None

    @classmethod
    def masked(cls, rows: list, personal_fields: list[str]) -> "IncidentPage":
        """A page of the source's rows with their personal fields masked (cityops.incident_masking.mask_rows):
        what a type archives and makes its incidents from."""
        page = cls()
        page.rows = mask_rows(rows, personal_fields)
        return page

    def incidents(self, fields: list[dict]) -> list["PagedIncident"]:
        """The page's incidents, from each one's fields (as `Incident` takes them)."""
        self.items = [PagedIncident(**each, page=self, position=position) for position, each in enumerate(fields)]
        return self.items


@dataclass(frozen=True, eq=False)
class PagedIncident(Incident):
    """An incident of an `IncidentPage`. The intake computes its outcome from the fields it had when its page
    was taken in (the runner only renames its `source`)."""

    page: IncidentPage | None = field(default=None, repr=False)
    position: int = 0


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

    def masked(self, item: Incident) -> Incident:
        """The incident with `contact` masked and its values, phone numbers and e-mail addresses masked in `raw`,
        `address` and `description` (and `contact`'s keys dropped from `raw`): all that is stored or quarantined."""
        if isinstance(item, PagedIncident) and item.page is not None:
            safe = self._outcome(item)[0]
            return item if safe is None else _with(item, safe)
        return _with(item, mask_incident(item.contact, item.raw, item.address, item.description))

    @property
    def locator(self) -> CommunityLocator:
        if self._locator is None:
            with session_scope(self.database_url) as session:
                self._locator = community_locator(session)
        return self._locator

    def row(self, item: Incident) -> dict:
        """A row for cityops.incidents.upsert_incidents; Rejected or InvalidIncident with the reason."""
        if isinstance(item, PagedIncident) and item.page is not None:
            outcome = self._outcome(item)[1]
            if isinstance(outcome, Exception):
                raise outcome
            return outcome
        outcome = self._rows([item])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _outcome(self, item: PagedIncident) -> tuple[MaskedIncident | None, dict | Exception]:
        page = item.page
        if page.outcomes is None:
            items = page.items or []
            masks = mask_incidents([(each.contact, each.raw, each.address, each.description) for each in items],
                                   already_masked=page.rows)
            rows = self._rows([each if safe is None else _with(each, safe) for each, safe in zip(items, masks)])
            page.outcomes = list(zip(masks, rows))
            page.items = None  # what the page needs now is its outcomes (and the incidents no longer hold a cycle)
        return page.outcomes[item.position]

    def _rows(self, items: list[Incident]) -> list[dict | Exception]:
        """Rows of (masked) incidents, or the Rejected / InvalidIncident saying why each cannot be one."""
        outcomes: list[dict | Exception | None] = []
        valid = []
        for item in items:
            try:
                valid.append(self._fields(item))
                outcomes.append(None)
            except Rejected as reason:
                outcomes.append(reason)
        rows = iter(incident_rows(self.locator, valid, source=self.name, run_id=self.run_id, now=self.now)
                    if valid else [])
        return [next(rows) if outcome is None else outcome for outcome in outcomes]

    def _fields(self, item: Incident) -> dict:
        """The incident's fields as cityops.incidents.incident_rows takes them: times read and checked."""
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
        return {"external_id": item.external_id, "category": item.category, "status": item.status,
                "source_status": item.source_status, "opened_at": opened_at, "updated_at": updated_at,
                "closed_at": closed_at, "lon": item.lon, "lat": item.lat, "address": item.address,
                "description": item.description, "contact_masked": item.contact, "raw": item.raw}


def _with(item: Incident, safe: MaskedIncident) -> Incident:
    return dataclasses.replace(item, contact=safe.contact, raw=safe.raw, address=safe.address,
                               description=safe.description)


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
