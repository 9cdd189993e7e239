"""A day's lines into the daily tables, chunk by chunk, with exact integer and decimal sums.

Each chunk of decoded lines is cut to the day, freed of duplicate checkouts and reduced to
*partial* aggregates; partials add up exactly (every checkout lies in one chunk), so a day of
any size needs memory for one chunk plus the partials, never for all its lines.

Definitions (as in :mod:`common.schema`): ``units`` = sum of quantities over all kinds,
``units_sold`` = quantities of sales, ``units_returned`` = negated quantities of returns,
``revenue`` = sum of ``quantity * unit_price`` over all kinds, ``checkouts`` = checkouts with
at least one line of the item. ``name`` is the name on the item's latest line (latest
``occurred_at``; on a tie, the greatest name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

import polars as pl

from common.schema import MONEY_DECIMALS

REVENUE = pl.Decimal(38, MONEY_DECIMALS)
LINE_PRICE = pl.Decimal(18, MONEY_DECIMALS)
FIGURES: Final = ("units", "units_sold", "units_returned", "revenue", "checkouts")
_COMPACT_EVERY: Final = 16

SALES_LINES_SCHEMA: Final = pl.Schema(
    {
        "occurred_at": pl.Datetime("us", "UTC"),
        "transaction_id": pl.String,
        "store_id": pl.String,
        "register_id": pl.String,
        "kind": pl.String,
        "sku": pl.String,
        "quantity": pl.Int32,
        "unit_price": LINE_PRICE,
    }
)


class Deduplicator:
    """Keeps the first occurrence of each transaction id over all chunks of a day."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def first_occurrences(self, lines: pl.DataFrame) -> tuple[pl.DataFrame, int]:
        """``lines`` without checkouts seen before; and the number of checkouts dropped."""
        messages = lines.select("message", "transaction_id").unique("message", keep="first")
        messages = messages.sort("message")
        seen = self._seen
        keep: list[int] = []
        dropped = 0
        for message, transaction_id in messages.iter_rows():
            if transaction_id in seen:
                dropped += 1
            else:
                seen.add(transaction_id)
                keep.append(message)
        if dropped == 0:
            return lines, 0
        return lines.filter(pl.col("message").is_in(keep)), dropped


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
    return lines.select(SALES_LINES_SCHEMA.names()).cast(dict(SALES_LINES_SCHEMA))


def _measures(lines: pl.DataFrame, zone: ZoneInfo) -> pl.DataFrame:
    quantity = pl.col("quantity")
    local = pl.col("occurred_at").dt.convert_time_zone(zone.key)
    into_hour = pl.duration(
        minutes=local.dt.minute(), seconds=local.dt.second(), time_unit="us"
    ) + pl.duration(microseconds=local.dt.microsecond(), time_unit="us")
    return lines.select(
        "transaction_id",
        "store_id",
        "sku",
        "name",
        "occurred_at",
        units=quantity,
        units_sold=pl.when(pl.col("kind") == "sale").then(quantity).otherwise(0),
        units_returned=pl.when(pl.col("kind") == "return").then(-quantity).otherwise(0),
        revenue=(pl.col("unit_price").cast(REVENUE) * quantity).cast(REVENUE),
        hour=pl.col("occurred_at") - into_hour,
    )


def _sums() -> list[pl.Expr]:
    return [
        pl.col("units").sum(),
        pl.col("units_sold").sum(),
        pl.col("units_returned").sum(),
        pl.col("revenue").sum().cast(REVENUE),
    ]


