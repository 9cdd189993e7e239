"""One business day from Kafka to Parquet, Redis and a manifest; and backfills of many days.

A run has five phases. **Plan**: locate the day's offset range (:mod:`storage.kafka.planning`),
starting where the previous day's range ended and reaching as far as later runs found late
records of the day (:mod:`jobs.daily.revisions`); refuse it when it is incomplete or retention
deleted part of it. **Read**: fetch the range on one thread and decode it
(:mod:`common.columns`) on two others, two chunks at once (:mod:`jobs.daily.pipeline`), while
the calling thread cuts each chunk to the day, drops duplicate checkouts and folds it into
partial aggregates (:mod:`jobs.daily.aggregate`); one more thread compresses ``sales_lines``.
Records of earlier, finalized days met on the way are counted as late records. At most a few
chunks are in memory at once. A forced run over a retention gap that found fewer checkouts
than the day's snapshot stops here and keeps the snapshot. **Write**: rename the four tables
into place on a thread while the day's Redis keys are staged (:mod:`storage.daily`).
**Finish Redis**: swap the keys in atomically and reconcile them with the live counts.
**Manifest**: written last (:mod:`jobs.daily.manifest`) with the run's revision of the day; a
day with a manifest is finished. On an object store the tables are not renamed but uploaded
under the run's own names, and published by the manifest (:func:`storage.parquet.day_files`,
:func:`storage.parquet.publish`). Runs of the same day are serialized by the day's lock
(:mod:`jobs.daily.lock`: a lock file, or a Redis lock for an object store).
"""

from __future__ import annotations

import errno
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Final, Protocol

import polars as pl
import pyarrow.parquet as pq
import redis
from confluent_kafka import Consumer

from common.columns import Decoded
from common.days import check_day_order, day_bounds
from common.errors import RedisUnavailableError
from common.settings import Settings
from jobs.daily import refusals, revisions
from jobs.daily.aggregate import Deduplicator, Partials, in_day, sales_lines
from jobs.daily.exceptions import (
    DataWriteError,
    IncompleteDay,
    InvalidShareExceeded,
    LiveRepairRefused,
    RedisWriteError,
    RetentionGap,
)
from jobs.daily.lock import HeldLock, day_lock
from jobs.daily.manifest import Counts, Manifest, Timings, read_manifest, write_manifest
from jobs.daily.pipeline import decode_ahead, gc_paused, in_background
from jobs.daily.run import DayResult, Run, build_manifest
from storage import keys, parquet
from storage.connections import Client, access_refusal, open_redis
from storage.daily import (
    DaySnapshot,
    Reconciliation,
    StagedDay,
    reconcile,
    repair_live,
    set_missing_names,
    snapshot_of,
    stage_day,
)
from storage.exceptions import DataStoreError
from storage.kafka.planning import DayRange, LateRecords, plan_day
from storage.kafka.reading import open_consumer, read_day

logger = logging.getLogger(__name__)

CHUNK_MESSAGES: Final = 25_000
REFUSED_WRITES: Final = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}
)
"""What a data folder answers when it refuses a write (a full disk, a read-only folder): the
day is not finished, and the previous snapshot stays (:class:`DataWriteError`)."""


class Progress(Protocol):
    """Where a run reports its progress (``kassa daily`` draws bars on a terminal)."""

    def start(self, task: str, total: int) -> None:
        """``task`` (e.g. ``read 2026-11-21``) begins; it has ``total`` steps."""

    def advance(self, task: str, steps: int = 1) -> None:
        """``steps`` more steps of ``task`` are done."""

    def finish(self, task: str) -> None:
        """``task`` is over."""


class Silent:
    """A :class:`Progress` that reports nothing."""

    def start(self, task: str, total: int) -> None:
        """Report nothing."""

    def advance(self, task: str, steps: int = 1) -> None:
        """Report nothing."""

    def finish(self, task: str) -> None:
        """Report nothing."""


