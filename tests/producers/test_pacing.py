"""Pacing: replay speed, and holding back checkouts dated too far ahead of the clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from common.schema import Checkout, Line
from producers.pacing import at_speed, not_ahead_of_clock

LINE = Line("1", 1, Decimal("1.00"))


def _at(instant: datetime, number: int = 0) -> Checkout:
    return Checkout(str(number), "s", "r", instant, "sale", "EUR", (LINE,))


def _arrivals(checkouts: Iterator[Checkout]) -> list[float]:
    started = time.monotonic()
    return [time.monotonic() - started for _ in checkouts]


def test_speed_divides_the_gaps_between_checkouts() -> None:
    base = datetime(2011, 3, 27, 10, tzinfo=UTC)
    checkouts = [_at(base + timedelta(seconds=s), s) for s in (0, 0, 10, 20)]

    arrivals = _arrivals(at_speed(checkouts, 20, threading.Event()))

    assert arrivals[0] < 0.1
    assert arrivals[1] < 0.1
    assert 0.45 <= arrivals[2] < 0.8
    assert 0.95 <= arrivals[3] < 1.4


def test_stop_ends_a_paced_replay() -> None:
    base = datetime(2011, 3, 27, 10, tzinfo=UTC)
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()

    sent = list(at_speed([_at(base), _at(base + timedelta(hours=1), 1)], 1, stop))

    assert [c.transaction_id for c in sent] == ["0"]
    assert time.monotonic() - started < 2


def test_a_speed_must_be_positive() -> None:
    with pytest.raises(ValueError, match="not positive"):
        list(at_speed([_at(datetime(2011, 1, 1, tzinfo=UTC))], 0, threading.Event()))


def test_checkouts_ahead_of_the_horizon_wait_for_the_clock() -> None:
    now = datetime.now(UTC)
    checkouts = [_at(now - timedelta(days=1)), _at(now + timedelta(seconds=0.6), 1)]

    arrivals = _arrivals(not_ahead_of_clock(checkouts, threading.Event(), horizon=0.0))

    assert arrivals[0] < 0.1
    assert 0.4 <= arrivals[1] < 1.2


def test_checkouts_within_the_horizon_pass_at_once() -> None:
    now = datetime.now(UTC)
    checkouts = [_at(now + timedelta(minutes=m), m) for m in range(0, 50, 5)]

    arrivals = _arrivals(not_ahead_of_clock(checkouts, threading.Event()))

    assert len(arrivals) == 10
    assert arrivals[-1] < 0.1
