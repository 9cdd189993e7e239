"""The stream job's batch writers: child processes that decode, aggregate and write batches.

Quix runs the consumer loop on one Python thread, and decoding plus aggregating a checkout
costs about as much CPU as Quix itself. So :class:`~jobs.stream.sink.LiveSink` only collects
the raw records of each partition batch and hands the batch to :class:`BatchWriter`, whose
child processes (``KASSA_STREAM_WRITERS``; each partition always goes to the same one):

1. decode every value with a :class:`common.schema.WireDecoder`, fold the checkouts into a
   :class:`~storage.live.PartitionDelta`, roll its stores' figures up into the chain's
   (:func:`~jobs.stream.aggregate.roll_up`) and dead-letter what they refuse (delivered before
   anything is written);
2. make the batch's one Lua call (:meth:`storage.live.LiveStore.apply`: compare-and-set on the
   partition's watermark) and send back a small :class:`BatchReport` (or, when Redis fails,
   a :class:`~jobs.stream.exceptions.StreamRedisUnavailableError`, pickled like the report).

A message never stops the job: it counts or is dead-lettered with its reason (the decoder's
checks come before anything that could fail on its values). A failure of the writer itself
reaches the consumer process as a :class:`~common.errors.KassaError` that survives pickling
(anything else becomes a :class:`~jobs.stream.exceptions.WriterError` naming it).

Quix and the writers thus work at the same time on all cores, and the consumer process does
nothing per batch but hand it over and read the report. A partition's batches are applied
in the order they were handed over, and the sink waits for every one of them before Quix
commits offsets.
"""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Final

from common.errors import InvalidCheckout, KassaError
from common.schema import Reason, WireDecoder
from common.settings import Settings
from jobs.stream.aggregate import Aggregator, DayCutter, roll_up
from jobs.stream.dead_letters import DeadLetters
from jobs.stream.exceptions import StreamRedisUnavailableError, WriterError
from jobs.stream.malloc import keep_batch_memory
from storage.connections import open_redis, redis_failures
from storage.live import ApplyResult, Expectation, LiveStore, PartitionDelta

MAX_REFUSALS_REPORTED: Final = 100
"""Refused messages of one batch described individually in its report (the rest counted)."""


@dataclass(slots=True)
class RawBatch:
    """Consecutive records of one partition, as Kafka delivered them (not yet decoded)."""

    topic: str
    partition: int
    opened: float
    """``time.monotonic()`` when the batch got its first record."""
    offsets: list[int] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)
    values: list[bytes | None] = field(default_factory=list)
    size: int = 0
    """Bytes of the values."""
    newest_ms: int = 0
    """The newest record timestamp (ms since the epoch: the sale's time, see
    :func:`common.schema.record_timestamp_ms`)."""

    @property
    def first_offset(self) -> int:
        """The offset of the first record."""
        return self.offsets[0]

    @property
    def last_offset(self) -> int:
        """The offset of the last record."""
        return self.offsets[-1]


@dataclass(frozen=True, slots=True)
class Refusal:
    """One message the writer refused and dead-lettered."""

    offset: int
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class BatchReport:
    """What a writer did with one batch."""

    result: ApplyResult
    checkouts: int
    """Valid checkouts in the batch (counted even when the batch was not applied)."""
    lines: int
    dead_letters: dict[str, int]
    refusals: list[Refusal]
    """The first :data:`MAX_REFUSALS_REPORTED` refused messages (``dead_letters`` counts all)."""
    seconds: float
    """Time spent in the Redis call."""
    finished_at: float
    """``time.time()`` when the Redis call returned."""


