"""The figures' layout, names and drift (pure logic, no services)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from storage import figures, keys


def test_the_layout_is_pinned() -> None:
    layout = (
        figures.UNITS,
        figures.SOLD,
        figures.RETURNED,
        figures.REVENUE,
        figures.CHECKOUTS,
        figures.DISCOUNT,
    )
    assert layout == tuple(range(figures.WIDTH))
    assert figures.NAMES == ("units", "sold", "returned", "revenue", "checkouts", "discount")
    assert figures.COLUMNS == (
        "units",
        "units_sold",
        "units_returned",
        "revenue",
        "checkouts",
        "discount",
    )
    assert (*figures.COLUMNS, "lines") == figures.TOTALS
    assert (figures.CHECKOUT_COUNT, figures.LINE_COUNT) == (0, 1)
    assert (*figures.NAMES, "totals") == keys.MEASURES
    assert figures.MONEY_FIGURES == (figures.REVENUE, figures.DISCOUNT)


def test_figures_of_ignores_extra_slots() -> None:
    assert figures.figures_of([1, 2, 3, 4, 5, 6, 99]) == (1, 2, 3, 4, 5, 6)


def test_drifts_compare_item_by_item_with_missing_items_as_zero() -> None:
    live = {"a": (4, 4, 0, 100, 1, 0), "b": (1, 1, 0, 10, 1, 0)}
    daily = {"a": (5, 5, 0, 100, 2, 3), "b": (1, 1, 0, 10, 1, 0), "c": (2, 2, 0, 20, 1, 0)}

    found = figures.drifts(live, daily)

    assert [drift.sku for drift in found] == ["a", "c"]
    assert found[0].as_dict() == {
        "sku": "a",
        "live": {
            "units": 4,
            "sold": 4,
            "returned": 0,
            "revenue": 100,
            "checkouts": 1,
            "discount": 0,
        },
        "daily": {
            "units": 5,
            "sold": 5,
            "returned": 0,
            "revenue": 100,
            "checkouts": 2,
            "discount": 3,
        },
        "difference": {
            "units": -1,
            "sold": -1,
            "returned": 0,
            "revenue": 0,
            "checkouts": -1,
            "discount": -3,
        },
    }
    assert found[1].live == figures.ZERO


def test_keys_expire_retention_after_the_day_or_after_a_late_write() -> None:
    london = ZoneInfo("Europe/London")
    day = date(2026, 10, 25)  # 25 hours long
    end = datetime(2026, 10, 26, 0, tzinfo=UTC)
    assert keys.expire_at(day, london, 7) == int((end + timedelta(days=7)).timestamp())
    assert keys.expire_at(day, london, 7, written_at=end - timedelta(hours=1)) == int(
        (end + timedelta(days=7)).timestamp()
    )
    late = end + timedelta(days=3, minutes=5)
    assert keys.expire_at(day, london, 7, written_at=late) == int(
        (late + timedelta(days=7)).timestamp()
    )


def test_rankings_rank_by_figures_of_the_model() -> None:
    assert (figures.NAMES[figures.UNITS], figures.NAMES[figures.REVENUE]) == figures.RANKED_BY
    assert figures.RANKED_BY_CHOICES == "'units' or 'revenue'"


def test_columns_json_gives_revenue_and_discount_as_exact_decimals() -> None:
    values = dict(zip(figures.TOTALS, (3, 4, 1, 12_3456, 2, 1_5000, 5), strict=True))
    assert figures.columns_json(values) == {
        "units": 3,
        "units_sold": 4,
        "units_returned": 1,
        "revenue": "12.3456",
        "checkouts": 2,
        "discount": "1.5000",
        "lines": 5,
    }
    assert figures.summary(figures.columns_json(values)) == (
        "2 checkouts, 5 lines, 3 units, revenue 12.3456"
    )
