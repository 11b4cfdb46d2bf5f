"""MQTT messages and records: a group of received (or archived) messages becomes records — every readable row
in one columnar batch, every unreadable message or row a record quarantined with why — and a group becomes the
JSON-lines payload that is archived and replayed."""

from __future__ import annotations

import base64
import json
from typing import Any, Iterator

from connectors.base import Record, RecordBatch
from connectors.http import parse_json
from connectors.mapping import FieldMapping
from connectors.mqtt_session import Message, MqttSettings

PAYLOAD_EXCERPT_CHARS = 2000  # of an unreadable payload, kept with its quarantined record


def group_records(mapping: FieldMapping, messages, settings: MqttSettings) -> Iterator[Record | RecordBatch]:
    """(topic, payload, source) of a group of messages → records: a message or row that cannot be read on its
    own, every row as one columnar batch (validated with array operations, like a file's)."""
    rows, sources = [], []
    for topic, payload, source in messages:
        for item in message_records(topic, payload, source, settings):
            if isinstance(item, Record):
                yield item
            else:
                rows.extend(item)
                sources.extend([source] * len(item))
    if rows:
        yield from mapping.batch(rows, sources)

def message_records(topic: str, payload: bytes, source: str,
                    settings: MqttSettings) -> Iterator[Record | list[dict]]:
    """A message's unreadable parts as records, its rows as lists of rows (a sensor gateway's message often
    holds hundreds: they are mapped together with the rest of the group)."""
    try:
        document = parse_json(payload)
    except UnicodeDecodeError as error:
        yield _unreadable(topic, payload, source, f"is not UTF-8 text ({error.reason} at byte {error.start})")
        return
    except ValueError as error:
        yield _unreadable(topic, payload, source, f"is not JSON ({error})")
        return
    if isinstance(document, dict):
        yield from _row_records(topic, document, source, settings)
    elif isinstance(document, list):
        if settings.topic_pattern is None and all(type(row) is dict for row in document):
            field = settings.topic_field
            yield [{**row, field: topic} for row in document] if field else document
            return
        for position, row in enumerate(document):
            if isinstance(row, dict):
                yield from _row_records(topic, row, source, settings)
            else:
                yield _unreadable(topic, payload, source,
                                  f"holds {_kind(row)} at position {position} of its list, not an object")
    else:
        yield _unreadable(topic, payload, source, f"is {_kind(document)}, not a JSON object or list of objects")

def _row_records(topic: str, row: dict, source: str, settings: MqttSettings) -> Iterator[Record | list[dict]]:
    row = dict(row)
    if settings.topic_pattern is not None:
        found = settings.topic_pattern.fullmatch(topic)
        if found is None:
            yield Record(None, None, None, None, raw={"topic": topic, "row": row}, source=source,
                         problem=f"topic {topic!r} does not match topic_pattern "
                                 f"{settings.topic_pattern.pattern!r}; fix the pattern or the topics")
            return
        row.update({name: value for name, value in found.groupdict().items() if value is not None})
    if settings.topic_field:
        row[settings.topic_field] = topic
    yield [row]  # mapped with the rest of its group


def _unreadable(topic: str, payload: bytes, source: str, what: str) -> Record:
    """The record quarantining a message that holds no rows, with the topic and the payload as text."""
    text = payload.decode("utf-8", errors="replace")
    if len(text) > PAYLOAD_EXCERPT_CHARS:
        text = text[:PAYLOAD_EXCERPT_CHARS - 1] + "…"
    return Record(None, None, None, None, raw={"topic": topic, "payload": text}, source=source,
                  problem=f"message on topic {topic!r} {what}; the publisher must send a JSON object or a list "
                          f"of objects")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {json.dumps(value)}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return "a list" if isinstance(value, list) else type(value).__name__


def archive_lines(group: list[Message]) -> bytes:
    """A group of messages as the JSON-lines payload that is archived (and replayed)."""
    lines = []
    for message in group:
        entry: dict[str, Any] = {"topic": message.topic}
        try:
            entry["payload"] = message.payload.decode("utf-8")
        except UnicodeDecodeError:
            entry["payload_base64"] = base64.b64encode(message.payload).decode("ascii")
        entry.update(qos=message.qos, received_at=round(message.received_at, 3))
        lines.append(json.dumps(entry, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode("utf-8")
