"""Masking an incident's personal data: a requester's contact is never stored, archived or quarantined in clear.

`mask_contact` keeps a masked form of each contact field (phone 138****5678, e-mail z***@example.com, name 张*,
ids ****7f3a); `mask_text` masks the clear contact values, mobile numbers and e-mail addresses wherever they appear
in free text, and `scrub` does so through a whole source row, dropping its personal keys. Masks are idempotent
(masking a mask changes nothing), so a payload archived masked replays into exactly what was stored.

A source delivers requests by the page, and most texts in a page hold nothing personal: `mask_rows` and
`mask_incidents` mask a page at once, finding the texts that hold a mobile number or an e-mail address in one pass
over all of them (for rows, first over the page's JSON text: when that holds neither, no text in the page does),
and give exactly what masking each row or incident on its own gives.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from operator import is_
from typing import Any

import numpy as np
import orjson

MASK = "*"
# Chinese mobile numbers (optionally +86, spaced or dashed as 138 1234 5678) and e-mail addresses in free text.
_MOBILE = re.compile(r"(?<![\d*])(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?![\d*])")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# What every mobile number found by _MOBILE contains: a text without it holds none (found ten times faster).
_MOBILE_CORE = re.compile(r"1[3-9]\d[ -]?\d{4}[ -]?\d{4}")
_COUNTRY_CODE = re.compile(r"\s*(?:\+|00)\d{1,3}[ -]")
# A clear value shorter than this is not searched for in free text: one character would mask half the text.
_SHORTEST_SEARCHED = 2
# Joins a page's texts for one search: neither pattern can match it, so no match spans two texts, and a match
# next to it is judged as at the start or end of its own text.
_TEXT_SEPARATOR = "\x00"


def mask_phone(text: str) -> str:
    """Digits masked but the first 3 and last 4 (13812345678 → 138****5678); short numbers keep their last 2.
    A country code (+86) and separators stay, and masked positions count as digits, so a mask masked again is
    unchanged."""
    country = _COUNTRY_CODE.match(text)
    start = country.end() if country else 0
    positions = [i for i, char in enumerate(text) if i >= start and (char.isdigit() or char == MASK)]
    keep = set(positions[:3] + positions[-4:]) if len(positions) >= 8 else set(positions[-2:])
    hidden = set(positions) - keep
    return "".join(MASK if i in hidden else char for i, char in enumerate(text))


def mask_email(text: str) -> str:
    """The first character of the mailbox and the domain (zhang.san@example.com → z***@example.com)."""
    local, _, domain = text.partition("@")
    return f"{local[:1]}{MASK * 3}@{domain}"


def mask_name(text: str) -> str:
    """The first character (张三丰 → 张**): enough to address someone, not to identify them."""
    return text[:1] + MASK * (len(text) - 1)


def mask_other(text: str) -> str:
    """An identifier (device, account): its last 4 characters behind ****, or **** when it is short."""
    return MASK * 4 + text[-4:] if len(text) >= 8 else MASK * 4


def mask_value(key: str, value: Any) -> str:
    """A personal value masked by what it is, judged by its field name and, failing that, its form."""
    text = str(value).strip()
    name = key.lower()
    if "mail" in name or ("@" in text and _EMAIL.fullmatch(text.replace(MASK, "x"))):
        return mask_email(text) if "@" in text else mask_other(text)
    if any(word in name for word in ("phone", "mobile", "tel")) or re.fullmatch(r"[+\d][\d *()-]{6,}", text):
        return mask_phone(text)
    if "name" in name:
        return mask_name(text)
    return mask_other(text)


def mask_contact(contact: dict | None) -> dict[str, str]:
    """Each non-empty contact field masked; nothing else of `contact` is kept."""
    return {str(key): mask_value(str(key), value) for key, value in (contact or {}).items()
            if value is not None and str(value).strip()}


def mask_text(text: str, clear: Iterable[tuple[str, str]] = ()) -> str:
    """Free text with the given (clear value, mask) pairs, mobile numbers and e-mail addresses masked."""
    for value, masked in sorted(clear, key=lambda pair: -len(pair[0])):  # longest first: a name inside an e-mail
        if len(value) < _SHORTEST_SEARCHED or value not in text:
            continue
        if value.isascii():
            # Latin text has word boundaries: the surname Li is masked, "Lingling Road" is not.
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", lambda _: masked, text)
        else:
            text = text.replace(value, masked)
    if "@" in text:
        text = _EMAIL.sub(lambda found: mask_email(found.group(0)), text)
    return _MOBILE.sub(lambda found: mask_phone(found.group(0)), text)


def _clear_pairs(contact: dict | None) -> list[tuple[str, str]]:
    return [(str(value).strip(), mask_value(str(key), value)) for key, value in (contact or {}).items()
            if value is not None and str(value).strip()]


def scrub(value: Any, contact: dict | None = None, drop_keys: Iterable[str] = ()) -> Any:
    """A source row (any JSON-like value) safe to store: keys in `drop_keys` (any case, at any depth) removed, and
    every text masked as `mask_text` does, with `contact`'s clear values among those masked."""
    return _scrub(value, _clear_pairs(contact), {key.lower() for key in drop_keys})


