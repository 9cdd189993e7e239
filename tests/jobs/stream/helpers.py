"""Ground truth computed independently from what a test produced, the live figures read back
from Redis in the same shape, and the stream job run, fed and watched the way its tests do."""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import redis
from confluent_kafka import Consumer, TopicPartition

from common.schema import Checkout, decode_checkout, from_money_units
from common.settings import Settings
from jobs.stream.app import build_stream_job
from producers.publish import publish
from producers.synthetic import generate
from storage import keys
from storage.figures import CHECKOUTS, DISCOUNT, NAMES, RANKED, RETURNED, REVENUE, SOLD
from storage.kafka.config import client_config
from tests.helpers import KASSA, Figures, settings_env, truth


def live_figures(client: redis.Redis, days: Iterable[date], space: str) -> Figures:
    """Every live figure of ``days`` in key space ``space`` (missing hash fields count 0)."""
    result: Figures = {}
    for day in days:
        stores = sorted(m.decode() for m in client.smembers(keys.stores_key(space, "live", day)))
        for store in [None, *stores]:
            ranking = keys.day_key(space, "live", day, NAMES[RANKED], store)
            units = client.zrange(ranking, 0, -1, withscores=True)
            hashes = {
                figure: {
                    k.decode(): int(v)
                    for k, v in client.hgetall(
                        keys.day_key(space, "live", day, NAMES[figure], store)
                    ).items()
                }
                for figure in (SOLD, RETURNED, REVENUE, CHECKOUTS, DISCOUNT)
            }
            for raw_sku, score in units:
                sku = raw_sku.decode()
                result[(day, store, sku)] = (
                    int(score),
                    hashes[SOLD].get(sku, 0),
                    hashes[RETURNED].get(sku, 0),
                    from_money_units(hashes[REVENUE].get(sku, 0)),
                    hashes[CHECKOUTS].get(sku, 0),
                    from_money_units(hashes[DISCOUNT].get(sku, 0)),
                )
    return result


def days_of(figures: Figures) -> set[date]:
    """The days present in ``figures``."""
    return {day for day, _, _ in figures}


def assert_exact(client: redis.Redis, settings: Settings, checkouts: list[Checkout]) -> None:
    """Every live figure in Redis is the ground truth of ``checkouts``, each counted once."""
    expected = truth(checkouts, settings.zone)
    assert live_figures(client, days_of(expected), settings.key_space) == expected


def valid_checkouts(count: int, seed: int, day: date = date(2026, 11, 21)) -> list[Checkout]:
    """``count`` synthetic checkouts from 09:00 UTC on ``day`` on (the same for one seed)."""
    start = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=9)
    return list(generate(seed, start, count))


def publish_checkouts(
    settings: Settings, checkouts: list[Checkout], rate: float | None = None
) -> None:
    """Publish ``checkouts`` to the sales topic (at most ``rate`` a second); all delivered."""
    report = publish(settings, checkouts, rate=rate)
    assert report.delivered == len(checkouts), report.summary()


def run_once(settings: Settings, idle: float = 3.0) -> None:
    """Run the job in this process until it has been idle for ``idle`` seconds."""
    build_stream_job(settings.model_copy(update={"metrics_port": 0})).run(timeout=idle)


def end_offsets(settings: Settings, topic: str | None = None) -> dict[int, int]:
    """Partition -> offset after the last record of ``topic`` (the sales topic by default)."""
    name = topic or settings.topic
    consumer = Consumer(client_config(settings, {"group.id": "probe"}))
    try:
        metadata = consumer.list_topics(name, timeout=10).topics[name]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1]
            for p in metadata.partitions
        }
    finally:
        consumer.close()


def topic_checkouts(settings: Settings) -> list[Checkout]:
    """Every checkout the sales topic holds, read back from Kafka (duplicates included)."""
    consumer = Consumer(
        client_config(
            settings,
            {
                "group.id": "read-back",
                "enable.partition.eof": True,
            },
        )
    )
    ends = end_offsets(settings)
    consumer.assign([TopicPartition(settings.topic, p, 0) for p in ends])
    found: list[Checkout] = []
    done = {p for p, end in ends.items() if end == 0}
    try:
        while len(done) < len(ends):
            message = consumer.poll(10)
            assert message is not None, "the topic did not answer within 10 s"
            if message.error():
                done.add(message.partition())
                continue
            found.append(decode_checkout(message.value(), settings.limits))
    finally:
        consumer.close()
    return found


def caught_up(client: redis.Redis, settings: Settings) -> Callable[[], bool]:
    """A condition: Redis' watermark reached the end of every non-empty partition."""
    ends = end_offsets(settings)

    def check() -> bool:
        marks = watermarks(client, settings.key_space)
        return all(marks.get(p, -1) >= end - 1 for p, end in ends.items() if end > 0)

    return check


def watermarks(client: redis.Redis, space: str) -> dict[int, int]:
    """Partition -> live watermark in Redis (the hash's other fields left out)."""
    raw = client.hgetall(keys.applied_offsets_key(space))
    return {int(k): int(v) for k, v in raw.items() if k.isdigit()}


def watermark_sum(client: redis.Redis, space: str) -> int:
    """The sum of key space ``space``'s live watermarks: it grows with every applied batch."""
    return sum(watermarks(client, space).values())


def start_stream(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """``kassa stream`` as a child process with exactly ``settings``, logging to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [*KASSA, "stream"],
            env=settings_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_stream(child: subprocess.Popen[bytes]) -> int:
    """SIGTERM ``child``, SIGKILL it after 60 s; its exit status."""
    if child.poll() is None:
        child.terminate()
    try:
        return child.wait(60)
    except subprocess.TimeoutExpired:
        child.kill()
        return child.wait(10)


def error_lines(log: Path) -> list[str]:
    """The ``kassa: error:`` lines of a job's log (each way it stops is one of them)."""
    return [line for line in log.read_text().splitlines() if line.startswith("kassa: error:")]


def health(port: int) -> tuple[int, dict[str, object]]:
    """Status and body of ``/healthz`` on ``port`` (status 0 when nothing answers)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except (urllib.error.URLError, OSError):
        return 0, {}


class Load:
    """Synthetic checkouts published at ``rate`` from a thread until stopped; keeps them."""

    def __init__(self, settings: Settings, seed: int, rate: float) -> None:
        self.sent: list[Checkout] = []
        self.stop = threading.Event()
        self._settings = settings
        self._source = generate(seed, datetime(2026, 11, 21, 9, tzinfo=ZoneInfo("Europe/London")))
        self._rate = rate
        self._thread = threading.Thread(target=self._run, daemon=True)  # a failed test ends
        self._thread.start()

    def _pulled(self) -> Iterator[Checkout]:
        for checkout in self._source:
            self.sent.append(checkout)
            yield checkout

    def _run(self) -> None:
        self.report = publish(self._settings, self._pulled(), rate=self._rate, stop=self.stop)

    def finish(self) -> list[Checkout]:
        """Stop, wait for delivery, and return exactly the checkouts that were delivered."""
        self.stop.set()
        self._thread.join()
        assert self.report.failed == 0, self.report.summary()
        return self.sent[: self.report.sent]
