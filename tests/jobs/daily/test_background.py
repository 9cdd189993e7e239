"""The read-ahead and decoder threads of the daily job: order, errors, and a clean early stop."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from common.schema import Checkout, Limits, Line, encode_checkout
from jobs.daily.pipeline import decode_ahead, in_background


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


def test_decoded_ahead_chunks_keep_their_order() -> None:
    def chunk(first: int, size: int) -> list[bytes | None]:
        return [
            encode_checkout(
                Checkout(
                    transaction_id=f"t{first + n}",
                    store_id="s1",
                    register_id="r1",
                    occurred_at=datetime(2026, 11, 20, 10, tzinfo=UTC),
                    kind="sale",
                    currency="GBP",
                    lines=(Line("a", 1, Decimal("1.5"), None),),
                )
            )
            for n in range(size)
        ]

    sizes = [5, 1, 40, 3, 17, 2, 9]
    chunks = []
    first = 0
    for size in sizes:
        chunks.append(chunk(first, size))
        first += size

    decoded = list(decode_ahead(iter(chunks), Limits(), decoders=3))

    assert [records for records, _ in decoded] == sizes
    ids = [tid for _, batch in decoded for tid in batch.lines.get_column("transaction_id")]
    assert ids == [f"t{n}" for n in range(sum(sizes))]
