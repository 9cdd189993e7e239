"""The API's bodies name the figures as the figures model does (pure, no services)."""

from __future__ import annotations

from api import models
from storage import figures


def test_the_bodies_name_each_figure_by_its_column() -> None:
    assert set(models.ItemDay.model_fields) == {"day", "present", *figures.COLUMNS}
    assert set(models.DayTotals.model_fields) == {"day", "present", *figures.TOTALS}
    assert set(models.RankedItem.model_fields) == {"rank", "sku", "name", *figures.RANKED_BY}
    assert set(models.DayStatusBody.model_fields["manifest"].examples[0]) >= {
        figures.COLUMNS[figures.CHECKOUTS],
        figures.COLUMNS[figures.REVENUE],
    }
