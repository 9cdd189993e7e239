"""Folding checkouts into a partition batch's delta (the per-message hot path), and rolling
the batch's store figures up into the chain's (once per batch)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo

from common.days import business_day, day_bounds
from common.schema import WireCheckout, WireLine, to_money_units
from storage.figures import (
    CHECKOUT_COUNT,
    CHECKOUTS,
    DISCOUNT,
    LINE_COUNT,
    RETURNED,
    REVENUE,
    SOLD,
    UNITS,
    WIDTH,
)
from storage.live import ChainDay, PartitionDelta

STAMP: Final = WIDTH
"""The slot after an item's figures: the number, in its scope, of the last checkout that
counted the item (so a checkout with several lines of an item counts it once)."""


class DayCutter:
    """The business day of an instant, remembering the bounds of the last day it saw."""

    def __init__(self, zone: ZoneInfo) -> None:
        self._zone = zone
        self._start = 0.0
        self._end = 0.0
        self._day = date.min

    def day_of(self, instant: datetime) -> date:
        """The business day ``instant`` falls on (see :func:`common.days.business_day`)."""
        seconds = instant.timestamp()
        if self._start <= seconds < self._end:
            return self._day
        day = business_day(instant, self._zone)
        start, end = day_bounds(day, self._zone)
        self._start, self._end, self._day = start.timestamp(), end.timestamp(), day
        return day


class Aggregator:
    """Adds valid checkouts to a :class:`PartitionDelta`; money stays in integer units.

    A line adds its net amount to revenue and its discount to the discount figure, the
    amounts of :func:`common.schema.line_amounts` (restated inline: this is the hot loop)."""

    def __init__(self, zone: ZoneInfo) -> None:
        self._days = DayCutter(zone)
        self._prices: dict[str | int | float, int] = {}  # amount text -> money units

    def add(self, delta: PartitionDelta, checkout: WireCheckout) -> None:
        """Fold ``checkout`` into ``delta``."""
        scope = (self._days.day_of(checkout.occurred_at), checkout.store_id)
        items = delta.items.get(scope)
        if items is None:
            items = delta.items[scope] = {}
        counts = delta.stores.get(scope)
        if counts is None:
            counts = delta.stores[scope] = [0, 0]
        if checkout.kind == "sale":
            self._add_sale(items, delta.names, checkout.lines, counts)
        else:
            self._add_other(
                items, delta.names, checkout.lines, counts, is_return=checkout.kind == "return"
            )
        if len(self._prices) > 100_000:
            self._prices.clear()

    def _units(self, amount: str | int | float) -> int:
        """The money units of an amount's text (remembered)."""
        units = self._prices.get(amount)
        if units is None:
            units = self._prices[amount] = to_money_units(Decimal(str(amount)))
        return units

    # Each loop counts its checkout in the scope (the count before it is its STAMP), then
    # folds its lines. The slots are default arguments: local names bound once, not per call
    # or per line (positional: keyword-only defaults would make every call slower). Sales,
    # nearly all checkouts, get their own loop so the kind is not tested per line.

    def _add_sale(  # noqa: PLR0917 - the slots are defaults (see above)
        self,
        items: dict[str, list[int]],
        names: dict[str, str],
        lines: tuple[WireLine, ...],
        counts: list[int],
        units: int = UNITS,
        sold: int = SOLD,
        revenue: int = REVENUE,
        checkouts: int = CHECKOUTS,
        discounts: int = DISCOUNT,
        last: int = STAMP,
        counted: int = CHECKOUT_COUNT,
        counted_lines: int = LINE_COUNT,
    ) -> None:
        stamp = counts[counted]
        counts[counted] = stamp + 1
        counts[counted_lines] += len(lines)
        prices = self._prices
        for line in lines:
            sku = line.sku
            quantity = line.quantity
            text = line.unit_price
            price = prices.get(text)
            if price is None:
                price = prices[text] = to_money_units(Decimal(str(text)))
            figures = items.get(sku)
            amount = line.discount
            if amount is None:  # the common case first: no discount to add
                if figures is None:
                    # UNITS, SOLD, RETURNED, REVENUE, CHECKOUTS, DISCOUNT, STAMP (tests pin it)
                    items[sku] = [quantity, quantity, 0, quantity * price, 1, 0, stamp]
                    if line.name is not None:
                        names[sku] = line.name
                    continue
                figures[revenue] += quantity * price
            else:
                # a sale's gross amount is not negative: its discount counts as it is
                discount = self._units(amount)
                if figures is None:
                    net = quantity * price - discount
                    items[sku] = [quantity, quantity, 0, net, 1, discount, stamp]
                    if line.name is not None:
                        names[sku] = line.name
                    continue
                figures[revenue] += quantity * price - discount
                figures[discounts] += discount
            figures[units] += quantity
            figures[sold] += quantity
            if figures[last] != stamp:
                figures[last] = stamp
                figures[checkouts] += 1

    def _add_other(
        self,
        items: dict[str, list[int]],
        names: dict[str, str],
        lines: tuple[WireLine, ...],
        counts: list[int],
        *,
        is_return: bool,
        units: int = UNITS,
        returned: int = RETURNED,
        revenue: int = REVENUE,
        checkouts: int = CHECKOUTS,
        discounts: int = DISCOUNT,
        last: int = STAMP,
    ) -> None:
        stamp = counts[CHECKOUT_COUNT]
        counts[CHECKOUT_COUNT] = stamp + 1
        counts[LINE_COUNT] += len(lines)
        prices = self._prices
        for line in lines:
            sku = line.sku
            quantity = line.quantity
            text = line.unit_price
            price = prices.get(text)
            if price is None:
                price = prices[text] = to_money_units(Decimal(str(text)))
            gross = quantity * price
            amount = line.discount
            discount = 0 if amount is None else self._units(amount)
            if gross < 0:  # the discount takes the gross amount's sign
                discount = -discount
            figures = items.get(sku)
            if figures is None:
                figures = items[sku] = [0] * (WIDTH + 1)
                figures[last] = -1
                if line.name is not None:
                    names[sku] = line.name
            figures[units] += quantity
            if is_return:
                figures[returned] -= quantity
            figures[revenue] += gross - discount
            figures[discounts] += discount
            if figures[last] != stamp:
                figures[last] = stamp
                figures[checkouts] += 1


