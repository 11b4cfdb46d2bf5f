"""How a SensorThings API is addressed: instants in `$filter`, entity ids in paths, ids in archive labels."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote


def odata_time(seconds: float) -> str:
    """An instant as SensorThings compares it in $filter: ISO 8601 in UTC with Z (an offset's "+" is easily
    mangled into a space on its way through a query string)."""
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def entity_key(ident: Any) -> str:
    """An @iot.id as an OData key in a path: numbers bare, texts quoted (quotes doubled)."""
    if isinstance(ident, int) and not isinstance(ident, bool):
        return str(ident)
    return quote("'" + str(ident).replace("'", "''") + "'", safe="'")


def safe_id(ident: Any) -> str:
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in str(ident))[:40]
