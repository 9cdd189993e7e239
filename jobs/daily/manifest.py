"""The manifest of a finished day: what was read, counted, written and reconciled.

:class:`Manifest` is the one model of the file ``_manifests/date=D/manifest.json``
(:func:`storage.parquet.manifest_path`), which the daily job writes last: a day with a
manifest is finished. It is read and written only here (:func:`read_manifest`,
:func:`write_manifest`; :func:`encode`, :func:`decode`), as pretty JSON with sorted keys.
Its summary (:meth:`Manifest.summary`) is stored beside the day's rankings in Redis
(:mod:`storage.summaries`). Each run of a day is a revision of it (:mod:`jobs.daily.revisions`):
the manifest says which, why, which late records of earlier days the run found, and what
retention had deleted.

:data:`MANIFEST_VERSION` 2 is the format written; version 1 manifests (written before
revisions, late records, retention gaps and completeness cases) decode with the defaults of
the fields they lack. Times are kept as the ISO 8601 strings the run wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Final

import msgspec

from common.schema import SCHEMA_VERSION, from_money_units, to_money_units
from common.settings import Settings
from jobs.daily.exceptions import ManifestUnreadable
from jobs.daily.reader import DayRange, LateRecords
from storage import parquet
from storage.daily import Reconciliation
from storage.figures import COLUMNS, REVENUE, TOTALS
from storage.summaries import ManifestSummary, Published

MANIFEST_VERSION: Final = 2
DRIFTS_IN_MANIFEST: Final = 100


def code_version() -> str:
    """The installed kassa version, recorded in every manifest."""
    try:
        return version("kassa")
    except PackageNotFoundError:
        return "unknown"


class Behind(msgspec.Struct, frozen=True, kw_only=True):
    """A partition that kept the day from being complete."""

    partition: int
    reason: str


class Partition(msgspec.Struct, frozen=True, kw_only=True):
    """One partition's part of the day's range (``end_offset`` exclusive)."""

    partition: int
    start_offset: int
    end_offset: int
    records: int
    low_watermark: int
    high_watermark: int
    complete: bool
    completeness: str | None = None
    """``records``, ``idle``, ``waiting`` or ``open`` (``None`` in version 1: see :attr:`case`)."""
    reason: str | None = None
    read_to: str | None = None
    """Why the range ends where it does."""
    newest_record_at: str | None = None
    retention_gap: bool = False

    @property
    def case(self) -> str:
        """How the partition was complete (a version-1 manifest: ``records`` or ``waiting``)."""
        if self.completeness is not None:
            return self.completeness
        return "records" if self.complete else "waiting"


class Counts(msgspec.Struct, kw_only=True):
    """What a run read and counted; the run fills it as it reads, before its manifest."""

    records: int = 0
    decoded_fast: int = 0
    decoded_slow: int = 0
    outside_day: int = 0
    duplicates: int = 0
    checkouts: int = 0
    lines: int = 0
    invalid: dict[str, int] = {}
    """Invalid messages by reason."""
    invalid_total: int = 0
    dedup_set_bytes: int = 0
    """The memory the day's checkout ids took at the end of the read."""


class Timings(msgspec.Struct, kw_only=True):
    """Seconds a run spent in each phase; the run fills it as it goes, before its manifest."""

    plan: float = 0.0
    read_decode_aggregate: float = 0.0
    write: float = 0.0
    """The Parquet files, with the Redis keys staged meanwhile."""
    redis: float = 0.0
    """The swap, the names, the reconciliation."""
    total: float = 0.0