def _named(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Partial sums by ``keys`` with the latest name and its time."""
    named = frame.filter(pl.col("name").is_not_null())
    names = named.group_by(keys).agg(
        name=pl.col("name").sort_by(["occurred_at", "name"]).last(),
        name_at=pl.col("occurred_at").max(),
    )
    sums = frame.group_by(keys).agg(*_sums(), checkouts=pl.col("transaction_id").n_unique())
    return sums.join(names, on=keys, how="left")


@dataclass
class Partials:
    """Partial aggregates of the chunks seen so far."""

    zone: ZoneInfo
    items: list[pl.DataFrame] = field(default_factory=list)
    store_items: list[pl.DataFrame] = field(default_factory=list)
    hours: list[pl.DataFrame] = field(default_factory=list)
    stores: list[pl.DataFrame] = field(default_factory=list)

    def add(self, lines: pl.DataFrame) -> None:
        """Fold one chunk of in-day, deduplicated lines into the partials."""
        if lines.is_empty():
            return
        measures = _measures(lines, self.zone)
        self.items.append(_named(measures, ["sku"]))
        self.store_items.append(_named(measures, ["store_id", "sku"]))
        self.hours.append(
            measures.group_by("hour").agg(
                *_sums(),
                checkouts=pl.col("transaction_id").n_unique(),
                lines=pl.len().cast(pl.Int64),
            )
        )
        self.stores.append(
            measures.group_by("store_id").agg(
                *_sums(),
                checkouts=pl.col("transaction_id").n_unique(),
                lines=pl.len().cast(pl.Int64),
            )
        )
        if len(self.items) >= _COMPACT_EVERY:
            self.items = [_combine_named(self.items, ["sku"])]
            self.store_items = [_combine_named(self.store_items, ["store_id", "sku"])]
            self.hours = [_combine_hours(self.hours)]
            self.stores = [_combine_counts(self.stores, "store_id", pl.String)]

    def item_sales(self) -> pl.DataFrame:
        """``daily_item_sales``: one row per item, by net units descending then sku."""
        frame = _combine_named(self.items, ["sku"])
        return _finish(frame, ["sku"]).sort(["units", "sku"], descending=[True, False])

    def store_item_sales(self) -> pl.DataFrame:
        """``daily_store_item_sales``: one row per store and item."""
        frame = _combine_named(self.store_items, ["store_id", "sku"])
        return _finish(frame, ["store_id", "sku"]).sort(
            ["store_id", "units", "sku"], descending=[False, True, False]
        )

    def store_totals(self) -> pl.DataFrame:
        """Per store: the figures plus checkouts and lines of the whole day, by store id."""
        return _combine_counts(self.stores, "store_id", pl.String).sort("store_id")

    def hourly_sales(self) -> pl.DataFrame:
        """``hourly_sales``: one row per local hour with sales, ``hour`` in the business zone."""
        frame = _combine_hours(self.hours).sort("hour")
        return frame.select(
            pl.col("hour").dt.convert_time_zone(self.zone.key),
            *FIGURES[:-1],
            "checkouts",
            "lines",
        ).cast(_HOUR_TYPES)


_FIGURE_TYPES: Final = {
    "units": pl.Int64,
    "units_sold": pl.Int64,
    "units_returned": pl.Int64,
    "revenue": REVENUE,
    "checkouts": pl.Int64,
}
_HOUR_TYPES: Final = {**_FIGURE_TYPES, "lines": pl.Int64}


def _empty_named(keys: list[str]) -> pl.DataFrame:
    schema: dict[str, pl.DataType | type[pl.DataType]] = dict.fromkeys(keys, pl.String)
    schema.update(_FIGURE_TYPES)
    schema.update({"name": pl.String, "name_at": pl.Datetime("us", "UTC")})
    return pl.DataFrame(schema=schema)


def _combine_named(partials: list[pl.DataFrame], keys: list[str]) -> pl.DataFrame:
    if not partials:
        return _empty_named(keys)
    frame = pl.concat([part.cast(_FIGURE_TYPES) for part in partials], how="vertical")
    if len(partials) == 1:
        return frame
    named = frame.filter(pl.col("name").is_not_null())
    names = named.group_by(keys).agg(
        name=pl.col("name").sort_by(["name_at", "name"]).last(),
        name_at=pl.col("name_at").max(),
    )
    sums = frame.group_by(keys).agg(*_sums(), pl.col("checkouts").sum())
    return sums.join(names, on=keys, how="left")


def _combine_counts(
    partials: list[pl.DataFrame], key: str, key_type: pl.DataType | type[pl.DataType]
) -> pl.DataFrame:
    if not partials:
        return pl.DataFrame(schema={key: key_type, **_HOUR_TYPES})
    frame = pl.concat([part.cast(_HOUR_TYPES) for part in partials], how="vertical")
    return frame.group_by(key).agg(*_sums(), pl.col("checkouts").sum(), pl.col("lines").sum())


def _combine_hours(partials: list[pl.DataFrame]) -> pl.DataFrame:
    return _combine_counts(partials, "hour", pl.Datetime("us", "UTC"))


def _finish(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    return frame.select(*keys, "name", *FIGURES).cast(_FIGURE_TYPES)
