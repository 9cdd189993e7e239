"""Replay of the UCI Online Retail dataset as checkouts, one message per invoice.

The mapping (see ``docs/producers.md``):

* rows are grouped by ``InvoiceNo`` in order of appearance; every row becomes one line,
  duplicates included, so per-day per-item sums over the messages equal the dataset's;
* ``transaction_id`` is the ``InvoiceNo``; ``kind`` is ``return`` for ``C`` invoices,
  ``adjustment`` for other invoices with a negative quantity or a negative price (stock
  corrections, the ``A`` bad-debt entries), otherwise ``sale``;
* ``occurred_at`` is the invoice's first ``InvoiceDate`` read as Europe/London wall-clock
  time. Python's ``fold=0`` rule settles the two DST edge cases: an ambiguous time (the
  repeated hour in October) is the first, summer-time instant; a non-existent time (the
  skipped hour in March) is read with the winter offset, i.e. one hour later on the clock.
  No row of the dataset falls in either hour;
* ``store_id`` is the ``Country`` in lower case with every run of other characters than
  letters and digits replaced by ``-`` (``United Kingdom`` -> ``united-kingdom``,
  ``EIRE`` -> ``eire``); ``register_id`` is ``web`` (a single online till);
* ``currency`` is ``GBP``; ``unit_price`` is the shortest decimal that reads back as the
  float in the file (``repr``), rounded to 4 places (the data has at most 3);
* ``name`` is the ``Description`` exactly as published (``None`` when missing).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

import polars as pl

from common.days import check_day_order
from common.schema import MONEY_DECIMALS, Checkout, Kind, Line
from producers.exceptions import DatasetError, DatasetNotFoundError
from storage import figures

DATASET_ZONE: Final = ZoneInfo("Europe/London")
CURRENCY: Final = "GBP"
REGISTER_ID: Final = "web"
COLUMNS: Final = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "Country",
)
DEFAULT_DATASET: Final = Path(__file__).resolve().parent / "datasets" / "online_retail.parquet"
"""The UCI Online Retail file shipped with kassa (package data; CC BY 4.0, credit in the
``README.md`` beside it)."""
_QUANTUM: Final = Decimal(1).scaleb(-MONEY_DECIMALS)
_NOT_SLUG: Final = re.compile(r"[^a-z0-9]+")


def store_id_of(country: str) -> str:
    """The store id of a ``Country`` value: lower case, other runs of characters as ``-``."""
    return _NOT_SLUG.sub("-", country.lower()).strip("-") or "unknown"


def price_of(value: float) -> Decimal:
    """The exact decimal price of a float ``UnitPrice`` (shortest repr, at most 4 places)."""
    price = Decimal(repr(value))
    exponent = price.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MONEY_DECIMALS:
        price = price.quantize(_QUANTUM)
    return price


def kind_of(invoice: str, lines: Iterable[Line]) -> Kind:
    """``return`` for ``C`` invoices, ``adjustment`` for negative quantities or prices."""
    if invoice.startswith("C"):
        return "return"
    if any(line.quantity < 0 or line.unit_price < 0 for line in lines):
        return "adjustment"
    return "sale"


def read_dataset(
    dataset: Path, first: date | None = None, last: date | None = None
) -> pl.DataFrame:
    """The dataset's rows (in file order) whose ``InvoiceDate`` day is in ``[first, last]``."""
    if not dataset.is_file():
        raise DatasetNotFoundError(dataset)
    try:
        frame = pl.read_parquet(dataset, columns=list(COLUMNS))
    except (pl.exceptions.PolarsError, OSError) as exc:
        msg = f"cannot read {str(dataset)!r} as the Online Retail Parquet file: {exc}"
        raise DatasetError(msg) from None
    day = pl.col("InvoiceDate").dt.date()
    if first is not None:
        frame = frame.filter(day >= first)
    if last is not None:
        frame = frame.filter(day <= last)
    return frame


