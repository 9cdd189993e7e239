"""The columnar decoder agrees with ``common.schema.decode_checkout`` on every message."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from common.columns import decode_batch
from common.errors import InvalidCheckout
from common.schema import (
    Checkout,
    Limits,
    Line,
    decode_checkout,
    encode_checkout,
)
from tests.common.helpers import LIMITS, MUTATIONS, NOW, messages, mutate


def _reference(values: list[bytes]) -> tuple[list[dict[str, Any]], Counter[str]]:
    rows: list[dict[str, Any]] = []
    invalid: Counter[str] = Counter()
    for index, value in enumerate(values):
        try:
            item = decode_checkout(value, LIMITS, NOW)
        except InvalidCheckout as exc:
            invalid[exc.reason.value] += 1
            continue
        for line in item.lines:
            rows.append(
                {
                    "message": index,
                    "transaction_id": item.transaction_id,
                    "store_id": item.store_id,
                    "register_id": item.register_id,
                    "occurred_at": item.occurred_at,
                    "kind": item.kind,
                    "sku": line.sku,
                    "name": line.name,
                    "quantity": line.quantity,
                    "unit_price": line.unit_price,
                    "discount": line.discount,
                }
            )
    return rows, invalid


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            messages,
            st.none() | st.integers(0, len(MUTATIONS)),
            st.integers(0, 100),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_columns_and_reasons_equal_decode_checkout(
    cases: list[tuple[Checkout, int | None, int]],
) -> None:
    values = [mutate(encode_checkout(item), mutation, form) for item, mutation, form in cases]

    decoded = decode_batch(list(values), LIMITS, NOW)

    rows, invalid = _reference(values)
    assert decoded.invalid == invalid
    assert decoded.lines.to_dicts() == rows


PLAIN = Checkout(
    transaction_id="t1",
    store_id="s1",
    register_id="r1",
    occurred_at=datetime(2026, 11, 20, 10, tzinfo=UTC),
    kind="sale",
    currency="GBP",
    lines=(Line("a", 2, Decimal("1.25"), "A"),),
)
"""A one-line sale every rule accepts."""


def test_clean_batches_take_the_fast_path() -> None:
    values: list[bytes | None] = [encode_checkout(PLAIN)] * 100 + [b"{broken"]

    decoded = decode_batch(values, LIMITS)

    assert decoded.fast + decoded.slow == 101
    assert decoded.slow <= 16
    assert decoded.invalid == {"malformed_json": 1}
    assert decoded.lines.height == 100


def test_values_that_are_not_objects_are_refused_without_reaching_pyarrow() -> None:
    valid = encode_checkout(PLAIN)
    # A block starting with a JSON null crashed the process in pyarrow 26 (apache/arrow#47409).
    values: list[bytes | None] = [b"null", valid, b" null", b"[]", valid, b'"x"', b"  " + valid]

    decoded = decode_batch(values, LIMITS)

    assert decoded.invalid == {"invalid_field": 4}
    assert decoded.lines.get_column("message").to_list() == [1, 4, 6]


def test_a_value_cannot_lend_its_rows_to_its_neighbours() -> None:
    def encoded(transaction_id: str) -> bytes:
        return encode_checkout(msgspec.structs.replace(PLAIN, transaction_id=transaction_id))

    # Joined into one block, the first value opens an object that swallows the second and
    # the third holds two objects: the row count matched while every row was misattributed.
    values: list[bytes | None] = [b'{"a":', encoded("t2") + b"}", encoded("t3") + encoded("t4")]

    decoded = decode_batch(values, LIMITS)

    assert decoded.invalid == {"malformed_json": 3}
    assert decoded.lines.is_empty()


def test_identifiers_at_their_length_limit_in_characters_but_not_in_bytes_are_valid() -> None:
    item = Checkout(
        transaction_id="\u00e9" * 128,
        store_id="s1",
        register_id="\u20ac" * 128,
        occurred_at=datetime(2026, 11, 20, 10, tzinfo=UTC),
        kind="sale",
        currency="GBP",
        lines=(Line("\u00e9" * 64, 2, Decimal("1.25"), "A"), Line("a", 1, Decimal("2"), None)),
    )
    limits = Limits(max_message_bytes=10_000)
    values: list[bytes] = [encode_checkout(item)] * 3

    decoded = decode_batch(list(values), limits)

    assert decoded.invalid == {}
    assert decoded.lines.get_column("sku").to_list() == ["\u00e9" * 64, "a"] * 3
    assert decoded.lines.get_column("transaction_id").unique().to_list() == ["\u00e9" * 128]
