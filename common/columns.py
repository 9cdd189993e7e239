"""Checkout messages into Polars line columns, without a Python object per message.

The fast path parses a batch of values with ``pyarrow.json`` (multi-threaded C++, releases
the GIL) and screens the columns for messages that :func:`common.schema.decode_checkout`
certainly accepts. The screen is deliberately conservative: any message it is not sure about
(a parse error in its block, an unusual timestamp or decimal spelling, a limit exceeded, a
value that does not look like one JSON object, ...) is handed to ``decode_checkout`` itself,
which decides and gives the reason. ``common.schema`` therefore stays the one authority on
what a valid checkout is; ``tests/common/test_columns.py`` checks that the screen never
accepts what ``decode_checkout`` refuses and that both paths produce the same columns.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import Final, cast

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from common.errors import InvalidCheckout
from common.schema import (
    KINDS,
    MAX_IDENTIFIER_LENGTH,
    MAX_SKU_LENGTH,
    MONEY_DECIMALS,
    PRICE_DIGITS,
    Checkout,
    Limits,
    decode_checkout,
)

PRICE: Final = pl.Decimal(18, MONEY_DECIMALS)
"""A line's unit price, decoded and in Parquet (``sales_lines.unit_price``, the type of every
file written): a valid price has at most ``PRICE_DIGITS + MONEY_DECIMALS`` (16) digits."""
LINE_SCHEMA: Final = pl.Schema(
    {
        "message": pl.Int64(),
        "transaction_id": pl.String(),
        "store_id": pl.String(),
        "register_id": pl.String(),
        "occurred_at": pl.Datetime("us", "UTC"),
        "kind": pl.String(),
        "sku": pl.String(),
        "name": pl.String(),
        "quantity": pl.Int64(),
        "unit_price": PRICE,
        "discount": PRICE,
    }
)
"""The columns of a decoded batch: one row per line, ``message`` = index in the batch;
``discount`` is the line's discount as sent (0 when it has none: every version 1 line).

The currency is checked (it is :attr:`Limits.currency` in every accepted message) but not kept:
no output uses it, and a column repeated on every line costs the screen more than any other
step."""

_ARROW_SCHEMA: Final = pa.schema(
    [
        ("transaction_id", pa.string()),
        ("store_id", pa.string()),
        ("register_id", pa.string()),
        ("occurred_at", pa.string()),
        ("kind", pa.string()),
        ("currency", pa.string()),
        (
            "lines",
            pa.list_(
                pa.struct(
                    [
                        ("sku", pa.string()),
                        ("quantity", pa.int64()),
                        ("unit_price", pa.string()),
                        ("name", pa.string()),
                        ("discount", pa.string()),
                    ]
                )
            ),
        ),
        ("schema_version", pa.int64()),
    ]
)
_READ_OPTIONS: Final = pj.ReadOptions(use_threads=False)
_PARSE_OPTIONS: Final = pj.ParseOptions(
    explicit_schema=_ARROW_SCHEMA, unexpected_field_behavior="ignore"
)
_TIMESTAMP: Final = (
    r"^[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_PRICE: Final = rf"^-?[0-9]{{1,{PRICE_DIGITS}}}(\.[0-9]{{1,{MONEY_DECIMALS}}})?$"
_DISCOUNT: Final = rf"^[0-9]{{1,{PRICE_DIGITS}}}(\.[0-9]{{1,{MONEY_DECIMALS}}})?$"
_AMOUNT: Final = pl.Decimal(38, MONEY_DECIMALS)
"""A line's gross amount (a price times a quantity): exact."""
_SMALLEST_BLOCK: Final = 16
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class _Window:
    """The instants ``occurred_at`` may take: ``[earliest, latest]``."""

    earliest: datetime
    latest: datetime


@dataclass
class Decoded:
    """The valid lines of a batch and the invalid messages counted by reason."""

    lines: pl.DataFrame
    invalid: Counter[str] = field(default_factory=Counter)
    fast: int = 0
    slow: int = 0


def decode_batch(
    values: list[bytes | None], limits: Limits, now: datetime | None = None
) -> Decoded:
    """Decode a batch of record values into line columns (:data:`LINE_SCHEMA`), in order.

    ``now`` is the judging clock of the event-time window (default: the wall clock).
    """
    if now is None:
        now = datetime.now(UTC)
    window = _Window(limits.earliest_event, now + limits.max_event_ahead)
    candidates, suspects, payload = _candidates(values, limits)
    frames: list[pl.DataFrame] = []
    _parse_block(values, candidates, limits, window, frames, suspects, payload=payload)
    fast_messages = len(values) - len(suspects)
    decoded = Decoded(lines=pl.DataFrame(schema=LINE_SCHEMA), fast=fast_messages)
    if suspects:
        suspects.sort()
        frames.append(_decode_slowly(values, suspects, limits, now, decoded.invalid))
        decoded.slow = len(suspects)
    frames = [frame for frame in frames if frame.height]
    if not frames:
        return decoded
    lines = pl.concat(frames, how="vertical")
    if len(frames) > 1:
        lines = lines.sort("message", maintain_order=True)
    decoded.lines = lines
    return decoded


