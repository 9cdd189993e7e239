"""``WireDecoder`` (the stream job's decoder) agrees with ``decode_checkout`` on every message."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import InvalidCheckout
from common.schema import (
    Checkout,
    WireCheckout,
    WireDecoder,
    decode_checkout,
    encode_checkout,
)
from tests.common.helpers import LIMITS, MUTATIONS, NOW, messages, mutate


def _outcome(decode: Callable[[bytes], object], value: bytes) -> object:
    try:
        decoded = decode(value)
    except InvalidCheckout as exc:
        return exc.reason
    return decoded


def _as_checkout(wire: WireCheckout) -> tuple[object, ...]:
    lines = tuple(
        (line.sku, line.quantity, Decimal(str(line.unit_price)), line.name) for line in wire.lines
    )
    return (*_fields(wire), lines)


def _fields(item: WireCheckout | Checkout) -> tuple[object, ...]:
    return (
        item.transaction_id,
        item.store_id,
        item.register_id,
        item.occurred_at,
        item.kind,
        item.currency,
        item.schema_version,
    )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(messages, st.none() | st.integers(0, len(MUTATIONS)), st.integers(0, 100)),
        min_size=1,
        max_size=10,
    )
)
def test_the_wire_decoder_accepts_and_refuses_what_decode_checkout_does(
    cases: list[tuple[Checkout, int | None, int]],
) -> None:
    # In sequence, twice: the second pass meets prices the first one found valid.
    values = [mutate(encode_checkout(item), mutation, form) for item, mutation, form in cases]
    decoder = WireDecoder(LIMITS)
    for value in values * 2:
        wire = _outcome(lambda data: decoder.decode(data, NOW), value)
        full = _outcome(lambda data: decode_checkout(data, LIMITS, NOW), value)
        if isinstance(full, Checkout):
            assert isinstance(wire, WireCheckout), (value, wire)
            expected = tuple(
                (line.sku, line.quantity, line.unit_price, line.name) for line in full.lines
            )
            assert _as_checkout(wire) == (*_fields(full), expected)
        else:
            assert wire == full, value


def test_a_known_price_is_read_from_its_text() -> None:
    value = (
        b'{"transaction_id":"t","store_id":"s","register_id":"r",'
        b'"occurred_at":"2026-11-20T10:00:00Z","kind":"sale","currency":"GBP",'
        b'"lines":[{"sku":"a","quantity":2,"unit_price":"1.2500"}]}'
    )
    decoder = WireDecoder(LIMITS)
    decoder.decode(value)  # decided by decode_checkout: the price is now known valid

    wire = decoder.decode(value)

    assert wire.lines[0].unit_price == "1.2500"
