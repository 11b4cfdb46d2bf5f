"""A plotly figure drawn into PDF, PNG or SVG on the server by kaleido, on this machine's chromium, offline.

Kaleido loads plotly.js from the plotly package (never a CDN) and, told so, no MathJax (which it would fetch
from the internet). Each call starts a headless chromium (about two seconds) and closes it again: a web worker
keeps no browser between exports. At most two drawings run at once per process, so a burst of report clicks
queues rather than starting a chromium per click on a 2-core server.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import plotly
import plotly.graph_objects as go

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
# Kaleido and its browser driver narrate every step at INFO (a dozen lines per drawing); their warnings and
# errors still show.
for _name in ("kaleido", "choreographer"):
    logging.getLogger(_name).setLevel(logging.WARNING)
RENDER_SLOTS = threading.BoundedSemaphore(2)
RENDER_TIMEOUT = 90  # seconds for one drawing, chromium's start included


class RenderError(RuntimeError):
    """The figure could not be drawn (no chromium, a timeout, a crash): the message says which."""


def render_figure(figure: go.Figure, fmt: str, width: int, height: int, scale: float = 1.0) -> bytes:
    """The figure as `fmt` ("pdf", "png" or "svg") at width × height CSS pixels (a PDF page of that size at 96
    per inch; a PNG of (width × scale) × (height × scale) pixels)."""
    if fmt not in ("pdf", "png", "svg"):
        raise ValueError(f"cannot draw {fmt!r}: pdf, png or svg")
    import kaleido
    from choreographer.errors import ChromeNotFoundError

    options = {"format": fmt, "width": int(width), "height": int(height), "scale": float(scale)}
    settings = {"mathjax": False, "plotlyjs": PLOTLY_JS.as_uri(), "timeout": RENDER_TIMEOUT}
    with RENDER_SLOTS:
        try:
            return kaleido.calc_fig_sync(figure, opts=options, kopts=settings)
        except ChromeNotFoundError as error:
            raise RenderError("no chromium to draw with: install it (make test installs Debian's chromium) or "
                              "set BROWSER_PATH to a Chrome or Chromium executable") from error
        except Exception as error:  # noqa: BLE001 - kaleido raises many kinds; each becomes one clear message
            raise RenderError(f"drawing the {fmt.upper()} failed: {type(error).__name__}: {error}") from error
