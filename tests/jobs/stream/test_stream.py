"""The stream job against real Kafka and Redis: exact counts, replays, crashes, bad messages."""

from __future__ import annotations

import json
import logging
import random
import signal
import time
import urllib.request
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from common.schema import Reason, encode_checkout, message_key
from common.settings import Settings
from jobs.stream import dead_letters
from jobs.stream.app import build_stream_job
from jobs.stream.exceptions import StreamError
from producers.replay import checkouts as replay
from producers.synthetic import generate
from storage import keys
from storage.kafka.config import client_config
from tests.helpers import DATASET, free_port, run_kassa, settings_env, truth, wait_until
from tests.jobs.stream.helpers import (
    Load,
    assert_exact,
    caught_up,
    days_of,
    live_figures,
    publish_checkouts,
    run_once,
    start_stream,
    valid_checkouts,
    watermark_sum,
)

LONDON = ZoneInfo("Europe/London")


def test_dataset_days_and_synthetic_traffic_equal_ground_truth(
    settings: Settings, redis_client: redis.Redis
) -> None:
    # Keys of days older than the retention expire at once: keep 2010's days for the check.
    settings = settings.model_copy(update={"timezone": "Europe/London", "retention_days": 36500})
    real = list(replay(DATASET, date(2010, 12, 1), date(2010, 12, 2)))
    # Synthetic traffic across the night the clocks go back (a 25-hour day).
    synthetic = list(generate(7, datetime(2026, 10, 24, 21, tzinfo=LONDON), 4000))
    publish_checkouts(settings, real + synthetic)
    run_once(settings)

    expected = truth(real + synthetic, LONDON)
    assert len(days_of(expected)) >= 3
    assert live_figures(redis_client, days_of(expected), settings.key_space) == expected
    totals = redis_client.hgetall(
        keys.day_key(settings.key_space, "live", date(2010, 12, 1), "totals")
    )
    assert int(totals[b"checkouts"]) == sum(
        1 for c in real if c.occurred_at.astimezone(LONDON).date() == date(2010, 12, 1)
    )


def _produce_raw(settings: Settings, records: list[tuple[bytes | None, bytes | None]]) -> None:
    producer = Producer(client_config(settings))
    for key, value in records:
        producer.produce(settings.topic, key=key, value=value)
    assert producer.flush(30) == 0


BAD: list[tuple[bytes | None, Reason]] = [
    (b'{"schema_version": 1, "transaction_id": "x"', Reason.MALFORMED_JSON),
    (b"\xff\xfe not json", Reason.MALFORMED_JSON),
    (None, Reason.MALFORMED_JSON),
    (b'{"transaction_id": "x", "store_id": "s1"}', Reason.MISSING_FIELD),
    (
        b'{"transaction_id": "x", "store_id": "s1", "register_id": "r", "occurred_at": '
        b'"2026-11-21T10:00:00Z", "kind": "sale", "currency": "GBP", "lines": '
        b'[{"sku": "a", "quantity": "three", "unit_price": "1.00"}]}',
        Reason.INVALID_FIELD,
    ),
    (
        b'{"transaction_id": "x", "store_id": "s1", "register_id": "r", "occurred_at": '
        b'"2026-11-21T10:00:00Z", "kind": "sale", "currency": "GBP", "lines": '
        b'[{"sku": "a", "quantity": 0, "unit_price": "1.00"}]}',
        Reason.ZERO_QUANTITY,
    ),
    (
        b'{"transaction_id": "x", "store_id": "s1", "register_id": "r", "occurred_at": '
        b'"2026-11-21T10:00:00Z", "kind": "sale", "currency": "GBP", "lines": ['
        + b",".join([b'{"sku": "a", "quantity": 1, "unit_price": "1.00"}'] * 30)
        + b"]}",
        Reason.TOO_MANY_LINES,
    ),
    (b"[" * 3000 + b"]" * 3000, Reason.TOO_LARGE),
]


