"""The lag probe: whether Kafka answers, and how far the stream job's consumer group is behind.

:class:`KafkaProbe` asks the broker on a background thread every few seconds, so a slow or
stopped broker never delays whoever reads :attr:`KafkaProbe.state` (the API's ``/health``,
the stream job's ``/healthz``). The lag is the committed offsets of ``KASSA_CONSUMER_GROUP``
against the partitions' high watermarks; the probe never joins the group.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import ClusterMetadata

from common.settings import Settings
from storage.kafka.config import client_config, with_token

PROBE_INTERVAL_SECONDS: Final = 3.0
PROBE_TIMEOUT_SECONDS: Final = 2.0


@dataclass
class KafkaState:
    """The result of one probe of the broker and the stream job's consumer group."""

    reachable: bool
    reason: str | None = None
    partitions: list[dict[str, int | None]] = field(default_factory=list)
    """Per partition: ``partition``, ``high_watermark``, ``committed`` (None: no commit
    yet) and ``lag``."""
    lag: int | None = None
    """The sum of the partitions' lag (None: not known)."""
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

    Never joins the group: the consumer only reads metadata and committed offsets. Any
    failure is reported in the state, never raised: unreachable when the cluster's metadata
    does not come, reachable with the reason when only the offsets do not (e.g. the group
    coordinator is moving to another broker).
    """
    errors: list[str] = []

    def on_error(error: KafkaError) -> None:
        errors.append(str(error))

    consumer = with_token(
        Consumer(
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
    )
    metadata: ClusterMetadata | None = None
    try:
        metadata = consumer.list_topics(settings.topic, timeout=timeout)
        return _lag(consumer, metadata, settings, timeout)
    except Exception as exc:  # any failure is reported in the state, never raised
        reason = errors[-1] if errors else str(exc)
        cause = reason.splitlines()[0] if reason else type(exc).__name__
        if metadata is None:  # the cluster did not answer
            where = f"KASSA_KAFKA_BOOTSTRAP={settings.kafka_bootstrap!r}"
            return KafkaState(reachable=False, reason=f"cannot reach Kafka at {where} ({cause})")
        group = settings.consumer_group
        reason = f"cannot read the offsets of group {group!r} ({cause})"
        return KafkaState(reachable=True, reason=reason)  # only the offsets are not known
    finally:
        consumer.close()


def _lag(
    consumer: Consumer, metadata: ClusterMetadata, settings: Settings, timeout: float
) -> KafkaState:
    """The state of a cluster that answers: every partition's high watermark, commit and lag."""
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


class KafkaProbe:
    """Probes Kafka (:func:`probe_kafka`) on a daemon thread every ``interval`` seconds, the
    first time at once; each probe waits at most ``timeout`` seconds for an answer.

    :attr:`state` is the last probe's; ``on_state`` (if given) is called with each new state
    on the probe's thread.
    """

    def __init__(
        self,
        settings: Settings,
        interval: float = PROBE_INTERVAL_SECONDS,
        *,
        timeout: float = PROBE_TIMEOUT_SECONDS,
        on_state: Callable[[KafkaState], None] | None = None,
    ) -> None:
        self._settings = settings
        self._interval = interval
        self._timeout = timeout
        self._on_state = on_state
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = KafkaState(reachable=False, reason="not probed yet")

    def start(self) -> None:
        """Start probing (the first probe runs at once)."""
        self._thread = threading.Thread(target=self._run, name="kassa-kafka-probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop probing and wait for the thread (at most 10 s: a probe in flight ends by its
        timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.state = probe_kafka(self._settings, self._timeout)
            if self._on_state is not None:
                self._on_state(self.state)
            self._stop.wait(self._interval)
