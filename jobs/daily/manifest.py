"""The manifest of a finished day: what was read, counted, written and reconciled.

The manifest is written last (:func:`storage.parquet.write_manifest`): a day with a manifest
is finished. Its summary (:func:`summary`) is stored beside the day's rankings in Redis.
Each run of a day is a revision of it (:mod:`jobs.daily.revisions`): the manifest says which,
why, which late records of earlier days the run found, and what retention had deleted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Final

from common.schema import SCHEMA_VERSION, from_money_units, to_money_units
from common.settings import Settings
from jobs.daily import revisions
from storage import parquet
from storage.daily import Reconciliation
from storage.figures import CHECKOUTS, COLUMNS, LINES, REVENUE, TOTALS
from storage.kafka.planning import DayRange, LateRecords

MANIFEST_VERSION: Final = 2
RUN_ID: Final = "run_id"
REVISION: Final = "revision"
PUBLISHED_FIELDS: Final = (REVISION, RUN_ID)
"""The fields of the Redis manifest hash that name the run whose snapshot it holds."""
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
    reconciliation: Reconciliation


@dataclass(frozen=True)
class Published:
    """Which run of a day published its snapshot: the revision and the run's id."""

    revision: int
    run_id: str

    @classmethod
    def of(cls, manifest: Mapping[str, Any]) -> Published:
        """The run that wrote ``manifest`` (a manifest without ``revision`` is revision 1)."""
        return cls(int(manifest.get(REVISION, 1)), str(manifest[RUN_ID]))


@dataclass(frozen=True)
class Run:
    """One run of one day: who it was and what it found."""

    run_id: str
    plan: DayRange
    forced: bool
    """Finalized what a plain run refuses: partitions behind or a retention gap (``--force``)."""
    run_at: datetime
    revision: int
    """1 for the day's first run, one more for each later run."""
    reason: str
    """Why the day was run (again)."""
    previous: Mapping[str, Any] | None
    """The day's manifest before this run (``None``: the first run)."""


def summary(run: Run, totals: Mapping[str, int]) -> dict[str, str | int]:
    """The manifest hash stored with the day's rankings in Redis."""
    published = Published(run.revision, run.run_id)
    finished_at = datetime.now(UTC).isoformat()
    return _summary(published, run.plan.complete, run.forced, totals, (finished_at, code_version()))


def summary_of(manifest: Mapping[str, Any]) -> dict[str, str | int]:
    """The manifest hash the run that wrote ``manifest`` stored in Redis (to republish it)."""
    finished = (str(manifest["finished_at"]), str(manifest.get("code_version", "unknown")))
    complete, forced = bool(manifest["complete"]), bool(manifest["forced"])
    return _summary(Published.of(manifest), complete, forced, recorded_totals(manifest), finished)


def _summary(
    published: Published,
    complete: bool,
    forced: bool,
    totals: Mapping[str, int],
    finished: tuple[str, str],
) -> dict[str, str | int]:
    checkouts, revenue = COLUMNS[CHECKOUTS], COLUMNS[REVENUE]
    finished_at, code = finished
    return {
        RUN_ID: published.run_id,
        "complete": int(complete),
        "forced": int(forced),
        REVISION: published.revision,
        checkouts: totals.get(checkouts, 0),
        LINES: totals.get(LINES, 0),
        revenue: totals.get(revenue, 0),
        "finished_at": finished_at,
        "code_version": code,
    }


def recorded_totals(manifest: Mapping[str, Any]) -> dict[str, int]:
    """The day's totals as ``manifest`` records them, revenue in integer money units."""
    recorded = manifest["totals"]
    revenue = COLUMNS[REVENUE]
    totals = {name: int(recorded.get(name, 0)) for name in TOTALS if name != revenue}
    totals[revenue] = to_money_units(Decimal(str(recorded.get(revenue, 0))))
    return totals


def build_manifest(
    settings: Settings,
    run: Run,
    *,
    counts: Mapping[str, Any],
    totals: Mapping[str, int],
    sizes: Mapping[Path, int],
    rows: Mapping[parquet.Table, int],
    reconciliation: Reconciliation,
    repaired: bool,
    late: LateRecords,
    timings: Mapping[str, float],
) -> dict[str, Any]:
    """The manifest of ``run`` (see ``docs/daily.md`` for every field)."""
    plan = run.plan
    tables = _tables(settings.data_dir, plan.day, sizes, rows)
    lines = counts["lines"]
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
        "forced": run.forced,
        "behind": [{"partition": p, "reason": why} for p, why in plan.behind],
        "partitions": _partitions(plan),
        "counts": dict(counts),
        "totals": _totals(totals),
        "tables": tables,
        "sales_lines_bytes_per_line": (
            round(tables["sales_lines"]["bytes"] / lines, 2) if lines else None
        ),
        "reconciliation": _reconciliation(reconciliation, repaired),
        "revision": run.revision,
        "revision_reason": run.reason,
        "late_records": revisions.late_entries(late.counts, late.reach),
        "missing": _missing(plan, run.previous),
        "code_version": code_version(),
        "schema_version": SCHEMA_VERSION,
        "run_id": run.run_id,
        "run_at": run.run_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "timings_seconds": {name: round(value, 3) for name, value in timings.items()},
    }


def _partitions(plan: DayRange) -> list[dict[str, Any]]:
    return [
        {
            "partition": part.partition,
            "start_offset": part.start,
            "end_offset": part.end,
            "records": part.records,
            "low_watermark": part.low,
            "high_watermark": part.high,
            "complete": part.complete,
            "completeness": part.case,
            "reason": part.reason,
            "read_to": part.read_to,
            "newest_record_at": part.newest_at.isoformat() if part.newest_at else None,
            "retention_gap": part.gap,
        }
        for part in plan.partitions
    ]


def _missing(plan: DayRange, previous: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Each retention gap: its partition, its low watermark, the previous run's start there."""
    starts = {}
    if previous is not None and previous.get("topic") == plan.topic:
        starts = {int(p["partition"]): int(p["start_offset"]) for p in previous["partitions"]}
    return [
        {
            "partition": partition,
            "deleted_before_offset": low,
            "previous_start_offset": starts.get(partition),
        }
        for partition, low in plan.gaps
    ]


def _totals(totals: Mapping[str, int]) -> dict[str, Any]:
    """The day's totals, revenue as a decimal string."""
    recorded: dict[str, Any] = {name: totals.get(name, 0) for name in TOTALS}
    revenue = COLUMNS[REVENUE]
    recorded[revenue] = str(from_money_units(recorded[revenue]))
    return recorded


def _tables(
    data_dir: Path, day: date, sizes: Mapping[Path, int], rows: Mapping[parquet.Table, int]
) -> dict[str, dict[str, Any]]:
    tables: dict[str, dict[str, Any]] = {}
    for table in parquet.TABLES:
        path = parquet.table_path(data_dir, table, day)
        tables[table] = {
            "path": str(path.relative_to(data_dir)),
            "bytes": sizes.get(path, path.stat().st_size),
            "rows": rows[table],
        }
    return tables


def _reconciliation(reconciliation: Reconciliation, repaired: bool) -> dict[str, Any]:
    return {
        "live_items": reconciliation.live_items,
        "daily_items": reconciliation.daily_items,
        "drifted_items": len(reconciliation.drifts),
        "drifts": [d.as_dict() for d in reconciliation.drifts[:DRIFTS_IN_MANIFEST]],
        "repaired_live": repaired,
    }
