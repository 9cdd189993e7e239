"""The read-ahead thread of the daily job: order, errors, and a clean early stop."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from jobs.daily.job import in_background


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "kassa-daily-worker" and t.is_alive()]


def test_items_arrive_in_order() -> None:
    assert list(in_background(iter(range(100)), depth=3)) == list(range(100))
    assert _workers() == []


def test_an_error_in_the_source_reaches_the_consumer() -> None:
    def source() -> Iterator[int]:
        yield 1
        msg = "boom"
        raise ValueError(msg)

    items = in_background(source())
    assert next(items) == 1
    with pytest.raises(ValueError, match="boom"):
        next(items)
    assert _workers() == []


def test_closing_early_stops_the_thread_and_closes_the_source() -> None:
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            yield from range(1_000_000)
        finally:
            closed.set()

    items = in_background(source(), depth=2)
    assert next(items) == 0
    items.close()

    assert closed.is_set()
    assert _workers() == []
