"""What ``/health`` reports besides Redis: Kafka, the stream job's lag, the last daily run.

Kafka is probed by :class:`KafkaProbe` on a background thread every few seconds, so a slow
or stopped broker never delays ``/health`` (it reports the last probe and its age). The lag
is the stream job's committed offsets (``KASSA_CONSUMER_GROUP``) against the partitions'
high watermarks; the last daily run is the newest manifest under ``KASSA_DATA_DIR``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, TopicPartition

from common.settings import Settings
from jobs.daily.exceptions import ManifestUnreadable
from jobs.daily.status import day_status
from storage import parquet
from storage.kafka.config import client_config

logger = logging.getLogger(__name__)

PROBE_INTERVAL_SECONDS: Final = 3.0
PROBE_TIMEOUT_SECONDS: Final = 2.0


@dataclass
class KafkaState:
    """The result of one probe of the broker and the stream job's consumer group."""

    reachable: bool
    reason: str | None = None
    partitions: list[dict[str, int | None]] = field(default_factory=list)
    lag: int | None = None
    probed_at: float = field(default_factory=time.time)

    def as_json(self) -> dict[str, Any]:
        """JSON-ready, with the probe's age in seconds."""
        return {
            "reachable": self.reachable,
            "reason": self.reason,
            "lag": self.lag,
            "partitions": self.partitions,
            "probed_seconds_ago": round(max(0.0, time.time() - self.probed_at), 1),
        }


def probe_kafka(settings: Settings, timeout: float = PROBE_TIMEOUT_SECONDS) -> KafkaState:
    """Ask the broker for the topic's partitions, their high watermarks and the group's offsets.

    Never joins the group: the consumer only reads metadata and committed offsets.
    """
    errors: list[str] = []

    def on_error(error: KafkaError) -> None:
        errors.append(str(error))

    consumer = Consumer(
        client_config(
            settings,
            {
                "group.id": settings.consumer_group,
                "enable.auto.commit": False,
                "error_cb": on_error,
                "log_level": 0,
            },
        )
    )
    try:
        metadata = consumer.list_topics(settings.topic, timeout=timeout)
        topic = metadata.topics.get(settings.topic)
        if topic is None or topic.error is not None:
            reason = f"topic {settings.topic!r} not found (KASSA_TOPIC); run kassa topics create"
            return KafkaState(reachable=True, reason=reason)
        wanted = [TopicPartition(settings.topic, p) for p in sorted(topic.partitions)]
        committed = {tp.partition: tp.offset for tp in consumer.committed(wanted, timeout=timeout)}
        partitions: list[dict[str, int | None]] = []
        lag = 0
        for tp in wanted:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
            offset = committed.get(tp.partition, -1)
            behind = high - (offset if offset >= 0 else low)
            lag += max(0, behind)
            partitions.append(
                {
                    "partition": tp.partition,
                    "high_watermark": high,
                    "committed": offset if offset >= 0 else None,
                    "lag": max(0, behind),
                }
            )
        return KafkaState(reachable=True, partitions=partitions, lag=lag)
    except Exception as exc:  # any failure is reported in the body, never raised
        reason = errors[-1] if errors else str(exc)
        return KafkaState(
            reachable=False,
            reason=f"cannot reach Kafka at KASSA_KAFKA_BOOTSTRAP={settings.kafka_bootstrap!r}"
            f" ({reason.splitlines()[0] if reason else type(exc).__name__})",
        )
    finally:
        consumer.close()


class KafkaProbe:
    """Probes Kafka on a daemon thread every :data:`PROBE_INTERVAL_SECONDS`."""

    def __init__(self, settings: Settings, interval: float = PROBE_INTERVAL_SECONDS) -> None:
        self._settings = settings
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = KafkaState(reachable=False, reason="not probed yet")

    def start(self) -> None:
        """Start probing (the first probe runs at once)."""
        self._thread = threading.Thread(target=self._run, name="kassa-kafka-probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop probing and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.state = probe_kafka(self._settings)
            self._stop.wait(self._interval)


def last_daily_run(data_dir: Path) -> dict[str, Any] | None:
    """The newest daily manifest under ``data_dir`` in brief, with its day and state
    (:meth:`jobs.daily.status.DayStatus.summary_json`); an unreadable one is reported."""
    days = parquet.manifest_days(data_dir)
    if not days:
        return None
    try:
        status = day_status(data_dir, days[-1])
    except ManifestUnreadable as exc:
        return {"day": days[-1].isoformat(), "state": "unreadable", "reason": str(exc)}
    summary = status.summary_json()
    if summary is None:
        return None
    return {"day": days[-1].isoformat(), "state": status.state, **summary}