SILENT: Final = Silent()


def run_day(
    settings: Settings,
    day: date,
    *,
    force: bool = False,
    repair_live: bool = False,
    progress: Progress = SILENT,
    chunk_messages: int = CHUNK_MESSAGES,
    now: datetime | None = None,
    reason: str | None = None,
    accept_invalid: bool = False,
) -> DayResult:
    """Finalize ``day``: Parquet tables, Redis daily rankings, reconciliation, manifest.

    Raises :class:`IncompleteDay` (exit status 3) naming the partitions behind, and
    :class:`RetentionGap` (6) when retention deleted part of the range, unless ``force``;
    :class:`InvalidShareExceeded` (10) when more of its records are invalid than
    ``KASSA_DAILY_MAX_INVALID_SHARE`` allows, unless ``accept_invalid``
    (:mod:`jobs.daily.refusals`; nothing is written then but the refusal);
    a forced run over such a gap raises :class:`SnapshotKept` (7) instead of replacing a
    snapshot with more checkouts. ``repair_live`` overwrites the live figures with the daily
    ones on drift. ``now`` (default: the clock) decides completeness; ``reason`` is recorded
    as the revision's reason (default: :func:`revisions.reason`). A write the data folder
    refuses (a full disk) raises :class:`DataWriteError` (8).
    """
    day_bounds(day, settings.zone)  # a day Python cannot bound is refused before the lock
    run = _DayRun(
        settings, day, force, repair_live, progress, chunk_messages, reason, accept_invalid
    )
    try:
        with day_lock(settings, day) as held, closing(open_redis(settings)) as client:
            return run.execute(client, now or datetime.now(UTC), held)
    except OSError as exc:
        if exc.errno not in REFUSED_WRITES or not isinstance(settings.data_dir, Path):
            raise
        raise DataWriteError(settings.data_dir, day, exc) from exc


def backfill(
    settings: Settings,
    first: date,
    last: date,
    *,
    force: bool = False,
    progress: Progress = SILENT,
    now: datetime | None = None,
    accept_invalid: bool = False,
) -> list[DayResult]:
    """Run every day from ``first`` to ``last`` (inclusive), in order.

    Stops at the first incomplete day (unless ``force``): later days cannot be complete;
    and at the first day over the invalid share (unless ``accept_invalid``).
    """
    check_day_order(first, last)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    progress.start("backfill", len(days))
    results = []
    for day in days:
        results.append(
            run_day(
                settings,
                day,
                force=force,
                progress=progress,
                now=now,
                accept_invalid=accept_invalid,
            )
        )
        progress.advance("backfill")
    progress.finish("backfill")
    return results


@dataclass
class _Written:
    """What the write phase produced: the tables, the staged Redis day, the files written."""

    tables: dict[parquet.AggregateTable, pl.DataFrame]
    snapshot: DaySnapshot
    day_keys: StagedDay
    files: dict[parquet.Table, parquet.WrittenFile]


