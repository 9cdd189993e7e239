"""One run of a day: who it was (:class:`Run`), what it produced (:class:`DayResult`), and
the manifest it writes last (:func:`build_manifest`; the model: :mod:`jobs.daily.manifest`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import msgspec

from common.settings import Settings
from jobs.daily.manifest import (
    DRIFTS_IN_MANIFEST,
    MANIFEST_VERSION,
    Behind,
    Counts,
    DriftEntry,
    LateEntry,
    Manifest,
    Missing,
    Partition,
    Reconciled,
    RefusedPartition,
    TableFile,
    Timings,
    Totals,
    code_version,
    summarize,
)
from storage import parquet
from storage.daily import Reconciliation
from storage.kafka.planning import DayRange, LateRecords
from storage.summaries import ManifestSummary, Published


@dataclass(frozen=True)
class DayResult:
    """What a run of one day produced."""

    day: date
    manifest: Manifest
    reconciliation: Reconciliation


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
    previous: Manifest | None
    """The day's manifest before this run (``None``: the first run)."""
    invalid_share_forced: bool = False
    """Finalized over the invalid-share guard (``--force``; :mod:`jobs.daily.refusals`)."""

    def summary(self, totals: Mapping[str, int]) -> ManifestSummary:
        """The manifest hash this run stages with the day's keys (finished: now)."""
        published = Published(self.revision, self.run_id)
        finished_at = datetime.now(UTC).isoformat()
        return summarize(published, self.plan.complete, self.forced, Totals.of(totals), finished_at)


def build_manifest(
    settings: Settings,
    run: Run,
    *,
    counts: Counts,
    totals: Mapping[str, int],
    files: Mapping[parquet.Table, parquet.WrittenFile],
    rows: Mapping[parquet.AggregateTable, int],
    reconciliation: Reconciliation,
    repair: Mapping[int, tuple[int, int]] | None,
    late: LateRecords,
    timings: Timings,
) -> Manifest:
    """The manifest of ``run`` (see ``docs/daily.md`` for every field).

    ``files``: where each table was written and its size. ``rows``: of the aggregate
    tables (``sales_lines`` has ``counts.lines``). ``repair``:
    ``None`` when no repair of the live figures was due, else the partitions behind it,
    ``{partition: (live watermark, range end)}`` (empty: repaired).
    """
    plan = run.plan
    lines = counts.lines
    tables = _tables(files, rows, lines)
    return Manifest(
        manifest_version=MANIFEST_VERSION,
        day=plan.day,
        timezone=settings.timezone,
        start=plan.start.isoformat(),
        end=plan.end.isoformat(),
        hours=(plan.end - plan.start) / timedelta(hours=1),
        topic=plan.topic,
        grace_seconds=plan.grace.total_seconds(),
        lateness_seconds=plan.lateness.total_seconds(),
        complete=plan.complete,
        forced=run.forced,
        behind=[Behind(partition=p, reason=why) for p, why in plan.behind],
        partitions=_partitions(plan),
        counts=counts,
        totals=Totals.of(totals),
        tables=tables,
        sales_lines_bytes_per_line=(
            round(tables["sales_lines"].size / lines, 2) if lines else None
        ),
        reconciliation=_reconciled(reconciliation, repair),
        revision=run.revision,
        revision_reason=run.reason,
        late_records=_late_entries(late.counts, late.reach),
        missing=_missing(plan, run.previous),
        code_version=code_version(),
        schema_version=max(settings.limits.versions),
        schema_versions=sorted(settings.limits.versions),
        max_invalid_share=settings.daily_max_invalid_share,
        invalid_share_forced=run.invalid_share_forced,
        run_id=run.run_id,
        run_at=run.run_at.isoformat(),
        finished_at=datetime.now(UTC).isoformat(),
        timings_seconds=_rounded(timings),
    )


def _late_entries(
    counts: Mapping[date, int], reach: Mapping[date, Mapping[int, int]]
) -> dict[str, LateEntry]:
    """The ``late_records`` of a run's :class:`storage.kafka.planning.LateRecords`."""
    return {
        day.isoformat(): LateEntry(
            records=counts[day],
            reach={str(p): offset for p, offset in sorted(reach[day].items())},
        )
        for day in sorted(counts)
    }


def _partitions(plan: DayRange) -> list[Partition]:
    return [
        Partition(
            partition=part.partition,
            start_offset=part.start,
            end_offset=part.end,
            records=part.records,
            low_watermark=part.low,
            high_watermark=part.high,
            complete=part.complete,
            completeness=part.case,
            reason=part.reason,
            read_to=part.read_to,
            newest_record_at=part.newest_at.isoformat() if part.newest_at else None,
            retention_gap=part.gap,
        )
        for part in plan.partitions
    ]


def _missing(plan: DayRange, previous: Manifest | None) -> list[Missing]:
    """Each retention gap: its partition, its low watermark, the previous run's start there."""
    starts: dict[int, int] = {}
    if previous is not None and previous.topic == plan.topic:
        starts = {part.partition: part.start_offset for part in previous.partitions}
    return [
        Missing(
            partition=partition,
            deleted_before_offset=low,
            previous_start_offset=starts.get(partition),
        )
        for partition, low in plan.gaps
    ]


def _tables(
    files: Mapping[parquet.Table, parquet.WrittenFile],
    rows: Mapping[parquet.AggregateTable, int],
    lines: int,
) -> dict[parquet.Table, TableFile]:
    tables: dict[parquet.Table, TableFile] = {}
    for table in parquet.TABLES:
        tables[table] = TableFile(
            path=files[table].path,
            size=files[table].size,
            rows=lines if table == "sales_lines" else rows[table],
        )
    return tables


def _reconciled(
    reconciliation: Reconciliation, repair: Mapping[int, tuple[int, int]] | None
) -> Reconciled:
    drifts = reconciliation.drifts[:DRIFTS_IN_MANIFEST]
    return Reconciled(
        live_items=reconciliation.live_items,
        daily_items=reconciliation.daily_items,
        drifted_items=len(reconciliation.drifts),
        drifts=[msgspec.convert(drift.as_dict(), DriftEntry) for drift in drifts],
        repaired_live=repair == {},
        repair_refused=[
            RefusedPartition(partition=p, live_watermark=mark, range_end=end)
            for p, (mark, end) in sorted((repair or {}).items())
        ],
    )


def _rounded(timings: Timings) -> Timings:
    """``timings`` to the millisecond."""
    seconds = msgspec.structs.asdict(timings)
    return msgspec.convert({name: round(value, 3) for name, value in seconds.items()}, Timings)
