"""``kassa dead-letters replay`` after a fleet upgrade: version 2 checkouts dead-lettered while
the jobs read only version 1 are put back once they read version 2, exactly once: the live
figures end exact, the finalized day is restated through the late-data path, a second replay
changes nothing, and a replay killed half-way (``kill -9``) and run again counts every record
once. Records still refused stay pending."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from common.schema import Checkout, encode_checkout
from common.settings import Settings
from jobs.daily.job import run_day
from jobs.stream.replay import list_dead_letters, replay
from producers.synthetic import generate
from storage import parquet
from storage.kafka.config import client_config
from tests.helpers import KASSA, settings_env, truth, wait_until
from tests.jobs.daily.helpers import expected_of, parquet_figures, produce, produce_raw, seal
from tests.jobs.stream.helpers import caught_up, live_figures, start_stream

BERLIN = ZoneInfo("Europe/Berlin")
DAY = date(2026, 11, 21)
START = datetime(2026, 11, 21, 9, tzinfo=BERLIN)


def _stream_until_caught_up(settings: Settings, client: redis.Redis, log: Path) -> None:
    child = start_stream(settings.model_copy(update={"metrics_port": 0}), log)
    try:
        wait_until(caught_up(client, settings), 120, "the stream job to catch up")
        time.sleep(0.5)
        assert child.poll() is None, log.read_text()[-3000:]
    finally:
        child.send_signal(signal.SIGTERM)
        assert child.wait(30) == 0, log.read_text()[-3000:]


def _end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    consumer = Consumer(client_config(settings, {"group.id": "offsets-probe"}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), 10)[1] for p in partitions
        }
    finally:
        consumer.close()


def _committed(settings: Settings) -> int:
    """How many dead letters the replay group has committed past, summed over partitions."""
    consumer = Consumer(client_config(settings, {"group.id": settings.replay_group}))
    try:
        topic = settings.dead_letter_topic
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        found = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return sum(max(tp.offset, 0) for tp in found)
    finally:
        consumer.close()


def _fence(settings: Settings) -> None:
    """Abort the open transaction of a killed replay, as the next replay's producer does
    when it starts with the same transactional id: until then (or until the transaction
    times out, a minute) the group's committed offsets are unstable and cannot be read."""
    producer = Producer(
        client_config(settings, {"transactional.id": settings.replay_transactional_id})
    )
    producer.init_transactions(30)
    producer.flush(10)


def _in_euros(checkout: Checkout) -> bytes:
    message = json.loads(encode_checkout(checkout))
    message["currency"] = "EUR"
    return json.dumps(message).encode()


def test_a_replay_after_the_upgrade_ends_exact_live_and_in_a_restated_day(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    before = settings.model_copy(
        update={"timezone": "Europe/Berlin", "schema_versions": "1", "daily_max_invalid_share": 1}
    )
    after = before.model_copy(update={"schema_versions": "1,2"})
    mixed = list(generate(31, START, 600, versions="mix"))
    euros = list(generate(32, START + timedelta(hours=1), 5))
    upgraded = [checkout for checkout in mixed if checkout.schema_version == 2]
    produce(before, mixed)
    produce_raw(before, [_in_euros(c) for c in euros], START + timedelta(hours=1))
    seal(before, START + timedelta(days=1))
    _stream_until_caught_up(before, redis_client, tmp_path / "before.log")
    first = run_day(before, DAY)
    assert first.manifest.counts.invalid == {
        "unsupported_version": len(upgraded),
        "currency": len(euros),
    }
    pending = list_dead_letters(after)
    assert pending.total == len(upgraded) + len(euros)
    assert pending.counts[("unsupported_version", DAY)] == len(upgraded)

    report = replay(after, batch=100)

    assert report.replayed == {DAY: len(upgraded)}
    assert report.refused == {"currency": len(euros)}
    left = list_dead_letters(after)
    assert dict(left.counts) == {("currency", DAY): len(euros)}
    sales_end, dead_end = (
        _end_offsets(after, after.topic),
        _end_offsets(after, after.dead_letter_topic),
    )
    again = replay(after, batch=100)
    assert (sum(again.replayed.values()), again.transactions) == (0, 0)
    assert again.refused == {"currency": len(euros)}
    assert _end_offsets(after, after.topic) == sales_end
    assert _end_offsets(after, after.dead_letter_topic) == dead_end

    # live: the stream job counts the replayed records once (a partition's last record is
    # then a seal, not the marker of the replay's transaction, which the job never applies)
    seal(after, START + timedelta(days=2))
    _stream_until_caught_up(after, redis_client, tmp_path / "after.log")
    expected = truth([*mixed, *_seals_of(before)], BERLIN)
    live = live_figures(redis_client, [DAY], after.key_space)
    assert live == {key: row for key, row in expected.items() if key[0] == DAY}

    # daily: a later day's run finds the replayed records late; the day is restated exactly
    later = run_day(after, DAY + timedelta(days=1))
    assert later.manifest.late_records[DAY.isoformat()].records == len(upgraded)
    restated = run_day(after, DAY)
    assert restated.manifest.revision == 2
    assert restated.manifest.revision_reason is not None
    assert "late records" in restated.manifest.revision_reason
    daily = parquet_figures(parquet.table_path(after.data_dir, "daily_item_sales", DAY))
    assert daily == expected_of(mixed, DAY, BERLIN)
    assert restated.manifest.counts.duplicates == len(upgraded)  # the original and its replay
    assert restated.reconciliation.drifts == ()


def _seals_of(settings: Settings) -> list[Checkout]:
    """The checkouts :func:`tests.jobs.daily.helpers.seal` sent a day after START."""
    from tests.jobs.daily.helpers import checkout  # noqa: PLC0415 - the seal's own builder

    after = START + timedelta(days=1)
    return [
        checkout(f"seal-{partition}-{after.isoformat()}-{n}", after, [("seal", 1, "1")])
        for partition in (0, 1, 2)
        for n in range(settings.daily_lookahead_records)
    ]


def test_a_replay_killed_half_way_and_run_again_counts_every_record_once(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    before = settings.model_copy(update={"timezone": "Europe/Berlin", "schema_versions": "1"})
    after = before.model_copy(update={"schema_versions": "1,2"})
    upgraded = list(generate(41, START, 6000, versions="2"))
    produce(before, upgraded)
    _stream_until_caught_up(before, redis_client, tmp_path / "before.log")
    assert list_dead_letters(after).total == len(upgraded)

    with (tmp_path / "replay.log").open("wb") as log:
        child = subprocess.Popen(
            [*KASSA, "dead-letters", "replay", "--batch", "25"],
            env=settings_env(after),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        wait_until(lambda: _committed(after) >= 200, 120, "the replay to commit a few batches")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(30)
    _fence(after)
    done = _committed(after)
    assert 0 < done < len(upgraded), "the replay was not killed half-way"

    report = replay(after, batch=500)

    assert sum(report.replayed.values()) + done == len(upgraded)
    assert list_dead_letters(after).total == 0
    seal(after, START + timedelta(days=2))  # the last records are data, not markers
    _stream_until_caught_up(after, redis_client, tmp_path / "after.log")
    expected = truth(upgraded, BERLIN)
    days = {key[0] for key in expected}
    assert live_figures(redis_client, days, after.key_space) == expected
    assert DAY + timedelta(days=2) not in days
