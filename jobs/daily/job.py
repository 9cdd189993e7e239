"""One business day from Kafka to Parquet, Redis and a manifest; and backfills of many days.

A run reads the day's offset range (:mod:`jobs.daily.reader`) on one thread and decodes it
(:mod:`common.columns`) on two others, two chunks at once, while the calling thread cuts each
chunk to the day, drops duplicate checkouts and folds it into partial aggregates
(:mod:`jobs.daily.aggregate`); one more thread compresses ``sales_lines``. pyarrow, Polars and
librdkafka release the GIL (and cyclic garbage collection is paused during the read), so the
stages overlap on both cores, and at most a few chunks are in memory at once. Then the four
tables are renamed into place, the day's Redis rankings are replaced atomically
(:mod:`storage.daily`) and reconciled with the live counts, and the manifest is written last:
a day with a manifest is finished. Runs of the same day are serialized by a file lock.
"""

from __future__ import annotations

import fcntl
import gc
import logging
import queue
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Final, TypeVar

import polars as pl
import pyarrow.parquet as pq
import redis
from confluent_kafka import Consumer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from common.columns import Decoded, decode_batch
from common.days import check_day_order
from common.schema import SCHEMA_VERSION, Limits, from_money_units
from common.settings import Settings
from jobs.daily.aggregate import SALES_LINES_SCHEMA, Deduplicator, Partials, in_day, sales_lines
from jobs.daily.exceptions import IncompleteDay, LiveRepairRefused, RedisWriteError
from jobs.daily.reader import DayRange, open_consumer, plan_day, read_partition
from storage import keys, parquet
from storage.daily import (
    DaySnapshot,
    Reconciliation,
    StagedDay,
    item_figures,
    reconcile,
    repair_live,
    set_missing_names,
    stage_day,
    totals_of,
)

logger = logging.getLogger(__name__)

CHUNK_MESSAGES: Final = 25_000
PREFETCH_CHUNKS: Final = 2
DECODERS: Final = 2
MANIFEST_VERSION: Final = 1
DRIFTS_IN_MANIFEST: Final = 100
COUNTS: Final = (
    "records",
    "decoded_fast",
    "decoded_slow",
    "outside_day",
    "duplicates",
    "checkouts",
    "lines",
)

T = TypeVar("T")


def code_version() -> str:
    """The installed kassa version, recorded in every manifest."""
    try:
        return version("kassa")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class DayResult:
    """What a run of one day produced."""

    day: date
    manifest: dict[str, Any]
    reconciliation: Reconciliation


@contextmanager
def day_lock(settings: Settings, day: date) -> Iterator[None]:
    """Hold the day's lock file: a second run of the same day waits for the first."""
    path = parquet.lock_path(settings.data_dir, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def progress_bar(enabled: bool) -> Progress:
    """A progress bar on stderr (shown only when enabled and stderr is a terminal)."""
    console = Console(stderr=True)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not (enabled and console.is_terminal),
        transient=True,
    )


def run_day(
    settings: Settings,
    day: date,
    *,
    force: bool = False,
    repair_live: bool = False,
    progress: bool = False,
    chunk_messages: int = CHUNK_MESSAGES,
    now: datetime | None = None,
) -> DayResult:
    """Finalize ``day``: Parquet tables, Redis daily rankings, reconciliation, manifest.

    Raises :class:`IncompleteDay` (exit status 3) naming the partitions behind, unless
    ``force``; ``repair_live`` overwrites the live figures with the daily ones on drift.
    """
    with day_lock(settings, day), progress_bar(progress) as bar:
        run = _DayRun(settings, day, force, repair_live, bar, chunk_messages)
        return run.execute(now or datetime.now(UTC))


