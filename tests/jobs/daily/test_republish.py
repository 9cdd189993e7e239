"""Redis losing finalized days, or going back to an older revision of one: the scheduler's next
pass republishes them from their Parquet snapshots, without reading Kafka."""

from __future__ import annotations

import logging
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import redis

from common.schema import Checkout
from common.settings import Settings
from jobs.daily.job import run_day
from jobs.daily.scheduler import catch_up
from services.redis import RedisServer
from storage import keys, parquet
from storage.connections import open_redis
from storage.kafka.topics import admin_client
from tests.jobs.daily.helpers import DailyKeys, checkout, daily_keys, produce, utc
from tests.jobs.stream.faults import copy_redis_data, redis_url_of, restore_redis_data

DAY, NEXT_DAY = date(2026, 11, 16), date(2026, 11, 17)


def _traffic(day: date) -> list[Checkout]:
    """Two stores, a return and several items; one checkout an hour from 08:00 UTC."""
    opens = utc(day.year, day.month, day.day, 8)
    sales = [
        checkout(
            f"{store}-{day}-{n}",
            opens + timedelta(hours=n),
            [(f"sku{n % 3}", 1 + n % 2, "2.35"), ("bag", 1, "0.10")],
            store_id=store,
        )
        for store in ("s1", "s2")
        for n in range(8)
    ]
    refund = checkout(f"ret-{day}", opens, [("sku1", -1, "2.35")], store_id="s2", kind="return")
    return [*sales, refund]


def _two_days_finalized(
    settings: Settings, client: redis.Redis
) -> tuple[Settings, datetime, dict[date, DailyKeys]]:
    """DAY and NEXT_DAY produced and finalized by the scheduler at 02:30 the day after; the
    settings, that instant and the daily keys each day's run wrote."""
    window = settings.model_copy(update={"daily_catchup_days": 1})
    produce(window, _traffic(DAY) + _traffic(NEXT_DAY), partition=0)
    now = utc(2026, 11, 18, 2, 30)
    assert [result.day for result in catch_up(window, now)] == [DAY, NEXT_DAY]
    written = {day: daily_keys(client, window.key_space, day) for day in (DAY, NEXT_DAY)}
    return window, now, written


def _delete_topic(settings: Settings) -> None:
    """Delete the sales topic: a pass that read Kafka now would fail."""
    admin = admin_client(settings)
    for future in admin.delete_topics([settings.topic], operation_timeout=30).values():
        future.result(30)
    deadline = time.monotonic() + 60
    while settings.topic in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, f"topic {settings.topic} still exists"
        time.sleep(0.2)


def test_a_flushed_redis_gets_every_finalized_day_back_from_the_snapshots_without_kafka(
    settings: Settings, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    window, now, written = _two_days_finalized(settings, redis_client)
    space = window.key_space
    assert keys.day_key(space, "daily", DAY, "totals", "s2") in written[DAY]
    _delete_topic(window)

    redis_client.flushdb()
    with caplog.at_level(logging.WARNING, logger="jobs.daily.republish"):
        assert catch_up(window, now + timedelta(minutes=10)) == []

    assert {day: daily_keys(redis_client, space, day) for day in (DAY, NEXT_DAY)} == written
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"day {day}: missing from Redis (restored from an older copy, or flushed?); "
        "republishing it from its Parquet snapshot"
        for day in (DAY, NEXT_DAY)
    ]
    expire_at = keys.expire_at(DAY, window.zone, window.retention_days, now + timedelta(minutes=10))
    assert redis_client.expiretime(keys.day_key(space, "daily", DAY, "units")) == expire_at
    caplog.clear()
    assert catch_up(window, now + timedelta(minutes=20)) == []
    assert not caplog.records  # Redis holds every day's run now: nothing to republish


