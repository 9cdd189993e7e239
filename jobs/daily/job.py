"""One business day from Kafka to Parquet, Redis and a manifest; and backfills of many days.

A run reads the day's offset range (:mod:`jobs.daily.reader`), decodes and aggregates it chunk
by chunk (:mod:`jobs.daily.decode`, :mod:`jobs.daily.aggregate`), stages the four tables,
renames them into place, replaces the day's Redis rankings atomically
(:mod:`storage.daily`), reconciles them with the live counts and writes the manifest last: a
day with a manifest is finished. Runs of the same day are serialized by a file lock.
"""

from __future__ import annotations

import fcntl
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final

import polars as pl
import redis
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from common.schema import SCHEMA_VERSION, from_money_units
from common.settings import Settings
from jobs.daily.aggregate import (
    SALES_LINES_SCHEMA,
    Deduplicator,
    Partials,
    in_day,
    sales_lines,
)
from jobs.daily.decode import decode_batch
from jobs.daily.exceptions import IncompleteDay
from jobs.daily.reader import DayRange, open_consumer, plan_day, read_partition
from storage import parquet
from storage.daily import (
    DaySnapshot,
    Reconciliation,
    item_figures,
    reconcile,
    replace_day,
    set_missing_names,
    totals_of,
)

logger = logging.getLogger(__name__)

