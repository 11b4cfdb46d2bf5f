"""connectors.read_ahead: pages produced in a thread come out in order, errors where they happened, and a reader
that stops early stops the producer."""

import threading
import time

import pytest

from connectors.base import FatalError
from connectors.read_ahead import read_ahead


def test_items_come_out_in_order_and_complete():
    assert list(read_ahead(iter(range(1000)), depth=3)) == list(range(1000))


def test_an_error_is_raised_after_every_item_before_it():
    def pages():
        yield 1
        yield 2
        raise FatalError("page 3 is broken")

    seen = []
    with pytest.raises(FatalError, match="page 3 is broken"):
        for item in read_ahead(pages()):
            seen.append(item)
    assert seen == [1, 2]


def test_the_producer_stays_at_most_depth_items_ahead():
    produced = []

    def pages():
        for number in range(100):
            produced.append(number)
            yield number

    reader = read_ahead(pages(), depth=2)
    assert next(reader) == 0
    time.sleep(0.3)  # give the producer every chance to run ahead
    # One handed over, two waiting in the queue, one produced and blocked on the full queue.
    assert len(produced) <= 4
    reader.close()


def test_a_reader_that_stops_early_closes_the_source_in_its_thread():
    closed = threading.Event()

    def pages():
        try:
            for number in range(10_000):
                yield number
        finally:
            closed.set()

    reader = read_ahead(pages(), depth=1)
    assert next(reader) == 0
    reader.close()
    assert closed.wait(2), "the page generator was not closed after the reader stopped"