def test_bad_messages_go_to_the_dead_letter_topic_and_valid_ones_count(
    settings: Settings, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings.model_copy(update={"max_lines": 20, "max_message_bytes": 4096})
    good = [
        c for c in valid_checkouts(600, 3) if len(encode_checkout(c)) <= 4096 and len(c.lines) <= 20
    ]
    records: list[tuple[bytes | None, bytes | None]] = [
        (message_key(c), encode_checkout(c)) for c in good
    ]
    for index, (value, _) in enumerate(BAD):
        records.insert(index * 50 + 7, (b"s001", value))
    _produce_raw(settings, records)
    job = build_stream_job(settings.model_copy(update={"metrics_port": 0}))
    with caplog.at_level(logging.WARNING):
        job.run(timeout=3.0)

    expected = truth(good, settings.zone)
    assert live_figures(redis_client, days_of(expected), settings.key_space) == expected
    expected_reasons: dict[str, int] = {}
    for _, reason in BAD:
        expected_reasons[reason.value] = expected_reasons.get(reason.value, 0) + 1
    counts = redis_client.hgetall(keys.dead_letters_key(settings.key_space))
    assert {k.decode(): int(v) for k, v in counts.items()} == expected_reasons
    for reason, count in expected_reasons.items():
        sample = job.metrics.registry.get_sample_value(
            "kassa_stream_dead_letters_total", {"reason": reason}
        )
        assert sample == count

    consumer = Consumer(
        client_config(
            settings,
            {
                "group.id": "dlq-reader",
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
            },
        )
    )
    consumer.subscribe([settings.dead_letter_topic])
    found: list[tuple[bytes | None, str]] = []
    eof: set[int] = set()
    deadline = time.monotonic() + 30
    while len(eof) < settings.partitions and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error():
            eof.add(message.partition())
            continue
        headers = dict(message.headers() or [])
        source = TopicPartition(
            headers[dead_letters.TOPIC_HEADER].decode(),
            int(headers[dead_letters.PARTITION_HEADER]),
            int(headers[dead_letters.OFFSET_HEADER]),
        )
        original = _read_at(settings, source)
        assert original == message.value()
        found.append((message.value(), headers[dead_letters.REASON_HEADER].decode()))
    consumer.close()
    assert sorted(found, key=repr) == sorted(
        [(value, reason.value) for value, reason in BAD], key=repr
    )
    assert "dead-lettered" in caplog.text


def _read_at(settings: Settings, source: TopicPartition) -> bytes | None:
    consumer = Consumer(client_config(settings, {"group.id": "peek"}))
    consumer.assign([source])
    message = consumer.poll(10)
    consumer.close()
    assert message is not None and not message.error()
    value: bytes | None = message.value()
    return value


def _reset_group(settings: Settings) -> None:
    admin = AdminClient(client_config(settings))
    partitions = [TopicPartition(settings.topic, p, 0) for p in range(settings.partitions)]
    futures = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(settings.consumer_group, partitions)]
    )
    for future in futures.values():
        future.result(30)


def test_a_group_reset_to_the_beginning_changes_nothing(
    settings: Settings, redis_client: redis.Redis
) -> None:
    checkouts = valid_checkouts(3000, 11)
    publish_checkouts(settings, checkouts)
    run_once(settings)
    days = days_of(truth(checkouts, settings.zone))
    first = live_figures(redis_client, days, settings.key_space)
    assert first == truth(checkouts, settings.zone)

    _reset_group(settings)
    job = build_stream_job(settings.model_copy(update={"metrics_port": 0}))
    job.run(timeout=3.0)
    assert live_figures(redis_client, days, settings.key_space) == first
    # Redis's watermarks, not the group's offsets, decide where each partition resumes.
    assert job.metrics.registry.get_sample_value("kassa_stream_replayed_messages_total") == 0


