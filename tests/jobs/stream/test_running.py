"""What changes under a running ``kassa stream`` is noticed within ``KASSA_STREAM_CHECK_SECONDS``
(:mod:`jobs.stream.watch`), not at the next assignment or record: the topic recreated or
deleted, Redis restored from an older copy while no checkout arrives, partitions added."""

from __future__ import annotations

import re
import time
from pathlib import Path

import redis
from confluent_kafka.admin import NewPartitions

from common.settings import Settings
from services.redis import RedisServer
from storage.connections import open_redis
from storage.kafka.topics import admin_client
from tests.helpers import free_port, wait_until
from tests.jobs.stream.faults import (
    copy_redis_data,
    recreate_topic,
    redis_url_of,
    restore_redis_data,
)
from tests.jobs.stream.helpers import (
    assert_exact,
    caught_up,
    error_lines,
    health,
    publish_checkouts,
    start_stream,
    stop_stream,
    valid_checkouts,
)

CHECK_SECONDS = 1.0
"""The tests' ``KASSA_STREAM_CHECK_SECONDS``."""
NOTICED_WITHIN = 15.0
"""Seconds within which a change must show: two checks, the job's stop or restart, slack
for a loaded machine."""


def _watched(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"stream_check_seconds": CHECK_SECONDS, "metrics_port": free_port()}
    )


def test_a_topic_recreated_under_the_running_job_stops_it_and_nothing_of_the_new_one_counts(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = _watched(settings)
    old, new = valid_checkouts(150, 1), valid_checkouts(600, 2)
    publish_checkouts(settings, old)
    log = tmp_path / "stream.log"
    child = start_stream(settings, log)
    try:
        wait_until(caught_up(redis_client, settings), 90, "the job to count the old topic")
        recreate_topic(settings)
        recreated = time.monotonic()
        publish_checkouts(settings, new)  # more records than the old topic had
        status = child.wait(NOTICED_WITHIN + 60)
        stopped_after = time.monotonic() - recreated
    finally:
        stop_stream(child)
    errors = error_lines(log)
    assert status == 3, log.read_text()[-3000:]
    assert len(errors) == 1, errors
    assert "kassa stream rebuild" in errors[0]
    assert "was deleted" in errors[0] or len(re.findall(r"topic id \S+", errors[0])) == 2
    assert stopped_after < NOTICED_WITHIN + 10  # publishing the new records took some too
    assert_exact(redis_client, settings, old)  # nothing of the new topic was counted


def test_a_topic_deleted_under_the_running_job_stops_it_naming_the_fix(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = _watched(settings)
    old = valid_checkouts(100, 3)
    publish_checkouts(settings, old)
    log = tmp_path / "stream.log"
    child = start_stream(settings, log)
    try:
        wait_until(caught_up(redis_client, settings), 90, "the job to count the topic")
        admin = admin_client(settings)
        for future in admin.delete_topics([settings.topic], operation_timeout=30).values():
            future.result(30)
        deleted = time.monotonic()
        status = child.wait(NOTICED_WITHIN + 30)
        stopped_after = time.monotonic() - deleted
    finally:
        stop_stream(child)
    errors = error_lines(log)
    assert status == 3, log.read_text()[-3000:]
    assert len(errors) == 1, errors
    assert f"topic {settings.topic!r}" in errors[0]
    assert "was deleted under the running stream job" in errors[0]
    assert "kassa stream rebuild" in errors[0]
    assert stopped_after < NOTICED_WITHIN
    assert_exact(redis_client, settings, old)


def test_redis_restored_under_a_quiet_running_job_is_recounted_without_a_new_record(
    settings: Settings, private_redis: RedisServer, tmp_path: Path
) -> None:
    settings = _watched(settings).model_copy(
        update={"redis_url": redis_url_of(private_redis), "stream_commit_interval": 0.5}
    )
    first, second = valid_checkouts(100, 4), valid_checkouts(100, 5)
    log = tmp_path / "stream.log"
    child = start_stream(settings, log)
    client = open_redis(settings)
    try:
        publish_checkouts(settings, first)
        wait_until(caught_up(client, settings), 90, "the job to count the first 100")
        copy_redis_data(private_redis, tmp_path / "copy")
        publish_checkouts(settings, second)
        wait_until(caught_up(client, settings), 60, "the job to count the second 100")
        restore_redis_data(private_redis, tmp_path / "copy")  # the night: no checkout comes
        restored = time.monotonic()
        wait_until(caught_up(client, settings), NOTICED_WITHIN, "the recount, with no record")
        recounted_after = time.monotonic() - restored
        assert_exact(client, settings, first + second)
        wait_until(lambda: health(settings.metrics_port)[0] == 200, 30, "/healthz 200 again")
        assert child.poll() is None
    finally:
        status = stop_stream(child)
        client.close()
    text = log.read_text()
    assert status == 0, text[-3000:]
    assert "REDIS IS BEHIND the stream job" in text
    assert recounted_after < NOTICED_WITHIN


def test_partitions_added_under_the_running_job_are_counted_within_seconds(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = _watched(settings)
    before = valid_checkouts(100, 6)
    publish_checkouts(settings, before)
    log = tmp_path / "stream.log"
    child = start_stream(settings, log)
    try:
        wait_until(caught_up(redis_client, settings), 90, "the job to count 3 partitions")
        admin = admin_client(settings)
        for future in admin.create_partitions([NewPartitions(settings.topic, 6)]).values():
            future.result(30)
        added = time.monotonic()
        wider = settings.model_copy(update={"partitions": 6})
        after = valid_checkouts(300, 7)
        publish_checkouts(wider, after)  # keyed by store: some land on partitions 3..5
        wait_until(caught_up(redis_client, wider), NOTICED_WITHIN + 30, "the new partitions")
        counted_after = time.monotonic() - added
        status, body = health(settings.metrics_port)
        assert status == 200, body
        assert body["partitions"] == [0, 1, 2, 3, 4, 5]
        assert_exact(redis_client, settings, before + after)
    finally:
        assert stop_stream(child) == 0, log.read_text()[-3000:]
    assert counted_after < NOTICED_WITHIN + 30