def test_redis_restored_to_before_a_restatement_gets_the_newer_revision_back(
    settings: Settings, private_redis: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    window = settings.model_copy(
        update={"daily_catchup_days": 1, "redis_url": redis_url_of(private_redis)}
    )
    client = open_redis(window.redis_url)
    space = window.key_space
    manifest = keys.manifest_key(space, DAY)
    produce(window, _traffic(DAY), partition=0)
    assert DAY in [result.day for result in catch_up(window, utc(2026, 11, 17, 2, 30))]
    first_run = client.hget(manifest, "run_id")
    copy_redis_data(private_redis, tmp_path / "before-restatement")
    late = [checkout(f"late{n}", utc(2026, 11, 16, 21, n), [("cake", 2, "4.10")]) for n in range(3)]
    produce(window, _traffic(NEXT_DAY)[:4] + late + _traffic(NEXT_DAY)[4:], partition=0)
    now = utc(2026, 11, 18, 2, 30)
    assert [result.day for result in catch_up(window, now)] == [NEXT_DAY, DAY]
    assert client.hget(manifest, "revision") == b"2"
    restated = client.hget(manifest, "run_id")
    written = {day: daily_keys(client, space, day) for day in (DAY, NEXT_DAY)}
    _delete_topic(window)

    restore_redis_data(private_redis, tmp_path / "before-restatement")
    assert (client.hget(manifest, "revision"), client.hget(manifest, "run_id")) == (b"1", first_run)
    with caplog.at_level(logging.WARNING, logger="jobs.daily.republish"):
        assert catch_up(window, now + timedelta(minutes=10)) == []

    assert {day: daily_keys(client, space, day) for day in (DAY, NEXT_DAY)} == written
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"day {DAY}: Redis holds revision 1 (run {first_run.decode()}), the snapshot revision 2 "  # type: ignore[union-attr]
        f"(run {restated.decode()}); republishing it from its Parquet snapshot",  # type: ignore[union-attr]
        f"day {NEXT_DAY}: missing from Redis (restored from an older copy, or flushed?); "
        "republishing it from its Parquet snapshot",
    ]
    client.close()


def test_redis_down_during_the_check_is_logged_and_left_to_the_next_pass(
    settings: Settings, private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    window = settings.model_copy(
        update={"daily_catchup_days": 0, "redis_url": redis_url_of(private_redis)}
    )
    produce(window, _traffic(DAY), partition=0)
    now = utc(2026, 11, 17, 2, 30)
    assert [result.day for result in catch_up(window, now)] == [DAY]
    private_redis.stop()
    try:
        with caplog.at_level(logging.ERROR, logger="jobs.daily.republish"):
            assert catch_up(window, now + timedelta(minutes=10)) == []
    finally:
        private_redis.start()
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert message.startswith(
        f"cannot check the daily days in Redis at KASSA_REDIS_URL={window.redis_url!r} ("
    )
    assert message.endswith(f"; the next pass (in {window.daily_retry_seconds} s) checks again")


def test_a_day_whose_snapshot_lost_a_table_is_left_to_an_operator_and_the_fix_it_names_works(
    settings: Settings, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    window, now, written = _two_days_finalized(settings, redis_client)
    space = window.key_space
    parquet.table_path(window.data_dir, "sales_lines", DAY).unlink()

    redis_client.flushdb()
    with caplog.at_level(logging.WARNING, logger="jobs.daily.republish"):
        assert catch_up(window, now + timedelta(minutes=10)) == []

    assert daily_keys(redis_client, space, NEXT_DAY) == written[NEXT_DAY]
    assert daily_keys(redis_client, space, DAY) == {"names": written[NEXT_DAY]["names"]}
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert (
        f"day {DAY} cannot be republished to Redis from its snapshot: a table is missing"
        in (errors[0])
    )
    assert f"'kassa daily run --day {DAY}'" in errors[0]
    assert str(parquet.table_path(window.data_dir, "sales_lines", DAY)) in errors[0]
    assert errors[0].endswith("the scheduler leaves this day to an operator")

    run_day(window, DAY, now=now + timedelta(minutes=20))
    again = daily_keys(redis_client, space, DAY)
    unit_ranking = keys.day_key(space, "daily", DAY, "units")
    assert again[unit_ranking] == written[DAY][unit_ranking]
    assert parquet.table_path(window.data_dir, "sales_lines", DAY).is_file()