def test_kill_9_at_random_moments_under_load_then_restart_stays_exact(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = settings.model_copy(
        update={
            "metrics_port": 0,
            "stream_commit_interval": 0.2,
            "stream_session_timeout_ms": 6000,
        }
    )
    load = Load(settings, 23, rate=2000.0)
    rng = random.Random(4)
    log = tmp_path / "stream.log"
    try:
        for _ in range(5):
            before = watermark_sum(redis_client, settings.key_space)
            child = start_stream(settings, log)
            try:
                wait_until(
                    lambda: watermark_sum(redis_client, settings.key_space) > before,  # noqa: B023
                    60,
                    "the restarted stream job to apply a batch",
                )
                time.sleep(rng.uniform(0.0, 1.5))
                helpers = _children(child.pid)
                assert helpers, "the stream job runs its writer in a child process"
            finally:
                child.send_signal(signal.SIGKILL)
                child.wait(10)
            wait_until(
                lambda: not any(Path(f"/proc/{pid}").exists() for pid in helpers),  # noqa: B023
                15,
                "the writer process of the killed job to exit",
            )
    finally:
        checkouts = load.finish()
    child = start_stream(settings, log)
    try:
        wait_until(caught_up(redis_client, settings), 90, "the job to catch up")
    finally:
        child.terminate()
        assert child.wait(30) == 0, log.read_text()[-3000:]
    assert log.read_text().count("assigned partitions") >= 6
    assert_exact(redis_client, settings, checkouts)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _counted(client: redis.Redis, settings: Settings, offsets: int) -> Callable[[], bool]:
    """A condition: the live watermarks moved ``offsets`` past where they are now."""
    start = watermark_sum(client, settings.key_space)
    return lambda: watermark_sum(client, settings.key_space) >= start + offsets


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except urllib.error.URLError:
        return 0, b""


def test_a_second_replica_joining_and_leaving_mid_run_keeps_counts_exact(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    port = free_port()
    first = settings.model_copy(update={"metrics_port": port, "stream_commit_interval": 0.2})
    second = first.model_copy(update={"metrics_port": 0})
    load = Load(first, 31, rate=2000.0)
    replica_a = start_stream(first, tmp_path / "a.log")
    try:
        wait_until(lambda: _get(f"http://127.0.0.1:{port}/healthz")[0] == 200, 60, "health")
        wait_until(_counted(redis_client, first, 4000), 60, "the first replica to count alone")
        replica_b = start_stream(second, tmp_path / "b.log")
        wait_until(
            lambda: "assigned partitions" in (tmp_path / "b.log").read_text(),
            60,
            "the second replica to get partitions",
        )
        wait_until(_counted(redis_client, first, 4000), 60, "the two replicas to count")
        replica_b.send_signal(signal.SIGTERM)
        assert replica_b.wait(30) == 0, (tmp_path / "b.log").read_text()[-3000:]
        wait_until(_counted(redis_client, first, 2000), 60, "the first replica to count again")
        checkouts = load.finish()
        wait_until(caught_up(redis_client, first), 90, "the first replica to catch up")
        # a partition's lag appears with librdkafka's next statistics (every 5 s) after the
        # rebalance that gave it back (the series go with the partition)
        wait_until(
            lambda: b"kassa_stream_consumer_lag{" in _get(f"http://127.0.0.1:{port}/metrics")[1],
            30,
            "the consumer lag of the partitions taken back",
        )
        status, body = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert b"kassa_stream_checkouts_total" in body
        assert b"kassa_stream_applied_offset{" in body
        health = json.loads(_get(f"http://127.0.0.1:{port}/healthz")[1])
        assert health["state"] == "running"
    finally:
        load.finish()
        replica_a.send_signal(signal.SIGTERM)
        assert replica_a.wait(30) == 0, (tmp_path / "a.log").read_text()[-3000:]
    assert_exact(redis_client, settings, checkouts)


def test_kassa_top_prints_the_live_ranking_as_json(
    settings: Settings, redis_client: redis.Redis
) -> None:
    checkouts = valid_checkouts(1000, 2)
    publish_checkouts(settings, checkouts)
    run_once(settings)
    day = checkouts[0].occurred_at.astimezone(settings.zone).date()
    expected = truth(checkouts, settings.zone)
    chain = sorted(
        ((-row[0], sku, row) for (d, store, sku), row in expected.items() if d == day and not store)
    )[:5]
    shown = run_kassa(
        "top", "--source", "live", "--day", day.isoformat(), "-n", "5", "--json",
        env=settings_env(settings),
    )  # fmt: skip
    assert shown.returncode == 0
    printed = json.loads(shown.stdout)
    assert [(i["rank"], i["sku"], i["units"], i["revenue"]) for i in printed] == [
        (rank, sku, row[0], str(row[3].quantize(Decimal("0.0001"))))
        for rank, (_, sku, row) in enumerate(chain, start=1)
    ]
    assert all(isinstance(i["name"], str) for i in printed)


def test_an_unreachable_redis_stops_the_job_with_a_clear_error(settings: Settings) -> None:
    publish_checkouts(settings, valid_checkouts(50, 1))
    broken = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    with pytest.raises(StreamError, match="KASSA_REDIS_URL"):
        run_once(broken, idle=10.0)