def roll_up(delta: PartitionDelta) -> None:
    """Sum the store scopes of ``delta`` into each day's chain figures (``delta.chain``), once
    its checkouts are folded and before it is applied (once per batch, not per line)."""
    chain = delta.chain
    for (day, store_id), items in delta.items.items():
        counts = delta.counts_of((day, store_id))
        whole = chain.get(day)
        if whole is None:
            copies = {sku: figures.copy() for sku, figures in items.items()}
            chain[day] = ChainDay(copies, counts.copy(), [store_id])
            continue
        _add_items(whole.items, items)
        whole.counts[CHECKOUT_COUNT] += counts[CHECKOUT_COUNT]
        whole.counts[LINE_COUNT] += counts[LINE_COUNT]
        whole.stores.append(store_id)


def _add_items(chain: dict[str, list[int]], items: dict[str, list[int]]) -> None:
    """Add a store's ``items`` to the chain's (lists of :mod:`storage.figures` layout)."""
    units, sold, returned, revenue, checkouts = UNITS, SOLD, RETURNED, REVENUE, CHECKOUTS
    discounts = DISCOUNT
    for sku, figures in items.items():
        total = chain.get(sku)
        if total is None:
            chain[sku] = figures.copy()
        else:
            total[units] += figures[units]
            total[sold] += figures[sold]
            total[returned] += figures[returned]
            total[revenue] += figures[revenue]
            total[checkouts] += figures[checkouts]
            total[discounts] += figures[discounts]