class Totals(msgspec.Struct, frozen=True, kw_only=True):
    """The day's totals (the fields :data:`storage.figures.TOTALS`), revenue as a decimal."""

    units: int
    units_sold: int
    units_returned: int
    revenue: Decimal
    checkouts: int
    lines: int

    @classmethod
    def of(cls, totals: Mapping[str, int]) -> Totals:
        """The totals of a ``totals`` hash (revenue in integer money units; absent: 0)."""
        values: dict[str, object] = {name: totals.get(name, 0) for name in TOTALS}
        values[COLUMNS[REVENUE]] = from_money_units(totals.get(COLUMNS[REVENUE], 0))
        return msgspec.convert(values, cls)

    def in_units(self) -> dict[str, int]:
        """As a ``totals`` hash: by :data:`storage.figures.TOTALS`, revenue in money units."""
        values = msgspec.structs.asdict(self)
        values[COLUMNS[REVENUE]] = to_money_units(self.revenue)
        return {name: int(values[name]) for name in TOTALS}


class TableFile(msgspec.Struct, frozen=True, kw_only=True):
    """One Parquet file the run wrote."""

    path: str
    """Relative to ``KASSA_DATA_DIR``."""
    size: int = msgspec.field(name="bytes")
    rows: int


class DriftEntry(msgspec.Struct, frozen=True, kw_only=True):
    """An item whose live figures differ from the daily ones (:class:`storage.figures.Drift`)."""

    sku: str
    live: dict[str, int]
    daily: dict[str, int]
    difference: dict[str, int]
    """Live minus daily, by figure name."""


class RefusedPartition(msgspec.Struct, frozen=True, kw_only=True):
    """A partition the stream job had not applied to the day's end when a repair was due."""

    partition: int
    live_watermark: int
    range_end: int


class Reconciled(msgspec.Struct, frozen=True, kw_only=True):
    """The live figures against the daily ones, and whether live was repaired."""

    live_items: int
    daily_items: int
    drifted_items: int
    drifts: list[DriftEntry]
    """The first :data:`DRIFTS_IN_MANIFEST` drifts."""
    repaired_live: bool
    repair_refused: list[RefusedPartition] = []


class LateEntry(msgspec.Struct, frozen=True, kw_only=True):
    """Late records of one earlier finalized day found in the run's range."""

    records: int
    reach: dict[str, int]
    """Partition (a decimal string) -> the offset after the last late record there."""

    def offsets(self) -> dict[int, int]:
        """:attr:`reach` by partition number."""
        return {int(partition): offset for partition, offset in self.reach.items()}


class Missing(msgspec.Struct, frozen=True, kw_only=True):
    """A partition whose range retention cut into."""

    partition: int
    deleted_before_offset: int
    """The low watermark."""
    previous_start_offset: int | None
    """Where an earlier run of the day started there, if any."""


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """A finished run of one day (every field: ``docs/daily.md``)."""

    manifest_version: int
    day: date
    timezone: str
    start: str
    end: str
    hours: float
    topic: str
    grace_seconds: float
    lateness_seconds: float
    complete: bool
    forced: bool
    behind: list[Behind]
    partitions: list[Partition]
    counts: Counts
    totals: Totals
    tables: dict[parquet.Table, TableFile]
    sales_lines_bytes_per_line: float | None
    reconciliation: Reconciled
    revision: int = 1
    revision_reason: str | None = None
    late_records: dict[str, LateEntry] = {}
    """By day (``YYYY-MM-DD``)."""
    missing: list[Missing] = []
    code_version: str = "unknown"
    schema_version: int
    run_id: str
    run_at: str
    finished_at: str
    timings_seconds: Timings

    @property
    def published(self) -> Published:
        """The run that wrote this manifest."""
        return Published(self.revision, self.run_id)

    def summary(self) -> ManifestSummary:
        """The manifest hash the run that wrote this manifest stored in Redis (to republish)."""
        return _summary(self.published, self.complete, self.forced, self.totals, self.finished_at)

    def range_ends(self, topic: str) -> dict[int, int] | None:
        """Partition -> end offset of the day's range in ``topic`` (``None``: another topic)."""
        if self.topic != topic:
            return None
        return {part.partition: part.end_offset for part in self.partitions}


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

    def summary(self, totals: Mapping[str, int]) -> ManifestSummary:
        """The manifest hash this run stages with the day's keys (finished: now)."""
        published = Published(self.revision, self.run_id)
        finished_at = datetime.now(UTC).isoformat()
        return _summary(published, self.plan.complete, self.forced, Totals.of(totals), finished_at)


