"""Finalized days put back into Redis from their Parquet snapshots (no Kafka read).

Redis can lose a finalized day's daily keys, or hold an older revision of it: restored from
an older backup, flushed, failed over to an empty replica, keys expired early. The disk
manifest stays the record of what was finalized; Redis's daily manifest hash names the run
whose snapshot Redis holds (:attr:`storage.summaries.ManifestSummary.published`: revision and
run id). Each scheduler pass calls :func:`republish_stale`: one ``HGETALL`` per due finalized
day, and :func:`republish_day` for each day whose run differs from the disk manifest's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import closing
from datetime import UTC, date, datetime

import polars as pl
import redis

from common.redaction import redis_location
from common.settings import Settings
from common.settings.location import DataLocation
from jobs.daily.exceptions import SnapshotUnusable
from jobs.daily.lock import DayLocks, day_lock
from jobs.daily.manifest import Manifest, read_manifest
from storage import keys, parquet
from storage.connections import Client, open_redis
from storage.daily import DaySnapshot, replace_day, set_missing_names, snapshot_of
from storage.figures import CHECKOUTS, COLUMNS, LINES, TOTALS
from storage.summaries import Published, read_summaries

logger = logging.getLogger(__name__)

MISSING = "missing from Redis (restored from an older copy, or flushed?)"


def published_in_redis(
    client: Client, space: str, days: Sequence[date]
) -> dict[date, Published | None]:
    """The run whose snapshot Redis holds for each of ``days`` (``None``: no manifest hash)."""
    summaries = read_summaries(client, space, days)
    return {day: None if held is None else held.published for day, held in summaries.items()}


def staleness(snapshot: Published, held: Published | None) -> str | None:
    """Why Redis does not hold the ``snapshot``'s run of a day; ``None`` when it does."""
    if held is None:
        return MISSING
    if held == snapshot:
        return None
    return (
        f"Redis holds revision {held.revision} (run {held.run_id}), "
        f"the snapshot revision {snapshot.revision} (run {snapshot.run_id})"
    )


def republish_day(
    settings: Settings, client: Client, day: date, now: datetime | None = None
) -> Published:
    """Replace the daily keys of finalized ``day`` in Redis with its Parquet snapshot.

    Reads the day's manifest and aggregate tables, never Kafka, and writes what the run
    that wrote them wrote: the keys swapped in atomically (:func:`storage.daily.replace_day`)
    expiring as after a run at ``now``, the run's manifest hash (its summary), the
    names of items without one. Raises :class:`SnapshotUnusable` when the day has no
    manifest, a table is missing, or the tables do not add up to the manifest's totals.
    Returns the run republished. The caller holds the day's lock.
    """
    manifest = read_manifest(settings.data_dir, day)
    if manifest is None:
        raise SnapshotUnusable(day, "it has no manifest (it was never finalized)")
    items, snapshot = read_snapshot(settings.data_dir, day, manifest)
    recorded = manifest.totals.in_units()
    found = {name: snapshot.totals.get(name, 0) for name in TOTALS}
    if found != recorded:
        raise SnapshotUnusable(day, f"its tables add up to {found}, its manifest says {recorded}")
    written_at = now or datetime.now(UTC)
    expire_at = keys.expire_at(day, settings.zone, settings.retention_days, written_at=written_at)
    space = settings.key_space
    summary = manifest.summary()
    replace_day(client, space, "daily", day, snapshot, expire_at=expire_at, summary=summary)
    set_missing_names(client, space, items.select("sku", "name").iter_rows())
    return manifest.published