def backfill(
    settings: Settings,
    first: date,
    last: date,
    *,
    force: bool = False,
    progress: bool = False,
) -> list[DayResult]:
    """Run every day from ``first`` to ``last`` (inclusive), in order.

    Stops at the first incomplete day (unless ``force``): later days cannot be complete.
    """
    check_day_order(first, last)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    results = []
    with progress_bar(progress) as bar:
        task = bar.add_task("backfill", total=len(days))
        for day in days:
            bar.update(task, description=f"backfill {day}")
            with day_lock(settings, day):
                run = _DayRun(settings, day, force, False, bar, CHUNK_MESSAGES)
                results.append(run.execute(datetime.now(UTC)))
            bar.advance(task)
    return results


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (unless it was off already).

    A read allocates a Kafka message object per record; they are freed by reference counting,
    but their sheer number triggers collections that traverse every live object again and
    again, holding the GIL that the fetching and decoding threads need.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def in_background(items: Iterator[T], depth: int = PREFETCH_CHUNKS) -> Generator[T, None, None]:
    """The items of ``items``, computed ahead on a thread (at most ``depth`` waiting).

    Closing the returned generator (or leaving a ``with closing(...)`` block) stops the
    thread, closes ``items`` on that thread and waits for it, so whatever ``items`` uses
    (a Kafka consumer) is free again afterwards.
    """
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def work() -> None:
        try:
            for item in items:
                if not offer(("item", item)):
                    return
            offer(("done", None))
        except BaseException as exc:  # handed to the consuming thread
            offer(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if callable(close):
                close()

    thread = threading.Thread(target=work, name="kassa-daily-worker", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


def decode_ahead(
    chunks: Iterable[list[bytes | None]], limits: Limits, decoders: int = DECODERS
) -> Iterator[tuple[int, Decoded]]:
    """``(records, decoded)`` for each chunk, in order, ``decoders`` chunks decoded at once.

    Each decoder parses on its own thread (pyarrow and Polars release the GIL), so fetching,
    decoding and aggregating share both cores.
    """
    with ThreadPoolExecutor(decoders, thread_name_prefix="kassa-daily-decoder") as pool:
        pending: deque[tuple[int, Future[Decoded]]] = deque()
        for values in chunks:
            pending.append((len(values), pool.submit(decode_batch, values, limits)))
            if len(pending) >= decoders:
                records, decoded = pending.popleft()
                yield records, decoded.result()
        while pending:
            records, decoded = pending.popleft()
            yield records, decoded.result()


def _write_sales_lines(writer: pq.ParquetWriter, lines: pl.DataFrame) -> None:
    """Append a chunk's ``sales_lines`` rows (converted on the compressing thread)."""
    writer.write_table(sales_lines(lines).to_arrow())


@dataclass
class _DayRun:
    settings: Settings
    day: date
    force: bool
    repair_live: bool
    bar: Progress
    chunk_messages: int
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    timings: dict[str, float] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))

    def execute(self, now: datetime) -> DayResult:
        with closing(redis.Redis.from_url(self.settings.redis_url)) as client:
            return self._execute(now, client)

    def _execute(self, now: datetime, client: redis.Redis) -> DayResult:
        started = time.perf_counter()
        consumer = open_consumer(self.settings)
        try:
            plan = plan_day(consumer, self.settings, self.day)
            self.timings["plan"] = time.perf_counter() - started
            if not plan.complete and not self.force:
                raise IncompleteDay(self.day, plan.topic, plan.behind)
            if not plan.complete:
                logger.warning("finalizing incomplete day %s (--force): %s", self.day, plan.behind)
            with parquet.StagedFiles() as staged:
                tick = time.perf_counter()
                with gc_paused():
                    partials = self._read(consumer, plan, staged)
                self.timings["read_decode_aggregate"] = time.perf_counter() - tick
                tick = time.perf_counter()
                tables = {
                    "daily_item_sales": partials.item_sales(),
                    "daily_store_item_sales": partials.store_item_sales(),
                    "hourly_sales": partials.hourly_sales(),
                }
                # The files are written and renamed into place on a thread while this one
                # stages the day's Redis keys; the keys are swapped in after the files.
                with ThreadPoolExecutor(1, thread_name_prefix="kassa-daily-files") as files:
                    committed = files.submit(self._write_tables, staged, tables)
                    snapshot = _snapshot(tables, partials.store_totals())
                    try:
                        day_keys = self._stage_redis(client, plan, snapshot)
                    except RedisWriteError:
                        committed.result()
                        raise
                    try:
                        sizes = committed.result()
                    except BaseException:
                        with suppress(redis.RedisError):
                            day_keys.discard()
                        raise
                self.timings["write"] = time.perf_counter() - tick
        finally:
            consumer.close()
        tick = time.perf_counter()
        reconciliation, repaired, behind = self._finish_redis(
            client, plan, day_keys, snapshot, items=tables["daily_item_sales"], now=now
        )
        self.timings["redis"] = time.perf_counter() - tick
        self.timings["total"] = time.perf_counter() - started
        rows = {name: frame.height for name, frame in tables.items()}
        rows["sales_lines"] = self.counts["lines"]
        manifest = self._manifest(plan, snapshot.totals, sizes, rows, now)
        manifest["reconciliation"] = {
            "live_items": reconciliation.live_items,
            "daily_items": reconciliation.daily_items,
            "drifted_items": len(reconciliation.drifts),
            "drifts": [d.as_dict() for d in reconciliation.drifts[:DRIFTS_IN_MANIFEST]],
            "repaired_live": repaired,
            "repair_refused": [
                {"partition": p, "live_watermark": mark, "range_end": end}
                for p, (mark, end) in sorted(behind.items())
            ],
        }
        parquet.write_manifest(self.settings.data_dir, self.day, manifest)
        logger.info(
            "day %s finished: %d checkouts, %d lines, %d items in %.1f s (%s)",
            self.day,
            self.counts["checkouts"],
            self.counts["lines"],
            rows["daily_item_sales"],
            self.timings["total"],
            "complete" if plan.complete else "FORCED",
        )
        if behind:
            raise LiveRepairRefused(self.day, behind)
        return DayResult(self.day, manifest, reconciliation)

    def _chunks(self, consumer: Consumer, plan: DayRange) -> Iterator[list[bytes | None]]:
        """Chunks of ``chunk_messages`` values over all partitions, in partition order.

        A partition's last values are topped up from the next partition, so a day has no
        small chunk per partition (each chunk has a fixed cost).
        """
        size = self.chunk_messages
        pending: list[bytes | None] = []
        for part in plan.partitions:
            with closing(read_partition(consumer, plan.topic, part, size)) as chunks:
                for values in chunks:
                    if not pending and len(values) == size:
                        yield values
                        continue
                    pending.extend(values)
                    while len(pending) >= size:
                        yield pending[:size]
                        pending = pending[size:]
        if pending:
            yield pending

    def _decoded(self, consumer: Consumer, plan: DayRange) -> Iterator[tuple[int, Decoded]]:
        with closing(in_background(self._chunks(consumer, plan), depth=1)) as chunks:
            yield from decode_ahead(chunks, self.settings.limits)

    def _read(self, consumer: Consumer, plan: DayRange, staged: parquet.StagedFiles) -> Partials:
        partials = Partials(self.settings.zone)
        dedup = Deduplicator()
        invalid: Counter[str] = Counter()
        counts = self.counts
        schema = pl.DataFrame(schema=SALES_LINES_SCHEMA).to_arrow().schema
        final = parquet.table_path(self.settings.data_dir, "sales_lines", plan.day)
        task = self.bar.add_task(f"read {plan.day}", total=plan.records)
        batches = closing(in_background(self._decoded(consumer, plan)))
        with (
            staged.writer(final, schema, "sales_lines") as writer,
            ThreadPoolExecutor(1) as compressor,
            batches as decoded_batches,
        ):
            written: Future[None] | None = None
            for records, decoded in decoded_batches:
                invalid.update(decoded.invalid)
                counts["records"] += records
                counts["decoded_fast"] += decoded.fast
                counts["decoded_slow"] += decoded.slow
                lines, outside = in_day(decoded.lines, plan.start, plan.end)
                lines, duplicates = dedup.first_occurrences(lines)
                counts["outside_day"] += outside
                counts["duplicates"] += duplicates
                counts["checkouts"] += lines.get_column("message").n_unique()
                counts["lines"] += lines.height
                if written is not None:
                    written.result()
                written = compressor.submit(_write_sales_lines, writer, lines)
                partials.add(lines)
                self.bar.advance(task, records)
            if written is not None:
                written.result()
        self.bar.remove_task(task)
        counts["invalid"] = dict(sorted(invalid.items()))
        counts["invalid_total"] = sum(invalid.values())
        return partials

    def _write_tables(
        self, staged: parquet.StagedFiles, tables: dict[str, pl.DataFrame]
    ) -> dict[Path, int]:
        """Stage the aggregate tables next to ``sales_lines``; rename all into place."""
        for name, frame in tables.items():
            path = parquet.table_path(self.settings.data_dir, name, self.day)  # type: ignore[arg-type]
            staged.table(path, frame.to_arrow())
        sizes = staged.sizes()
        staged.commit()
        return sizes

    def _redis_error(self, exc: redis.RedisError) -> RedisWriteError:
        return RedisWriteError(self.settings.redis_url, self.day, exc)

    def _stage_redis(self, client: redis.Redis, plan: DayRange, snapshot: DaySnapshot) -> StagedDay:
        totals = snapshot.totals
        summary: dict[str, str | int] = {
            "run_id": self.run_id,
            "complete": int(plan.complete),
            "forced": int(self.force and not plan.complete),
            "checkouts": totals.get("checkouts", 0),
            "lines": totals.get("lines", 0),
            "revenue": totals.get("revenue", 0),
            "finished_at": datetime.now(UTC).isoformat(),
            "code_version": code_version(),
        }
        try:
            return stage_day(
                client, self.settings.key_space, "daily", self.day, snapshot, summary=summary
            )
        except redis.RedisError as exc:
            raise self._redis_error(exc) from None

    def _finish_redis(
        self,
        client: redis.Redis,
        plan: DayRange,
        day_keys: StagedDay,
        snapshot: DaySnapshot,
        *,
        items: pl.DataFrame,
        now: datetime,
    ) -> tuple[Reconciliation, bool, dict[int, tuple[int, int]]]:
        """Swap in the daily keys, reconcile, and repair the live figures if asked to.

        The live repair happens only once the stream job applied every partition's range
        (:func:`storage.daily.repair_live`); otherwise the partitions behind are returned.
        """
        space = self.settings.key_space
        expire_at = keys.expire_at(self.day, self.settings.zone, self.settings.retention_days, now)
        behind: dict[int, tuple[int, int]] = {}
        try:
            day_keys.swap(expire_at)
            set_missing_names(client, space, items.select("sku", "name").iter_rows())
            reconciliation = reconcile(client, space, self.day, snapshot.items)
            if self.repair_live and reconciliation.drifts:
                ends = {part.partition: part.end for part in plan.partitions if part.records}
                behind = repair_live(
                    client, space, self.day, snapshot, ends=ends, expire_at=expire_at
                )
        except redis.RedisError as exc:
            raise self._redis_error(exc) from None
        return (
            reconciliation,
            bool(self.repair_live and reconciliation.drifts and not behind),
            behind,
        )

    def _manifest(
        self,
        plan: DayRange,
        totals: dict[str, int],
        sizes: dict[Any, int],
        rows: dict[str, int],
        now: datetime,
    ) -> dict[str, Any]:
        data_dir = self.settings.data_dir
        tables: dict[str, dict[str, Any]] = {}
        for table in parquet.TABLES:
            path = parquet.table_path(data_dir, table, plan.day)
            tables[table] = {
                "path": str(path.relative_to(data_dir)),
                "bytes": sizes.get(path, path.stat().st_size),
                "rows": rows[table],
            }
        lines = self.counts["lines"]
        return {
            "manifest_version": MANIFEST_VERSION,
            "day": plan.day.isoformat(),
            "timezone": self.settings.timezone,
            "start": plan.start.isoformat(),
            "end": plan.end.isoformat(),
            "hours": (plan.end - plan.start) / timedelta(hours=1),
            "topic": plan.topic,
            "grace_seconds": plan.grace.total_seconds(),
            "lateness_seconds": plan.lateness.total_seconds(),
            "complete": plan.complete,
            "forced": self.force and not plan.complete,
            "behind": [{"partition": p, "reason": why} for p, why in plan.behind],
            "partitions": [
                {
                    "partition": part.partition,
                    "start_offset": part.start,
                    "end_offset": part.end,
                    "records": part.records,
                    "low_watermark": part.low,
                    "high_watermark": part.high,
                    "complete": part.complete,
                }
                for part in plan.partitions
            ],
            "counts": self.counts,
            "totals": {
                "checkouts": totals.get("checkouts", 0),
                "lines": totals.get("lines", 0),
                "units": totals.get("units", 0),
                "units_sold": totals.get("units_sold", 0),
                "units_returned": totals.get("units_returned", 0),
                "revenue": str(from_money_units(totals.get("revenue", 0))),
            },
            "tables": tables,
            "sales_lines_bytes_per_line": (
                round(tables["sales_lines"]["bytes"] / lines, 2) if lines else None
            ),
            "code_version": code_version(),
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "run_at": now.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "timings_seconds": {name: round(value, 3) for name, value in self.timings.items()},
        }


def _snapshot(tables: dict[str, pl.DataFrame], store_totals: pl.DataFrame) -> DaySnapshot:
    by_store: dict[str, Any] = {}
    store_items = tables["daily_store_item_sales"]
    for key, frame in store_items.partition_by("store_id", as_dict=True).items():
        by_store[str(key[0])] = item_figures(frame)
    totals_by_store = {
        row["store_id"]: totals_of(row) for row in store_totals.iter_rows(named=True)
    }
    chain: dict[str, int] = {}
    for totals in totals_by_store.values():
        for name, value in totals.items():
            chain[name] = chain.get(name, 0) + value
    return DaySnapshot(item_figures(tables["daily_item_sales"]), chain, by_store, totals_by_store)
