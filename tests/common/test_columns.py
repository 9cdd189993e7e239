"""The columnar decoder agrees with ``common.schema.decode_checkout`` on every message."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
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

LIMITS = Limits(max_lines=6, max_quantity=1000, max_message_bytes=4000)
NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
"""The judging clock: every generated checkout lies in its event-time window."""

identifiers = st.text(st.characters(codec="utf-8", exclude_characters="\n"), min_size=1, max_size=8)
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5, minutes=-30))]
)


@st.composite
def checkouts(draw: st.DrawFn) -> Checkout:
    kind = draw(st.sampled_from(["sale", "return", "adjustment"]))
    lines = []
    for _ in range(draw(st.integers(1, 4))):
        quantity = draw(st.integers(1, 1000))
        if kind == "return" or (kind == "adjustment" and draw(st.booleans())):
            quantity = -quantity
        price = draw(st.decimals(min_value=0, max_value=5000, places=draw(st.integers(0, 4))))
        if kind == "adjustment" and draw(st.booleans()):
            price = -price
        name = draw(st.none() | identifiers)
        lines.append(Line(draw(identifiers), quantity, price, name))
    micros = draw(st.integers(0, 10**6 - 1)) if draw(st.booleans()) else 0
    occurred = datetime(2026, 11, 20, 12, tzinfo=UTC) + timedelta(
        seconds=draw(st.integers(-86_400, 86_400)), microseconds=micros
    )
    return Checkout(
        transaction_id=draw(identifiers),
        store_id=draw(identifiers),
        register_id=draw(identifiers),
        occurred_at=occurred.astimezone(draw(zones)),
        kind=kind,  # type: ignore[arg-type]
        currency=draw(st.sampled_from(["GBP", "GBP", "EUR"])),
        lines=tuple(lines),
    )


MUTATIONS: list[tuple[tuple[str, ...], Any]] = [
    (("transaction_id",), None),
    (("transaction_id",), ""),
    (("store_id",), 7),
    (("occurred_at",), "2026-11-20T10:00:00"),
    (("occurred_at",), "2026-11-20 10:00:00+00:00"),
    (("occurred_at",), "2026-02-30T10:00:00Z"),
    (("occurred_at",), "2026-11-20T10:00:00.123456789+01:00"),
    (("occurred_at",), "2026-11-20T23:59:60Z"),
    (("occurred_at",), "0000-01-01T00:00:00Z"),
    (("occurred_at",), "2026-11-20T10:00:00+23:59"),
    (("occurred_at",), "\u0662\u0660\u0662\u0666-11-20T10:00:00Z"),
    (("lines", 0, "unit_price"), "\u0663.5"),
    (("currency",), "EUR\n"),
    (("kind",), "refund"),
    (("currency",), "eur"),
    (("schema_version",), 2),
    (("lines",), []),
    (("lines",), None),
    (("lines", 0, "quantity"), 0),
    (("lines", 0, "quantity"), 10**6),
    (("lines", 0, "quantity"), -1),
    (("lines", 0, "quantity"), 1.0),
    (("lines", 0, "quantity"), "3"),
    (("lines", 0, "unit_price"), "1.23456"),
    (("lines", 0, "unit_price"), "1.50000"),
    (("lines", 0, "unit_price"), "1e2"),
    (("lines", 0, "unit_price"), 2.5),
    (("lines", 0, "unit_price"), "-1"),
    (("lines", 0, "unit_price"), "NaN"),
    (("lines", 0, "sku"), ""),
    (("lines", 0, "sku"), "x" * 65),
    (("lines", 0, "extra"), {"nested": [1]}),
    (("extra",), "ignored"),
    # JSON nulls, which pyarrow reads like missing fields
    (("schema_version",), None),
    (("store_id",), None),
    (("register_id",), None),
    (("occurred_at",), None),
    (("kind",), None),
    (("currency",), None),
    (("lines", 0), None),
    (("lines", 0, "sku"), None),
    (("lines", 0, "quantity"), None),
    (("lines", 0, "unit_price"), None),
    (("lines", 0, "name"), None),
    # poison: implausible event times, another currency, the largest amounts
    (("occurred_at",), "9999-12-31T12:00:00Z"),
    (("occurred_at",), "9999-12-31T23:30:00-05:00"),
    (("occurred_at",), "0001-01-01T00:30:00+01:00"),
    (("occurred_at",), "0001-01-01T00:30:00Z"),
    (("occurred_at",), "1999-12-31T23:59:59.999999Z"),
    (("occurred_at",), "2000-01-01T01:00:00+01:00"),
    (("occurred_at",), "2026-11-22T12:00:00Z"),
    (("occurred_at",), "2026-11-22T13:00:00+01:00"),
    (("occurred_at",), "2026-11-22T12:00:00.000001Z"),
    (("currency",), "EUR"),
    (("currency",), "XXX"),
    (("lines",), [{"sku": "big", "quantity": 1000, "unit_price": "999999999999.9999"}]),
    (("lines",), [{"sku": "big", "quantity": -1000, "unit_price": "999999999999.9999"}]),
]


def _mutate(value: bytes, mutation: int | None, form: int) -> bytes:
    if mutation is None:
        return value
    if mutation >= len(MUTATIONS):
        forms = [
            value[: len(value) // 2],
            b"[1, 2]",
            b"",
            value + b"\n" + value,
            b" \n" + value,
            b"x" * 4001,
            value.replace(b'"currency":"', b'"currency":"\xff', 1),
            b"\xef\xbb\xbf" + value,
            b"null",
            value.replace(b'"kind":', b'"kind":"sale","kind":', 1),
        ]
        return forms[form % len(forms)]
    path, replacement = MUTATIONS[mutation]
    document = json.loads(value)
    target = document
    for part in path[:-1]:
        target = target[part]
    if form % 5 == 0 and path[-1] in target:
        del target[path[-1]]
    else:
        target[path[-1]] = replacement
    return json.dumps(document).encode()


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
                }
            )
    return rows, invalid


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            checkouts(),
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
    values = [_mutate(encode_checkout(item), mutation, form) for item, mutation, form in cases]

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
