"""Chunked aggregation equals a straightforward reference computation."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.columns import LINE_SCHEMA
from jobs.daily.aggregate import Deduplicator, Partials, in_day
from storage import parquet

ZONE = ZoneInfo("Europe/London")
START = datetime(2026, 10, 25, tzinfo=ZONE).astimezone(UTC)
END = datetime(2026, 10, 26, tzinfo=ZONE).astimezone(UTC)

line = st.tuples(
    st.sampled_from(["a", "b", "c", "d"]),
    st.integers(-50, 50).filter(bool),
    st.decimals(min_value=-100, max_value=100, places=4),
    st.none() | st.sampled_from(["Apple", "Bread", "Cheese"]),
    st.sampled_from([Decimal(0), Decimal("0.3"), Decimal(1)]),
)
"""sku, quantity, price, name, and the share of the line's amount it is discounted by."""


def _discount(quantity: int, price: Decimal, share: Decimal) -> Decimal:
    return (abs(quantity * price) * share).quantize(Decimal("0.0001"), ROUND_DOWN)


Message = tuple[str, str, int, str, list[tuple[str, int, Decimal, str | None, Decimal]]]
message = st.tuples(
    st.sampled_from(["t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8"]),
    st.sampled_from(["s1", "s2"]),
    st.integers(-2 * 3600, 27 * 3600),
    st.sampled_from(["sale", "return", "adjustment"]),
    st.lists(line, min_size=1, max_size=4),
)


def _frame(
    messages: list[Message],
) -> pl.DataFrame:
    rows = []
    for index, (tid, store, seconds, kind, lines) in enumerate(messages):
        for sku, quantity, price, name, share in lines:
            rows.append(
                {
                    "message": index,
                    "transaction_id": tid,
                    "store_id": store,
                    "register_id": "r",
                    "occurred_at": START + timedelta(seconds=seconds),
                    "kind": kind,
                    "sku": sku,
                    "name": name,
                    "quantity": quantity,
                    "unit_price": price,
                    "discount": _discount(quantity, price, share),
                }
            )
    return pl.DataFrame(rows, schema=LINE_SCHEMA)


@settings(max_examples=80, deadline=None)
@given(st.lists(message, max_size=30), st.integers(1, 6))
def test_chunked_aggregation_equals_reference(
    messages: list[Message],
    chunk: int,
) -> None:
    partials = Partials(ZONE)
    dedup = Deduplicator()
    for first in range(0, len(messages), chunk):
        lines = _frame(messages[first : first + chunk])
        if lines.is_empty():
            continue
        lines, _ = in_day(lines, START, END)
        lines, _ = dedup.first_occurrences(lines)
        partials.add(lines)

    seen: set[tuple[str, str]] = set()
    expected: dict[str, list[object]] = defaultdict(
        lambda: [0, 0, 0, Decimal(0), set(), None, Decimal(0)]
    )
    hours: dict[datetime, int] = defaultdict(int)
    for tid, store, seconds, kind, lines in messages:
        instant = START + timedelta(seconds=seconds)
        if not START <= instant < END or (store, tid) in seen:
            continue
        seen.add((store, tid))
        for sku, quantity, price, name, share in lines:
            row = expected[sku]
            gross = quantity * price
            discount = _discount(quantity, price, share)
            signed = discount if gross >= 0 else -discount
            row[0] += quantity  # type: ignore[operator]
            row[1] += quantity if kind == "sale" else 0  # type: ignore[operator]
            row[2] -= quantity if kind == "return" else 0  # type: ignore[operator]
            row[3] += gross - signed  # type: ignore[operator]
            row[6] += signed  # type: ignore[operator]
            row[4].add((store, tid))  # type: ignore[union-attr]
            if name is not None and (row[5] is None or (instant, name) >= row[5]):  # type: ignore[operator]
                row[5] = (instant, name)
            local = instant.astimezone(ZONE)
            hours[local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)] += 1

    items = partials.item_sales().iter_rows()
    result = {
        sku: (name, units, sold, returned, revenue, checkouts, discount)
        for sku, name, units, sold, returned, revenue, checkouts, discount in items
    }
    assert result == {
        sku: (row[5][1] if row[5] else None, row[0], row[1], row[2], row[3], len(row[4]), row[6])  # type: ignore[index,arg-type]
        for sku, row in expected.items()
    }
    hourly = partials.hourly_sales()
    assert dict(
        zip(
            hourly["hour"].dt.convert_time_zone("UTC").to_list(),
            hourly["lines"].to_list(),
            strict=True,
        )
    ) == dict(hours)
    assert hourly.schema["hour"] == pl.Datetime("us", "Europe/London")


@pytest.mark.parametrize("lines", [0, 1, 40])
def test_tables_have_the_published_columns_and_types(lines: int) -> None:
    name: str | None = "Apple"
    messages = [
        (
            f"t{n}",
            f"s{n % 2}",
            600 * n,
            "sale",
            [("a", 1 + n % 3, Decimal("1.25"), name, Decimal("0.3"))],
        )
        for n in range(lines)
    ]
    partials = Partials(ZONE)
    for first in range(0, lines, 2):  # 20 chunks are compacted once
        partials.add(_frame(messages[first : first + 2]))

    assert partials.item_sales().schema == parquet.schema("daily_item_sales", ZONE)
    assert partials.store_item_sales().schema == parquet.schema("daily_store_item_sales", ZONE)
    assert partials.hourly_sales().schema == parquet.schema("hourly_sales", ZONE)


def _ids_frame(ids: list[tuple[str, str]]) -> pl.DataFrame:
    """One line per checkout, in the decoded layout the deduplicator reads."""
    return pl.DataFrame(
        {
            "message": list(range(len(ids))),
            "store_id": [store for store, _ in ids],
            "transaction_id": [tid for _, tid in ids],
        },
        schema={"message": pl.Int64(), "store_id": pl.String(), "transaction_id": pl.String()},
    )


def test_ids_that_concatenate_alike_are_different_checkouts() -> None:
    dedup = Deduplicator()
    dedup.first_occurrences(_ids_frame([("s1", "2x"), ("s", "12x")]))
    lines, dropped = dedup.first_occurrences(_ids_frame([("s12", "x"), ("s1", "2x")]))

    assert dropped == 1
    assert lines.get_column("store_id").to_list() == ["s12"]


def test_a_day_of_many_chunks_drops_exactly_the_repeated_checkouts() -> None:
    # 300,000 ids outgrow the first bitmap and several runs; every 7th id comes again
    # in a later chunk and every 11th one twice in its own chunk.
    dedup = Deduplicator()
    seen: set[tuple[str, str]] = set()
    kept = dropped = 0
    for chunk in range(30):
        ids = [(f"s{n % 13}", f"t{n}") for n in range(chunk * 10_000, (chunk + 1) * 10_000)]
        ids += [(f"s{n % 13}", f"t{n}") for n in range(0, chunk * 10_000, 7 * (chunk + 1))]
        ids += ids[::11]
        lines, duplicates = dedup.first_occurrences(_ids_frame(ids))
        expected = []
        for key in ids:
            if key not in seen:
                seen.add(key)
                expected.append(key)
        assert list(zip(lines["store_id"], lines["transaction_id"], strict=True)) == expected
        assert duplicates == len(ids) - len(expected)
        kept += lines.height
        dropped += duplicates
    assert dedup.ids() == kept == len(seen) == 300_000
    # The set is the part of a daily run that grows with the day: a view and a few bits
    # per id, not a Python object per id (about 250 bytes).
    assert dedup.nbytes() < 40 * dedup.ids()
