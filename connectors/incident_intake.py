"""What the runner does with incidents: mask personal data before anything is kept, validate and place each one
in its community, and, after the run, store every community's open and overdue counts as observations.

The runner takes incidents one at a time (`IncidentIntake.masked`, then `row`) or a page at a time (`batch`, for
an `IncidentBatch`). A page is done with a few passes over its columns: masking with one search over the page's
texts, times read by one comprehension per column, checks and rows built column by column, all points placed in
one query of the community tree. The few incidents that fail a check are judged alone by the single-incident code,
so each comes out exactly as it would alone: the same row, or the same reason.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from functools import partial
from operator import is_not

import numpy as np
import pandas as pd

from cityops.buckets import bucket_start
from cityops.catalog import Catalog
from cityops.db import session_scope
from cityops.hierarchy import Level
from cityops.incident_masking import MaskedIncident, mask_incident, mask_incidents
from cityops.incidents import (COLUMNS, CommunityLocator, InvalidIncident, community_locator, count_open,
                               incident_rows, incident_rows_from_columns)
from cityops.rollup import queue_rollups
from cityops.storage import upsert_observations
from cityops.tree import UnitTree
from connectors.base import FatalError, Incident, IncidentBatch, IncidentCounts, Record
from connectors.validation import FUTURE_TOLERANCE_SECONDS, Rejected, Validator

_MASKED = ("contact", "raw", "address", "description")  # the fields masking may change
_UPDATED = COLUMNS.index("updated_at")


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

    @property
    def locator(self) -> CommunityLocator:
        if self._locator is None:
            with session_scope(self.database_url) as session:
                self._locator = community_locator(session)
        return self._locator

    # -- one incident --------------------------------------------------------------------------------

    def masked(self, item: Incident) -> Incident:
        """The incident with `contact` masked and its values, phone numbers and e-mail addresses masked in `raw`,
        `address` and `description` (and `contact`'s keys dropped from `raw`): all that is stored or quarantined."""
        return _with(item, mask_incident(item.contact, item.raw, item.address, item.description))

    def row(self, item: Incident) -> dict:
        """A row for cityops.incidents.upsert_incidents; Rejected or InvalidIncident with the reason."""
        outcome = incident_rows(self.locator, [self._fields(item)], source=self.name, run_id=self.run_id,
                                now=self.now)[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

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

    # -- a page of them ------------------------------------------------------------------------------

    def batch(self, batch: IncidentBatch) -> tuple[list[tuple], list[tuple[str, Incident]], int | None]:
        """(rows for cityops.incidents.upsert_incidents (values in its COLUMNS' order), [(reason, masked
        incident)] to quarantine, the newest `updated_at` of the rows) of a page of incidents, in the page's order:
        what `masked` and `row` give each of them."""
        columns = self._masked_columns(batch)
        opened, updated, closed, rejected = self._times(batch, columns)
        kept = [position for position in range(len(batch)) if position not in rejected] if rejected \
            else range(len(batch))
        fields = {"external_id": columns["external_id"], "category": columns["category"],
                  "status": columns["status"], "source_status": columns["source_status"], "opened_at": opened,
                  "updated_at": updated, "closed_at": closed, "lon": columns["lon"], "lat": columns["lat"],
                  "address": columns["address"], "description": columns["description"],
                  "contact_masked": columns["contact"], "raw": columns["raw"]}
        if rejected:
            fields = {name: [values[position] for position in kept] for name, values in fields.items()}
        outcomes = incident_rows_from_columns(self.locator, fields, source=self.name, run_id=self.run_id,
                                              now=self.now)
        rows = [outcome for outcome in outcomes if not isinstance(outcome, InvalidIncident)]
        if len(rows) < len(outcomes):
            rejected.update((kept[index], str(outcome)) for index, outcome in enumerate(outcomes)
                            if isinstance(outcome, InvalidIncident))
        quarantined = [(rejected[position], _incident_of(batch, columns, position)) for position in sorted(rejected)]
        return rows, quarantined, max((row[_UPDATED] for row in rows), default=None)

    def _times(self, batch: IncidentBatch, columns: dict[str, list]) -> tuple[list, list, list, dict[int, str]]:
        """Every incident's opening, update and closing time in epoch seconds, and by position the reasons of
        those whose times (or `problem`) make them rejected, as `_fields` gives them."""
        given_updates = columns["updated_at"]
        # Each column of times read in one pass (one array computation for the page's column).
        (opened, wrong_opened), (updates, wrong_updates), (closed, wrong_closed) = (
            self._seconds(columns[name]) for name in ("opened_at", "updated_at", "closed_at"))
        updated = updates if given_updates.count(None) == 0 else \
            [opening if given is None else update for opening, given, update in zip(opened, given_updates, updates)]
        latest = self.now + FUTURE_TOLERANCE_SECONDS
        suspects = {*wrong_opened, *wrong_updates, *wrong_closed}
        problems = columns["problem"]
        if problems.count(None) < len(problems):
            suspects.update(position for position, problem in enumerate(problems) if problem)
        # Each column looked at position by position only when it holds a time missing or in the future.
        if opened.count(None) or max(opened, default=0) > latest:
            suspects.update(position for position, opening in enumerate(opened)
                            if opening is None or opening > latest)
        if max(filter(_is_time, updated), default=0) > latest:
            suspects.update(position for position, update in enumerate(updated)
                            if update is not None and update > latest)
        rejected: dict[int, str] = {}
        for position in sorted(suspects):
            try:
                self._fields(_incident_of(batch, columns, position))
            except Rejected as reason:
                rejected[position] = str(reason)
            else:
                raise AssertionError(f"incident {position} of {batch.source_of(position)} failed a check on its "
                                     f"times that `_fields` passes")
        return opened, updated, closed, rejected

    def _masked_columns(self, batch: IncidentBatch) -> dict[str, list]:
        """The batch's columns with what `masked` changes in each incident changed."""
        columns = batch.columns
        changed = mask_incidents(*(columns[name] for name in _MASKED), already_masked=batch.masked_rows)
        if not changed:
            return columns
        masked = {name: list(columns[name]) for name in _MASKED}
        for position, safe in changed.items():
            for name in _MASKED:
                masked[name][position] = getattr(safe, name)
        return {**columns, **masked}

    def _seconds(self, values: list) -> tuple[list[int | None], set[int]]:
        """Each time as epoch seconds (None where it is None or no time) and the positions of those that are no
        time: what `Validator.timestamp` reads. Texts in the usual form are read with array arithmetic, other ISO
        texts by one comprehension, anything else by `timestamp` itself."""
        if values.count(None) == len(values):  # a column the source does not fill (no closing times)
            return list(values), set()
        positions, fixed = _usual_form_seconds(values)
        if len(positions) == len(values):
            return fixed.tolist(), set()
        seconds = list(values)
        for position, value in zip(positions.tolist(), fixed.tolist()):
            seconds[position] = value
        # An int is its own epoch seconds (as `timestamp` says); bool is no int here.
        rest = [position for position, value in enumerate(seconds) if value is not None and type(value) is not int]
        zone = self.validator.zone
        # The first and last years are left to `timestamp`: converting them to UTC may leave the calendar.
        read = [int((value if value.tzinfo is not None else value.replace(tzinfo=zone)).timestamp())
                if type(value) is datetime and 1 < value.year < 9999 else value
                for value in _parsed_times([values[position] for position in rest])]
        wrong: set[int] = set()
        for position, value in zip(rest, read):
            if type(value) is int:
                seconds[position] = value
                continue
            try:
                seconds[position] = self.validator.timestamp(values[position])
            except Rejected:
                seconds[position] = None
                wrong.add(position)
        return seconds, wrong


def _parsed_times(values: list) -> list:
    """Texts as `datetime.fromisoformat` reads them after `Validator.timestamp`'s clean-up; anything else (and
    texts it cannot read) as given, for `timestamp` to judge."""
    try:
        return [_FROM_ISO(value.strip().replace("Z", "+00:00")) if isinstance(value, str) else value
                for value in values]
    except ValueError:  # a text that is no ISO time: read the others one by one
        return [_parsed_time(value) for value in values]


def _parsed_time(value):
    if not isinstance(value, str):
        return value
    try:
        return _FROM_ISO(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return value


_FROM_ISO = datetime.fromisoformat
_is_time = partial(is_not, None)  # a time in seconds, not None

# The usual form of a time with its offset, 2026-11-26T10:30:00+08:00 (or with a space for T): where its digits
# are, and the days before each month in a common year.
_USUAL_LENGTH = 25
_USUAL_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 23, 24]
_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _usual_form_seconds(values: list) -> tuple[np.ndarray, np.ndarray]:
    """(positions, epoch seconds) of the texts written exactly in the usual form and naming a real moment (what
    `datetime.fromisoformat` reads them as), computed with array arithmetic; the others are not among them."""
    if set(map(type, values)) == {str} and set(map(len, values)) == {_USUAL_LENGTH}:
        positions = range(len(values))  # the usual page: every time is a text of the usual length
        texts = values
    else:
        positions = [position for position, value in enumerate(values)
                     if type(value) is str and len(value) == _USUAL_LENGTH]
        texts = [values[position] for position in positions]
    none = np.empty(0, dtype=np.int64)
    joined = "".join(texts)
    if not positions or not joined.isascii():  # not ASCII: not the usual form (the page is read otherwise)
        return none, none
    codes = np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(-1, _USUAL_LENGTH)
    digits = codes[:, _USUAL_DIGITS].astype(np.int64) - ord("0")
    pairs = digits[:, 4:].reshape(-1, 7, 2) @ np.array([10, 1])
    year = digits[:, :4] @ np.array([1000, 100, 10, 1])
    month, day, hour, minute, second, offset_hours, offset_minutes = pairs.T
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_days = _MONTH_DAYS[np.clip(month, 1, 12) - 1] + (leap & (month == 2))
    usual = (((digits >= 0) & (digits <= 9)).all(axis=1)
             & (codes[:, 4] == ord("-")) & (codes[:, 7] == ord("-"))
             & ((codes[:, 10] == ord("T")) | (codes[:, 10] == ord(" ")))
             & (codes[:, 13] == ord(":")) & (codes[:, 16] == ord(":")) & (codes[:, 22] == ord(":"))
             & ((codes[:, 19] == ord("+")) | (codes[:, 19] == ord("-")))
             # fromisoformat's limits (the first and last years are left to `timestamp`, as datetimes are)
             & (year > 1) & (year < 9999) & (month >= 1) & (month <= 12) & (day >= 1) & (day <= month_days)
             & (hour <= 23) & (minute <= 59) & (second <= 59) & (offset_hours <= 23) & (offset_minutes <= 59))
    # Days since 1970-01-01 of the proleptic Gregorian date (H. Hinnant's days_from_civil).
    shifted = year - (month <= 2)
    era = shifted // 400
    year_of_era = shifted - era * 400
    day_of_year = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    days = era * 146097 + year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year - 719468
    offset = np.where(codes[:, 19] == ord("-"), -1, 1) * (offset_hours * 3600 + offset_minutes * 60)
    seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset
    return np.asarray(positions, dtype=np.int64)[usual], seconds[usual]


def _incident_of(batch: IncidentBatch, columns: dict[str, list], position: int) -> Incident:
    """The incident at `position` of the batch, with its masked fields."""
    return Incident(**{name: columns[name][position] for name in IncidentBatch.FIELDS},
                    source=batch.source_of(position))


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
