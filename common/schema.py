"""The checkout message: one basket at one register, one Kafka record.

This module is the only place that turns bytes into checkouts and back. On the wire a
checkout is a JSON object in one of the message versions of :data:`VERSIONS` (their JSON
Schemas are published as ``docs/checkout.schema.json`` for version 1 and
``docs/checkout.v2.schema.json`` for version 2)::

    {"schema_version": 2, "transaction_id": "s01-r02-000042", "store_id": "s01",
     "register_id": "r02", "occurred_at": "2026-11-21T10:15:00+01:00", "kind": "sale",
     "currency": "EUR", "lines": [{"sku": "4011", "name": "Bananas", "quantity": 3,
     "unit_price": "0.25", "discount": "0.10"}]}

**Versions.** ``schema_version`` says which version a message is (absent: 1). A message is
read only when its version is one of :attr:`Limits.versions` (``KASSA_SCHEMA_VERSIONS``;
:func:`check_version` is the one acceptance rule both jobs apply), and then by that version's
own decoder (:data:`_DECODERS`) into the one internal model, :class:`Checkout`. Fields a
version does not define are ignored (a version 1 line's ``discount`` too), so producers may
add fields before kassa reads them. Version 2 adds ``discount`` to a line: a non-negative
amount off the line, with the precision rules of prices, at most ``|quantity * unit_price|``.
A line's *gross* amount is ``quantity * unit_price``, its *discount* is ``discount`` with the
sign of the gross amount (a return gives its discount back), and its *net* amount, the
revenue kassa counts, is gross minus discount (:func:`line_amounts`). A version 1 line has
no discount.

The Kafka record carries the store id as its key (so one store's checkouts stay in order on
one partition) and ``occurred_at`` as its timestamp (so a business day can be located with
``offsets_for_times``).

Money is exact: ``unit_price`` is a decimal string with at most :data:`MONEY_DECIMALS`
decimal places; sums are kept as integers of ``10**-MONEY_DECIMALS`` currency units
(:func:`to_money_units`).

A checkout is in the one currency kassa counts (``KASSA_CURRENCY``, :attr:`Limits.currency`)
and its ``occurred_at`` lies in the plausibility window ``[earliest_event, now +
max_event_ahead]`` (``KASSA_EVENT_TIME_MIN``, ``KASSA_EVENT_TIME_MAX_AHEAD_SECONDS``), where
``now`` is the clock of whoever judges the message (each decoder takes it as an argument and
reads the wall clock when it is not given). The window keeps every accepted instant far
inside the range in which business days can be computed (:mod:`common.days`).

Quantity signs follow the kind: a ``sale`` has only positive quantities, a ``return`` only
negative ones, an ``adjustment`` (stock correction, bad debt) any non-zero ones. Net units are
the plain sum of quantities over all kinds; units sold are the quantities of sales; units
returned are the negated quantities of returns.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from typing import Annotated, Final, Generic, Literal, TypeVar

import msgspec

from common.errors import InvalidCheckout

DEFAULT_VERSION: Final = 1
"""The version of a message without ``schema_version``."""
LATEST_VERSION: Final = 2
"""The newest message version."""
VERSIONS: Final[tuple[int, ...]] = (1, 2)
"""Every message version this kassa can decode (``KASSA_SCHEMA_VERSIONS`` picks among them)."""
MONEY_DECIMALS: Final = 4
PRICE_DIGITS: Final = 12
"""Digits before the decimal point a unit price may have: ``|price| < 10**PRICE_DIGITS``."""
MAX_IDENTIFIER_LENGTH: Final = 128
"""Characters of a transaction, store or register id (at least one)."""
MAX_SKU_LENGTH: Final = 64
"""Characters of a sku (at least one)."""
CURRENCY_PATTERN: Final = r"^[A-Z]{3}$"
"""An ISO 4217 code: three capital letters."""
MAX_QUANTITY_CAP: Final = 1_000_000
"""The largest ``KASSA_MAX_QUANTITY``: it keeps net units (the live ranking, a Redis sorted
set of doubles) exact up to 2^53 for more lines of an item in a day than a job can process
(docs/stream.md, "Exact sums")."""
CURRENCY: Final = "GBP"
"""The default currency kassa counts: the UCI Online Retail dataset's."""
EARLIEST_EVENT: Final = datetime(2000, 1, 1, tzinfo=UTC)
"""The default earliest plausible ``occurred_at``."""
MAX_EVENT_AHEAD: Final = timedelta(days=1)
"""The default of how far ``occurred_at`` may lie ahead of the judging clock."""
_MONEY_QUANTUM: Final = Decimal(1).scaleb(-MONEY_DECIMALS)
_EXACT: Final = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
_MAX_PRICE: Final = Decimal(10**PRICE_DIGITS)
NO_DISCOUNT: Final = Decimal(0)
"""The discount of a line that has none (every version 1 line)."""

