"""What changes under the running stream job, checked every few seconds and not only at an
assignment or the next record.

:class:`Watch` runs on a thread of its own every ``KASSA_STREAM_CHECK_SECONDS`` (and at once
when the consumer reports trouble with the topic) and asks three questions:

- Is the sales topic still the one the watermarks count? The topic id and cluster id the
  cluster describes now against the ones the job took over at its assignment. A topic that
  is gone twice in a row (:data:`GONE_CHECKS`), or whose id changed (deleted and recreated,
  another cluster), stops the job: :class:`TopicDeletedError` or
  :class:`IdentityMismatchError`, each one line naming the ids and ``kassa stream rebuild``.
- Does Redis still hold what the job applied? The watermarks of the job's partitions
  against the offsets the sink saw applied (read in that order, so a batch written in
  between can only make Redis look ahead). Redis behind (restored from an older copy,
  flushed, failed over to an empty replica, or reset by ``kassa stream rebuild``) is a
  :class:`RedisBehindError`: the supervisor rebuilds the job, which resumes from Redis's
  watermarks and recounts at once, without waiting for the next record.
- Has the topic more partitions than at the last assignment? Then ``/healthz`` says so until
  the group's next assignment (the consumer's metadata refresh,
  ``topic.metadata.refresh.interval.ms``, follows the same interval and starts it).

A stopping problem is kept in :attr:`Watch.failure` and the application is stopped without
a last commit (:meth:`~jobs.stream.quix.StreamApplication.stop` with ``fail=True``);
:meth:`jobs.stream.app.StreamJob.run` raises it. While any of them holds, ``/healthz`` is 503
with the reason (:meth:`jobs.stream.metrics.StreamMetrics.record_watch`). A check that
cannot reach Kafka or Redis changes nothing: outages are the probe's and the supervisor's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Final

import redis
from confluent_kafka.admin import AdminClient

from jobs.stream.exceptions import (
    IdentityMismatchError,
    RedisBehindError,
    StreamError,
    TopicDeletedError,
)
from jobs.stream.metrics import StreamMetrics
from storage.kafka.exceptions import TopicIdentityError
from storage.kafka.identity import describe_topic
from storage.live import Identity, LiveStore

logger = logging.getLogger(__name__)

GONE_CHECKS: Final = 2
"""Checks in a row that must find the topic gone before the job stops."""
DESCRIBE_TIMEOUT_SECONDS: Final = 5.0


class Watch:
    """Checks the topic, Redis and the partition count under the running job (see module).

    ``applied`` gives the offsets the sink saw Redis apply, per partition this replica
    holds; ``stop`` stops the application without its last commit.
    """

    def __init__(
        self,
        admin: AdminClient,
        store: LiveStore,
        metrics: StreamMetrics,
        *,
        topic: str,
        interval: float,
        applied: Callable[[], tuple[Mapping[int, int], int]],
        stop: Callable[[], None],
    ) -> None:
        self._admin = admin
        self._store = store
        self._metrics = metrics
        self._topic = topic
        self._interval = interval
        self._applied = applied
        self._stop_app = stop
        self._identity: Identity | None = None
        self._partitions = 0
        self._gone = 0
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: StreamError | None = None
        """What stopped the job, for :meth:`jobs.stream.app.StreamJob.run` to raise."""

    def assigned(self, identity: Identity, partitions: int) -> None:
        """An assignment took over ``identity``, the topic having ``partitions`` partitions."""
        self._identity = identity
        self._partitions = partitions
        self._metrics.record_watch(None)

    def start(self) -> None:
        """Check every ``interval`` seconds on a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="kassa-stream-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop checking and wait for the thread."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def check_soon(self) -> None:
        """Check now rather than at the next interval (the consumer saw the topic fail)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._stopped.is_set() or self._identity is None:
                continue
            try:
                failure = self.check()
            except Exception:  # the job must not die of its watch: log it, try again
                logger.exception("the stream job's check of its topic and Redis failed")
                continue
            if failure is not None:
                self.failure = failure
                self._stopped.set()
                self._stop_app()

    def check(self) -> StreamError | None:
        """One check (see the module): the error that must stop the job, or None."""
        identity = self._identity
        if identity is None:
            return None
        failure = self._check_topic(identity)
        if failure is None:
            failure = self._check_redis(identity)
        return failure

    def verdict(self) -> StreamError | None:
        """A check now, for a consumer that saw its offsets move back: a topic gone even
        once counts as deleted (the records said so already)."""
        failure = self.check()
        if failure is None and self._gone and self._identity is not None:
            failure = TopicDeletedError(self._topic, self._identity)
        return failure

    def _check_topic(self, identity: Identity) -> StreamError | None:
        try:
            shape = describe_topic(self._admin, self._topic, DESCRIBE_TIMEOUT_SECONDS)
        except TopicIdentityError:
            return None  # Kafka does not answer: the probe's and the supervisor's matter
        if shape is None:
            self._gone += 1
            self._metrics.record_watch(f"topic {self._topic!r} not found")
            return TopicDeletedError(self._topic, identity) if self._gone >= GONE_CHECKS else None
        self._gone = 0
        if shape.identity != identity:
            return IdentityMismatchError(self._store.space, identity, shape.identity)
        if shape.partitions > self._partitions:
            self._metrics.record_watch(
                f"topic {self._topic!r} has {shape.partitions} partitions, {self._partitions} "
                "when the group last assigned them: waiting for the group to take the new ones"
            )
        else:
            self._metrics.record_watch(None)
        return None

    def _check_redis(self, identity: Identity) -> StreamError | None:
        applied, epoch = self._applied()
        if not applied:
            return None
        try:
            state = self._store.state(applied)
        except redis.RedisError:
            return None  # Redis does not answer: the supervisor rides that out
        held = {p: (state.watermarks[p], offset) for p, offset in applied.items()}
        behind = {p: marks for p, marks in held.items() if marks[0] < marks[1]}
        if behind:
            return RedisBehindError(behind)
        if state.epoch != epoch or state.identity not in (None, identity):
            return RedisBehindError(held)  # rebuilt under the job: resume from its watermarks
        return None
