"""The JSON bodies of the API, as pydantic models (they document the OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobs.daily.status import STATES, DayStatus, State
from storage import figures

SKU_EXAMPLE = "85123A"
NAME_EXAMPLE = "WHITE HANGING HEART T-LIGHT HOLDER"
MANIFEST_EXAMPLE: dict[str, Any] = {
    "run_id": "6f1c0d2e",
    "revision": 1,
    "complete": True,
    "forced": False,
    figures.COLUMNS[figures.CHECKOUTS]: 1390,
    figures.LINES: 2412,
    figures.COLUMNS[figures.REVENUE]: "58635.5600",
    "finished_at": "2026-11-21T02:31:07+00:00",
    "code_version": "0.1.0",
    "drifted_items": 0,
}
"""A manifest in brief (:meth:`jobs.daily.status.DayStatus.summary_json`)."""


class RankedItem(BaseModel):
    """One row of a ranking (the shape ``kassa top --json`` prints)."""

    rank: int = Field(examples=[1])
    sku: str = Field(examples=[SKU_EXAMPLE])
    name: str | None = Field(examples=[NAME_EXAMPLE])
    units: int = Field(description="net units (sold minus returned)", examples=[454])
    revenue: str = Field(description="exact decimal, currency units", examples=["1272.8000"])


class Ranking(BaseModel):
    """A ranking of a day or a range of days."""

    model_config = ConfigDict(
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "source": "live",
                    "from": "2026-11-21",
                    "to": "2026-11-21",
                    "store": None,
                    "by": figures.BY_UNITS,
                    "n": 2,
                    "items": [
                        RankedItem(
                            rank=1,
                            sku=SKU_EXAMPLE,
                            name=NAME_EXAMPLE,
                            units=454,
                            revenue="1272.8000",
                        ).model_dump(),
                        RankedItem(
                            rank=2,
                            sku="84879",
                            name="ASSORTED COLOUR BIRD ORNAMENT",
                            units=376,
                            revenue="636.0000",
                        ).model_dump(),
                    ],
                }
            ]
        },
    )

    source: Literal["live", "daily"]
    first: str = Field(alias="from", description="first day YYYY-MM-DD")
    last: str = Field(alias="to", description="last day YYYY-MM-DD (inclusive)")
    store: str | None = Field(description="the store, or null for the whole chain")
    by: figures.RankedBy
    n: int
    items: list[RankedItem]


class DayTotals(BaseModel):
    """One day's totals of a scope."""

    day: str = Field(examples=["2026-11-21"])
    present: bool = Field(description="whether Redis holds figures for the day")
    units: int
    units_sold: int
    units_returned: int
    revenue: str = Field(description="net of discounts", examples=["58635.5600"])
    checkouts: int
    discount: str = Field(
        description="the discounts' sum (gross = revenue + discount)", examples=["412.3000"]
    )
    lines: int


class Totals(BaseModel):
    """Per-day totals over a range and their sum."""

    model_config = ConfigDict(populate_by_name=True)

    source: Literal["live", "daily"]
    first: str = Field(alias="from")
    last: str = Field(alias="to")
    store: str | None
    days: list[DayTotals]
    total: dict[str, int | str] = Field(
        description="the sums over the range (revenue as a decimal string)",
        examples=[
            dict(
                zip(
                    figures.TOTALS,
                    (26814, 27000, 186, "58635.5600", 1390, "412.3000", 2412),
                    strict=True,
                )
            )
        ],
    )


class ItemDay(BaseModel):
    """One item's figures on one day."""

    day: str = Field(examples=["2026-11-21"])
    present: bool
    units: int
    units_sold: int
    units_returned: int
    revenue: str = Field(description="net of discounts")
    checkouts: int = Field(description="checkouts that had the item")
    discount: str = Field(description="the discounts' sum (gross = revenue + discount)")


class ItemHistory(BaseModel):
    """One item's figures over a range of days and their sum."""

    model_config = ConfigDict(populate_by_name=True)

    sku: str = Field(examples=[SKU_EXAMPLE])
    name: str | None = Field(examples=[NAME_EXAMPLE])
    source: Literal["live", "daily"]
    first: str = Field(alias="from")
    last: str = Field(alias="to")
    store: str | None
    days: list[ItemDay]
    total: dict[str, int | str]


class Stores(BaseModel):
    """The stores with checkouts on any day of a range."""

    model_config = ConfigDict(populate_by_name=True)

    source: Literal["live", "daily"]
    first: str = Field(alias="from")
    last: str = Field(alias="to")
    stores: list[str] = Field(examples=[["eire", "france", "united-kingdom"]])


class DayStatusBody(BaseModel):
    """What exists for one day: the daily job's state of it, its keys in Redis, its manifest."""

    day: str = Field(examples=["2026-11-20"])
    state: State = Field(description=f"the daily job's state of the day: one of {STATES}")
    live: bool = Field(description="Redis holds live figures")
    daily: bool = Field(description="Redis holds the daily ranking")
    expired: bool = Field(description="past the Redis retention (see the Parquet snapshot)")
    manifest: dict[str, Any] | None = Field(
        description="summary of the daily manifest under KASSA_DATA_DIR, or null",
        examples=[MANIFEST_EXAMPLE],
    )

    @classmethod
    def of(cls, status: DayStatus, *, live: bool, daily: bool, expired: bool) -> DayStatusBody:
        """The body of ``status``, with what Redis holds of the day and whether it expired."""
        return cls(
            day=status.day.isoformat(),
            state=status.state,
            live=live,
            daily=daily,
            expired=expired,
            manifest=status.summary_json(),
        )


class Days(BaseModel):
    """The status of each day of a range."""

    model_config = ConfigDict(populate_by_name=True)

    first: str = Field(alias="from")
    last: str = Field(alias="to")
    days: list[DayStatusBody]


class Health(BaseModel):
    """Whether the API can serve (Redis), and the state of the jobs around it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "reason": None,
                    "redis": {"reachable": True, "reason": None},
                    "kafka": {
                        "reachable": True,
                        "reason": None,
                        "lag": 0,
                        "partitions": [
                            {"partition": 0, "high_watermark": 812, "committed": 812, "lag": 0}
                        ],
                        "probed_seconds_ago": 1.2,
                    },
                    "stream": {"consumer_group": "kassa-stream", "topic": "sales", "lag": 0},
                    "daily": {"day": "2026-11-20", **MANIFEST_EXAMPLE},
                }
            ]
        }
    )

    status: Literal["ok", "unavailable"]
    reason: str | None = Field(description="why the API cannot serve, one line")
    redis: dict[str, Any]
    kafka: dict[str, Any]
    stream: dict[str, Any]
    daily: dict[str, Any] | None = Field(description="the newest daily manifest, or null")


class Problem(BaseModel):
    """An error: a code, the parameter at fault if any, and a one-line explanation."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "invalid_parameter",
                    "parameter": "day",
                    "detail": "day='21-11-2026' is not accepted: a date YYYY-MM-DD, e.g. "
                    "2026-11-21",
                }
            ]
        }
    )

    error: str
    parameter: str | None = None
    detail: str
