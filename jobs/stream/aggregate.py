"""Folding checkouts into a partition batch's delta (the per-message hot path)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from common.days import business_day, day_bounds
from common.schema import Checkout, to_money_units
from storage.live import CHECKOUTS, RETURNED, REVENUE, SOLD, UNITS, PartitionDelta


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
    """Adds valid checkouts to a :class:`PartitionDelta`; money stays in integer units."""

    def __init__(self, zone: ZoneInfo) -> None:
        self._days = DayCutter(zone)
        self._prices: dict[Decimal, int] = {}

    def add(self, delta: PartitionDelta, checkout: Checkout) -> None:
        """Fold ``checkout`` into ``delta``."""
        day = self._days.day_of(checkout.occurred_at)
        store_id = checkout.store_id
        kind = checkout.kind
        items = delta.items
        names = delta.names
        prices = self._prices
        seen: set[str] = set()
        for line in checkout.lines:
            sku = line.sku
            quantity = line.quantity
            price = prices.get(line.unit_price)
            if price is None:
                price = prices[line.unit_price] = to_money_units(line.unit_price)
            key = (day, store_id, sku)
            figures = items.get(key)
            if figures is None:
                figures = items[key] = [0, 0, 0, 0, 0]
            figures[UNITS] += quantity
            if kind == "sale":
                figures[SOLD] += quantity
            elif kind == "return":
                figures[RETURNED] -= quantity
            figures[REVENUE] += quantity * price
            if sku not in seen:
                seen.add(sku)
                figures[CHECKOUTS] += 1
            if line.name is not None:
                names[sku] = line.name
        store_key = (day, store_id)
        counts = delta.stores.get(store_key)
        if counts is None:
            delta.stores[store_key] = [1, len(checkout.lines)]
        else:
            counts[0] += 1
            counts[1] += len(checkout.lines)
        if len(prices) > 100_000:
            prices.clear()
