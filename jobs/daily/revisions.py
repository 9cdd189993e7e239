"""Revisions of finalized days: revision numbers, their reasons, and late records to restate.

Every manifest carries a ``revision`` (1 for a day's first run, one more for each later run)
and a ``revision_reason``. A run of day X records, under ``late_records``, the records of
earlier finalized days it found in its range past the end of their own ranges
(:class:`storage.kafka.planning.LateRecords`): ``{"D": {"records": n, "reach": {"0": offset}}}``.
Day D has late records *pending* while such an entry reaches past the end of D's range in
its manifest; a run of D reads up to every reach (:func:`late_reach`), so it restates them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from common.settings.location import DataLocation
from jobs.daily.exceptions import SnapshotKept
from jobs.daily.manifest import Manifest, read_manifest
from storage import parquet
from storage.kafka.planning import DayRange


@dataclass(frozen=True)
class LateReach:
    """Late records of one day found by later runs."""

    records: int
    """Late records not yet within the day's finalized range."""
    reach: dict[int, int]
    """Partition -> the offset a run of the day must read up to (every entry, pending or not)."""
    found_by: tuple[date, ...]
    """The days whose runs found the pending records."""


def range_ends(manifest: Manifest | None, topic: str) -> dict[int, int] | None:
    """Partition -> end offset of a manifest's range in ``topic`` (``None``: no such range)."""
    return None if manifest is None else manifest.range_ends(topic)


def later_manifests(location: DataLocation, day: date) -> list[Manifest]:
    """The manifests of the days after ``day``, oldest first."""
    later = (read_manifest(location, other) for other in parquet.manifest_days(location))
    return [manifest for manifest in later if manifest is not None and manifest.day > day]


def late_reach(day: date, manifest: Manifest | None, later: Iterable[Manifest]) -> LateReach:
    """What the runs of ``later`` days found of ``day`` (``manifest``: its current one, if
    finalized)."""
    topic = manifest.topic if manifest is not None else None
    ends = manifest.range_ends(manifest.topic) if manifest is not None else None
    reach: dict[int, int] = {}
    pending = 0
    found_by: list[date] = []
    for other in later:
        entry = other.late_records.get(day.isoformat())
        if other.day <= day or entry is None or (topic is not None and other.topic != topic):
            continue
        offsets = entry.offsets()
        for partition, offset in offsets.items():
            reach[partition] = max(reach.get(partition, 0), offset)
        if ends is None or any(offset > ends.get(p, 0) for p, offset in offsets.items()):
            pending += entry.records
            found_by.append(other.day)
    return LateReach(pending, reach, tuple(found_by))


def revision(previous: Manifest | None) -> int:
    """The revision number of the next run of a day whose manifest is ``previous``."""
    if previous is None:
        return 1
    return previous.revision + 1


def reason(previous: Manifest | None, late: LateReach, complete: bool) -> str:
    """Why a day is run again, when the caller gave no reason."""
    if previous is None:
        return "first run"
    if late.records:
        days = ", ".join(str(day) for day in late.found_by)
        return f"late records: {late.records} found by the run(s) of {days}"
    if previous.forced and complete:
        return "forced day revisited: every partition is complete now"
    return "run again"


def keep_larger_snapshot(plan: DayRange, previous: Manifest | None, checkouts: int) -> None:
    """Refuse to replace a snapshot that has more checkouts than a range retention cut into
    (:class:`SnapshotKept`): ``checkouts`` is what a run of ``plan`` found."""
    if not plan.gaps or previous is None:
        return
    kept = previous.totals.checkouts
    if checkouts < kept:
        raise SnapshotKept(plan.day, checkouts, kept, previous.revision)