def _candidates(
    values: list[bytes | None], limits: Limits
) -> tuple[list[int], list[int], bytes | None]:
    """The indices for the fast path, the suspects, and the fast path's payload if built.

    Only values that start with ``{`` and end with ``}`` (and are not too large) reach
    pyarrow; every other value is a suspect. For such values a block holds exactly one row
    per value or its row count differs: each value yields at least one row, and no row
    spans two values, because after a closing ``}`` JSON never accepts the ``{`` that opens
    the next value and a string cannot run across a newline. (Without the ``}`` rule, a
    value ``{"a":`` swallowed the next one and a value holding two objects made up for it,
    so rows were attributed to the wrong messages.) pyarrow 26 also crashes the process on
    a block that starts with a JSON ``null`` (apache/arrow#47409), which the ``{`` rule
    keeps out. The common batch has no suspect: that is checked with C-level passes over
    the batch instead of a Python loop per message.
    """
    if None not in values:
        present = cast("list[bytes]", values)
        if (
            all(map(bytes.startswith, present, repeat(b"{")))
            and all(map(bytes.endswith, present, repeat(b"}")))
            and max(map(len, present), default=0) <= limits.max_message_bytes
        ):
            return list(range(len(present))), [], b"\n".join(present)
    candidates: list[int] = []
    suspects: list[int] = []
    for index, value in enumerate(values):
        if (
            value is None
            or len(value) > limits.max_message_bytes
            or not value.startswith(b"{")
            or not value.endswith(b"}")
        ):
            suspects.append(index)
        else:
            candidates.append(index)
    return candidates, suspects, None


def _parse_block(  # noqa: PLR0917 - private and recursive
    values: list[bytes | None],
    indices: list[int],
    limits: Limits,
    window: _Window,
    frames: list[pl.DataFrame],
    suspects: list[int],
    *,
    payload: bytes | None = None,
) -> None:
    if not indices:
        return
    if payload is None:
        payload = b"\n".join([values[index] or b"" for index in indices])
    try:
        # A BufferReader hands pyarrow the bytes without copies or the GIL (io.BytesIO does not).
        table = pj.read_json(
            pa.BufferReader(payload), read_options=_READ_OPTIONS, parse_options=_PARSE_OPTIONS
        )
        table.validate(full=True)  # pyarrow.json does not check that strings are UTF-8
    except pa.ArrowInvalid:
        table = None
    if table is None or table.num_rows != len(indices):
        if len(indices) <= _SMALLEST_BLOCK:
            suspects.extend(indices)
            return
        middle = len(indices) // 2
        _parse_block(values, indices[:middle], limits, window, frames, suspects)
        _parse_block(values, indices[middle:], limits, window, frames, suspects)
        return
    accepted, rejected = _screen(table, indices, limits, window)
    frames.append(accepted)
    suspects.extend(rejected)


def _screen(
    table: pa.Table, indices: list[int], limits: Limits, window: _Window
) -> tuple[pl.DataFrame, list[int]]:
    """The lines of the messages certainly valid, and the indices of the others."""
    messages = pl.from_arrow(table)
    assert isinstance(messages, pl.DataFrame)
    messages = messages.with_columns(
        message=pl.Series(indices, dtype=pl.Int64),
        occurred_at=pl.when(pl.col("occurred_at").str.contains(_TIMESTAMP)).then(
            pl.col("occurred_at").str.to_datetime(
                "%+", time_unit="us", time_zone="UTC", strict=False
            )
        ),
    )
    message_ok = _message_rule(limits, window)
    # Most blocks have no discount at all (a count of Arrow's nulls tells): their lines need
    # neither a discount parsed nor the version, which otherwise stays on each line (only
    # decode_checkout may drop a version 1 line's discount).
    discounts = pc.struct_field(pc.list_flatten(table.column("lines")), "discount")
    discounted = discounts.null_count < len(discounts)
    dropped = ("currency",) if discounted else ("currency", "schema_version")
    checked = messages.select(pl.exclude(*dropped), message_ok=message_ok)
    bad_messages = checked.filter(~pl.col("message_ok")).get_column("message")
    if not bad_messages.is_empty():
        checked = checked.filter(pl.col("message_ok"))
    # Only messages that passed, without their check columns, are spread out to their lines:
    # every column here is repeated on each line, which is most of the screen's cost.
    lines = (
        checked.drop("message_ok")
        .explode("lines")
        .unnest("lines")
        .rename({"unit_price": "unit_price_text", "discount": "discount_text"})
        .with_columns(unit_price=pl.col("unit_price_text").str.to_decimal(scale=MONEY_DECIMALS))
    )
    if discounted:
        lines = lines.with_columns(
            discount=pl.col("discount_text").str.to_decimal(scale=MONEY_DECIMALS)
        )
    lines_ok = lines.select(_line_rule(limits, discounted=discounted)).to_series()
    if not lines_ok.all():
        bad_lines = lines.filter(~lines_ok).get_column("message").unique()
        lines = lines.filter(~pl.col("message").is_in(bad_lines.implode()))
        bad_messages = pl.concat([bad_messages, bad_lines])
    if discounted:
        lines = lines.with_columns(pl.col("discount").fill_null(0))
    else:
        lines = lines.with_columns(discount=pl.lit(0, PRICE))
    return lines.select(LINE_SCHEMA.names()).cast(LINE_SCHEMA), bad_messages.to_list()