CHUNK_MESSAGES: Final = 100_000
MANIFEST_VERSION: Final = 1
DRIFTS_IN_MANIFEST: Final = 100


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
    reconciliation: Reconciliation | None


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
    ``force``; ``repair_live`` overwrites the live figures with the daily ones.
    """
    with day_lock(settings, day), progress_bar(progress) as bar:
        return _run_locked(
            settings, day, force, repair_live, bar, chunk_messages, now or datetime.now(UTC)
        )


def backfill(
    settings: Settings,
    first: date,
    last: date,
    *,
    force: bool = False,
    progress: bool = False,
) -> list[DayResult]:
    """Run every day from ``first`` to ``last`` (inclusive), in order.

    Stops at the first day that is incomplete (unless ``force``): later days cannot be
    complete either.
    """
    if first > last:
        msg = f"--from {first} is after --to {last}; pass the days in order"
        raise ValueError(msg)
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    results = []
    with progress_bar(progress) as bar:
        task = bar.add_task("backfill", total=len(days))
        for day in days:
            bar.update(task, description=f"backfill {day}")
            with day_lock(settings, day):
                result = _run_locked(
                    settings, day, force, False, bar, CHUNK_MESSAGES, datetime.now(UTC)
                )
            results.append(result)
            bar.advance(task)
    return results


def _run_locked(
    settings: Settings,
    day: date,
    force: bool,
    repair_live: bool,
    bar: Progress,
    chunk_messages: int,
    now: datetime,
) -> DayResult:
    timings: dict[str, float] = {}
    started = time.perf_counter()
    run_id = uuid.uuid4().hex
    consumer = open_consumer(settings)
    try:
        plan = plan_day(consumer, settings, day)
        timings["plan"] = time.perf_counter() - started
        if not plan.complete and not force:
            raise IncompleteDay(day, plan.topic, plan.behind)
        if not plan.complete:
            logger.warning("finalizing incomplete day %s because of --force: %s", day, plan.behind)
        with parquet.StagedFiles() as staged:
            tick = time.perf_counter()
            partials, counts = _read_day(consumer, settings, plan, staged, bar, chunk_messages)
            timings["read_decode_aggregate"] = time.perf_counter() - tick
            tick = time.perf_counter()
            items = partials.item_sales()
            store_items = partials.store_item_sales()
            store_totals = partials.store_totals()
            hours = partials.hourly_sales()
            data_dir = settings.data_dir
            staged.table(parquet.table_path(data_dir, "daily_item_sales", day), items.to_arrow())
            staged.table(
                parquet.table_path(data_dir, "daily_store_item_sales", day),
                store_items.to_arrow(),
            )
            staged.table(parquet.table_path(data_dir, "hourly_sales", day), hours.to_arrow())
            sizes = staged.sizes()
            staged.commit()
            timings["write"] = time.perf_counter() - tick
    finally:
        consumer.close()
    tick = time.perf_counter()
    snapshot = _snapshot(items, store_items, store_totals)
    totals = snapshot.totals
    summary: dict[str, str | int] = {
        "run_id": run_id,
        "complete": int(plan.complete),
        "forced": int(force and not plan.complete),
        "checkouts": totals.get("checkouts", 0),
        "lines": totals.get("lines", 0),
        "revenue": totals.get("revenue", 0),
        "finished_at": datetime.now(UTC).isoformat(),
        "code_version": code_version(),
    }
    expire_at = int((max(plan.end, now) + timedelta(days=settings.retention_days)).timestamp())
    client = redis.Redis.from_url(settings.redis_url)
    try:
        replace_day(client, "daily", day, snapshot, expire_at, summary)
        set_missing_names(client, items.select("sku", "name").iter_rows())
        reconciliation = reconcile(client, day, snapshot.items)
        repaired = False
        if repair_live and reconciliation.drifts:
            replace_day(client, "live", day, snapshot, expire_at)
            repaired = True
    finally:
        client.close()
    timings["redis"] = time.perf_counter() - tick
    timings["total"] = time.perf_counter() - started
    manifest = _manifest(
        settings, plan, force, run_id, counts, totals, sizes, timings, now, reconciliation, repaired
    )
    manifest["tables"]["daily_item_sales"]["rows"] = items.height
    manifest["tables"]["daily_store_item_sales"]["rows"] = store_items.height
    manifest["tables"]["hourly_sales"]["rows"] = hours.height
    manifest["tables"]["sales_lines"]["rows"] = counts["lines"]
    lines_bytes = manifest["tables"]["sales_lines"]["bytes"]
    manifest["sales_lines_bytes_per_line"] = (
        round(lines_bytes / counts["lines"], 2) if counts["lines"] else None
    )
    parquet.write_manifest(settings.data_dir, day, manifest)
    logger.info(
        "day %s finished: %d checkouts, %d lines, %d items in %.1f s (%s)",
        day,
        counts["checkouts"],
        counts["lines"],
        items.height,
        timings["total"],
        "complete" if plan.complete else "FORCED",
    )
    return DayResult(day, manifest, reconciliation)


def _read_day(
    consumer: Any,
    settings: Settings,
    plan: DayRange,
    staged: parquet.StagedFiles,
    bar: Progress,
    chunk_messages: int,
) -> tuple[Partials, dict[str, Any]]:
    partials = Partials(settings.zone)
    dedup = Deduplicator()
    invalid: Counter[str] = Counter()
    counts: dict[str, Any] = dict.fromkeys(
        (
            "records",
            "decoded_fast",
            "decoded_slow",
            "outside_day",
            "duplicates",
            "checkouts",
            "lines",
        ),
        0,
    )
    schema = pl.DataFrame(schema=SALES_LINES_SCHEMA).to_arrow().schema
    final = parquet.table_path(settings.data_dir, "sales_lines", plan.day)
    task = bar.add_task(f"read {plan.day}", total=plan.records)
    with staged.writer(final, schema) as writer:
        for part in plan.partitions:
            for values in read_partition(consumer, plan.topic, part, chunk_messages):
                decoded = decode_batch(values, settings.limits)
                invalid.update(decoded.invalid)
                counts["records"] += len(values)
                counts["decoded_fast"] += decoded.fast
                counts["decoded_slow"] += decoded.slow
                lines, outside = in_day(decoded.lines, plan.start, plan.end)
                lines, duplicates = dedup.first_occurrences(lines)
                counts["outside_day"] += outside
                counts["duplicates"] += duplicates
                counts["checkouts"] += lines.get_column("message").n_unique()
                counts["lines"] += lines.height
                partials.add(lines)
                writer.write_table(sales_lines(lines).to_arrow())
                bar.advance(task, len(values))
    bar.remove_task(task)
    counts["invalid"] = dict(sorted(invalid.items()))
    counts["invalid_total"] = sum(invalid.values())
    return partials, counts


def _snapshot(
    items: pl.DataFrame, store_items: pl.DataFrame, store_totals: pl.DataFrame
) -> DaySnapshot:
    by_store: dict[str, dict[str, Any]] = {}
    for store_id, frame in store_items.partition_by("store_id", as_dict=True).items():
        by_store[str(store_id[0])] = item_figures(frame)
    totals_by_store = {
        row["store_id"]: totals_of(row) for row in store_totals.iter_rows(named=True)
    }
    chain = dict.fromkeys(
        ("units", "units_sold", "units_returned", "revenue", "checkouts", "lines"), 0
    )
    for totals in totals_by_store.values():
        for name, value in totals.items():
            chain[name] += value
    if not totals_by_store:
        chain = {}
    return DaySnapshot(item_figures(items), chain, by_store, totals_by_store)


def _manifest(
    settings: Settings,
    plan: DayRange,
    force: bool,
    run_id: str,
    counts: dict[str, Any],
    totals: dict[str, int],
    sizes: dict[Any, int],
    timings: dict[str, float],
    now: datetime,
    reconciliation: Reconciliation,
    repaired: bool,
) -> dict[str, Any]:
    data_dir = settings.data_dir
    tables: dict[str, dict[str, Any]] = {}
    for table in parquet.TABLES:
        path = parquet.table_path(data_dir, table, plan.day)
        tables[table] = {
            "path": str(path.relative_to(data_dir)),
            "bytes": sizes.get(path, path.stat().st_size),
        }
    revenue = totals.get("revenue", 0)
    return {
        "manifest_version": MANIFEST_VERSION,
        "day": plan.day.isoformat(),
        "timezone": settings.timezone,
        "start": plan.start.isoformat(),
        "end": plan.end.isoformat(),
        "hours": (plan.end - plan.start) / timedelta(hours=1),
        "topic": plan.topic,
        "grace_seconds": plan.grace.total_seconds(),
        "lateness_seconds": plan.lateness.total_seconds(),
        "complete": plan.complete,
        "forced": force and not plan.complete,
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
        "counts": counts,
        "totals": {
            "checkouts": totals.get("checkouts", 0),
            "lines": totals.get("lines", 0),
            "units": totals.get("units", 0),
            "units_sold": totals.get("units_sold", 0),
            "units_returned": totals.get("units_returned", 0),
            "revenue": str(from_money_units(revenue)),
        },
        "tables": tables,
        "reconciliation": {
            "live_items": reconciliation.live_items,
            "daily_items": reconciliation.daily_items,
            "drifted_items": len(reconciliation.drifts),
            "drifts": [d.as_dict() for d in reconciliation.drifts[:DRIFTS_IN_MANIFEST]],
            "repaired_live": repaired,
        },
        "code_version": code_version(),
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "run_at": now.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "timings_seconds": {name: round(value, 3) for name, value in timings.items()},
    }
