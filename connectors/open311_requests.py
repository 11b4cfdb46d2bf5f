"""A page of Open311 GeoReport v2 service requests as incident columns (connectors/open311.py reads the pages):
ids, categories, open or closed, times, point, address, description, the requester's contact apart from the raw
row, and for a request that cannot be an incident, why. Pure: no I/O; the page is already masked."""

from __future__ import annotations

from itertools import repeat
from typing import Any

from cityops.incidents import TEXT_TYPES
from connectors.base import IncidentBatch


def requests_batch(page: list, source: str, category_fields: tuple[str, str], closed: set[str],
                   personal: list[str]) -> IncidentBatch:
    """The incidents of one page's (masked) service requests, as columns; a request that cannot be one is
    quarantined with why (its `problem`). `category_fields`: the field naming the category, then the one used
    where it is blank; `closed`: the source's statuses that mean closed (lower case); `personal`: the requester's
    fields, taken out of the raw row into the contact."""
    rows = page if set(map(type, page)) == {dict} else [row if isinstance(row, dict) else {} for row in page]
    idents = request_ids(rows)
    opened = _field(rows, "requested_datetime")
    statuses = _field(rows, "status")
    updates = _field(rows, "updated_datetime")
    chosen, other = category_fields
    categories = _field(rows, chosen)
    contacts, raws = contacts_and_raws(page, personal)
    return IncidentBatch({
        "external_id": [ident or "" for ident in idents],
        "category": categories if all(categories) else
        [category or row.get(other) for category, row in zip(categories, rows)],
        "status": open_or_closed(statuses, closed),
        "source_status": list(statuses) if set(map(type, statuses)) <= TEXT_TYPES else
        [None if status is None else str(status) for status in statuses],
        "opened_at": opened,
        "updated_at": updates if all(updates) else
        [update or opening for update, opening in zip(updates, opened)],
        "closed_at": _field(rows, "closed_datetime"),
        "lon": _field(rows, "long"), "lat": _field(rows, "lat"),
        "address": _field(rows, "address"), "description": _field(rows, "description"),
        "contact": contacts, "raw": raws,
        "problem": [None] * len(page) if idents.count(None) == 0 and all(opened) else
        [None if ident is not None and opening else _problem(request, ident)
         for request, ident, opening in zip(page, idents, opened)],
    }, source, masked_rows=page)


def open_or_closed(statuses: list, closed: set[str]) -> list[str]:
    """Each source status as open or closed (`closed`: the source's closed statuses, any case and blanks
    around)."""
    def word(status: Any) -> str:
        return "closed" if str(status or "").strip().lower() in closed else "open"

    if set(map(type, statuses)) <= TEXT_TYPES:  # a page has a few statuses: each judged once
        words = {status: word(status) for status in set(statuses)}
        return list(map(words.__getitem__, statuses))
    return [word(status) for status in statuses]


def contacts_and_raws(page: list, personal_fields: list[str]) -> tuple[list[dict], list]:
    """Each (masked) request's personal fields (its contact) and the request without them (its raw)."""
    keys = set().union(*(row for row in page if isinstance(row, dict)))
    wanted = {name.lower() for name in personal_fields}
    personal = {key for key in keys if str(key).lower() in wanted}
    if not personal:
        return [{}] * len(page), page  # nothing to take out: the rows are kept as they are
    contacts, raws = [], []
    for row in page:
        if not isinstance(row, dict) or personal.isdisjoint(row):
            contacts.append({})
            raws.append(row)
        else:
            contacts.append({key: value for key, value in row.items()
                             if key in personal and value is not None and str(value).strip()})
            raws.append({key: value for key, value in row.items() if key not in personal})
    return contacts, raws



def _field(rows: list[dict], key: str) -> list:
    """Each row's value of `key` (None where it has none)."""
    return list(map(dict.get, rows, repeat(key)))


def request_ids(rows: list) -> list[str | None]:
    """Each request's service_request_id as text (None: none, or blank)."""
    idents = _field(rows, "service_request_id") if set(map(type, rows)) == {dict} else \
        [row.get("service_request_id") if isinstance(row, dict) else None for row in rows]
    if set(map(type, idents)) == {str}:
        return [ident.strip() or None for ident in idents]
    return [None if ident is None else str(ident).strip() or None for ident in idents]


def _problem(request: Any, ident: str | None) -> str:
    """Why a request without an id or an opening time cannot be an incident."""
    if not isinstance(request, dict):
        return f"a service request must be an object, not {type(request).__name__}"
    if ident is None:
        return "no service_request_id"
    return f"service request {ident}: no requested_datetime"