Kind = Literal["sale", "return", "adjustment"]
KINDS: Final[tuple[Kind, ...]] = ("sale", "return", "adjustment")

Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_IDENTIFIER_LENGTH)]
Sku = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_SKU_LENGTH)]
Currency = Annotated[str, msgspec.Meta(pattern=CURRENCY_PATTERN)]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
LineT = TypeVar("LineT")


class Line(msgspec.Struct, frozen=True, omit_defaults=True):
    """One line of a basket: ``quantity`` units of ``sku`` at ``unit_price`` each, less
    ``discount`` (version 2): a non-negative amount, at most ``|quantity * unit_price|``."""

    sku: Sku
    quantity: int
    unit_price: Decimal
    name: str | None = None
    discount: Decimal = NO_DISCOUNT


class _Basket(msgspec.Struct, Generic[LineT], frozen=True):
    """The fields of a checkout; its lines' type is the parameter."""

    transaction_id: Identifier
    store_id: Identifier
    register_id: Identifier
    occurred_at: AwareDatetime
    kind: Kind
    currency: Currency
    lines: tuple[LineT, ...]


class Checkout(_Basket[Line], frozen=True):
    """One checkout (basket) at one register; the unit of every Kafka message.

    The one internal model of every message version; ``schema_version`` is the version it
    is (to be) sent as."""

    schema_version: int = DEFAULT_VERSION


class LineV1(msgspec.Struct, frozen=True):
    """One line of a basket: ``quantity`` units of ``sku`` at ``unit_price`` each."""

    sku: Sku
    quantity: int
    unit_price: Decimal
    name: str | None = None


class CheckoutV1(_Basket[LineV1], frozen=True):
    """One checkout (basket) at one register, message version 1."""

    schema_version: Literal[1] = 1


class LineV2(msgspec.Struct, frozen=True):
    """One line of a basket: ``quantity`` units of ``sku`` at ``unit_price`` each, less
    ``discount``: a non-negative amount, at most ``|quantity * unit_price|`` (absent or
    ``null``: none)."""

    sku: Sku
    quantity: int
    unit_price: Decimal
    name: str | None = None
    discount: Decimal | None = None


class CheckoutV2(_Basket[LineV2], frozen=True):
    """One checkout (basket) at one register, message version 2: a line may carry a
    ``discount``, a non-negative amount off it (at most ``|quantity * unit_price|``)."""

    schema_version: Literal[2]


class _Version(msgspec.Struct):
    """Only the version of a message (what picks its decoder)."""

    schema_version: int = DEFAULT_VERSION


class _When(msgspec.Struct):
    """Only the time of a message (read from messages that may be invalid otherwise)."""

    occurred_at: AwareDatetime | None = None


class WireLine(msgspec.Struct, frozen=True, gc=False):
    """A :class:`Line` as sent, its amounts kept as the text they were sent as.

    The hot paths look amounts up by their text (hashing a string is several times cheaper
    than building and hashing a Decimal). See :class:`WireDecoder`. ``discount`` is ``None``
    for a line without a discount.
    """

    sku: Sku
    quantity: int
    unit_price: str | int | float
    name: str | None = None
    discount: str | int | float | None = None


class WireCheckout(_Basket[WireLine], frozen=True, gc=False):
    """A :class:`Checkout` whose lines keep their amounts as text (:class:`WireLine`)."""

    schema_version: int = DEFAULT_VERSION


