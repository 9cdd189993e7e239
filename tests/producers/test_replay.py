"""Replay of the real UCI Online Retail dataset, checked against an independent Polars count."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from common.errors import InvalidDayRange
from common.schema import decode_checkout, encode_checkout, record_timestamp_ms
from common.settings import Settings
from producers.exceptions import DatasetNotFoundError
from producers.replay import ReplayTotals, checkouts, price_of, store_id_of
from tests.helpers import DATASET, run_kassa, settings_env
from tests.producers.helpers import read_all

LONDON = ZoneInfo("Europe/London")
# Friday, Sunday 27 March 2011 (UK clocks go forward; there is no Saturday in the data), Monday
FIRST, LAST = date(2011, 3, 25), date(2011, 3, 28)


def _expected_per_day_item(first: date, last: date) -> dict[tuple[date, str], tuple[int, int]]:
    """(day, sku) -> (quantity, revenue in 1/10,000 GBP), straight from the Parquet file."""
    frame = (
        pl.read_parquet(DATASET)
        .with_columns(
            day=pl.col("InvoiceDate").dt.date(),
            price_units=(pl.col("UnitPrice") * 10_000).round(0).cast(pl.Int64),
        )
        .filter(pl.col("day").is_between(first, last))
        .group_by("day", "StockCode")
        .agg(
            quantity=pl.col("Quantity").sum(),
            revenue=(pl.col("Quantity") * pl.col("price_units")).sum(),
        )
    )
    return {
        (row["day"], row["StockCode"]): (row["quantity"], row["revenue"])
        for row in frame.iter_rows(named=True)
    }


def test_every_row_of_the_dataset_becomes_a_line_of_a_valid_checkout() -> None:
    replayed = list(checkouts(DATASET))
    rows = pl.read_parquet(DATASET)

    assert len(replayed) == rows["InvoiceNo"].n_unique() == 25_900
    assert sum(len(c.lines) for c in replayed) == rows.height == 541_909
    assert sum(line.quantity for c in replayed for line in c.lines) == 5_176_450
    revenue = sum(line.quantity * line.unit_price for c in replayed for line in c.lines)
    assert revenue == Decimal("9747747.934")  # the dataset README's reference total
    for checkout in replayed:
        assert decode_checkout(encode_checkout(checkout)) == checkout
    times = [c.occurred_at for c in replayed]
    assert times == sorted(times)
    kinds = Counter(c.kind for c in replayed)
    invoices = rows.group_by("InvoiceNo").agg(pl.col("Quantity").min(), pl.col("UnitPrice").min())
    returns = invoices.filter(pl.col("InvoiceNo").str.starts_with("C")).height
    adjustments = invoices.filter(
        ~pl.col("InvoiceNo").str.starts_with("C")
        & ((pl.col("Quantity") < 0) | (pl.col("UnitPrice") < 0))
    ).height
    assert kinds["return"] == returns
    assert kinds["adjustment"] == adjustments
    assert kinds["sale"] == 25_900 - returns - adjustments


def test_an_invoice_maps_to_one_checkout_as_documented() -> None:
    first = next(checkouts(DATASET, date(2010, 12, 1), date(2010, 12, 1)))

    assert first.transaction_id == "536365"
    assert first.store_id == "united-kingdom"
    assert first.register_id == "web"
    assert first.currency == "GBP"
    assert first.kind == "sale"
    assert first.occurred_at == datetime(2010, 12, 1, 8, 26, tzinfo=LONDON)
    assert first.lines[0].sku == "85123A"
    assert first.lines[0].name == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert (first.lines[0].quantity, first.lines[0].unit_price) == (6, Decimal("2.55"))


def test_bad_debt_adjustments_and_cancellations_get_their_kinds() -> None:
    august = {c.transaction_id: c for c in checkouts(DATASET, date(2011, 8, 12), date(2011, 8, 12))}

    assert august["A563185"].kind == "sale"  # positive bad-debt entry
    assert august["A563186"].kind == "adjustment"
    assert august["A563186"].lines[0].unit_price == Decimal("-11062.06")
    assert all(c.kind == "return" for tid, c in august.items() if tid.startswith("C"))


def test_summer_time_dates_carry_the_british_summer_offset() -> None:
    sunday = list(checkouts(DATASET, date(2011, 3, 27), date(2011, 3, 27)))

    assert {c.occurred_at.utcoffset() for c in sunday} == {LONDON.utcoffset(datetime(2011, 7, 1))}
    assert sunday[0].occurred_at.isoformat() == "2011-03-27T10:16:00+01:00"


def test_shift_to_moves_the_first_day_and_keeps_the_times_of_day() -> None:
    original = list(checkouts(DATASET, date(2011, 10, 30), date(2011, 10, 31)))
    shifted = list(checkouts(DATASET, date(2011, 10, 30), date(2011, 10, 31), date(2026, 3, 29)))

    assert [c.transaction_id for c in shifted] == [c.transaction_id for c in original]
    assert {c.occurred_at.date() for c in shifted} == {date(2026, 3, 29), date(2026, 3, 30)}
    for before, after in zip(original, shifted, strict=True):
        assert after.occurred_at.time() == before.occurred_at.time()
        assert (after.occurred_at.date() - before.occurred_at.date()).days == 5264
        assert after.lines == before.lines


def test_prices_are_the_exact_decimals_of_the_file() -> None:
    assert price_of(2.55) == Decimal("2.55")
    assert price_of(0.001) == Decimal("0.001")
    assert price_of(-11062.06) == Decimal("-11062.06")
    assert price_of(1 / 3) == Decimal("0.3333")
    assert store_id_of("United Kingdom") == "united-kingdom"
    assert store_id_of("EIRE") == "eire"
    assert store_id_of("European Community") == "european-community"


def test_a_missing_dataset_names_the_path_and_the_option(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.parquet"

    with pytest.raises(DatasetNotFoundError, match=r"nowhere\.parquet.*--dataset"):
        checkouts(missing)
    with pytest.raises(InvalidDayRange, match="after --to"):
        checkouts(DATASET, date(2011, 3, 2), date(2011, 3, 1))


def test_the_cli_reports_a_missing_dataset(settings: Settings, tmp_path: Path) -> None:
    result = run_kassa(
        "produce",
        "replay",
        "--dataset",
        str(tmp_path / "x"),
        env=settings_env(settings),
        timeout=60,
    )

    assert result.returncode == 2
    assert "--dataset" in result.stderr
    assert str(tmp_path / "x") in result.stderr


def test_replayed_days_consumed_from_kafka_equal_the_dataset(settings: Settings) -> None:
    result = run_kassa(
        "produce", "replay", "--from", str(FIRST), "--to", str(LAST), "--dataset", str(DATASET),
        env=settings_env(settings),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr

    records = read_all(settings)
    sums: dict[tuple[date, str], list[int]] = defaultdict(lambda: [0, 0])
    kinds: Counter[str] = Counter()
    for record in records:
        value = record.value()
        assert value is not None
        checkout = decode_checkout(value)
        kinds[checkout.kind] += 1
        assert record.timestamp()[1] == record_timestamp_ms(checkout)
        assert record.timestamp()[1] == int(checkout.occurred_at.timestamp() * 1000)
        assert record.key() == checkout.store_id.encode()
        day = checkout.occurred_at.astimezone(LONDON).date()
        for line in checkout.lines:
            sums[day, line.sku][0] += line.quantity
            sums[day, line.sku][1] += line.quantity * int(line.unit_price * 10_000)

    expected = _expected_per_day_item(FIRST, LAST)
    assert {key: (quantity, revenue) for key, (quantity, revenue) in sums.items()} == expected
    assert {day for day, _ in expected} == {date(2011, 3, 25), date(2011, 3, 27), LAST}
    assert kinds["return"] > 0
    assert len({record.value() for record in records}) == len(records)

    totals = ReplayTotals()
    list(totals.count(checkouts(DATASET, FIRST, LAST)))
    assert result.stdout.strip() == totals.table()
    assert f"{len(records):,} delivered, 0 failed" in result.stderr