def checkouts(
    dataset: Path = DEFAULT_DATASET,
    first: date | None = None,
    last: date | None = None,
    shift_to: date | None = None,
) -> Iterator[Checkout]:
    """The invoices of the days ``first`` to ``last`` (inclusive) as checkouts, in time order.

    ``shift_to`` moves the day ``first`` (or the first day in the file) to ``shift_to`` and
    every other day by the same number of days, keeping the wall-clock times of day.
    Raises :class:`DatasetNotFoundError` when ``dataset`` does not exist and
    :class:`~common.errors.InvalidDayRange` when ``last`` comes before ``first``.
    """
    if first is not None and last is not None:
        check_day_order(first, last)
    frame = read_dataset(dataset, first, last)
    shift = timedelta(0)
    if shift_to is not None and not frame.is_empty():
        anchor = first or frame["InvoiceDate"].min().date()  # type: ignore[union-attr]
        shift = shift_to - anchor
    return _invoices(frame, shift)


def _invoices(frame: pl.DataFrame, shift: timedelta) -> Iterator[Checkout]:
    invoices: dict[str, tuple[datetime, str, list[Line]]] = {}
    prices: dict[float, Decimal] = {}
    for invoice, sku, name, quantity, when, price, country in frame.iter_rows():
        unit_price = prices.get(price)
        if unit_price is None:
            unit_price = prices[price] = price_of(price)
        entry = invoices.get(invoice)
        if entry is None:
            entry = invoices[invoice] = (when, country, [])
        entry[2].append(Line(sku, quantity, unit_price, name))
    ordered = sorted(invoices.items(), key=lambda item: item[1][0])
    for invoice, (when, country, lines) in ordered:
        yield Checkout(
            transaction_id=invoice,
            store_id=store_id_of(country),
            register_id=REGISTER_ID,
            occurred_at=(when + shift).replace(tzinfo=DATASET_ZONE),
            kind=kind_of(invoice, lines),
            currency=CURRENCY,
            lines=tuple(lines),
        )


@dataclass
class DayTotals:
    """What was sent for one business day."""

    messages: int = 0
    lines: int = 0
    quantity: int = 0
    revenue: Decimal = field(default_factory=Decimal)


class ReplayTotals:
    """Per-day totals of the checkouts passing through :meth:`count`."""

    def __init__(self, zone: ZoneInfo = DATASET_ZONE) -> None:
        self.zone = zone
        self.days: dict[date, DayTotals] = {}

    def count(self, checkouts: Iterable[Checkout]) -> Iterator[Checkout]:
        """Yield ``checkouts`` unchanged, adding each to its day's totals."""
        for checkout in checkouts:
            day = checkout.occurred_at.astimezone(self.zone).date()
            totals = self.days.get(day)
            if totals is None:
                totals = self.days[day] = DayTotals()
            totals.messages += 1
            totals.lines += len(checkout.lines)
            for line in checkout.lines:
                totals.quantity += line.quantity
                totals.revenue += line.quantity * line.unit_price
            yield checkout

    def table(self) -> str:
        """A plain-text table: one row per day and a total row."""
        header = ("day", "messages", figures.LINES, "quantity", figures.COLUMNS[figures.REVENUE])
        rows = [
            (str(day), f"{t.messages:,}", f"{t.lines:,}", f"{t.quantity:,}", f"{t.revenue:,f}")
            for day, t in sorted(self.days.items())
        ]
        total = DayTotals()
        for t in self.days.values():
            total.messages += t.messages
            total.lines += t.lines
            total.quantity += t.quantity
            total.revenue += t.revenue
        rows.append(
            (
                "total",
                f"{total.messages:,}",
                f"{total.lines:,}",
                f"{total.quantity:,}",
                f"{total.revenue:,f}",
            )
        )
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        out = [
            "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
            for row in [header, *rows]
        ]
        return "\n".join(out)