def _message_rule(limits: Limits, window: _Window) -> pl.Expr:
    """True for a message whose own fields (not its lines) are certainly valid."""
    # Lengths are limited in characters; counting bytes is cheaper and never lets through a
    # string that is too long (a longer one in bytes only is left to decode_checkout).
    identifiers = [
        pl.col(name).str.len_bytes().is_between(1, MAX_IDENTIFIER_LENGTH)
        for name in ("transaction_id", "store_id", "register_id")
    ]
    # A JSON null and a missing field are both null here, and decode_checkout accepts only
    # the latter for schema_version: a null version is left to decode_checkout. (The
    # producers always write it, so this costs nothing in practice.)
    return pl.all_horizontal(
        *identifiers,
        pl.col("occurred_at").is_between(window.earliest, window.latest),
        pl.col("kind").is_in(list(KINDS)),
        pl.col("currency") == limits.currency,
        pl.col("schema_version").is_in(sorted(limits.versions)),
        pl.col("lines").list.len().is_between(1, limits.max_lines),
    ).fill_null(value=False)


def _line_rule(limits: Limits, *, discounted: bool) -> pl.Expr:
    """True for a line that is certainly valid (``discounted``: some line has a discount)."""
    quantity = pl.col("quantity")
    kind = pl.col("kind")
    rules = []
    if discounted:
        text, discount = pl.col("discount_text"), pl.col("discount")
        gross = pl.col("unit_price").cast(_AMOUNT) * quantity
        rules.append(
            text.is_null()
            | (
                (pl.col("schema_version") != 1)
                & text.str.contains(_DISCOUNT)
                & (discount.cast(_AMOUNT) <= gross.abs())
            )
        )
    return pl.all_horizontal(
        *rules,
        pl.col("sku").str.len_bytes().is_between(1, MAX_SKU_LENGTH),
        quantity != 0,
        quantity.abs() <= limits.max_quantity,
        ~((kind == "sale") & (quantity < 0)),
        ~((kind == "return") & (quantity > 0)),
        pl.col("unit_price_text").str.contains(_PRICE),
        pl.col("unit_price").is_not_null(),
        ~((pl.col("unit_price") < 0) & (kind != "adjustment")),
    ).fill_null(value=False)


def _decode_slowly(
    values: list[bytes | None],
    indices: list[int],
    limits: Limits,
    now: datetime,
    invalid: Counter[str],
) -> pl.DataFrame:
    columns: dict[str, list[object]] = {name: [] for name in LINE_SCHEMA.names()}
    for index in indices:
        try:
            checkout = decode_checkout(values[index] or b"", limits, now)
        except InvalidCheckout as exc:
            invalid[exc.reason.value] += 1
            continue
        _append(columns, index, checkout)
    occurred = pl.Series(columns.pop("occurred_at"), dtype=pl.Int64)
    frame = pl.DataFrame(
        {name: pl.Series(name, data, dtype=LINE_SCHEMA[name]) for name, data in columns.items()}
    )
    frame = frame.with_columns(
        occurred_at=occurred.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    )
    return frame.select(LINE_SCHEMA.names())


def _append(columns: dict[str, list[object]], index: int, checkout: Checkout) -> None:
    micros = (checkout.occurred_at - _EPOCH) // _MICROSECOND
    for line in checkout.lines:
        columns["message"].append(index)
        columns["transaction_id"].append(checkout.transaction_id)
        columns["store_id"].append(checkout.store_id)
        columns["register_id"].append(checkout.register_id)
        columns["occurred_at"].append(micros)
        columns["kind"].append(checkout.kind)
        columns["sku"].append(line.sku)
        columns["name"].append(line.name)
        columns["quantity"].append(line.quantity)
        columns["unit_price"].append(line.unit_price)
        columns["discount"].append(line.discount)
