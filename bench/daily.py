"""Daily job throughput: one pre-produced business day from the broker to Parquet and Redis.

Baselines measured in the same run on the same records: a raw consume of the day's offset
range (values only, no decoding) and an in-memory decode + aggregation of the same bytes
(no Kafka, no files; decoded ahead by the job's decoder threads, as in the job). The three are
interleaved in each repetition so that load from other processes hits them alike. Run alone
with ``python -m bench.daily`` against running services.
"""

from __future__ import annotations

import logging
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import msgspec
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from common.days import day_bounds
from common.schema import Checkout
from common.settings import Settings, load_settings
from common.topics import ensure_topics
from jobs.daily.aggregate import Deduplicator, Partials, in_day
from jobs.daily.job import CHUNK_MESSAGES, run_day
from jobs.daily.pipeline import decode_ahead, in_background
from jobs.daily.reader import open_consumer, plan_day, read_partition
from producers.publish import publish
from producers.synthetic import generate

logger = logging.getLogger(__name__)

CHECKOUTS: Final = 300_000
REPETITIONS: Final = 3


def _day_of_checkouts(day: date, count: int) -> Iterator[Checkout]:
    """Synthetic baskets spread evenly over ``day`` (UTC), the sentinels after it."""
    start, end = day_bounds(day, UTC)  # type: ignore[arg-type]
    step = (end - start) / count
    source = generate(7, start, count, store_count=20)
    for index, item in enumerate(source):
        yield msgspec.structs.replace(item, occurred_at=start + index * step)


def _seal(day: date, partitions: int) -> Iterator[Checkout]:
    _, end = day_bounds(day, UTC)  # type: ignore[arg-type]
    template = next(generate(8, end, 1))
    for partition in range(partitions * 8):
        yield msgspec.structs.replace(
            template,
            transaction_id=f"seal-{partition}",
            store_id=f"seal-{partition}",
            occurred_at=end + timedelta(hours=3),
        )


def _median(runs: list[float]) -> float:
    return statistics.median(runs)


def _cpu_seconds() -> float:
    """User plus system CPU seconds of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _timed_job(settings: Settings, day: date) -> tuple[float, float, dict[str, Any]]:
    """Wall seconds, CPU seconds and manifest of one ``run_day``."""
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    manifest = run_day(settings, day).manifest
    return time.perf_counter() - started, _cpu_seconds() - cpu_started, manifest


def run(settings: Settings, checkouts: int = CHECKOUTS, repetitions: int = REPETITIONS) -> str:
    """Produce one day of ``checkouts``, then time the daily job and its two baselines."""
    day = datetime.now(UTC).date() - timedelta(days=3)
    with tempfile.TemporaryDirectory(prefix="kassa-bench-daily-") as folder:
        bench = settings.model_copy(
            update={
                "topic": f"bench_daily_{uuid.uuid4().hex[:8]}",
                "timezone": "UTC",
                "data_dir": Path(folder),
                "redis_url": settings.redis_url.rsplit("/", 1)[0] + "/14",
            }
        )
        ensure_topics(bench)
        logger.info("producing %d checkouts of %s to %s", checkouts, day, bench.topic)
        report = publish(bench, _day_of_checkouts(day, checkouts))
        publish(bench, _seal(day, bench.partitions))
        if report.failed:
            msg = f"could not produce the benchmark day: {report.summary()}"
            raise RuntimeError(msg)

        consumer = open_consumer(bench)
        plan = plan_day(consumer, bench, day)
        records = plan.records
        payload: list[list[bytes | None]] = []
        for part in plan.partitions:
            payload.extend(read_partition(consumer, bench.topic, part, CHUNK_MESSAGES))
        payload_bytes = sum(len(v or b"") for chunk in payload for v in chunk)

        def raw_consume() -> None:
            total = 0
            for part in plan.partitions:
                for chunk in read_partition(consumer, bench.topic, part, CHUNK_MESSAGES):
                    total += len(chunk)
            assert total == records

        def decode_and_group() -> None:
            partials = Partials(bench.zone)
            dedup = Deduplicator()
            decoded = decode_ahead(payload, bench.limits)
            for _, batch in in_background(decoded):
                lines, _ = in_day(batch.lines, plan.start, plan.end)
                lines, _ = dedup.first_occurrences(lines)
                partials.add(lines)
            partials.item_sales()
            partials.store_item_sales()
            partials.hourly_sales()

        raw: list[float] = []
        memory: list[float] = []
        jobs: list[tuple[float, float, dict[str, Any]]] = []
        for _ in range(repetitions):
            raw.append(_timed(raw_consume))
            memory.append(_timed(decode_and_group))
            jobs.append(_timed_job(bench, day))
        consumer.close()
        end_to_end = [seconds for seconds, _, _ in jobs]
        cpu = [cpu_seconds for _, cpu_seconds, _ in jobs]
        manifest = jobs[-1][2]
        _delete_topic(bench)

    lines = manifest["counts"]["lines"]
    e2e_rate = records / _median(end_to_end)
    raw_rate = records / _median(raw)
    memory_rate = records / _median(memory)
    rows = [
        ("end to end: Kafka -> Parquet + Redis (`run_day`)", _median(end_to_end), e2e_rate),
        ("baseline: raw consume, values only", _median(raw), raw_rate),
        ("baseline: in-memory decode + group-by", _median(memory), memory_rate),
    ]
    table = "\n".join(
        f"| {name} | {seconds:.2f} | {rate:,.0f} | {rate * lines / records:,.0f} |"
        for name, seconds, rate in rows
    )
    timings = manifest["timings_seconds"]
    return f"""## Daily job (`bench.daily`)

One UTC business day of {records:,} synthetic checkouts ({lines:,} lines,
{payload_bytes / records:,.0f} bytes per message, {bench.partitions} partitions) produced
before timing; medians of {repetitions} repetitions.

| measurement | seconds | checkouts/s | lines/s |
|---|---:|---:|---:|
{table}

- End to end is {e2e_rate / raw_rate:.0%} of the raw consume rate (target >= 25%) and
  {e2e_rate / memory_rate:.0%} of the in-memory decode + group-by (target >= 50%);
  target >= 150,000 checkouts/s.
- CPU: `run_day` used {_median(cpu):.2f} CPU-seconds per run ({_median(cpu) / records * 1e6:.1f} µs
  per checkout; all threads of the process, the broker not included).
- `sales_lines`: {manifest["sales_lines_bytes_per_line"]} bytes per line (zstd, arrival order;
  target <= 10).
- Last run's phases (s): {", ".join(f"{k} {v}" for k, v in timings.items())}.
- Load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other
  processes share the machine; the broker runs on it too).
- Decoded on the columnar fast path: {manifest["counts"]["decoded_fast"]:,} messages; by
  `decode_checkout` one at a time: {manifest["counts"]["decoded_slow"]:,}.
"""


def _delete_topic(settings: Settings) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    for future in admin.delete_topics([settings.topic, settings.dead_letter_topic]).values():
        try:
            future.result(30)
        except KafkaException:
            logger.warning("could not delete topic %s", settings.topic)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    count = int(sys.argv[1]) if len(sys.argv) > 1 else CHECKOUTS
    print(run(load_settings(), count))
