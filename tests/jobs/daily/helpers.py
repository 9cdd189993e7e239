"""Producing test input for the daily job and computing its expected output independently."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from common.schema import Checkout, Line, encode_checkout, record_timestamp_ms
from common.settings import Settings
from storage import keys
from storage.connections import Client
from storage.figures import COLUMNS
from storage.kafka.config import client_config
from tests.helpers import DATASET, truth

LONDON = ZoneInfo("Europe/London")

Expected = dict[str, tuple[int, int, int, Decimal, int, Decimal]]
"""sku -> the item's figures in the layout of :mod:`storage.figures`, money as Decimals."""


def checkout(
    transaction_id: str,
    occurred_at: datetime,
    lines: Iterable[tuple[str, int, str]],
    *,
    store_id: str = "s01",
    kind: str = "sale",
) -> Checkout:
    """A checkout with ``(sku, quantity, unit_price)`` lines."""
    return Checkout(
        transaction_id=transaction_id,
        store_id=store_id,
        register_id="r1",
        occurred_at=occurred_at,
        kind=kind,  # type: ignore[arg-type]
        currency="GBP",
        lines=tuple(Line(sku, qty, Decimal(price), f"item {sku}") for sku, qty, price in lines),
    )


def produce(
    settings: Settings, checkouts: Iterable[Checkout], partition: int | None = None
) -> None:
    """Send ``checkouts`` with ``occurred_at`` as record timestamp (to ``partition`` if given)."""
    producer = Producer(client_config(settings, {"linger.ms": 5}))
    for item in checkouts:
        kwargs = {} if partition is None else {"partition": partition}
        producer.produce(
            settings.topic,
            encode_checkout(item),
            key=item.store_id.encode(),
            timestamp=record_timestamp_ms(item),
            **kwargs,
        )
    assert producer.flush(30) == 0


def produce_raw(settings: Settings, values: Iterable[bytes], timestamp: datetime) -> None:
    """Send raw values (e.g. invalid messages) to partition 0."""
    producer = Producer(client_config(settings))
    for value in values:
        producer.produce(
            settings.topic, value, partition=0, timestamp=int(timestamp.timestamp() * 1000)
        )
    assert producer.flush(30) == 0


def seal(settings: Settings, after: datetime, partitions: Iterable[int] = (0, 1, 2)) -> None:
    """Records at ``after`` in each partition (as many as the look-ahead wants), so earlier
    days count as complete by records."""
    for partition in partitions:
        sentinels = [
            checkout(f"seal-{partition}-{after.isoformat()}-{n}", after, [("seal", 1, "1")])
            for n in range(settings.daily_lookahead_records)
        ]
        produce(settings, sentinels, partition)


def dataset_expected(day: date) -> Expected:
    """Per-item figures of ``day`` computed straight from the dataset file (London days).

    Kinds as documented for the replay: ``C`` invoices are returns; other invoices with a
    negative quantity or price are adjustments; the rest are sales. Revenue is the exact
    decimal sum of quantity times the shortest decimal of each float price.
    """
    frame = pl.read_parquet(DATASET).filter(pl.col("InvoiceDate").dt.date() == day)
    negative = frame.group_by("InvoiceNo").agg(
        negative=((pl.col("Quantity") < 0) | (pl.col("UnitPrice") < 0)).any()
    )
    frame = frame.join(negative, on="InvoiceNo")
    sums: dict[str, list[object]] = defaultdict(lambda: [0, 0, 0, Decimal(0), set()])
    for invoice, sku, quantity, price, negative_invoice in frame.select(
        "InvoiceNo", "StockCode", "Quantity", "UnitPrice", "negative"
    ).iter_rows():
        row = sums[sku]
        row[0] += quantity  # type: ignore[operator]
        if invoice.startswith("C"):
            row[2] -= quantity  # type: ignore[operator]
        elif not negative_invoice:
            row[1] += quantity  # type: ignore[operator]
        row[3] += quantity * Decimal(repr(price))  # type: ignore[operator]
        row[4].add(invoice)  # type: ignore[attr-defined]
    return {
        sku: (row[0], row[1], row[2], row[3], len(row[4]), Decimal(0))  # type: ignore[misc,arg-type]
        for sku, row in sums.items()
    }


def expected_of(checkouts: Iterable[Checkout], day: date, zone: ZoneInfo) -> Expected:
    """Per-item figures of ``day`` computed the plain way from checkouts (no duplicates)."""
    return {
        sku: row for (when, store, sku), row in truth(checkouts, zone).items()
        if when == day and store is None
    }  # fmt: skip


def parquet_figures(path: Path) -> Expected:
    """The figures of a ``daily_item_sales`` file, in the :data:`Expected` shape."""
    frame = pl.read_parquet(path)
    assert frame.schema["revenue"] == pl.Decimal(38, 4)
    return {sku: tuple(row) for sku, *row in frame.select("sku", *COLUMNS).iter_rows()}


def utc(*args: int) -> datetime:
    """An aware UTC datetime."""
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def data_files(data_dir: Path) -> dict[str, bytes]:
    """Every file under ``data_dir`` except manifests and locks, by relative path."""
    return {
        str(path.relative_to(data_dir)): path.read_bytes()
        for path in sorted(data_dir.rglob("*"))
        if path.is_file() and "_manifests" not in path.parts
    }


def a_day_later(instant: datetime) -> datetime:
    """``instant`` plus 24 hours."""
    return instant + timedelta(days=1)


def delete_records(settings: Settings, partition: int, before: int) -> None:
    """Delete the records of ``partition`` before offset ``before``, as retention would."""
    admin = AdminClient(client_config(settings))
    futures = admin.delete_records([TopicPartition(settings.topic, partition, before)])
    for future in futures.values():
        assert future.result(timeout=30).low_watermark == before


RUN_FIELDS_THAT_DIFFER = ("finished_at",)
"""A run stores the time it staged the keys, the snapshot the time its manifest was written."""

DailyKeys = dict[str, object]


def daily_keys(client: Client, space: str, day: date) -> DailyKeys:
    """Every daily key of ``day`` (chain and stores) with its value, and the item names: what
    a republish must restore (a run's time left out, see :data:`RUN_FIELDS_THAT_DIFFER`)."""
    found: DailyKeys = {}
    for raw in client.scan_iter(match=f"{keys.day_scope(space, 'daily', day)}*"):
        key = raw.decode()
        kind = client.type(key).decode()
        if kind == "zset":
            found[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            found[key] = sorted(client.smembers(key))
        else:
            values = client.hgetall(key)
            found[key] = {
                f: v for f, v in values.items() if f.decode() not in RUN_FIELDS_THAT_DIFFER
            }
    found["names"] = client.hgetall(keys.names_key(space))
    return found


def produce_four_store_day(settings: Settings) -> list[Checkout]:
    """120 checkouts of 2026-11-20 over 4 stores, produced and sealed (the day is complete)."""
    sales = [
        checkout(
            f"t{n}",
            utc(2026, 11, 20, 8) + timedelta(minutes=7 * n),
            [(f"sku{n % 5}", 1 + n % 3, "2.50"), ("milk", 2, "0.99")],
            store_id=f"s{n % 4}",
        )
        for n in range(120)
    ]
    produce(settings, sales)
    seal(settings, utc(2026, 11, 22))
    return sales