class Reason(enum.StrEnum):
    """Why a message is not a valid checkout (the dead-letter reasons)."""

    TOO_LARGE = "too_large"
    MALFORMED_JSON = "malformed_json"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    UNSUPPORTED_VERSION = "unsupported_version"
    NO_LINES = "no_lines"
    TOO_MANY_LINES = "too_many_lines"
    ZERO_QUANTITY = "zero_quantity"
    QUANTITY_LIMIT = "quantity_limit"
    SIGN_MISMATCH = "sign_mismatch"
    PRICE_PRECISION = "price_precision"
    NEGATIVE_PRICE = "negative_price"
    DISCOUNT = "discount"
    CURRENCY = "currency"
    EVENT_TIME = "event_time"


@dataclass(frozen=True, slots=True)
class Limits:
    """What a checkout must satisfy beyond its types: sizes beyond which it is absurd
    (``KASSA_MAX_*``), the currency counted (``KASSA_CURRENCY``) and the plausibility
    window of its ``occurred_at`` (``KASSA_EVENT_TIME_*``)."""

    max_lines: int = 2000
    max_quantity: int = 100_000
    max_message_bytes: int = 1_000_000
    currency: str = CURRENCY
    earliest_event: datetime = EARLIEST_EVENT
    max_event_ahead: timedelta = MAX_EVENT_AHEAD
    versions: frozenset[int] = frozenset(VERSIONS)
    """The message versions read (``KASSA_SCHEMA_VERSIONS``; :func:`check_version`)."""


def check_version(version: int, limits: Limits) -> None:
    """The one rule of which message versions count: those of ``limits.versions``; any
    other raises :class:`InvalidCheckout` (``unsupported_version``)."""
    if version not in limits.versions:
        accepted = ",".join(str(number) for number in sorted(limits.versions))
        detail = (
            f"schema_version {version}; this kassa reads {accepted} (KASSA_SCHEMA_VERSIONS; "
            f"it can read {','.join(str(number) for number in VERSIONS)})"
        )
        raise InvalidCheckout(Reason.UNSUPPORTED_VERSION, detail)


_encoder = msgspec.json.Encoder(decimal_format="string")
_version_decoder = msgspec.json.Decoder(_Version)
_v1_decoder = msgspec.json.Decoder(CheckoutV1)
_v2_decoder = msgspec.json.Decoder(CheckoutV2)


def _decode_v1(data: bytes) -> Checkout:
    message = _v1_decoder.decode(data)
    lines = tuple(
        Line(line.sku, line.quantity, line.unit_price, line.name) for line in message.lines
    )
    return Checkout(
        message.transaction_id,
        message.store_id,
        message.register_id,
        message.occurred_at,
        message.kind,
        message.currency,
        lines,
        1,
    )


def _decode_v2(data: bytes) -> Checkout:
    message = _v2_decoder.decode(data)
    lines = tuple(
        Line(
            line.sku,
            line.quantity,
            line.unit_price,
            line.name,
            NO_DISCOUNT if line.discount is None else line.discount,
        )
        for line in message.lines
    )
    return Checkout(
        message.transaction_id,
        message.store_id,
        message.register_id,
        message.occurred_at,
        message.kind,
        message.currency,
        lines,
        2,
    )


_DECODERS: Final[dict[int, Callable[[bytes], Checkout]]] = {1: _decode_v1, 2: _decode_v2}
"""Each version's decoder: its message into the internal model (types checked, not rules)."""
_MESSAGES: Final[dict[int, type[msgspec.Struct]]] = {1: CheckoutV1, 2: CheckoutV2}
"""Each version's wire model (its published JSON Schema)."""


def encode_checkout(checkout: Checkout) -> bytes:
    """The JSON bytes of ``checkout`` in its version (the Kafka record value).

    Raises ``ValueError`` for a version 1 checkout with a discount (version 1 cannot say it).
    """
    if checkout.schema_version == 1 and any(line.discount for line in checkout.lines):
        msg = (
            f"checkout {checkout.transaction_id!r} has discounts, which schema_version 1 "
            "cannot carry: send it as schema_version 2"
        )
        raise ValueError(msg)
    return _encoder.encode(checkout)


