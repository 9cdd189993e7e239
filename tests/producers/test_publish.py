"""The Kafka producer: every checkout delivered or counted as failed, and said so."""

from __future__ import annotations

import itertools
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from common.schema import Checkout, decode_checkout, record_timestamp_ms
from common.settings import Settings
from producers.publish import publish
from producers.synthetic import generate
from services.kafka import KafkaServer
from storage.kafka.topics import ensure_topics
from tests.helpers import KASSA, run_kassa, settings_env
from tests.producers.helpers import read_all

PAST = datetime(2026, 11, 2, 6, 0, tzinfo=UTC) - timedelta(days=30)


def test_every_checkout_arrives_once_keyed_by_store_at_its_time(settings: Settings) -> None:
    sent = list(generate(4, PAST, 5000))

    report = publish(settings, sent)

    assert (report.sent, report.delivered, report.failed, report.failures) == (5000, 5000, 0, {})
    records = read_all(settings)
    received = {}
    for record in records:
        value = record.value()
        assert value is not None
        checkout = decode_checkout(value)
        assert record.key() == checkout.store_id.encode()
        assert record.timestamp()[1] == record_timestamp_ms(checkout)
        received[checkout.transaction_id] = checkout
    assert len(records) == 5000
    assert received == {checkout.transaction_id: checkout for checkout in sent}
    stores_per_partition: dict[int, set[bytes | None]] = {}
    for record in records:
        stores_per_partition.setdefault(record.partition(), set()).add(record.key())
    keys = [key for keys in stores_per_partition.values() for key in keys]
    assert len(keys) == len(set(keys)), "a store's checkouts are spread over partitions"


def test_rate_caps_the_throughput(settings: Settings) -> None:
    started = time.monotonic()

    report = publish(settings, generate(1, PAST, 300), rate=500)

    assert time.monotonic() - started >= 0.55
    assert report.delivered == 300


def test_duration_ends_an_endless_stream(settings: Settings) -> None:
    report = publish(settings, generate(1, PAST), duration=0.5)

    assert report.sent > 0
    assert report.elapsed < 10
    assert report.delivered == report.sent
    assert len(read_all(settings)) == report.sent


def test_stop_ends_the_stream_and_flushes_what_was_accepted(settings: Settings) -> None:
    stop = threading.Event()
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    try:
        report = publish(settings, generate(1, PAST), rate=2000, stop=stop)
    finally:
        timer.cancel()

    assert 0 < report.sent < 20_000
    assert report.delivered == report.sent
    assert len(read_all(settings)) == report.sent


def test_sigint_stops_the_cli_which_flushes_and_exits_0(settings: Settings) -> None:
    with subprocess.Popen(
        [*KASSA, "produce", "synthetic", "--rate", "2000", "--start", PAST.isoformat()],
        env=settings_env(settings),
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stderr is not None
        for line in process.stderr:
            if "producers.publish: sent" in line:
                break
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)

    assert process.returncode == 0, stderr
    assert "stopped by SIGINT" in stderr
    summary = next(line for line in stderr.splitlines() if line.startswith("sent "))
    sent = int(summary.split()[1].replace(",", ""))
    assert f"{sent:,} delivered, 0 failed" in summary
    assert len(read_all(settings)) == sent


def test_a_broker_that_goes_away_fails_the_run_loudly(
    settings: Settings, private_kafka: KafkaServer
) -> None:
    private = settings.model_copy(
        update={"kafka_bootstrap": private_kafka.bootstrap, "delivery_timeout_ms": 2000}
    )
    ensure_topics(private)
    with subprocess.Popen(
        [
            *KASSA, "produce", "synthetic", "--rate", "1000", "--duration", "6",
            "--start", PAST.isoformat(),
        ],
        env=settings_env(private),
        stderr=subprocess.PIPE,
        text=True,
    ) as process:  # fmt: skip
        assert process.stderr is not None
        for line in process.stderr:
            if "producers.publish: sent" in line and _some_delivered(line):
                break
        private_kafka.stop()
        _, stderr = process.communicate(timeout=60)

    assert process.returncode == 1, stderr
    error = stderr[stderr.index("kassa: error:") :]
    failed = int(error.split(" failed")[0].rsplit(" ", 1)[1].replace(",", ""))
    delivered = int(error.split(" delivered")[0].rsplit(" ", 1)[1].replace(",", ""))
    assert failed > 0
    assert delivered > 0, "the broker was stopped before anything was delivered"
    assert "Message timed out" in error or "not delivered" in error


def _some_delivered(progress: str) -> bool:
    """Whether a progress line ``sent N (R/s), in flight Q, failed F`` shows a delivery."""
    numbers = re.search(r"sent (\d+) .*in flight (\d+), failed (\d+)", progress)
    assert numbers is not None, progress
    sent, in_flight, failed = map(int, numbers.groups())
    return sent - in_flight - failed > 0


def test_delivery_failures_are_counted_in_the_report(settings: Settings) -> None:
    nowhere = settings.model_copy(
        update={"kafka_bootstrap": "127.0.0.1:1", "delivery_timeout_ms": 1000}
    )

    report = publish(nowhere, itertools.islice(generate(1, PAST), 50))

    assert (report.sent, report.delivered, report.failed) == (50, 0, 50)
    assert list(report.failures.values()) == [50]
    assert "_MSG_TIMED_OUT" in next(iter(report.failures))
    assert "50 failed" in report.summary()


def test_a_future_timestamp_refused_by_the_broker_is_explained(settings: Settings) -> None:
    future = datetime.now(UTC) + timedelta(days=3)

    report = publish(settings, generate(1, future, 20))

    assert report.failed == 20
    assert "--start" in report.summary()


def test_the_sigterm_handler_is_restored_after_publish(settings: Settings) -> None:
    before = signal.getsignal(signal.SIGTERM)

    publish(settings, generate(1, PAST, 10))

    assert signal.getsignal(signal.SIGTERM) is before


def test_checkouts_accepted_before_the_source_fails_are_still_delivered(
    settings: Settings,
) -> None:
    def failing() -> Iterator[Checkout]:
        yield from generate(1, PAST, 100)
        msg = "the source broke"
        raise RuntimeError(msg)

    with pytest.raises(RuntimeError, match="the source broke"):
        publish(settings, failing())

    assert len(read_all(settings)) == 100


def test_a_held_clock_still_ends_at_the_duration(settings: Settings) -> None:
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    started = time.monotonic()

    result = run_kassa(
        "produce", "synthetic", "--max", "--duration", "2", "--start", tomorrow,
        env=settings_env(settings), timeout=60,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    assert "holding checkouts" in result.stderr
    assert "sent 0 checkouts" in result.stderr


def test_a_checkout_the_client_refuses_is_counted_not_raised(settings: Settings) -> None:
    huge = next(generate(1, PAST, 1))
    huge = Checkout(
        transaction_id="huge",
        store_id=huge.store_id,
        register_id=huge.register_id,
        occurred_at=huge.occurred_at,
        kind="sale",
        currency="GBP",
        lines=huge.lines * 20_000,  # far beyond librdkafka's message.max.bytes (1 MB)
    )

    report = publish(settings, [*generate(1, PAST, 10), huge])

    assert (report.sent, report.delivered, report.failed) == (11, 10, 1)
    assert "MSG_SIZE_TOO_LARGE" in next(iter(report.failures))
