"""A day's lines into the daily tables, chunk by chunk, with exact integer and decimal sums.

Each chunk of decoded lines is cut to the day, freed of duplicate checkouts and reduced to
*partial* aggregates; partials add up exactly (every checkout lies in one chunk), so a day of
any size needs memory for one chunk, the partials and the ids of its checkouts (about 37
bytes each by Polars' estimate, about 95 of a process's peak memory: :class:`Deduplicator`,
``BENCHMARKS.md``), never for all its lines.

The figures are those of :mod:`storage.figures` (revenue net of discounts), the tables'
columns and types those of
:func:`storage.parquet.schema`. ``name`` is the name on the item's latest line (latest
``occurred_at``; on a tie, the greatest name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

import polars as pl

from storage.figures import CHECKOUTS, COLUMNS, DISCOUNT, LINES, RETURNED, REVENUE, SOLD, UNITS
from storage.parquet import (
    FIGURE_TYPES,
    ITEM_SALES,
    MONEY,
    SALES_LINES,
    STORE_ITEM_SALES,
    TOTAL_TYPES,
)

_COMPACT_EVERY: Final = 16
_SUMMED: Final = (
    COLUMNS[UNITS],
    COLUMNS[SOLD],
    COLUMNS[RETURNED],
    COLUMNS[REVENUE],
    COLUMNS[DISCOUNT],
)
"""The figures that are sums over lines (checkouts and lines are counts)."""
_COUNTED: Final = (COLUMNS[CHECKOUTS], LINES)


class Deduplicator:
    """Keeps the first occurrence of each checkout over all chunks of a day.

    A checkout is identified by ``(store_id, transaction_id)``: transaction ids are unique
    per store (the producers' contract), so two stores may send the same id.

    The ids seen are the one part of a run that grows with the day, so they are kept as
    Polars strings rather than a Python set of tuples (about 37 bytes per checkout instead
    of about 250: a tuple, two ``str`` objects and a slot of the set). Each id is one
    string, the store id prefixed with its length so that no two checkouts share one. The
    strings are kept in sorted *runs*: a chunk's new ids become a run, and the newest two
    runs are merged (:meth:`pl.DataFrame.merge_sorted`, linear) while the older is not larger
    and the merged run holds at most ``MAX_RUN`` ids, so a day has a few runs and a merge
    never holds many ids twice. A lookup is a binary search of every run that compares
    full ids, so the result is exact.

    Searching every run for every id would cost several times what a set costs, so a bitmap
    of ``SLOTS_PER_ID`` bits per id seen (2 to 4 bytes per id as it grows) answers first: an
    id whose hash bit is clear was never seen; only the others (about 1 in 16, and the
    duplicates) are searched. A hash only decides what is searched, never what is dropped.
    """

    MAX_RUN: Final = 1 << 21
    SLOTS_PER_ID: Final = 16

    def __init__(self) -> None:
        self._runs: list[pl.Series] = []
        self._ids = 0
        self._slots = pl.repeat(False, 1 << 20, eager=True)

    def first_occurrences(self, lines: pl.DataFrame) -> tuple[pl.DataFrame, int]:
        """``lines`` without checkouts seen before; and the number of checkouts dropped.

        ``lines`` must be in message order (as decoded), a message's lines together.
        """
        message, store, checkout = pl.col("message"), pl.col("store_id"), pl.col("id")
        messages = (
            lines.lazy()
            .select("message", "store_id", "transaction_id")
            .filter(message != message.shift(1, fill_value=-1))
            .select(
                "message",
                id=pl.concat_str(
                    store.str.len_bytes().cast(pl.String), pl.lit(":"), store, "transaction_id"
                ),
            )
        )
        # One query: the calling thread waits for the GIL after each Polars call. Sorted ids
        # are searched with fewer cache misses, and are a run as they are.
        first = (
            messages.filter(checkout.is_first_distinct())
            .sort("id")
            .with_columns(slot=self._slot(checkout))
            .with_columns(maybe=pl.lit(self._slots).gather("slot"))
        )
        counted, kept, maybe = pl.collect_all(
            [messages.select(pl.len()), first, first.filter("maybe").select("id")]
        )
        found = self._found(maybe.get_column("id"))
        if not found.is_empty():
            kept = kept.filter(~checkout.is_in(found.implode()))
        self._remember(kept.get_column("id"), kept.get_column("slot"))
        dropped = counted.item() - kept.height
        if dropped == 0:
            return lines, 0
        return lines.filter(message.is_in(kept.get_column("message").implode())), dropped

    def ids(self) -> int:
        """How many checkouts were seen."""
        return self._ids

    def nbytes(self) -> int:
        """The memory the ids seen take: their runs and the bitmap (Polars' estimate)."""
        runs = sum(run.estimated_size() for run in self._runs)
        return int(runs + self._slots.estimated_size())

    def _slot(self, ids: pl.Expr) -> pl.Expr:
        """The bit of each id in the bitmap (the only hash of ids there is)."""
        return ids.hash() & (self._slots.len() - 1)

    def _found(self, ids: pl.Series) -> pl.Series:
        """Those of ``ids`` that are in one of the runs."""
        if ids.is_empty() or not self._runs:
            return ids.clear()
        checkout = pl.col("id")
        found = []
        for run in self._runs:
            values = pl.lit(run)
            at = values.search_sorted(checkout).clip(upper_bound=run.len() - 1)
            found.append(values.gather(at) == checkout)
        return ids.to_frame().filter(pl.any_horizontal(found)).get_column("id")

    def _remember(self, ids: pl.Series, slots: pl.Series) -> None:
        """Add ``ids`` (sorted, none of them seen yet; ``slots``: their bits) as a run."""
        if ids.is_empty():
            return
        runs = self._runs
        runs.append(ids)
        while len(runs) > 1 and runs[-2].len() <= runs[-1].len():
            if runs[-2].len() + runs[-1].len() > self.MAX_RUN:
                break
            newer, older = runs.pop(), runs.pop()
            merged = older.to_frame().merge_sorted(newer.to_frame(), "id")
            runs.append(merged.get_column("id"))
        self._ids += ids.len()
        if self._ids * self.SLOTS_PER_ID <= self._slots.len():
            self._slots = self._slots.scatter(slots, True)
            return
        size = self._slots.len()
        while self._ids * self.SLOTS_PER_ID > size:
            size *= 2
        self._slots = pl.repeat(False, size, eager=True)
        for run in runs:
            slots = run.to_frame().select(self._slot(pl.col("id"))).to_series()
            self._slots = self._slots.scatter(slots, True)


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
    # common.schema.line_amounts: the discount takes the sign of the gross amount
    gross = pl.col("unit_price").cast(MONEY) * quantity
    given = pl.col("discount").cast(MONEY)
    discount = pl.when(gross < 0).then(-given).otherwise(given)
    return lines.select(
        "message",
        "store_id",
        "sku",
        "name",
        "occurred_at",
        quantity.alias(COLUMNS[UNITS]),
        pl.when(kind == "sale").then(quantity).otherwise(0).alias(COLUMNS[SOLD]),
        pl.when(kind == "return").then(-quantity).otherwise(0).alias(COLUMNS[RETURNED]),
        (gross - discount).alias(COLUMNS[REVENUE]),
        discount.alias(COLUMNS[DISCOUNT]),
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