def _scrub(value: Any, clear: list[tuple[str, str]], drop: set[str]) -> Any:
    if isinstance(value, str):
        return mask_text(value, clear)
    if isinstance(value, dict):
        return {key: _scrub(item, clear, drop) for key, item in value.items() if str(key).lower() not in drop}
    if isinstance(value, (list, tuple)):
        return [_scrub(item, clear, drop) for item in value]
    return value


def mask_personal(row: Any, fields: Iterable[str]) -> Any:
    """A source row with its personal `fields` (any case, top level) replaced by their masks and every text
    scrubbed of their clear values: what a connector archives, so nothing personal reaches the disk in clear."""
    if not isinstance(row, dict):
        return scrub(row)
    wanted = {name.lower() for name in fields}
    personal = {key: value for key, value in row.items() if str(key).lower() in wanted}
    clear = _clear_pairs({key: value for key, value in personal.items() if _is_scalar(value)})
    return {key: _masked_field(key, value) if key in personal else _scrub(value, clear, set())
            for key, value in row.items()}


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _masked_field(key: Any, value: Any) -> Any:
    """A personal field's value as it may be kept: masked; empty stays empty; a structure is not kept at all."""
    if value is None or isinstance(value, bool) or (_is_scalar(value) and not str(value).strip()):
        return value
    return mask_value(str(key), value) if _is_scalar(value) else MASK * 4


@dataclass(frozen=True)
class MaskedIncident:
    """An incident's personal data made safe to store: `contact` masked, the rest scrubbed of it."""

    contact: dict[str, str]
    raw: Any
    address: str | None
    description: str | None


def mask_incident(contact: dict | None, raw: Any, address: str | None, description: str | None) -> MaskedIncident:
    """Everything of an incident that may hold personal data, masked; `raw` also loses `contact`'s keys."""
    clear = _clear_pairs(contact)
    drop = {str(key).lower() for key in (contact or {})}
    return MaskedIncident(mask_contact(contact), _scrub(raw, clear, drop),
                          mask_text(address, clear) if isinstance(address, str) else address,
                          mask_text(description, clear) if isinstance(description, str) else description)


# ------------------------------------------------------------------------------------------------
# A page at once
# ------------------------------------------------------------------------------------------------


def mask_rows(rows: list, fields: Iterable[str]) -> list:
    """`[mask_personal(row, fields) for row in rows]` for rows as parsed from JSON (dicts, lists, texts, numbers,
    booleans, null): a row that holds no personal field comes back as the same object when nothing in it needed
    masking. Most pages hold nothing to mask outside their personal fields, which one search of their JSON text
    shows; the others have their flat rows' texts searched together."""
    return mask_rows_and_json(rows, fields)[0]


def mask_rows_and_json(rows: list, fields: Iterable[str]) -> tuple[list, bytes | None]:
    """`mask_rows`, and the JSON text (orjson's bytes) of the list it returns when that text was made for the
    search, i.e. when the page needed no masking at all (None otherwise): archiving the page need not make it
    again."""
    fields = list(fields)
    wanted = {name.lower() for name in fields}
    keys = set().union(*(row for row in rows if isinstance(row, dict)))
    personal_keys = {key for key in keys if str(key).lower() in wanted}
    if not personal_keys:
        text = _json_text(rows)
        if not _may_hold_contact(text):
            return list(rows), text
    elif not _may_hold_contact(_json_text([row for row in rows
                                           if not isinstance(row, dict) or personal_keys.isdisjoint(row)])):
        return [row if not isinstance(row, dict) or personal_keys.isdisjoint(row) else mask_personal(row, fields)
                for row in rows], None
    masked = list(rows)
    texts = _PageTexts()
    for position, row in enumerate(rows):
        if not isinstance(row, dict) or not personal_keys.isdisjoint(row) or not texts.gather(position, row):
            masked[position] = mask_personal(row, fields)
    for position, key, text in texts.to_mask():
        if masked[position] is rows[position]:
            masked[position] = dict(rows[position])
        masked[position][key] = mask_text(text)
    return masked, None


def _json_text(values: list) -> bytes | None:
    """The values' JSON text (orjson's); None for what it refuses (integers beyond 64 bits, keys not text)."""
    try:
        return orjson.dumps(values)
    except TypeError:  # orjson.JSONEncodeError is one
        return None