class _Writer:
    """The state of a writer process: aggregator, dead-letter producer, live store."""

    def __init__(self, settings: Settings) -> None:
        self._store = _live_store(settings)  # connects at the first batch
        self._redis = settings
        self._aggregator = Aggregator(settings.zone)
        self._days = DayCutter(settings.zone)
        self._settings = settings
        self._dead_letter_topic = settings.dead_letter_topic
        self._dead_letters: DeadLetters | None = None  # connects at the first dead letter
        self._decoder = WireDecoder(settings.limits)

    def write(
        self, batch: RawBatch, expected: Expectation, floor: tuple[date, int] | None
    ) -> BatchReport:
        delta = PartitionDelta(batch.partition, batch.first_offset, batch.last_offset)
        refusals: list[Refusal] = []
        aggregate = self._aggregator.add
        decode = self._decoder.decode
        # Below a rebuild's replay floor, records of the days it kept were counted already.
        floor_day, floor_offset = floor if floor is not None else (date.min, -1)
        now = datetime.now(UTC)  # the clock of the event-time window, once per batch
        for index, value in enumerate(batch.values):
            replayed = batch.offsets[index] <= floor_offset
            try:
                checkout = decode(value if value is not None else b"", now)
            except InvalidCheckout as exc:
                if not replayed:
                    self._refuse(batch, index, delta, refusals, exc)
                continue
            except Exception as exc:  # a decoder bug must not stop the job either
                if not replayed:
                    error = InvalidCheckout(Reason.INVALID_FIELD, f"{type(exc).__name__}: {exc}")
                    self._refuse(batch, index, delta, refusals, error)
                continue
            if replayed and self._days.day_of(checkout.occurred_at) < floor_day:
                continue
            aggregate(delta, checkout)
        roll_up(delta)
        if self._dead_letters is not None:
            self._dead_letters.flush()  # before the watermark covers them
        started = time.perf_counter()
        doing = f"write partition {batch.partition}'s batch to"
        with redis_failures(self._redis, doing, StreamRedisUnavailableError):
            result = self._store.apply(delta, expected)
        seconds = time.perf_counter() - started
        return BatchReport(
            result,
            delta.checkouts,
            delta.lines,
            delta.dead_letters,
            refusals,
            seconds,
            time.time(),
        )

    def _refuse(
        self,
        batch: RawBatch,
        index: int,
        delta: PartitionDelta,
        refusals: list[Refusal],
        error: InvalidCheckout,
    ) -> None:
        reason = error.reason.value
        offset = batch.offsets[index]
        if self._dead_letters is None:
            self._dead_letters = DeadLetters(self._settings, self._dead_letter_topic)
        self._dead_letters.send(
            batch.values[index],
            batch.keys[index],
            reason=reason,
            detail=error.detail,
            source_topic=batch.topic,
            partition=batch.partition,
            offset=offset,
        )
        delta.dead_letters[reason] = delta.dead_letters.get(reason, 0) + 1
        if len(refusals) < MAX_REFUSALS_REPORTED:
            refusals.append(Refusal(offset, reason, error.detail))


def _live_store(settings: Settings) -> LiveStore:
    client = open_redis(settings)
    return LiveStore(client, settings.key_space, settings.zone, settings.retention_days)


_writer: _Writer | None = None


def _start(settings: Settings) -> None:
    """Initialise the writer process.

    Signals are the parent's business (it drains the writer before it stops); if the parent
    dies without doing so (``kill -9``), the writer exits too instead of lingering.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()
    global _writer  # noqa: PLW0603 - one writer per process, built by the pool's initializer
    _writer = _Writer(settings)
    # Batches make many short-lived objects and no long-lived ones: fewer, cheaper collections
    # (about 8% of the process's CPU in the benchmark).
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    keep_batch_memory()


def _exit_with(parent_sentinel: int) -> None:
    multiprocessing.connection.wait([parent_sentinel])
    os._exit(1)


def _ready() -> bool:
    return _writer is not None


def _write(batch: RawBatch, expected: Expectation, floor: tuple[date, int] | None) -> BatchReport:
    assert _writer is not None, "the writer process was not initialised"
    try:
        return _writer.write(batch, expected, floor)
    except Exception as exc:
        error = _picklable(exc, batch)
        if error is exc:
            raise
        raise error from exc


def _picklable(error: Exception, batch: RawBatch) -> KassaError:
    """``error`` as the consumer process can unpickle it: itself if it is a kassa error that
    survives the round trip, else a :class:`WriterError` naming it (an exception the pool
    cannot unpickle would break the pool and hide the cause)."""
    if isinstance(error, KassaError) and _survives_pickling(error):
        return error
    return WriterError(batch.partition, batch.first_offset, batch.last_offset, error)


def _survives_pickling(error: KassaError) -> bool:
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return False
    return True


class BatchWriter:
    """Applies :class:`RawBatch` es to the live store in child processes, each partition's
    batches in order (partition modulo ``settings.stream_writers`` picks the process)."""

    def __init__(self, settings: Settings) -> None:
        context = multiprocessing.get_context("spawn")
        self._pools = [
            ProcessPoolExecutor(1, mp_context=context, initializer=_start, initargs=(settings,))
            for _ in range(settings.stream_writers)
        ]
        # Start them all now (at once: a restarted job waits for them), and fail here if one
        # cannot start.
        for started in [pool.submit(_ready) for pool in self._pools]:
            started.result()

    def submit(
        self, batch: RawBatch, expected: Expectation, floor: tuple[date, int] | None = None
    ) -> Future[BatchReport]:
        """Queue ``batch``; ``expected`` is what the watermark hash must hold; records at or
        below ``floor``'s offset of days before its day are skipped (see rebuild)."""
        pool = self._pools[batch.partition % len(self._pools)]
        return pool.submit(_write, batch, expected, floor)

    def close(self) -> None:
        """Wait for queued batches, then stop the processes."""
        for pool in self._pools:
            pool.shutdown(wait=True)