def _summary(
    published: Published, complete: bool, forced: bool, totals: Totals, finished_at: str
) -> ManifestSummary:
    return ManifestSummary(
        run_id=published.run_id,
        revision=published.revision,
        complete=complete,
        forced=forced,
        checkouts=totals.checkouts,
        lines=totals.lines,
        revenue=totals.revenue,
        finished_at=finished_at,
        code_version=code_version(),
    )


_ENCODER: Final = msgspec.json.Encoder(order="sorted")
_DECODER: Final = msgspec.json.Decoder(Manifest)


def encode(manifest: Manifest) -> bytes:
    """The manifest file's content: JSON indented by 2, keys sorted, a final newline."""
    return msgspec.json.format(_ENCODER.encode(manifest), indent=2) + b"\n"


def decode(content: bytes, day: date, path: Path) -> Manifest:
    """The manifest in ``content``, the file ``path`` of ``day``; :class:`ManifestUnreadable`
    names the file and the fix when it is not a manifest this kassa reads."""
    try:
        manifest = _DECODER.decode(content)
    except msgspec.DecodeError as exc:
        raise ManifestUnreadable(day, path, str(exc)) from None
    if manifest.manifest_version > MANIFEST_VERSION:
        problem = (
            f"its version {manifest.manifest_version} is newer than the {MANIFEST_VERSION} "
            "this kassa reads (upgrade kassa to read it)"
        )
        raise ManifestUnreadable(day, path, problem)
    return manifest


def read_manifest(data_dir: Path, day: date) -> Manifest | None:
    """The manifest of ``day``, or ``None`` if the day was never finished."""
    content = parquet.read_manifest_bytes(data_dir, day)
    if content is None:
        return None
    return decode(content, day, parquet.manifest_path(data_dir, day))


def write_manifest(data_dir: Path, manifest: Manifest) -> Path:
    """Write ``manifest`` as the manifest of its day, atomically; its path."""
    return parquet.write_manifest_bytes(data_dir, manifest.day, encode(manifest))


def build_manifest(
    settings: Settings,
    run: Run,
    *,
    counts: Counts,
    totals: Mapping[str, int],
    sizes: Mapping[Path, int],
    rows: Mapping[parquet.AggregateTable, int],
    reconciliation: Reconciliation,
    repair: Mapping[int, tuple[int, int]] | None,
    late: LateRecords,
    timings: Timings,
) -> Manifest:
    """The manifest of ``run`` (see ``docs/daily.md`` for every field).

    ``rows``: of the aggregate tables (``sales_lines`` has ``counts.lines``). ``repair``:
    ``None`` when no repair of the live figures was due, else the partitions behind it,
    ``{partition: (live watermark, range end)}`` (empty: repaired).
    """
    plan = run.plan
    lines = counts.lines
    tables = _tables(settings.data_dir, plan.day, sizes, rows, lines)
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
        late_records=late_entries(late.counts, late.reach),
        missing=_missing(plan, run.previous),
        code_version=code_version(),
        schema_version=SCHEMA_VERSION,
        run_id=run.run_id,
        run_at=run.run_at.isoformat(),
        finished_at=datetime.now(UTC).isoformat(),
        timings_seconds=_rounded(timings),
    )


def late_entries(
    counts: Mapping[date, int], reach: Mapping[date, Mapping[int, int]]
) -> dict[str, LateEntry]:
    """The ``late_records`` of a run's :class:`jobs.daily.reader.LateRecords`."""
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
    data_dir: Path,
    day: date,
    sizes: Mapping[Path, int],
    rows: Mapping[parquet.AggregateTable, int],
    lines: int,
) -> dict[parquet.Table, TableFile]:
    tables: dict[parquet.Table, TableFile] = {}
    for table in parquet.TABLES:
        path = parquet.table_path(data_dir, table, day)
        tables[table] = TableFile(
            path=str(path.relative_to(data_dir)),
            size=sizes.get(path, path.stat().st_size),
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
