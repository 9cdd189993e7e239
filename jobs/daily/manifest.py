"""The manifest of a finished day: what was read, counted, written and reconciled.

:class:`Manifest` is the one model of the file ``_manifests/date=D/manifest.json``
(:func:`storage.parquet.manifest_path`), which the daily job writes last: a day with a
manifest is finished. A run builds it complete (:func:`jobs.daily.run.build_manifest`); it
is read and written only here (:func:`read_manifest`, :func:`write_manifest`; :func:`encode`,
:func:`decode`), as pretty JSON with sorted keys.
Its summary (:meth:`Manifest.summary`) is stored beside the day's rankings in Redis
(:mod:`storage.summaries`). Each run of a day is a revision of it (:mod:`jobs.daily.revisions`):
the manifest says which, why, which late records of earlier days the run found, and what
retention had deleted.

:data:`MANIFEST_VERSION` 3 is the format written; version 1 manifests (written before
revisions, late records, retention gaps and completeness cases) and version 2 manifests
(before message version 2's discounts and the invalid-share guard) decode with the defaults
of the fields they lack. Times are kept as the ISO 8601 strings the run wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, version
from typing import Final

import msgspec

from common.schema import from_money_units, to_money_units
from common.settings.location import DataLocation
from jobs.daily.exceptions import ManifestUnreadable
from storage import parquet
from storage.figures import MONEY_COLUMNS, TOTALS
from storage.summaries import ManifestSummary, Published

MANIFEST_VERSION: Final = 3
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
    """The day's totals (the fields :data:`storage.figures.TOTALS`), money as decimals.

    ``revenue`` is net of discounts; ``discount`` (0 in a manifest written before message
    version 2) is the discounts' sum, so the gross amount is their sum."""

    units: int
    units_sold: int
    units_returned: int
    revenue: Decimal
    checkouts: int
    discount: Decimal = Decimal(0)
    lines: int

    @classmethod
    def of(cls, totals: Mapping[str, int]) -> Totals:
        """The totals of a ``totals`` hash (money in integer money units; absent: 0)."""
        values: dict[str, object] = {
            name: from_money_units(totals.get(name, 0))
            if name in MONEY_COLUMNS
            else totals.get(name, 0)
            for name in TOTALS
        }
        return msgspec.convert(values, cls)

    def in_units(self) -> dict[str, int]:
        """As a ``totals`` hash: by :data:`storage.figures.TOTALS`, money in money units."""
        values = msgspec.structs.asdict(self)
        return {
            name: to_money_units(values[name]) if name in MONEY_COLUMNS else int(values[name])
            for name in TOTALS
        }


class TableFile(msgspec.Struct, frozen=True, kw_only=True):
    """One Parquet file the run wrote."""

    path: str
    """Relative to ``KASSA_DATA_DIR``: the table's hive file on a local disk, the run's own
    object (``_revisions/...``) on an object store (:mod:`storage.parquet`)."""
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
    """The newest message version the run read."""
    schema_versions: list[int] = []
    """Every message version the run read (``KASSA_SCHEMA_VERSIONS``; empty in a manifest
    written before message version 2: version 1 only)."""
    max_invalid_share: float | None = None
    """``KASSA_DAILY_MAX_INVALID_SHARE`` of the run (``None``: before the guard)."""
    invalid_share_forced: bool = False
    """Finalized by ``--force`` although its invalid records exceeded the share
    (:mod:`jobs.daily.refusals`; the revision's reason says by how much)."""
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
        return summarize(self.published, self.complete, self.forced, self.totals, self.finished_at)

    def range_ends(self, topic: str) -> dict[int, int] | None:
        """Partition -> end offset of the day's range in ``topic`` (``None``: another topic)."""
        if self.topic != topic:
            return None
        return {part.partition: part.end_offset for part in self.partitions}


def summarize(
    published: Published, complete: bool, forced: bool, totals: Totals, finished_at: str
) -> ManifestSummary:
    """The summary of a run of a day (:mod:`storage.summaries`), finished at ``finished_at``."""
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


def decode(content: bytes, day: date, path: DataLocation) -> Manifest:
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


def read_manifest(location: DataLocation, day: date) -> Manifest | None:
    """The manifest of ``day``, or ``None`` if the day was never finished."""
    content = parquet.read_manifest_bytes(location, day)
    if content is None:
        return None
    return decode(content, day, parquet.manifest_location(location, day))


def write_manifest(location: DataLocation, manifest: Manifest) -> DataLocation:
    """Write ``manifest`` as the manifest of its day, atomically; where it is."""
    return parquet.write_manifest_bytes(location, manifest.day, encode(manifest))
