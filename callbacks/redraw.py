"""Redrawing only what changed: a refresh that would send a panel the same components sends nothing.

A panel redrawn with identical content still replaces its DOM: hover states drop, a click landing on an element
being replaced is lost, and on the wall nothing should move without meaning.
"""

from __future__ import annotations

import hashlib
import json

from plotly.utils import PlotlyJSONEncoder


def digest_of(parts) -> str:
    """A digest of components as the page receives them: equal digests, nothing to redraw."""
    return hashlib.sha1(json.dumps(parts, cls=PlotlyJSONEncoder, sort_keys=True).encode("utf-8")).hexdigest()
