"""Reading a paged source one page ahead of the runner, so waiting for the network and storing overlap.

A connector that pages through an API spends each request waiting for the source, then parsing; the runner then
validates and stores what it got. Done one after the other, a run takes the sum of both; with the next page
requested while the runner stores this one, it takes about the larger. `read_ahead` runs a page generator in a
background thread and hands its items over through a small queue, so at most `depth` pages sit in memory
beyond the one being stored: memory stays flat however long the source is.

What the page generator raises (a `FatalError`, a `RetriableError` after its retries) is raised in the reading
thread when it reaches that point, after every page before it, exactly as without the thread. When the reader
stops early (the run failed, timed out, or was interrupted), the generator is closed in its own thread and its
`finally` blocks run there; a request in flight ends within its own timeout.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator, TypeVar

T = TypeVar("T")

_END = object()
# How often a producer blocked on a full queue looks whether the reader has gone (seconds).
_POLL = 0.2


class _Raised:
    def __init__(self, error: BaseException):
        self.error = error


def read_ahead(pages: Iterator[T], depth: int = 2, name: str = "read-ahead") -> Iterator[T]:
    """The items of `pages`, produced up to `depth` ahead in a daemon thread named `name`."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def hand_over(item) -> bool:
        while not stopped.is_set():
            try:
                handoff.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in pages:
                if not hand_over(item):
                    return
            hand_over(_END)
        except BaseException as error:  # handed to the reader, who raises it where it belongs
            hand_over(_Raised(error))
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.error
            yield item
    finally:
        stopped.set()
        worker.join(timeout=_POLL * 2)
