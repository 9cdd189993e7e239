"""The live counts through Redis's own faults, topic changes, repairs and old days.

Each test injects the real fault (a Redis restored from an older copy of its data folder, a
deleted and recreated topic, a deleted watermark hash, an evicting policy, a lagging stream
job, a stopped replica) and compares every live figure with the ground truth of what was
produced, or expects the named refusal.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis

from common.schema import Checkout
from common.settings import Settings
from jobs.daily.exceptions import LiveRepairRefused
from jobs.daily.job import run_day
from jobs.daily.manifest import read_manifest
from jobs.stream.exceptions import (
    EvictionPolicyError,
    IdentityMismatchError,
    WatermarksLostError,
)
from producers.replay import checkouts as replay
from producers.synthetic import generate
from services.redis import RedisServer
from storage import keys, parquet
from storage.connections import open_redis
from storage.kafka.topics import ensure_topics
from tests.helpers import DATASET, free_port, run_kassa, settings_env, truth, wait_until
from tests.jobs.daily.helpers import seal
from tests.jobs.stream.faults import (
    copy_redis_data,
    recreate_topic,
    redis_url_of,
    restore_redis_data,
)
from tests.jobs.stream.helpers import (
    Load,
    assert_exact,
    caught_up,
    live_figures,
    publish_checkouts,
    run_once,
    start_stream,
    valid_checkouts,
)

LONDON = ZoneInfo("Europe/London")


def _kassa(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_kassa(*args, env=settings_env(settings))


def _on(settings: Settings, server: RedisServer) -> Settings:
    return settings.model_copy(update={"redis_url": redis_url_of(server)})


def test_redis_restored_from_an_older_copy_with_the_job_stopped_recounts_exactly(
    settings: Settings, private_redis: RedisServer, tmp_path: Path
) -> None:
    settings = _on(settings, private_redis)
    first, second, third = valid_checkouts(100, 1), valid_checkouts(100, 2), valid_checkouts(100, 3)
    publish_checkouts(settings, first)
    run_once(settings)
    copy_redis_data(private_redis, tmp_path / "copy")
    publish_checkouts(settings, second)
    run_once(settings)
    restore_redis_data(private_redis, tmp_path / "copy")  # Redis forgets `second`
    publish_checkouts(settings, third)

    run_once(settings)

    client = open_redis(settings)
    assert_exact(client, settings, first + second + third)
    client.close()


def _metric(port: int, name: str) -> list[float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return [float(value) for value in re.findall(rf"^{name}{{[^}}]*}} (\S+)$", text, re.M)]


def test_redis_restored_from_an_older_copy_under_the_running_job_recounts_exactly(
    settings: Settings, private_redis: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    settings = _on(settings, private_redis).model_copy(
        update={"metrics_port": port, "stream_commit_interval": 0.5}
    )
    first, second, third = valid_checkouts(100, 1), valid_checkouts(100, 2), valid_checkouts(100, 3)
    log = tmp_path / "stream.log"
    child = start_stream(settings, log)
    client = open_redis(settings)
    try:
        publish_checkouts(settings, first)
        wait_until(caught_up(client, settings), 90, "the job to count the first 100")
        copy_redis_data(private_redis, tmp_path / "copy")
        publish_checkouts(settings, second)
        wait_until(caught_up(client, settings), 60, "the job to count the second 100")
        restore_redis_data(private_redis, tmp_path / "copy")  # under the running job
        publish_checkouts(settings, third)
        wait_until(caught_up(client, settings), 90, "the job to recount after the rollback")
        time.sleep(1)  # a batch counted twice would show by now
        assert_exact(client, settings, first + second + third)
        assert max(_metric(port, "kassa_stream_redis_behind")) == 1
    finally:
        child.send_signal(signal.SIGTERM)
        status = child.wait(60)
        client.close()
    text = log.read_text()
    assert status == 0, text[-3000:]
    assert "REDIS IS BEHIND the stream job" in text
    assert "restarting the stream job's consumer" in text


def test_a_recreated_topic_is_refused_then_rebuilt_exactly(
    settings: Settings, redis_client: redis.Redis
) -> None:
    old, new = valid_checkouts(100, 1), valid_checkouts(100, 2)
    publish_checkouts(settings, old)
    run_once(settings)
    recreate_topic(settings)
    publish_checkouts(settings, new)

    with pytest.raises(IdentityMismatchError, match="kassa stream rebuild") as refused:
        run_once(settings)
    assert len(re.findall(r"topic id \S+ of cluster \S+", str(refused.value))) == 2
    assert_exact(redis_client, settings, old)  # nothing skipped, nothing added

    assert _kassa(settings, "stream", "rebuild", "--yes").returncode == 0
    run_once(settings)
    assert_exact(redis_client, settings, new)


def test_a_lost_watermark_hash_is_refused_then_rebuilt_exactly(
    settings: Settings, redis_client: redis.Redis
) -> None:
    checkouts = valid_checkouts(200, 4)
    publish_checkouts(settings, checkouts)
    run_once(settings)
    redis_client.delete(keys.applied_offsets_key(settings.key_space))  # a stray DEL

    with pytest.raises(WatermarksLostError, match="kassa stream rebuild"):
        run_once(settings)
    assert_exact(redis_client, settings, checkouts)  # not counted on top

    assert _kassa(settings, "stream", "rebuild", "--yes").returncode == 0
    run_once(settings)
    assert_exact(redis_client, settings, checkouts)


def test_sigterm_after_a_refused_last_flush_exits_non_zero_and_says_why(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = settings.model_copy(
        # the watch would find Redis behind first and restart the job: this is about the
        # last flush, so it looks only every 5 minutes here
        update={"metrics_port": 0, "stream_commit_interval": 60.0, "stream_check_seconds": 300}
    )
    log = tmp_path / "stream.log"
    child = start_stream(settings, log)
    try:
        publish_checkouts(settings, valid_checkouts(50, 5))
        wait_until(caught_up(redis_client, settings), 90, "the job to count the first 50")
        redis_client.delete(keys.applied_offsets_key(settings.key_space))
        publish_checkouts(settings, valid_checkouts(50, 6))
        time.sleep(2)  # handed to the writer and refused; the next flush is the last one
    finally:
        child.send_signal(signal.SIGTERM)
        status = child.wait(60)
    text = log.read_text()
    assert status == 3, text[-3000:]
    assert "REDIS IS BEHIND the stream job" in text
    assert "stopped cleanly" not in text


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl"])
def test_an_evicting_maxmemory_policy_is_refused(
    settings: Settings, private_redis: RedisServer, policy: str
) -> None:
    settings = _on(settings, private_redis)
    client = open_redis(settings)
    client.config_set("maxmemory-policy", policy)
    client.close()
    publish_checkouts(settings, valid_checkouts(10, 7))
    with pytest.raises(EvictionPolicyError, match="CONFIG SET maxmemory-policy noeviction"):
        run_once(settings, idle=1.0)


def _day_checkouts(count: int, seed: int, day: date) -> list[Checkout]:
    start = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=8)
    return [c for c in generate(seed, start, count) if c.occurred_at.date() == day]


def test_repair_live_while_the_stream_job_lags_is_refused_and_exact_after_it(
    settings: Settings, redis_client: redis.Redis
) -> None:
    day = date(2026, 11, 20)
    counted, lagging, late = (_day_checkouts(100, s, day) for s in (1, 2, 3))
    publish_checkouts(settings, counted)
    run_once(settings)
    publish_checkouts(settings, lagging)  # the stream job has not applied these yet
    seal(settings, datetime(2026, 11, 22, tzinfo=UTC))
    redis_client.zincrby(keys.day_key(settings.key_space, "live", day, "units"), 5, "drift")

    with pytest.raises(LiveRepairRefused, match="partition") as refused:
        run_day(settings, day, repair_live=True)
    assert refused.value.partitions
    manifest = read_manifest(settings.data_dir, day)
    assert manifest is not None
    assert manifest.reconciliation.repaired_live is False

    run_once(settings)  # catches up; the drift is still there
    run_day(settings, day, repair_live=True)
    publish_checkouts(settings, late)  # after the day's range: the stream job adds them on top
    run_once(settings)
    expected = truth(counted + lagging + late, settings.zone)
    figures = live_figures(redis_client, [day], settings.key_space)
    assert figures == {key: value for key, value in expected.items() if key[0] == day}


def test_a_2011_dataset_day_replayed_with_the_default_retention_shows_its_live_ranking(
    settings: Settings, redis_client: redis.Redis
) -> None:
    settings = settings.model_copy(update={"timezone": "Europe/London"})
    day = date(2011, 3, 27)
    checkouts = list(replay(DATASET, day, day))
    publish_checkouts(settings, checkouts)
    run_once(settings)

    shown = _kassa(settings, "top", "--day", day.isoformat(), "-n", "3", "--json")
    assert shown.returncode == 0
    printed = json.loads(shown.stdout)
    expected = truth(checkouts, LONDON)
    best = sorted((-row[0], sku) for (d, store, sku), row in expected.items() if store is None)
    assert [item["sku"] for item in printed] == [sku for _, sku in best[:3]]
    assert_exact(redis_client, settings, checkouts)

    seal(settings, datetime(2011, 3, 29, tzinfo=UTC))
    run_day(settings, day)
    daily_keys = keys.source_prefix(settings.key_space, "daily") + "*"
    for key in redis_client.scan_iter(match=daily_keys):
        redis_client.pexpire(key, 1)  # the daily keys' retention ends
    wait_until(
        lambda: next(redis_client.scan_iter(match=daily_keys), None) is None, 10, "daily keys gone"
    )
    shown = _kassa(settings, "top", "--source", "daily", "--day", day.isoformat())
    assert shown.returncode == 1
    assert str(parquet.table_path(settings.data_dir, "daily_item_sales", day)) in shown.stderr


def test_two_topics_on_one_redis_database_stay_apart(
    settings: Settings, redis_client: redis.Redis
) -> None:
    other = settings.model_copy(
        update={"topic": settings.topic + "_b", "consumer_group": settings.consumer_group + "_b"}
    )
    ensure_topics(other)
    mine, theirs = valid_checkouts(150, 8), valid_checkouts(150, 9)
    publish_checkouts(settings, mine)
    publish_checkouts(other, theirs)
    run_once(settings)
    run_once(other)
    assert_exact(redis_client, settings, mine)
    assert_exact(redis_client, other, theirs)


def test_rebuild_from_a_replayed_dataset_day_is_exact_with_the_job_running(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = settings.model_copy(
        update={"timezone": "Europe/London", "metrics_port": 0, "stream_commit_interval": 0.5}
    )
    # Real days, then late checkouts of the 24th (a register that synced days late): they
    # sit after the start of the 27th in the log, and the rebuild must not count them again.
    checkouts = list(replay(DATASET, date(2011, 3, 24), date(2011, 3, 28)))
    checkouts += _day_checkouts(40, 11, date(2011, 3, 24))
    publish_checkouts(settings, checkouts)
    log = tmp_path / "stream.log"
    child = start_stream(settings, log)
    try:
        wait_until(caught_up(redis_client, settings), 120, "the job to count the days")
        assert_exact(redis_client, settings, checkouts)
        # The live figures go wrong from the 27th on (a bad manual fix, say).
        for day in (date(2011, 3, 27), date(2011, 3, 28)):
            redis_client.zincrby(
                keys.day_key(settings.key_space, "live", day, "units"), 7, "85123A"
            )
            redis_client.delete(keys.day_key(settings.key_space, "live", day, "revenue"))

        env = settings_env(settings)
        plan = run_kassa("stream", "rebuild", "--from", "2011-03-27", env=env)
        assert plan.returncode == 0, plan.stderr[-2000:]
        assert "nothing changed" in plan.stdout
        assert re.search(r"reading about [\d,]+ records", plan.stdout)
        done = run_kassa("stream", "rebuild", "--from", "2011-03-27", "--yes", env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        more = _day_checkouts(50, 10, date(2011, 3, 28))
        publish_checkouts(settings, more)  # the running job recounts, then counts these
        wait_until(
            lambda: "REDIS IS BEHIND the stream job" in log.read_text(), 60, "the job's restart"
        )
        wait_until(caught_up(redis_client, settings), 120, "the recount")
        time.sleep(1)
        assert_exact(redis_client, settings, checkouts + more)
    finally:
        child.send_signal(signal.SIGTERM)
        status = child.wait(60)
    assert status == 0, log.read_text()[-3000:]


def test_a_replica_stopped_past_its_session_timeout_and_resumed_keeps_counts_exact(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # No commit between SIGCONT and the rebalance (a commit of the old generation would stop
    # the replica), and batches that stay open: the replica comes back holding a stale batch.
    settings = settings.model_copy(
        update={
            "metrics_port": 0,
            "stream_commit_interval": 60.0,
            "stream_session_timeout_ms": 6000,
            "stream_write_interval": 30.0,
        }
    )
    load = Load(settings, 41, rate=1500.0)
    first = start_stream(settings, tmp_path / "a.log")
    second = start_stream(settings, tmp_path / "b.log")
    try:
        for _ in range(2):
            wait_until(
                lambda: "assigned partitions" in (tmp_path / "b.log").read_text(), 90, "b's share"
            )
            time.sleep(1)
            first.send_signal(signal.SIGSTOP)  # its partitions are lost and go to b
            time.sleep(10)
            first.send_signal(signal.SIGCONT)  # back with its old batches; rejoins
            time.sleep(8)
    finally:
        first.send_signal(signal.SIGCONT)
        checkouts = load.finish()
    try:
        wait_until(caught_up(redis_client, settings), 120, "both replicas to catch up")
        time.sleep(2)
        assert_exact(redis_client, settings, checkouts)
        assert (tmp_path / "a.log").read_text().count("assigned partitions") >= 2  # came back
    finally:
        for child in (first, second):
            child.send_signal(signal.SIGTERM)
        for child, name in ((first, "a"), (second, "b")):
            assert child.wait(60) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