@dataclass
class _DayRun:
    settings: Settings
    day: date
    force: bool
    repair_live: bool
    progress: Progress
    chunk_messages: int
    reason: str | None = None
    """The revision's reason; ``None``: :func:`revisions.reason` names it."""
    accept_invalid: bool = False
    """Finalize even over the invalid share (``--force``)."""
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    timings: Timings = field(default_factory=Timings)
    counts: Counts = field(default_factory=Counts)

    def execute(self, client: Client, now: datetime, lock: HeldLock) -> DayResult:
        started = time.perf_counter()
        previous = read_manifest(self.settings.data_dir, self.day)
        later = revisions.later_manifests(self.settings.data_dir, self.day)
        late_reach = revisions.late_reach(self.day, previous, later)
        with closing(open_consumer(self.settings)) as consumer:
            plan = self._plan(consumer, now, late_reach.reach)
            run = self._run(plan, now, previous, late_reach)
            late = self._late_records(plan)
            with parquet.day_files(self.settings.data_dir, self.day, self.run_id) as staged:
                partials = self._read(consumer, plan, staged, late)
                run = self._guard(run, now)
                revisions.keep_larger_snapshot(plan, previous, self.counts.checkouts)
                written = self._write(client, run, staged, partials)
        reconciliation, behind = self._finish_redis(client, run.plan, written, now)
        self.timings.total = time.perf_counter() - started
        result = self._finish(run, written, reconciliation, behind, late, lock=lock)
        if behind:
            raise LiveRepairRefused(self.day, behind)
        return result

    def _plan(self, consumer: Consumer, now: datetime, reach: dict[int, int]) -> DayRange:
        """The day's range; refused when retention cut into it or it is incomplete."""
        tick = time.perf_counter()
        before = read_manifest(self.settings.data_dir, self.day - timedelta(days=1))
        since = revisions.range_ends(before, self.settings.topic)
        plan = plan_day(consumer, self.settings, self.day, now=now, reach=reach, since=since)
        self.timings.plan = time.perf_counter() - tick
        if plan.gaps and not self.force:
            raise RetentionGap(self.day, plan.topic, plan.gaps)
        if not plan.complete and not self.force:
            raise IncompleteDay(self.day, plan.topic, plan.behind)
        if not plan.complete:
            logger.warning("finalizing incomplete day %s (--force): %s", self.day, plan.behind)
        return plan

    def _run(
        self, plan: DayRange, now: datetime, previous: Manifest | None, late: revisions.LateReach
    ) -> Run:
        """This run: forced or not, its revision of the day and the revision's reason."""
        reason = self.reason or revisions.reason(previous, late, plan.complete)
        forced = self.force and (not plan.complete or bool(plan.gaps))
        revision = revisions.revision(previous)
        return Run(self.run_id, plan, forced, now, revision, reason, previous)

    def _guard(self, run: Run, now: datetime) -> Run:
        """Refuse the day when too many of its records are invalid, writing the refusal;
        with ``accept_invalid``, ``run`` marked as finalized over the guard instead."""
        counts, settings = self.counts, self.settings
        share = settings.daily_max_invalid_share
        if not refusals.exceeds(counts.records, counts.invalid, share):
            return run
        headline = refusals.headline(counts.records, counts.invalid, share)
        if not self.accept_invalid:
            refusal = refusals.Refusal(
                day=self.day,
                records=counts.records,
                invalid=counts.invalid,
                max_share=share,
                rules=refusals.rules_of(settings),
                run_at=now.isoformat(),
            )
            refusals.write_refusal(settings.data_dir, refusal)
            raise InvalidShareExceeded(self.day, headline, counts.invalid)
        logger.warning("finalizing day %s although %s (--force)", self.day, headline)
        reason = f"{run.reason}; FORCED although {headline}"
        return replace(run, reason=reason, invalid_share_forced=True)

    def _late_records(self, plan: DayRange) -> LateRecords:
        """Counts the records of earlier finalized days past the ends of their ranges."""
        data_dir, topic = self.settings.data_dir, plan.topic
        return LateRecords(
            plan.start,
            self.settings.zone,
            lambda day: revisions.range_ends(read_manifest(data_dir, day), topic),
        )

    def _read(
        self, consumer: Consumer, plan: DayRange, staged: parquet.DayFiles, late: LateRecords
    ) -> Partials:
        """Fold the day's lines into partial aggregates, staging ``sales_lines`` meanwhile."""
        tick = time.perf_counter()
        partials = Partials(self.settings.zone)
        dedup = Deduplicator()
        invalid: Counter[str] = Counter()
        schema = parquet.arrow_schema(parquet.SALES_LINES)
        task = f"read {plan.day}"
        self.progress.start(task, plan.records)
        batches = closing(in_background(self._decoded(consumer, plan, late)))
        with (
            gc_paused(),
            staged.writer("sales_lines", schema) as writer,
            ThreadPoolExecutor(1) as compressor,
            batches as decoded_batches,
        ):
            written: Future[None] | None = None
            for records, decoded in decoded_batches:
                invalid.update(decoded.invalid)
                lines = self._day_lines(plan, dedup, records, decoded)
                if written is not None:
                    written.result()
                written = compressor.submit(_write_sales_lines, writer, lines)
                partials.add(lines)
                self.progress.advance(task, records)
            if written is not None:
                written.result()
        self.progress.finish(task)
        self.counts.invalid = dict(sorted(invalid.items()))
        self.counts.invalid_total = sum(invalid.values())
        self.counts.dedup_set_bytes = dedup.nbytes()
        self.timings.read_decode_aggregate = time.perf_counter() - tick
        return partials

    def _decoded(
        self, consumer: Consumer, plan: DayRange, late: LateRecords
    ) -> Iterator[tuple[int, Decoded]]:
        chunks = read_day(consumer, plan, self.chunk_messages, late=late)
        with closing(in_background(chunks, depth=1)) as fetched:
            yield from decode_ahead(fetched, self.settings.limits)

    def _day_lines(
        self, plan: DayRange, dedup: Deduplicator, records: int, decoded: Decoded
    ) -> pl.DataFrame:
        """The lines of a decoded chunk that count for the day, counted in :attr:`counts`."""
        counts = self.counts
        counts.records += records
        counts.decoded_fast += decoded.fast
        counts.decoded_slow += decoded.slow
        lines, outside = in_day(decoded.lines, plan.start, plan.end)
        lines, duplicates = dedup.first_occurrences(lines)
        counts.outside_day += outside
        counts.duplicates += duplicates
        counts.checkouts += lines.get_column("message").n_unique()
        counts.lines += lines.height
        return lines

    def _write(
        self, client: Client, run: Run, staged: parquet.DayFiles, partials: Partials
    ) -> _Written:
        """Rename the tables into place on a thread while this one stages the Redis keys."""
        tick = time.perf_counter()
        tables: dict[parquet.AggregateTable, pl.DataFrame] = {
            "daily_item_sales": partials.item_sales(),
            "daily_store_item_sales": partials.store_item_sales(),
            "hourly_sales": partials.hourly_sales(),
        }
        with ThreadPoolExecutor(1, thread_name_prefix="kassa-daily-files") as files:
            committed = files.submit(self._write_tables, staged, tables)
            snapshot = snapshot_of(
                tables["daily_item_sales"],
                tables["daily_store_item_sales"],
                partials.store_totals(),
            )
            day_keys, written = self._stage_redis(client, run, snapshot, committed)
        self.timings.write = time.perf_counter() - tick
        return _Written(tables, snapshot, day_keys, written)

    def _write_tables(
        self, staged: parquet.DayFiles, tables: dict[parquet.AggregateTable, pl.DataFrame]
    ) -> dict[parquet.Table, parquet.WrittenFile]:
        """Stage the aggregate tables next to ``sales_lines``; put all in place (on an object
        store: under the run's own names, :func:`storage.parquet.day_files`)."""
        for table, frame in tables.items():
            staged.table(table, frame.to_arrow())
        return staged.commit()

    def _stage_redis(
        self,
        client: Client,
        run: Run,
        snapshot: DaySnapshot,
        files: Future[dict[parquet.Table, parquet.WrittenFile]],
    ) -> tuple[StagedDay, dict[parquet.Table, parquet.WrittenFile]]:
        """Stage the day's keys while ``files`` are written; both, or neither, succeed."""
        try:
            day_keys = stage_day(
                client,
                self.settings.key_space,
                "daily",
                self.day,
                snapshot,
                summary=run.summary(snapshot.totals),
            )
        except redis.RedisError as exc:
            files.result()  # the files go in place, but without a manifest the day is unfinished
            raise self._redis_error(exc) from None
        try:
            return day_keys, files.result()
        except BaseException:
            with suppress(redis.RedisError):
                day_keys.discard()
            raise

    def _finish_redis(
        self, client: Client, plan: DayRange, written: _Written, now: datetime
    ) -> tuple[Reconciliation, dict[int, tuple[int, int]] | None]:
        """Swap the staged keys in, record new names, reconcile (and repair) the live day.

        The live day is repaired only once the stream job applied every partition's range
        (:func:`storage.daily.repair_live`). Returns the reconciliation and, when a repair was
        due, the partitions behind (empty: repaired); ``None`` when none was due.
        """
        tick = time.perf_counter()
        settings = self.settings
        expire_at = keys.expire_at(self.day, settings.zone, settings.retention_days, written_at=now)
        items = written.tables["daily_item_sales"]
        snapshot = written.snapshot
        space = settings.key_space
        behind: dict[int, tuple[int, int]] | None = None
        try:
            written.day_keys.swap(expire_at)
            set_missing_names(client, space, items.select("sku", "name").iter_rows())
            reconciliation = reconcile(client, space, self.day, snapshot.items)
            if self.repair_live and reconciliation.drifts:
                ends = {part.partition: part.end for part in plan.partitions if part.records}
                behind = repair_live(
                    client, space, self.day, snapshot, ends=ends, expire_at=expire_at
                )
        except redis.RedisError as exc:
            raise self._redis_error(exc) from None
        self.timings.redis = time.perf_counter() - tick
        return reconciliation, behind

    def _finish(
        self,
        run: Run,
        written: _Written,
        reconciliation: Reconciliation,
        behind: dict[int, tuple[int, int]] | None,
        late: LateRecords,
        *,
        lock: HeldLock,
    ) -> DayResult:
        """Write the manifest: the day is finished. Then, on an object store, publish the run's
        objects to the hive folders and delete the previous revision's
        (:func:`storage.parquet.publish`)."""
        manifest = build_manifest(
            self.settings,
            run,
            counts=self.counts,
            totals=written.snapshot.totals,
            files=written.files,
            rows={name: frame.height for name, frame in written.tables.items()},
            reconciliation=reconciliation,
            repair=behind,
            late=late,
            timings=self.timings,
        )
        lock.check()
        write_manifest(self.settings.data_dir, manifest)
        self._publish(manifest)
        refusals.clear_refusal(self.settings.data_dir, self.day)
        logger.info(
            "day %s finished: %d checkouts, %d lines, %d items in %.1f s (%s)",
            self.day,
            self.counts.checkouts,
            self.counts.lines,
            manifest.tables["daily_item_sales"].rows,
            self.timings.total,
            "FORCED" if run.forced else "complete",
        )
        return DayResult(self.day, manifest, reconciliation)

    def _publish(self, manifest: Manifest) -> None:
        """Publish the run's files (the day is finished: a failure here is logged)."""
        files = {table: written.path for table, written in manifest.tables.items()}
        try:
            parquet.publish(self.settings.data_dir, self.day, files)
        except DataStoreError as exc:
            failure = exc
        else:
            return
        logger.error(
            "day %s is finished (its manifest names revision %d), but its hive folders may "
            "still hold the previous revision: %s. Run the day again to publish them",
            self.day,
            manifest.revision,
            failure,
        )

    def _redis_error(self, exc: redis.RedisError) -> RedisUnavailableError:
        """What ``exc`` means for the day: Redis refused kassa, or could not be written."""
        return access_refusal(self.settings, exc) or RedisWriteError(self.settings, self.day, exc)


def _write_sales_lines(writer: pq.ParquetWriter, lines: pl.DataFrame) -> None:
    """Append a chunk's ``sales_lines`` rows (converted on the compressing thread)."""
    writer.write_table(sales_lines(lines).to_arrow())
