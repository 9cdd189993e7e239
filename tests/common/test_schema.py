"""The checkout message contract: round trips, and every invalid message with its reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import InvalidCheckout
from common.schema import (
    KINDS,
    MONEY_DECIMALS,
    VERSIONS,
    Checkout,
    Limits,
    Line,
    Reason,
    decode_checkout,
    encode_checkout,
    from_money_units,
    json_schema,
    message_key,
    record_timestamp_ms,
    schema_document,
    to_money_units,
    validate_checkout,
)
from tests.helpers import checkouts, repo_root

LIMITS = Limits()
NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
"""The judging clock of the tests that pass one."""
identifiers = st.text(min_size=1, max_size=40)
prices = st.decimals(
    min_value=Decimal(0), max_value=Decimal(10**9), places=MONEY_DECIMALS, allow_nan=False
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
instants = st.datetimes(
    min_value=datetime(2000, 1, 2), max_value=datetime(2026, 11, 21), timezones=offsets
)
quantities = st.integers(min_value=1, max_value=LIMITS.max_quantity)


any_checkout = checkouts(
    ids=identifiers,
    instants=instants,
    quantities=quantities,
    prices=prices,
    names=st.none() | st.text(max_size=60),
    currencies=st.from_regex(r"\A[A-Z]{3}\Z"),
    max_lines=8,
)


@given(any_checkout)
@settings(max_examples=300)
def test_a_checkout_survives_encode_and_decode(checkout: Checkout) -> None:
    limits = Limits(currency=checkout.currency)
    decoded = decode_checkout(encode_checkout(checkout), limits, NOW)

    assert decoded == checkout
    assert decoded.occurred_at.utcoffset() == checkout.occurred_at.utcoffset()
    assert [line.unit_price for line in decoded.lines] == [
        line.unit_price for line in checkout.lines
    ]


@given(any_checkout)
def test_the_record_timestamp_is_occurred_at_and_the_key_the_store(checkout: Checkout) -> None:
    expected = (checkout.occurred_at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        milliseconds=1
    )
    # occurred_at may carry microseconds; the record keeps milliseconds (rounded)
    assert abs(record_timestamp_ms(checkout) - expected) <= 1
    assert message_key(checkout) == checkout.store_id.encode()


@given(st.decimals(places=MONEY_DECIMALS, allow_nan=False, allow_infinity=False))
def test_money_units_are_exact(amount: Decimal) -> None:
    assert from_money_units(to_money_units(amount)) == amount


def test_money_with_too_many_places_is_refused() -> None:
    with pytest.raises(ValueError, match="more than 4 decimal places"):
        to_money_units(Decimal("0.00001"))


def _valid() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "transaction_id": "t-1",
        "store_id": "s01",
        "register_id": "r01",
        "occurred_at": "2026-11-21T10:15:00+01:00",
        "kind": "sale",
        "currency": "GBP",
        "lines": [{"sku": "4011", "name": "Bananas", "quantity": 3, "unit_price": "0.25"}],
    }


def _with(path: str, value: Any) -> bytes:
    message = _valid()
    target: Any = message
    *parents, last = path.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is _DELETE:
        del target[last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return json.dumps(message).encode()


_DELETE = object()
_LINE = {"sku": "1", "quantity": 1, "unit_price": "1.00"}

INVALID = [
    pytest.param(b"{not json", Reason.MALFORMED_JSON, id="malformed"),
    pytest.param(b"", Reason.MALFORMED_JSON, id="empty"),
    pytest.param(b"[]", Reason.INVALID_FIELD, id="not-an-object"),
    pytest.param(_with("store_id", _DELETE), Reason.MISSING_FIELD, id="missing-store"),
    pytest.param(_with("lines.0.quantity", _DELETE), Reason.MISSING_FIELD, id="missing-qty"),
    pytest.param(_with("lines.0.quantity", "3"), Reason.INVALID_FIELD, id="quantity-string"),
    pytest.param(_with("lines.0.quantity", 1.5), Reason.INVALID_FIELD, id="quantity-fraction"),
    pytest.param(_with("kind", "refund"), Reason.INVALID_FIELD, id="unknown-kind"),
    pytest.param(_with("currency", "eur"), Reason.INVALID_FIELD, id="currency-case"),
    pytest.param(_with("store_id", ""), Reason.INVALID_FIELD, id="empty-store"),
    pytest.param(
        _with("occurred_at", "2026-11-21T10:15:00"), Reason.INVALID_FIELD, id="naive-time"
    ),
    pytest.param(_with("occurred_at", "yesterday"), Reason.INVALID_FIELD, id="bad-time"),
    pytest.param(_with("lines.0.unit_price", "abc"), Reason.INVALID_FIELD, id="price-text"),
    pytest.param(_with("schema_version", 3), Reason.UNSUPPORTED_VERSION, id="version"),
    pytest.param(_with("lines", []), Reason.NO_LINES, id="no-lines"),
    pytest.param(_with("lines", [_LINE] * 2001), Reason.TOO_MANY_LINES, id="too-many-lines"),
    pytest.param(_with("lines.0.quantity", 0), Reason.ZERO_QUANTITY, id="zero-quantity"),
    pytest.param(_with("lines.0.quantity", 100_001), Reason.QUANTITY_LIMIT, id="huge-quantity"),
    pytest.param(
        _with("lines.0.quantity", -100_001), Reason.QUANTITY_LIMIT, id="huge-negative-quantity"
    ),
    pytest.param(_with("lines.0.quantity", -1), Reason.SIGN_MISMATCH, id="negative-sale"),
    pytest.param(
        _with("kind", "return"), Reason.SIGN_MISMATCH, id="positive-return"
    ),  # the template's quantity is +3
    pytest.param(_with("lines.0.unit_price", "0.00001"), Reason.PRICE_PRECISION, id="five-places"),
    pytest.param(_with("lines.0.unit_price", "NaN"), Reason.PRICE_PRECISION, id="nan-price"),
    pytest.param(
        _with("lines.0.unit_price", "Infinity"), Reason.PRICE_PRECISION, id="infinite-price"
    ),
    pytest.param(_with("lines.0.unit_price", "1e12"), Reason.PRICE_PRECISION, id="absurd-price"),
    pytest.param(_with("lines.0.unit_price", "-1.00"), Reason.NEGATIVE_PRICE, id="negative-price"),
    pytest.param(_with("schema_version", None), Reason.INVALID_FIELD, id="null-version"),
    pytest.param(_with("currency", "EUR"), Reason.CURRENCY, id="other-currency"),
    pytest.param(_with("occurred_at", "9999-12-31T12:00:00Z"), Reason.EVENT_TIME, id="year-9999"),
    pytest.param(_with("occurred_at", "0001-01-01T00:30:00+01:00"), Reason.EVENT_TIME, id="year-1"),
    pytest.param(_with("occurred_at", "1999-12-31T23:59:59Z"), Reason.EVENT_TIME, id="before-2000"),
    pytest.param(_with("occurred_at", "2026-11-22T12:00:01Z"), Reason.EVENT_TIME, id="a-day-ahead"),
]


def test_the_template_of_the_invalid_cases_is_valid() -> None:
    checkout = decode_checkout(json.dumps(_valid()).encode(), LIMITS)

    assert checkout.lines == (Line("4011", 3, Decimal("0.25"), "Bananas"),)
    assert checkout.occurred_at == datetime(2026, 11, 21, 9, 15, tzinfo=UTC)


@pytest.mark.parametrize(("data", "reason"), INVALID)
def test_an_invalid_message_is_rejected_with_its_reason(data: bytes, reason: Reason) -> None:
    with pytest.raises(InvalidCheckout) as caught:
        decode_checkout(data, LIMITS, NOW)

    assert caught.value.reason is reason
    assert caught.value.detail


def test_a_message_over_the_byte_limit_is_too_large() -> None:
    data = json.dumps(_valid()).encode()

    with pytest.raises(InvalidCheckout) as caught:
        decode_checkout(data, Limits(max_message_bytes=len(data) - 1))

    assert caught.value.reason is Reason.TOO_LARGE
    assert "KASSA_MAX_MESSAGE_BYTES" in caught.value.detail


def test_limits_are_configurable() -> None:
    data = _with("lines", [_LINE] * 3)

    assert len(decode_checkout(data, Limits(max_lines=3)).lines) == 3
    with pytest.raises(InvalidCheckout, match="KASSA_MAX_LINES=2"):
        decode_checkout(data, Limits(max_lines=2))


def test_the_event_time_window_is_inclusive_and_configurable() -> None:
    limits = Limits(
        earliest_event=datetime(2026, 11, 21, 10, 15, tzinfo=UTC),
        max_event_ahead=timedelta(hours=1),
    )
    first = _with("occurred_at", "2026-11-21T11:15:00+01:00")  # 10:15 UTC
    last = _with("occurred_at", "2026-11-21T13:00:00Z")

    assert decode_checkout(first, limits, NOW).occurred_at == limits.earliest_event
    assert decode_checkout(last, limits, NOW).occurred_at == NOW + timedelta(hours=1)
    with pytest.raises(InvalidCheckout, match="KASSA_EVENT_TIME_MIN=2026-11-21T10:15:00"):
        decode_checkout(_with("occurred_at", "2026-11-21T10:14:59Z"), limits, NOW)
    with pytest.raises(InvalidCheckout, match="KASSA_EVENT_TIME_MAX_AHEAD_SECONDS=3600"):
        decode_checkout(_with("occurred_at", "2026-11-21T13:00:00.000001Z"), limits, NOW)


def test_the_currency_is_configurable() -> None:
    data = _with("currency", "EUR")

    assert decode_checkout(data, Limits(currency="EUR"), NOW).currency == "EUR"
    with pytest.raises(InvalidCheckout, match="KASSA_CURRENCY") as caught:
        decode_checkout(data, LIMITS, NOW)
    assert caught.value.reason is Reason.CURRENCY


_ODD_TIMES = (
    datetime(2026, 1, 1, tzinfo=UTC),
    datetime(2000, 1, 1, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    NOW + timedelta(days=1),
    NOW + timedelta(days=1, microseconds=1),
    datetime(9999, 12, 31, 12, tzinfo=UTC),
    datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
)
_ODD_PRICES = ("2.5", "0", "-0", "-1.00", "1.00001", "1e12", "NaN", "sNaN", "Infinity", "9.9999")


_ODD_DISCOUNTS = ("0", "0.5", "2.5", "-0.5", "1.00001", "NaN", "1e12", "30")


@st.composite
def odd_checkouts(draw: st.DrawFn) -> Checkout:
    version = draw(st.sampled_from([1, 1, 2, 2, 3]))
    lines = [
        Line(
            "sku",
            draw(st.integers(min_value=-12, max_value=12)),
            Decimal(draw(st.sampled_from(_ODD_PRICES))),
            None,
            Decimal(draw(st.sampled_from(_ODD_DISCOUNTS))) if version > 1 else Decimal(0),
        )
        for _ in range(draw(st.integers(min_value=0, max_value=4)))
    ]
    return Checkout(
        transaction_id="t",
        store_id="s",
        register_id="r",
        occurred_at=draw(st.sampled_from(_ODD_TIMES)),
        kind=draw(st.sampled_from(KINDS)),
        currency=draw(st.sampled_from(["GBP", "GBP", "EUR"])),
        lines=tuple(lines),
        schema_version=version,
    )


def _expected_reason(checkout: Checkout, limits: Limits) -> Reason | None:  # noqa: PLR0911, PLR0912
    """The rules of the module docstring, restated plainly (first broken rule wins)."""
    if checkout.schema_version not in VERSIONS:
        return Reason.UNSUPPORTED_VERSION
    if checkout.currency != limits.currency:
        return Reason.CURRENCY
    if not limits.earliest_event <= checkout.occurred_at <= NOW + limits.max_event_ahead:
        return Reason.EVENT_TIME
    if not checkout.lines:
        return Reason.NO_LINES
    if len(checkout.lines) > limits.max_lines:
        return Reason.TOO_MANY_LINES
    for line in checkout.lines:
        quantity, price = line.quantity, line.unit_price
        if quantity == 0:
            return Reason.ZERO_QUANTITY
        if abs(quantity) > limits.max_quantity:
            return Reason.QUANTITY_LIMIT
        if (checkout.kind, quantity > 0) in {("sale", False), ("return", True)}:
            return Reason.SIGN_MISMATCH
        if not (price.is_finite() and abs(price) < 10**12 and price == round(price, 4)):
            return Reason.PRICE_PRECISION
        if price < 0 and checkout.kind != "adjustment":
            return Reason.NEGATIVE_PRICE
        discount = line.discount
        if not (discount.is_finite() and abs(discount) < 10**12 and discount == round(discount, 4)):
            return Reason.PRICE_PRECISION
        if not 0 <= discount <= abs(quantity * price):
            return Reason.DISCOUNT
    return None


def _reason(checkout: Checkout, limits: Limits) -> Reason | None:
    try:
        validate_checkout(checkout, limits, NOW)
    except InvalidCheckout as exc:
        return exc.reason
    return None


@given(st.lists(st.tuples(odd_checkouts(), st.sampled_from([LIMITS, Limits(3, 10)])), max_size=8))
def test_validation_follows_the_rules_whatever_was_validated_before(
    cases: list[tuple[Checkout, Limits]],
) -> None:
    expected = [_expected_reason(checkout, limits) for checkout, limits in cases]

    assert [_reason(checkout, limits) for checkout, limits in cases] == expected
    assert [_reason(checkout, limits) for checkout, limits in cases] == expected


def test_an_adjustment_may_carry_any_sign() -> None:
    message = _valid()
    message["kind"] = "adjustment"
    message["lines"] = [
        {"sku": "B", "quantity": 1, "unit_price": "-11062.06"},
        {"sku": "22", "quantity": -5, "unit_price": "0.85"},
    ]

    checkout = decode_checkout(json.dumps(message).encode(), LIMITS)

    assert [line.quantity for line in checkout.lines] == [1, -5]


@pytest.mark.parametrize("version", VERSIONS)
def test_the_published_json_schemas_are_the_generated_ones(version: int) -> None:
    published = Path(repo_root(), "docs", schema_document(version))

    assert json.loads(published.read_text()) == json_schema(version), (
        f"docs/{schema_document(version)} is stale; regenerate it with the command in "
        "docs/producers.md"
    )


def test_fields_a_version_does_not_define_are_ignored() -> None:
    newer = _valid()
    newer["schema_version"] = 2
    newer["loyalty_card"] = {"id": "L-7"}
    newer["lines"][0] |= {"discount": "0.10", "tax_rate": "0.20", "origin": ["ES"]}
    older = _valid()
    older["lines"][0]["discount"] = "not read by version 1"

    v2 = decode_checkout(json.dumps(newer).encode(), LIMITS, NOW)
    v1 = decode_checkout(json.dumps(older).encode(), LIMITS, NOW)

    assert v2.lines == (Line("4011", 3, Decimal("0.25"), "Bananas", Decimal("0.10")),)
    assert v1.lines == (Line("4011", 3, Decimal("0.25"), "Bananas"),)
    assert (v1.schema_version, v2.schema_version) == (1, 2)


@pytest.mark.parametrize(
    ("discount", "reason"),
    [("-0.01", Reason.DISCOUNT), ("0.76", Reason.DISCOUNT), ("0.00001", Reason.PRICE_PRECISION)],
)
def test_a_discount_is_an_amount_from_zero_to_the_line_amount(
    discount: str, reason: Reason
) -> None:
    message = _valid()
    message["schema_version"] = 2
    message["lines"][0]["discount"] = discount  # 3 x 0.25 = 0.75

    with pytest.raises(InvalidCheckout) as caught:
        decode_checkout(json.dumps(message).encode(), LIMITS, NOW)

    assert caught.value.reason is reason
    assert "$.lines[0].discount" in caught.value.detail


def test_only_the_accepted_versions_are_read() -> None:
    message = _valid()
    message["schema_version"] = 2
    data = json.dumps(message).encode()

    assert decode_checkout(data, Limits(versions=frozenset({1, 2})), NOW).schema_version == 2
    with pytest.raises(InvalidCheckout, match="KASSA_SCHEMA_VERSIONS") as caught:
        decode_checkout(data, Limits(versions=frozenset({1})), NOW)
    assert caught.value.reason is Reason.UNSUPPORTED_VERSION


def test_a_version_1_checkout_with_a_discount_is_not_encoded() -> None:
    checkout = decode_checkout(json.dumps(_valid()).encode(), LIMITS, NOW)
    line = Line("4011", 3, Decimal("0.25"), "Bananas", Decimal("0.10"))

    with pytest.raises(ValueError, match="send it as schema_version 2"):
        encode_checkout(msgspec.structs.replace(checkout, lines=(line,)))