def read_snapshot(
    location: DataLocation, day: date, manifest: Manifest
) -> tuple[pl.DataFrame, DaySnapshot]:
    """``daily_item_sales`` of ``day`` and the day's :class:`DaySnapshot`, from the Parquet
    files its ``manifest`` names (on an object store: the objects of the manifest's run).

    The stores' checkouts and lines are counted in ``sales_lines`` (deduplicated, in-day
    lines: a checkout is a store's transaction id), their other totals summed over
    ``daily_store_item_sales``.
    """
    try:
        items = parquet.scan_table(location, manifest.tables["daily_item_sales"].path).collect()
        store_items = parquet.scan_table(
            location, manifest.tables["daily_store_item_sales"].path
        ).collect()
        counts = (
            parquet.scan_table(location, manifest.tables["sales_lines"].path)
            .group_by("store_id")
            .agg(
                pl.col("transaction_id").n_unique().cast(pl.Int64).alias(COLUMNS[CHECKOUTS]),
                pl.len().cast(pl.Int64).alias(LINES),
            )
            .collect()
        )
    except FileNotFoundError as exc:
        raise SnapshotUnusable(day, f"a table is missing ({exc.filename or exc})") from None
    summed = [pl.col(column).sum() for column in COLUMNS if column != COLUMNS[CHECKOUTS]]
    figures = store_items.group_by("store_id").agg(*summed)
    store_totals = counts.join(figures, on="store_id", how="left").fill_null(0)
    return items, snapshot_of(items, store_items, store_totals)


def republish_stale(settings: Settings, days: Sequence[date], now: datetime) -> list[date]:
    """Republish each of ``days`` finalized on disk whose run Redis does not hold.

    Days without a manifest, whose keys have expired as designed (retention) or that a run
    holds the lock of are skipped. One WARNING line per day republished, naming why; a day
    whose snapshot is unusable is logged and left to an operator. Redis down: logged, left
    to the next pass. Returns the days republished.
    """
    snapshots = _finalized(settings, days, now)
    if not snapshots:
        return []
    try:
        with closing(open_redis(settings)) as client:
            held = published_in_redis(client, settings.key_space, list(snapshots))
            stale = [day for day, snapshot in snapshots.items() if staleness(snapshot, held[day])]
            return [day for day in stale if _republish_if_stale(settings, client, day, now)]
    except redis.RedisError as exc:
        failure = exc
    logger.error(
        "cannot check the daily days in %s (%s); the next pass (in %d s) checks again",
        redis_location(settings),
        failure,
        settings.daily_retry_seconds,
    )
    return []


def _finalized(settings: Settings, days: Sequence[date], now: datetime) -> dict[date, Published]:
    """The run of each of ``days`` that has a manifest and whose keys should be in Redis."""
    snapshots: dict[date, Published] = {}
    locks = DayLocks.of(settings)
    for day in days:
        manifest = read_manifest(settings.data_dir, day)
        if manifest is None or _expired(settings, day, now) or locks.held(day):
            continue
        snapshots[day] = manifest.published
    return snapshots


def _republish_if_stale(settings: Settings, client: Client, day: date, now: datetime) -> bool:
    """Check ``day`` again under its lock (a run may just have finished) and republish it."""
    with day_lock(settings, day):
        manifest = read_manifest(settings.data_dir, day)
        if manifest is None:
            return False
        held = published_in_redis(client, settings.key_space, [day])[day]
        why = staleness(manifest.published, held)
        if why is None:
            return False
        logger.warning("day %s: %s; republishing it from its Parquet snapshot", day, why)
        try:
            republish_day(settings, client, day, now)
        except SnapshotUnusable as exc:
            unusable = exc
        else:
            return True
    logger.error("%s; the scheduler leaves this day to an operator", unusable)
    return False


def redis_states(
    settings: Settings, client: Client, snapshots: Mapping[date, Published], now: datetime
) -> dict[date, str]:
    """For ``kassa daily status``, per day: ``current`` (Redis holds the snapshot's run),
    ``expired`` (past retention) or why Redis does not hold it (:func:`staleness`)."""
    held = published_in_redis(client, settings.key_space, list(snapshots))
    states = {}
    for day, snapshot in snapshots.items():
        why = staleness(snapshot, held[day])
        if why is not None and _expired(settings, day, now):
            why = "expired"
        states[day] = why or "current"
    return states


def _expired(settings: Settings, day: date, now: datetime) -> bool:
    """Whether the keys of ``day`` expired as designed (retention after the day's end)."""
    return keys.expire_at(day, settings.zone, settings.retention_days) <= now.timestamp()