def decode_checkout(
    data: bytes, limits: Limits = Limits(), now: datetime | None = None
) -> Checkout:
    """Decode and validate one message, or raise :class:`InvalidCheckout` with the reason.

    ``now`` is the judging clock of the plausibility window (default: the wall clock).
    """
    if len(data) > limits.max_message_bytes:
        detail = (
            f"message of {len(data)} bytes exceeds KASSA_MAX_MESSAGE_BYTES="
            f"{limits.max_message_bytes}"
        )
        raise InvalidCheckout(Reason.TOO_LARGE, detail)
    try:
        version = _version_decoder.decode(data).schema_version
        check_version(version, limits)
        checkout = _DECODERS[version](data)
    except msgspec.ValidationError as exc:
        reason = Reason.MISSING_FIELD if "missing required field" in str(exc) else None
        raise InvalidCheckout(reason or Reason.INVALID_FIELD, str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise InvalidCheckout(Reason.MALFORMED_JSON, str(exc)) from None
    validate_checkout(checkout, limits, now)
    return checkout


_wire_decoder = msgspec.json.Decoder(WireCheckout)
_KNOWN_AMOUNTS_LIMIT: Final = 100_000


class WireDecoder:
    """:func:`decode_checkout` for the hot paths: amounts stay text (:class:`WireLine`).

    It accepts and refuses exactly the messages :func:`decode_checkout` does, with the same
    reasons: it decides alone only the plain case (a sale or return of an accepted version
    whose every amount text this decoder already found valid, quantities and discounts within
    the limits), and hands anything else to :func:`decode_checkout`. An accepted amount text
    ``t`` means ``Decimal(t)``. The amount texts found valid (at most
    :data:`_KNOWN_AMOUNTS_LIMIT`) are the decoder's own state: make one per process or thread
    and keep it for its lifetime.
    """

    __slots__ = ("_amounts", "_latest", "_limits", "_now")

    def __init__(self, limits: Limits = Limits()) -> None:
        self._limits = limits
        self._amounts: dict[str | int | float, int] = {}
        """Non-negative unit prices and discounts already found valid, ``str(amount)`` ->
        money units: what lets :meth:`decode` accept a plain message without Decimal
        arithmetic."""
        self._now: datetime | None = None
        self._latest = EARLIEST_EVENT
        """The window's end for :attr:`_now` (computed once per clock reading)."""

    def decode(self, data: bytes, now: datetime | None = None) -> WireCheckout:
        """Decode and validate one message, or raise :class:`InvalidCheckout` with the reason.

        ``now`` is the judging clock (default: the wall clock); pass the same object for a
        whole batch.
        """
        limits = self._limits
        if now is None:
            now = datetime.now(UTC)
        if now is not self._now:
            self._now, self._latest = now, now + limits.max_event_ahead
        if len(data) <= limits.max_message_bytes:
            try:
                checkout = _wire_decoder.decode(data)
            except (msgspec.DecodeError, UnicodeDecodeError):
                pass
            else:
                if _plainly_valid(checkout, limits, self._amounts, self._latest):
                    return checkout
        full = decode_checkout(data, limits, now)
        if full.kind != "adjustment":
            self._learn(full)
        return _to_wire(full)

    def _learn(self, checkout: Checkout) -> None:
        amounts = self._amounts
        if len(amounts) > _KNOWN_AMOUNTS_LIMIT:
            amounts.clear()
        for line in checkout.lines:
            amounts[str(line.unit_price)] = to_money_units(line.unit_price)
            if line.discount:
                amounts[str(line.discount)] = to_money_units(line.discount)


def _plainly_valid(  # noqa: PLR0911 - one loop per kind: the hot path
    checkout: WireCheckout, limits: Limits, amounts: dict[str | int | float, int], latest: datetime
) -> bool:
    """True when ``checkout`` certainly passes :func:`validate_checkout` (a few operations
    per line), given ``amounts`` known valid and the window's end ``latest``; False means
    "not sure", never "invalid"."""
    lines = checkout.lines
    version = checkout.schema_version
    if (
        version not in limits.versions
        or not 0 < len(lines) <= limits.max_lines
        or checkout.currency != limits.currency
        or not limits.earliest_event <= checkout.occurred_at <= latest
    ):
        return False
    most = limits.max_quantity
    kind = checkout.kind
    if kind == "sale":
        for line in lines:
            if not 0 < line.quantity <= most or line.unit_price not in amounts:
                return False
            if line.discount is not None and not _known_discount(line, version, amounts):
                return False
        return True
    if kind == "return":
        for line in lines:
            if not -most <= line.quantity < 0 or line.unit_price not in amounts:
                return False
            if line.discount is not None and not _known_discount(line, version, amounts):
                return False
        return True
    return False


def _known_discount(line: WireLine, version: int, amounts: dict[str | int | float, int]) -> bool:
    """Whether ``line``'s discount is certainly valid: a known amount within the line's (a
    version 1 line's discount is not: :func:`decode_checkout` drops it)."""
    units = -1 if version == 1 or line.discount is None else amounts.get(line.discount, -1)
    return 0 <= units <= abs(line.quantity) * amounts[line.unit_price]


def _to_wire(checkout: Checkout) -> WireCheckout:
    lines = tuple(
        WireLine(
            line.sku,
            line.quantity,
            str(line.unit_price),
            line.name,
            str(line.discount) if line.discount else None,
        )
        for line in checkout.lines
    )
    return WireCheckout(
        checkout.transaction_id,
        checkout.store_id,
        checkout.register_id,
        checkout.occurred_at,
        checkout.kind,
        checkout.currency,
        lines,
        checkout.schema_version,
    )


def validate_checkout(
    checkout: Checkout, limits: Limits = Limits(), now: datetime | None = None
) -> None:
    """Check the rules a well-typed checkout must still follow (see the module docstring).

    ``now`` is the judging clock of the plausibility window (default: the wall clock).
    """
    check_version(checkout.schema_version, limits)
    if checkout.currency != limits.currency:
        detail = (
            f"currency {checkout.currency!r}; this kassa counts {limits.currency!r} "
            "(KASSA_CURRENCY)"
        )
        raise InvalidCheckout(Reason.CURRENCY, detail)
    _check_event_time(checkout.occurred_at, limits, now)
    count = len(checkout.lines)
    if count == 0:
        raise InvalidCheckout(Reason.NO_LINES, "a checkout needs at least one line")
    if count > limits.max_lines:
        detail = f"{count} lines exceed KASSA_MAX_LINES={limits.max_lines}"
        raise InvalidCheckout(Reason.TOO_MANY_LINES, detail)
    kind = checkout.kind
    max_quantity = limits.max_quantity
    for index, line in enumerate(checkout.lines):
        quantity = line.quantity
        if quantity == 0:
            raise InvalidCheckout(Reason.ZERO_QUANTITY, f"$.lines[{index}].quantity is 0")
        if quantity > max_quantity or quantity < -max_quantity:
            detail = (
                f"$.lines[{index}].quantity {quantity} exceeds KASSA_MAX_QUANTITY={max_quantity}"
            )
            raise InvalidCheckout(Reason.QUANTITY_LIMIT, detail)
        if (kind == "sale" and quantity < 0) or (kind == "return" and quantity > 0):
            detail = f"$.lines[{index}].quantity {quantity} in a {kind!r} checkout"
            raise InvalidCheckout(Reason.SIGN_MISMATCH, detail)
        price = line.unit_price
        _check_amount(price, f"$.lines[{index}].unit_price")
        if price < 0 and kind != "adjustment":
            detail = f"$.lines[{index}].unit_price {price} is negative in a {kind!r} checkout"
            raise InvalidCheckout(Reason.NEGATIVE_PRICE, detail)
        discount = line.discount
        if discount is not NO_DISCOUNT:
            _check_discount(discount, quantity, price, f"$.lines[{index}].discount")


def _check_amount(amount: Decimal, where: str) -> None:
    """Refuse an amount that is not a decimal below ``10**PRICE_DIGITS`` with at most
    :data:`MONEY_DECIMALS` decimal places."""
    if (
        not amount.is_finite()
        or not -_MAX_PRICE < amount < _MAX_PRICE
        or amount.quantize(_MONEY_QUANTUM) != amount
    ):
        detail = (
            f"{where} {amount} is not a decimal below {_MAX_PRICE} "
            f"with at most {MONEY_DECIMALS} decimal places"
        )
        raise InvalidCheckout(Reason.PRICE_PRECISION, detail)


def _check_discount(discount: Decimal, quantity: int, price: Decimal, where: str) -> None:
    """Refuse a discount that is not an amount from 0 to ``|quantity * price|``."""
    _check_amount(discount, where)
    gross = abs(_EXACT.multiply(price, quantity))
    if discount < 0 or discount > gross:
        detail = f"{where} {discount} is not from 0 to |quantity * unit_price| = {gross}"
        raise InvalidCheckout(Reason.DISCOUNT, detail)


def line_amounts(quantity: int, unit_price: int, discount: int) -> tuple[int, int]:
    """A line's net amount (its revenue) and its signed discount, in money units: the gross
    amount ``quantity * unit_price`` less the discount, which takes the gross amount's sign
    (see the module docstring)."""
    gross = quantity * unit_price
    signed = -discount if gross < 0 else discount
    return gross - signed, signed


def _check_event_time(occurred_at: datetime, limits: Limits, now: datetime | None) -> None:
    """Refuse an ``occurred_at`` outside ``[earliest_event, now + max_event_ahead]``."""
    if now is None:
        now = datetime.now(UTC)
    latest = now + limits.max_event_ahead
    if limits.earliest_event <= occurred_at <= latest:
        return
    if occurred_at < limits.earliest_event:
        detail = (
            f"occurred_at {occurred_at.isoformat()} is before KASSA_EVENT_TIME_MIN="
            f"{limits.earliest_event.isoformat()}"
        )
    else:
        seconds = round(limits.max_event_ahead.total_seconds())
        detail = (
            f"occurred_at {occurred_at.isoformat()} is more than "
            f"KASSA_EVENT_TIME_MAX_AHEAD_SECONDS={seconds} after the clock "
            f"({now.isoformat(timespec='seconds')})"
        )
    raise InvalidCheckout(Reason.EVENT_TIME, detail)


_when_decoder = msgspec.json.Decoder(_When)


def occurred_at_of(data: bytes) -> datetime | None:
    """The ``occurred_at`` of a message, even one that is otherwise invalid; ``None`` when it
    has none that reads as an aware time (e.g. a dead letter's business day)."""
    try:
        return _when_decoder.decode(data).occurred_at
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None


def message_key(checkout: Checkout) -> bytes:
    """The Kafka record key: the store id."""
    return checkout.store_id.encode()


def record_timestamp_ms(checkout: Checkout) -> int:
    """The Kafka record timestamp: ``occurred_at`` in milliseconds since the epoch."""
    return round(checkout.occurred_at.timestamp() * 1000)


def to_money_units(amount: Decimal) -> int:
    """``amount`` as an integer count of ``10**-MONEY_DECIMALS`` currency units (exact)."""
    units = amount.scaleb(MONEY_DECIMALS, _EXACT)
    if units != units.to_integral_value():
        msg = f"{amount} has more than {MONEY_DECIMALS} decimal places"
        raise ValueError(msg)
    return int(units)


def from_money_units(units: int) -> Decimal:
    """The decimal amount of ``units`` (inverse of :func:`to_money_units`)."""
    return Decimal(units).scaleb(-MONEY_DECIMALS, _EXACT)


def json_schema(version: int = DEFAULT_VERSION) -> dict[str, object]:
    """The JSON Schema of message ``version``, as published in ``docs/``
    (:func:`schema_document`)."""
    return msgspec.json.schema(_MESSAGES[version])


def schema_document(version: int) -> str:
    """The file in ``docs/`` that publishes the JSON Schema of message ``version``."""
    return "checkout.schema.json" if version == 1 else f"checkout.v{version}.schema.json"