def _may_hold_contact(text: bytes | None) -> bool:
    """Whether a text anywhere in the values of this JSON text may hold a mobile number or an e-mail address
    (False: none does; None, no JSON text: perhaps). A match of either is digits, spaces, hyphens, letters and "@",
    which JSON text keeps as they are, so it shows in the values' JSON text (numbers and keys there can only add
    false alarms)."""
    if text is None:
        return True
    return b"@" in text or _MOBILE_CORE.search(text.decode()) is not None


def mask_incidents(contacts: list, raws: list, addresses: list, descriptions: list,
                   already_masked: list | tuple = ()) -> dict[int, MaskedIncident]:
    """For incidents given as columns (each one's contact, raw, address and description), by position,
    `mask_incident` of those it may change: all but those with an empty contact dict and no mobile number or
    e-mail address in `raw`, `address` or `description` (those it leaves as they are). The texts of flat `raw`
    dicts, addresses and descriptions are searched together. A `raw` that is one of the rows `mask_rows` returned
    (`already_masked`, the very objects) is not searched again: without contact, masking it changes nothing
    (masks are idempotent)."""
    careful = {position for position, contact in enumerate(contacts) if not (isinstance(contact, dict)
                                                                               and not contact)}
    texts: list[str] = []
    owners: list[int] = []
    for column in (addresses, descriptions):
        found = [(position, value) for position, value in enumerate(column) if isinstance(value, str)]
        owners += [position for position, _ in found]
        texts += [value for _, value in found]
    if len(raws) == len(already_masked) and all(map(is_, raws, already_masked)):
        searched = []  # each raw is the masked row at its position (a type keeping its rows as they are)
    else:
        trusted = {id(row) for row in already_masked}  # the caller holds those rows: no id is reused meanwhile
        searched = [position for position, raw in enumerate(raws) if raw is not None and id(raw) not in trusted]
    for position in searched:
        raw = raws[position]
        if position in careful:
            continue
        if isinstance(raw, dict) and set(map(type, raw.values())) <= _FLAT_TYPES:
            values = [value for value in raw.values() if type(value) is str]
            owners += [position] * len(values)
            texts += values
        else:
            careful.add(position)  # nested values: scrubbed on their own
    careful.update(owners[index] for index in _texts_to_mask(texts))
    return {position: mask_incident(contacts[position], raws[position], addresses[position], descriptions[position])
            for position in sorted(careful)}


def _texts_to_mask(texts: list[str]) -> list[int]:
    """The indexes of the texts in which `mask_text` finds something to mask without clear values (and perhaps a
    few in which it finds nothing after all: an "@" outside an address, digits around a mobile-like number)."""
    if not texts:
        return []
    joined = _TEXT_SEPARATOR.join(texts)
    found = [match.start() for match in _MOBILE_CORE.finditer(joined)]
    at = joined.find("@")
    while at != -1:
        found.append(at)
        at = joined.find("@", at + 1)
    if not found:
        return []
    starts = np.concatenate(([0], np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)) + 1)))
    return np.unique(np.searchsorted(starts, np.array(found, dtype=np.int64), side="right") - 1).tolist()


class _PageTexts:
    """The texts of many flat dicts, gathered to find in one search which hold a mobile number or an e-mail."""

    def __init__(self):
        self.texts: list[str] = []
        self.rows: list[tuple[int, dict]] = []  # (position, dict) of each dict holding texts
        self.firsts: list[int] = []  # where each of those dicts' texts start in `texts`

    def gather(self, position: int, row: dict) -> bool:
        """Take in the texts of `row` (of the item at `position`); False, taking none, if a value is anything but
        text, a number, a boolean or null (a structure, to be scrubbed on its own)."""
        values = row.values()
        kinds = set(map(type, values))
        if not kinds <= _FLAT_TYPES:
            return False
        if str in kinds:
            self.rows.append((position, row))
            self.firsts.append(len(self.texts))
            self.texts += [value for value in values if type(value) is str]
        return True

    def to_mask(self) -> list[tuple[int, Any, str]]:
        """(position, key, text) of the texts in which `mask_text` may find something to mask (`_texts_to_mask`)."""
        return [self._owner(index) for index in _texts_to_mask(self.texts)]

    def _owner(self, index: int) -> tuple[int, Any, str]:
        row_index = bisect_right(self.firsts, index) - 1
        position, row = self.rows[row_index]
        key = [key for key, value in row.items() if type(value) is str][index - self.firsts[row_index]]
        return position, key, self.texts[index]


# Values a flat dict may hold (exactly these types: a subclass is scrubbed on its own, as anything else).
_FLAT_TYPES = frozenset({str, int, float, bool, type(None)})
