"""A day's lines into the daily tables, chunk by chunk, with exact integer and decimal sums.

Each chunk of decoded lines is cut to the day, freed of duplicate checkouts and reduced to
*partial* aggregates; partials add up exactly (every checkout lies in one chunk), so a day of
any size needs memory for one chunk plus the partials, never for all its lines.

The figures are those of :mod:`storage.figures`, the tables' columns and types those of
:func:`storage.parquet.schema`. ``name`` is the name on the item's latest line (latest
``occurred_at``; on a tie, the greatest name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

import polars as pl

from storage.figures import CHECKOUTS, COLUMNS, LINES, RETURNED, REVENUE, SOLD, UNITS
from storage.parquet import (
    FIGURE_TYPES,
    ITEM_SALES,
    MONEY,
    SALES_LINES,
    STORE_ITEM_SALES,
    TOTAL_TYPES,
)

_COMPACT_EVERY: Final = 16
_SUMMED: Final = (COLUMNS[UNITS], COLUMNS[SOLD], COLUMNS[RETURNED], COLUMNS[REVENUE])
"""The figures that are sums over lines (checkouts and lines are counts)."""
_COUNTED: Final = (COLUMNS[CHECKOUTS], LINES)


class Deduplicator:
    """Keeps the first occurrence of each checkout over all chunks of a day.

    A checkout is identified by ``(store_id, transaction_id)``: transaction ids are unique
    per store (the producers' contract), so two stores may send the same id.
    """

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()

    def first_occurrences(self, lines: pl.DataFrame) -> tuple[pl.DataFrame, int]:
        """``lines`` without checkouts seen before; and the number of checkouts dropped.

        ``lines`` must be in message order (as decoded), a message's lines together.
        """
        message = pl.col("message")
        messages = lines.select("message", "store_id", "transaction_id").filter(
            message != message.shift(1, fill_value=-1)
        )
        first = messages.filter(pl.struct("store_id", "transaction_id").is_first_distinct())
        ids = list(
            zip(
                first.get_column("store_id").to_list(),
                first.get_column("transaction_id").to_list(),
                strict=True,
            )
        )
        seen = self._seen
        if seen.isdisjoint(ids):
            seen.update(ids)
            dropped = messages.height - first.height
            if dropped == 0:
                return lines, 0
            keep = first.get_column("message")
            return lines.filter(pl.col("message").is_in(keep.implode())), dropped
        kept: list[int] = []
        for (number, *_), key in zip(first.iter_rows(), ids, strict=True):
            if key not in seen:
                seen.add(key)
                kept.append(number)
        dropped = messages.height - len(kept)
        return lines.filter(pl.col("message").is_in(kept)), dropped


def in_day(lines: pl.DataFrame, start: datetime, end: datetime) -> tuple[pl.DataFrame, int]:
    """The lines whose ``occurred_at`` is in ``[start, end)``; and checkouts outside it."""
    inside = pl.col("occurred_at").is_between(start, end, closed="left")
    kept = lines.filter(inside)
    if kept.height == lines.height:
        return lines, 0
    outside = lines.filter(~inside).get_column("message").n_unique()
    return kept, outside


def sales_lines(lines: pl.DataFrame) -> pl.DataFrame:
    """The ``sales_lines`` rows of decoded lines, in arrival order."""
    return lines.select(SALES_LINES.names()).cast(SALES_LINES)


def _detached(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its own copy of every string.

    Polars strings are views that may point into the chunk's decoded buffers; a partial that
    kept such views would keep every chunk's buffers alive for the whole day.
    """
    detached = pl.from_arrow(frame.to_arrow(compat_level=pl.CompatLevel.oldest()))
    assert isinstance(detached, pl.DataFrame)
    return detached


def _whole_hour_offsets(lines: pl.DataFrame, zone: ZoneInfo) -> bool:
    """Whether local hours start on UTC hours over the chunk's time span."""
    instants = lines.get_column("occurred_at")
    for instant in (instants.min(), instants.max()):
        assert isinstance(instant, datetime)
        offset = instant.astimezone(zone).utcoffset()
        if offset is None or offset.total_seconds() % 3600:
            return False
    return True


def _measures(lines: pl.DataFrame, zone: ZoneInfo) -> pl.DataFrame:
    quantity = pl.col("quantity")
    occurred = pl.col("occurred_at")
    if _whole_hour_offsets(lines, zone):
        hour = occurred.dt.truncate("1h")
    else:
        local = occurred.dt.convert_time_zone(zone.key)
        hour = occurred - pl.duration(
            minutes=local.dt.minute(),
            seconds=local.dt.second(),
            microseconds=local.dt.microsecond(),
            time_unit="us",
        )
    kind = pl.col("kind")
    return lines.select(
        "message",
        "store_id",
        "sku",
        "name",
        "occurred_at",
        quantity.alias(COLUMNS[UNITS]),
        pl.when(kind == "sale").then(quantity).otherwise(0).alias(COLUMNS[SOLD]),
        pl.when(kind == "return").then(-quantity).otherwise(0).alias(COLUMNS[RETURNED]),
        (pl.col("unit_price").cast(MONEY) * quantity).alias(COLUMNS[REVENUE]),
        hour=hour,
    )


def _sums() -> list[pl.Expr]:
    return [pl.col(name).sum().cast(FIGURE_TYPES[name]) for name in _SUMMED]


def _checkouts() -> pl.Expr:
    return pl.col("message").n_unique().cast(pl.Int64).alias(COLUMNS[CHECKOUTS])


def _lines() -> pl.Expr:
    return pl.len().cast(pl.Int64).alias(LINES)


_NAME_KEYS: Final = ["sku", "name"]


@dataclass
class Partials:
    """Partial aggregates of the chunks seen so far (see the module docstring)."""

    zone: ZoneInfo
    items: list[pl.DataFrame] = field(default_factory=list)
    store_items: list[pl.DataFrame] = field(default_factory=list)
    hours: list[pl.DataFrame] = field(default_factory=list)
    stores: list[pl.DataFrame] = field(default_factory=list)
    names: list[pl.DataFrame] = field(default_factory=list)

    def add(self, lines: pl.DataFrame) -> None:
        """Fold one chunk of in-day, deduplicated lines into the partials.

        Within a chunk, ``message`` must identify the checkout (one message per checkout).
        """
        if lines.is_empty():
            return
        measures = _measures(lines, self.zone)
        store_items = measures.group_by("store_id", "sku").agg(*_sums(), _checkouts())
        store_items = _detached(store_items)
        self.store_items.append(store_items)
        # A checkout belongs to one store, so the chain's figures are sums over stores.
        chain_checkouts = pl.col(COLUMNS[CHECKOUTS]).sum()
        self.items.append(store_items.group_by("sku").agg(*_sums(), chain_checkouts))
        self.hours.append(measures.group_by("hour").agg(*_sums(), _checkouts(), _lines()))
        stores = measures.group_by("store_id").agg(*_sums(), _checkouts(), _lines())
        self.stores.append(_detached(stores))
        # Only each item's latest lines can hold its latest name: a chunk keeps one row per
        # item, the greatest name at its latest time (cheaper than grouping by sku and name).
        occurred = pl.col("occurred_at")
        names = (
            measures.select(*_NAME_KEYS, "occurred_at")
            .filter(pl.col("name").is_not_null())
            .filter(occurred == occurred.max().over("sku"))
            .group_by("sku")
            .agg(pl.col("name").max(), name_at=occurred.first())
        )
        self.names.append(_detached(names))
        if len(self.items) >= _COMPACT_EVERY:
            self.items = [_combine(self.items, ["sku"], FIGURE_TYPES)]
            self.store_items = [_combine(self.store_items, ["store_id", "sku"], FIGURE_TYPES)]
            self.hours = [_combine(self.hours, ["hour"], TOTAL_TYPES)]
            self.stores = [_combine(self.stores, ["store_id"], TOTAL_TYPES)]
            self.names = [self._name_times()]

    def _name_times(self) -> pl.DataFrame:
        if not self.names:
            return pl.DataFrame(
                schema={"sku": pl.String, "name": pl.String, "name_at": pl.Datetime("us", "UTC")}
            )
        return pl.concat(self.names).group_by(_NAME_KEYS).agg(pl.col("name_at").max())

    def _latest_names(self) -> pl.DataFrame:
        return (
            self._name_times()
            .sort(["sku", "name_at", "name"])
            .group_by("sku", maintain_order=True)
            .agg(pl.col("name").last())
        )

    def item_sales(self) -> pl.DataFrame:
        """``daily_item_sales``: one row per item, by net units descending then sku."""
        frame = _combine(self.items, ["sku"], FIGURE_TYPES)
        named = frame.join(self._latest_names(), on="sku", how="left")
        return named.select(ITEM_SALES.names()).sort(
            [COLUMNS[UNITS], "sku"], descending=[True, False]
        )

    def store_item_sales(self) -> pl.DataFrame:
        """``daily_store_item_sales``: one row per store and item (the item's latest name)."""
        frame = _combine(self.store_items, ["store_id", "sku"], FIGURE_TYPES)
        named = frame.join(self._latest_names(), on="sku", how="left")
        return named.select(STORE_ITEM_SALES.names()).sort(
            ["store_id", COLUMNS[UNITS], "sku"], descending=[False, True, False]
        )

    def store_totals(self) -> pl.DataFrame:
        """Per store: the figures plus checkouts and lines of the whole day, by store id."""
        return _combine(self.stores, ["store_id"], TOTAL_TYPES).sort("store_id")

    def hourly_sales(self) -> pl.DataFrame:
        """``hourly_sales``: one row per local hour with sales, ``hour`` in the business zone."""
        frame = _combine(self.hours, ["hour"], TOTAL_TYPES).sort("hour")
        return frame.select(pl.col("hour").dt.convert_time_zone(self.zone.key), *TOTAL_TYPES)


def _combine(partials: list[pl.DataFrame], keys: list[str], types: pl.Schema) -> pl.DataFrame:
    """The sums of ``partials`` by ``keys`` (a single partial is returned as it is)."""
    if not partials:
        key_types = pl.Schema(
            {key: pl.Datetime("us", "UTC") if key == "hour" else pl.String() for key in keys}
        )
        return pl.DataFrame(schema=pl.Schema({**key_types, **types}))
    if len(partials) == 1:
        return partials[0].cast(types)
    frame = pl.concat([part.cast(types) for part in partials])
    counts = [pl.col(name).sum() for name in types if name in _COUNTED]
    return frame.group_by(keys).agg(*_sums(), *counts).cast(types)
