"""The daily job against a real broker and Redis: exact figures, idempotence, completeness."""

from __future__ import annotations

import json
import threading
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import redis

from common.schema import encode_checkout, to_money_units
from common.settings import Settings
from jobs.daily.exceptions import IncompleteDay, RedisWriteError, SnapshotKept
from jobs.daily.job import run_day
from jobs.daily.manifest import Missing, read_manifest
from producers.publish import publish
from producers.replay import checkouts as replay_checkouts
from storage import keys, parquet
from tests.helpers import free_port, run_kassa, settings_env
from tests.jobs.daily.helpers import (
    DATASET,
    LONDON,
    checkout,
    data_files,
    dataset_expected,
    delete_records,
    expected_of,
    parquet_figures,
    produce,
    produce_four_store_day,
    produce_raw,
    seal,
    utc,
)


def _london(settings: Settings) -> Settings:
    return settings.model_copy(update={"timezone": "Europe/London"})


def _redis_state(client: redis.Redis, space: str) -> dict[str, object]:
    """Every key of the daily source of key space ``space`` (but the manifest hash, which
    names the run) with its content."""
    state: dict[str, object] = {}
    for raw in sorted(client.scan_iter(keys.source_prefix(space, "daily") + "*")):
        key = raw.decode()
        if key.endswith(":manifest"):
            continue
        kind = client.type(key).decode()
        if kind == "zset":
            state[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "hash":
            state[key] = client.hgetall(key)
        else:
            state[key] = sorted(client.smembers(key))
    assert state, f"no daily keys in key space {space!r}"
    return state


@pytest.mark.parametrize(("day", "hours"), [(date(2011, 3, 27), 23), (date(2011, 10, 30), 25)])
def test_dataset_day_equals_an_independent_computation(
    settings: Settings, redis_client: redis.Redis, day: date, hours: int
) -> None:
    london = _london(settings)
    report = publish(
        london, replay_checkouts(DATASET, day - timedelta(days=1), day + timedelta(days=1))
    )
    assert report.failed == 0
    seal(london, utc(2011, 11, 5, 12))

    result = run_day(london, day)

    expected = dataset_expected(day)
    path = parquet.table_path(london.data_dir, "daily_item_sales", day)
    assert parquet_figures(path) == expected
    manifest = result.manifest
    assert manifest.complete is True
    assert manifest.forced is False
    assert manifest.hours == hours
    assert manifest.counts.invalid_total == 0
    assert manifest.totals.units == sum(row[0] for row in expected.values())
    assert Decimal(manifest.totals.revenue) == sum(row[3] for row in expected.values())
    ranking = redis_client.zrange(
        keys.day_key(settings.key_space, "daily", day, "units"), 0, -1, withscores=True
    )
    assert {sku.decode(): int(units) for sku, units in ranking} == {
        sku: row[0] for sku, row in expected.items()
    }
    revenue = redis_client.hgetall(keys.day_key(settings.key_space, "daily", day, "revenue"))
    assert {sku.decode(): int(value) for sku, value in revenue.items()} == {
        sku: to_money_units(row[3]) for sku, row in expected.items() if row[3]
    }
    lines = pl.read_parquet(parquet.table_path(london.data_dir, "sales_lines", day))
    assert lines.height == manifest.counts.lines
    assert lines["quantity"].sum() == manifest.totals.units
    store_items = pl.read_parquet(
        parquet.table_path(london.data_dir, "daily_store_item_sales", day)
    )
    assert store_items["units"].sum() == manifest.totals.units
    hourly = pl.read_parquet(parquet.table_path(london.data_dir, "hourly_sales", day))
    assert hourly["revenue"].sum() == Decimal(manifest.totals.revenue)


def test_rerun_changes_nothing_and_two_runs_at_once_agree(
    settings: Settings, redis_client: redis.Redis
) -> None:
    day = date(2026, 11, 20)
    sales = produce_four_store_day(settings)

    run_day(settings, day)
    files = data_files(settings.data_dir)
    state = _redis_state(redis_client, settings.key_space)
    run_day(settings, day)
    assert data_files(settings.data_dir) == files
    assert _redis_state(redis_client, settings.key_space) == state
    assert sorted(files) == [
        f"{table}/date=2026-11-20/part-0.parquet" for table in sorted(parquet.TABLES)
    ]

    items = pl.read_parquet(parquet.table_path(settings.data_dir, "daily_item_sales", day))
    top = run_kassa(
        "top", "--source", "daily", "--day", "2026-11-20", "-n", "3", "--json",
        env=settings_env(settings), timeout=60,
    )  # fmt: skip
    top.check_returncode()
    assert json.loads(top.stdout) == [
        {"rank": rank, "sku": sku, "name": name, "units": units, "revenue": str(revenue)}
        for rank, (sku, name, units, revenue) in enumerate(
            items.select("sku", "name", "units", "revenue").head(3).iter_rows(), start=1
        )
    ]

    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_day(settings, day)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert data_files(settings.data_dir) == files
    assert _redis_state(redis_client, settings.key_space) == state
    assert parquet_figures(
        parquet.table_path(settings.data_dir, "daily_item_sales", day)
    ) == expected_of(sales, day, settings.zone)


def test_duplicates_invalid_and_out_of_day_messages_are_counted(settings: Settings) -> None:
    # 3 invalid records of a small range are over the default invalid share (tests/jobs/daily/
    # test_guard.py): this test is about counting them
    settings = settings.model_copy(update={"daily_max_invalid_share": 1.0})
    day = date(2026, 11, 20)
    good = [checkout(f"t{n}", utc(2026, 11, 20, 10, n), [("apple", 1, "0.30")]) for n in range(10)]
    retry = good[:3]
    neighbours = [
        checkout("before", utc(2026, 11, 19, 23, 59, 59), [("apple", 5, "0.30")]),
        checkout("after", utc(2026, 11, 21, 0, 0, 0), [("apple", 7, "0.30")]),
    ]
    produce(settings, good + retry + neighbours, partition=0)
    produce_raw(settings, [b"{not json", b'{"transaction_id": "x"}'], utc(2026, 11, 20, 12))
    negative = checkout("neg", utc(2026, 11, 20, 12), [("apple", -1, "0.30")])
    produce_raw(settings, [encode_checkout(negative)], utc(2026, 11, 20, 12))
    seal(settings, utc(2026, 11, 22))

    manifest = run_day(settings, day).manifest

    counts = manifest.counts
    assert counts.duplicates == 3
    assert counts.invalid == {"malformed_json": 1, "missing_field": 1, "sign_mismatch": 1}
    assert counts.outside_day >= 2
    assert manifest.totals.units == 10
    assert manifest.totals.checkouts == 10


def test_incomplete_day_is_refused_naming_the_partitions(settings: Settings) -> None:
    # Partitions 0 and 2 have nothing past the cut-off; a year of idle margin keeps them from
    # counting as idle (closed stores) for the CLI run too, which uses the real clock.
    settings = settings.model_copy(update={"daily_idle_margin_seconds": 366 * 86_400})
    day = date(2026, 11, 20)
    for partition in range(3):
        produce(
            settings,
            [checkout(f"p{partition}", utc(2026, 11, 20, 9), [("tea", 1, "3")])],
            partition,
        )
    seal(settings, utc(2026, 11, 21, 3), partitions=[1])

    with pytest.raises(IncompleteDay) as refused:
        run_day(settings, day)
    assert refused.value.partitions == [0, 2]
    assert "partition 0" in str(refused.value) and "partition 2" in str(refused.value)
    assert "--force" in str(refused.value)
    assert read_manifest(settings.data_dir, day) is None

    cli = run_kassa(
        "daily", "run", "--day", "2026-11-20", "--quiet", env=settings_env(settings), timeout=60
    )
    assert cli.returncode == 3, cli.stderr
    assert "partition 0" in cli.stderr and "partition 2" in cli.stderr

    manifest = run_day(settings, day, force=True).manifest
    assert manifest.complete is False
    assert manifest.forced is True
    assert [entry.partition for entry in manifest.behind] == [0, 2]
    assert manifest.totals.units == 3


@pytest.mark.parametrize(("day", "hours"), [(date(2026, 3, 29), 23), (date(2026, 10, 25), 25)])
def test_dst_days_are_cut_at_local_midnight(settings: Settings, day: date, hours: int) -> None:
    london = _london(settings)
    start = datetime.combine(day, datetime.min.time(), tzinfo=LONDON)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=LONDON)
    second = timedelta(seconds=1)
    instants = {
        "before": (start - second, False),
        "first": (start, True),
        "repeated-1": (datetime(day.year, day.month, day.day, 1, 30, tzinfo=LONDON), True),
        "repeated-2": (datetime(day.year, day.month, day.day, 1, 30, fold=1, tzinfo=LONDON), True),
        "last": (end - second, True),
        "next": (end, False),
    }
    sales = [checkout(name, when, [(name, 1, "1")]) for name, (when, _) in instants.items()]
    produce(london, sales)
    seal(london, end + timedelta(days=1))

    manifest = run_day(london, day).manifest

    assert manifest.hours == hours
    items = pl.read_parquet(parquet.table_path(london.data_dir, "daily_item_sales", day))
    assert sorted(items["sku"]) == sorted(name for name, (_, inside) in instants.items() if inside)
    hourly = pl.read_parquet(parquet.table_path(london.data_dir, "hourly_sales", day))
    distinct_instants = {
        when.astimezone(LONDON).timestamp() for name, (when, inside) in instants.items() if inside
    }
    assert hourly["lines"].sum() == len(instants) - 2
    assert hourly.height == len({int(t // 3600) for t in distinct_instants})


def test_a_crash_before_the_rename_leaves_the_previous_snapshot(
    settings: Settings, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = date(2026, 11, 20)
    produce(settings, [checkout("a", utc(2026, 11, 20, 9), [("bread", 1, "2")])])
    seal(settings, utc(2026, 11, 21, 0, 0, 30))
    first = run_day(settings.model_copy(update={"lateness_seconds": 0}), day).manifest
    files = data_files(settings.data_dir)
    state = _redis_state(redis_client, settings.key_space)
    late = checkout("b", utc(2026, 11, 20, 23, 59), [("bread", 4, "2")])
    produce(settings, [late], partition=0)
    seal(settings, utc(2026, 11, 22))

    def crash(temporary: Path, final: Path) -> None:
        msg = "simulated crash before the rename"
        raise OSError(msg)

    monkeypatch.setattr(parquet, "commit", crash)
    with pytest.raises(OSError, match="simulated crash"):
        run_day(settings, day)

    assert data_files(settings.data_dir) == files
    assert _redis_state(redis_client, settings.key_space) == state
    assert read_manifest(settings.data_dir, day) == first
    monkeypatch.undo()
    assert run_day(settings, day).manifest.totals.units == 5


def test_reconciliation_reports_live_drift_and_repairs_it(
    settings: Settings, redis_client: redis.Redis
) -> None:
    day = date(2026, 11, 20)
    produce(settings, [checkout("a", utc(2026, 11, 20, 9), [("soap", 2, "1.10"), ("tea", 1, "3")])])
    seal(settings, utc(2026, 11, 22))
    redis_client.zadd(keys.day_key(settings.key_space, "live", day, "units"), {"soap": 1, "tea": 1})
    redis_client.hset(
        keys.day_key(settings.key_space, "live", day, "revenue"),
        mapping={"soap": 11000, "tea": 30000},
    )
    # As if the stream job had applied the whole day (a repair waits for that).
    applied = keys.applied_offsets_key(settings.key_space)
    redis_client.hset(applied, mapping={str(p): 10**6 for p in range(settings.partitions)})

    drifting = run_day(settings, day).manifest.reconciliation
    assert drifting.drifted_items == 2
    assert drifting.drifts[0].sku == "soap"
    assert drifting.drifts[0].difference["units"] == -1
    assert drifting.repaired_live is False

    repaired = run_day(settings, day, repair_live=True).manifest.reconciliation
    assert repaired.repaired_live is True
    assert run_day(settings, day).manifest.reconciliation.drifted_items == 0
    assert redis_client.zscore(keys.day_key(settings.key_space, "live", day, "units"), "soap") == 2


def test_small_chunks_give_the_same_day_as_one_chunk(settings: Settings) -> None:
    day = date(2026, 11, 20)
    sales = [
        checkout(
            f"t{n}",
            utc(2026, 11, 20, 6) + timedelta(minutes=3 * n),
            [(f"sku{n % 7}", 1 + n % 4, "1.25"), (f"sku{n % 3}", -1, "1.25")],
            store_id=f"s{n % 5}",
            kind="adjustment",
        )
        for n in range(150)
    ]
    produce(settings, sales + sales[::4])
    seal(settings, utc(2026, 11, 22))
    whole = settings.model_copy(update={"data_dir": settings.data_dir / "whole"})

    small = run_day(settings, day, chunk_messages=7).manifest
    large = run_day(whole, day).manifest

    assert small.counts.duplicates == large.counts.duplicates == len(sales[::4])
    for table in ("daily_item_sales", "daily_store_item_sales", "hourly_sales"):
        assert pl.read_parquet(parquet.table_path(settings.data_dir, table, day)).equals(
            pl.read_parquet(parquet.table_path(whole.data_dir, table, day))
        )
    assert parquet_figures(
        parquet.table_path(settings.data_dir, "daily_item_sales", day)
    ) == expected_of(sales, day, settings.zone)


def test_redis_down_leaves_the_day_unfinished_with_status_5(settings: Settings) -> None:
    day = date(2026, 11, 20)
    produce(settings, [checkout("a", utc(2026, 11, 20, 9), [("bread", 1, "2")])])
    seal(settings, utc(2026, 11, 22))
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/1"})

    with pytest.raises(RedisWriteError, match="run the day again") as failed:
        run_day(down, day)

    assert failed.value.exit_code == 5
    assert parquet.table_path(settings.data_dir, "daily_item_sales", day).exists()
    assert read_manifest(settings.data_dir, day) is None


def test_checkouts_are_deduplicated_by_store_and_transaction_id(settings: Settings) -> None:
    day = date(2026, 11, 20)
    first = checkout("r01-000042", utc(2026, 11, 20, 9), [("soap", 1, "1")], store_id="s01")
    other_store = checkout("r01-000042", utc(2026, 11, 20, 9), [("soap", 2, "1")], store_id="s02")
    produce(settings, [first, other_store, first], partition=0)

    manifest = run_day(settings, day).manifest

    assert manifest.totals.checkouts == 2
    assert manifest.totals.units == 3
    assert manifest.counts.duplicates == 1


def test_today_and_future_days_are_never_complete(settings: Settings) -> None:
    produce(settings, [checkout("a", utc(2026, 11, 20, 9), [("tea", 1, "3")])], partition=0)
    for day, now in (
        (date(2030, 1, 1), None),
        (date(2026, 11, 20), utc(2026, 11, 20, 23)),
        (date(2026, 11, 20), utc(2026, 11, 21, 0, 59)),
    ):
        with pytest.raises(IncompleteDay, match="the day is still open") as refused:
            run_day(settings, day, now=now)
        assert refused.value.partitions == [0, 1, 2]
        assert read_manifest(settings.data_dir, day) is None

    cli = run_kassa(
        "daily", "run", "--day", "2030-01-01", "--quiet", env=settings_env(settings), timeout=60
    )
    assert cli.returncode == 3, cli.stderr
    assert "still open" in cli.stderr


def test_retention_never_replaces_a_snapshot_with_fewer_records(
    settings: Settings, redis_client: redis.Redis
) -> None:
    day = date(2026, 11, 20)
    sales = [
        checkout(
            f"t{n}", utc(2026, 11, 20, 8) + timedelta(minutes=10 * n), [(f"sku{n % 3}", 1, "2")]
        )
        for n in range(30)
    ]
    later = [checkout(f"n{n}", utc(2026, 11, 22, 9, n), [("tea", 1, "1")]) for n in range(10)]
    produce(settings, sales + later, partition=0)
    first = run_day(settings, day).manifest
    assert first.totals.checkouts == 30
    files = data_files(settings.data_dir)
    state = _redis_state(redis_client, settings.key_space)
    delete_records(settings, 0, 20)

    refused = run_kassa(
        "daily", "run", "--day", "2026-11-20", "--quiet", env=settings_env(settings), timeout=60
    )
    assert refused.returncode == 6, refused.stderr
    assert "partition 0: records before offset 20 are deleted" in refused.stderr
    with pytest.raises(SnapshotKept, match="10 checkout") as kept:
        run_day(settings, day, force=True)
    assert kept.value.exit_code == 7

    assert data_files(settings.data_dir) == files
    assert _redis_state(redis_client, settings.key_space) == state
    assert read_manifest(settings.data_dir, day) == first

    # With no snapshot to protect, --force finalizes what is left and says what is missing.
    fresh = settings.model_copy(update={"data_dir": settings.data_dir.parent / "fresh"})
    forced = run_day(fresh, day, force=True).manifest
    assert forced.totals.checkouts == 10
    assert forced.forced is True
    assert forced.missing == [
        Missing(partition=0, deleted_before_offset=20, previous_start_offset=None)
    ]
