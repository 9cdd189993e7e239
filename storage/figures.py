"""The figures kassa keeps of every item and every day, named in this one module.

**Item figures.** Six integers per item and scope (a business day of the chain, or of one
store). Everywhere they travel together they are a tuple or list in this order, the
*layout*, indexed by the constants below:

=====  ==========  =========  ==============  ==============================================
index  constant    name       column          meaning
=====  ==========  =========  ==============  ==============================================
0      UNITS       units      units           net units: quantities summed over all kinds
1      SOLD        sold       units_sold      units sold: the quantities of sales
2      RETURNED    returned   units_returned  units returned: the negated quantities of
                                              returns
3      REVENUE     revenue    revenue         the sum of the lines' net amounts (quantity *
                                              unit price less the discount), in integer
                                              1/10,000 currency units (exact)
4      CHECKOUTS   checkouts  checkouts       checkouts with at least one line of the item
5      DISCOUNT    discount   discount        the sum of the lines' discounts (a return's
                                              negative), in money units like revenue: the
                                              gross amount is revenue + discount
=====  ==========  =========  ==============  ==============================================

*name* (:data:`NAMES`) is the figure's Redis key, ``kassa:{sp}:{src}:{D}:{name}`` (sku -> figure;
see :mod:`storage.keys`), and its name in reports (:class:`Drift`). *column*
(:data:`COLUMNS`) is its Parquet column (types in :mod:`storage.parquet`) and its field in a
scope's day totals. Net units are kept in a sorted set (the ranking); the other figures in
hashes that omit zero values.

Revenue and discount are *money figures* (:data:`MONEY_FIGURES`): Decimal columns in
Parquet, exact decimal strings in JSON. A line's amounts are :func:`common.schema.line_amounts`.

A list of figures may carry slots of its own after the six (the stream aggregator keeps
one): code outside its owner reads only the indexes above. Hot loops bind the constants to
local names (a local costs less per use than a module global).

**Day totals.** A scope's ``totals`` hash and the ``hourly_sales`` rows have the fields
:data:`TOTALS`: the columns of the figures summed over the scope's items, except that
``checkouts`` counts the scope's checkouts, and ``lines``, the number of their lines. The
stream job counts the checkouts and lines of a scope in a list ``[checkouts, lines]``
indexed by :data:`CHECKOUT_COUNT` and :data:`LINE_COUNT`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from common.schema import from_money_units

UNITS: Final = 0
SOLD: Final = 1
RETURNED: Final = 2
REVENUE: Final = 3
CHECKOUTS: Final = 4
DISCOUNT: Final = 5
WIDTH: Final = 6
"""The number of item figures: the slots of the layout."""
RANKED: Final = UNITS
"""The figure that ranks items, kept in a sorted set."""
HASHED: Final = (SOLD, RETURNED, REVENUE, CHECKOUTS, DISCOUNT)
"""The figures kept in hashes (zero values omitted)."""
MONEY_FIGURES: Final = (REVENUE, DISCOUNT)
"""The figures that are money (integer money units; decimals in Parquet and JSON)."""

Name = Literal["units", "sold", "returned", "revenue", "checkouts", "discount"]
NAMES: Final[tuple[Name, ...]] = ("units", "sold", "returned", "revenue", "checkouts", "discount")
"""Each figure's name and Redis key, by index."""
COLUMNS: Final[tuple[str, ...]] = (
    "units",
    "units_sold",
    "units_returned",
    "revenue",
    "checkouts",
    "discount",
)
"""Each figure's Parquet column and totals field, by index."""
MONEY_COLUMNS: Final = frozenset(COLUMNS[figure] for figure in MONEY_FIGURES)
"""The columns of :data:`MONEY_FIGURES`."""
LINES: Final = "lines"
TOTALS: Final[tuple[str, ...]] = (*COLUMNS, LINES)
"""The fields of a scope's day totals."""

CHECKOUT_COUNT: Final = 0
LINE_COUNT: Final = 1

RankedBy = Literal["units", "revenue"]
BY_UNITS: Final[RankedBy] = "units"
BY_REVENUE: Final[RankedBy] = "revenue"
RANKED_BY: Final[tuple[RankedBy, ...]] = (BY_UNITS, BY_REVENUE)
"""The figures a ranking ranks by (their :data:`NAMES`), and the two a ranking shows."""
RANKED_BY_CHOICES: Final = " or ".join(repr(name) for name in RANKED_BY)
"""``'units' or 'revenue'``, for messages that name the accepted values."""

Figures = tuple[int, int, int, int, int, int]
"""An item's figures in the layout."""
ZERO: Final[Figures] = (0, 0, 0, 0, 0, 0)
"""The figures of an item without lines."""


def figures_of(values: Sequence[int]) -> Figures:
    """The item figures in ``values``, a sequence in the layout (extra slots are ignored)."""
    return (
        values[UNITS],
        values[SOLD],
        values[RETURNED],
        values[REVENUE],
        values[CHECKOUTS],
        values[DISCOUNT],
    )


def columns_json(values: Mapping[str, int]) -> dict[str, int | str]:
    """``values`` by column (:data:`COLUMNS`, :data:`TOTALS`), JSON-ready: the money figures,
    in money units, as exact decimal strings."""
    return {
        column: str(from_money_units(value)) if column in MONEY_COLUMNS else value
        for column, value in values.items()
    }


def summary(totals: Mapping[str, object]) -> str:
    """``1,390 checkouts, 2,412 lines, 26,814 units, revenue 58635.5600``: day totals
    (:data:`TOTALS`, revenue as a decimal) in one phrase."""
    return (
        f"{totals[COLUMNS[CHECKOUTS]]:,} checkouts, {totals[LINES]:,} lines, "
        f"{totals[COLUMNS[UNITS]]:,} units, revenue {totals[COLUMNS[REVENUE]]}"
    )


@dataclass(frozen=True, slots=True)
class Drift:
    """One item whose figures differ between two sources: the live and the daily figures."""

    sku: str
    live: Figures
    daily: Figures

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: the figures by name, and their differences (live minus daily)."""
        return {
            "sku": self.sku,
            "live": dict(zip(NAMES, self.live, strict=True)),
            "daily": dict(zip(NAMES, self.daily, strict=True)),
            "difference": {
                name: live - daily
                for name, live, daily in zip(NAMES, self.live, self.daily, strict=True)
            },
        }


def drifts(live: Mapping[str, Figures], daily: Mapping[str, Figures]) -> list[Drift]:
    """The items whose figures differ, by sku; an item missing on one side has no lines."""
    found = []
    for sku in sorted(live.keys() | daily.keys()):
        mine, theirs = live.get(sku, ZERO), daily.get(sku, ZERO)
        if mine != theirs:
            found.append(Drift(sku, mine, theirs))
    return found
