"""Revisions of finalized days: revision numbers, their reasons, and late records to restate.

Every manifest carries a ``revision`` (1 for a day's first run, one more for each later run)
and a ``revision_reason``. A run of day X records, under ``late_records``, the records of
earlier finalized days it found in its range past the end of their own ranges
(:class:`storage.kafka.planning.LateRecords`): ``{"D": {"records": n, "reach": {"0": offset}}}``.
Day D has late records *pending* while such an entry reaches past the end of D's range in
its manifest; a run of D reads up to every reach (:func:`late_reach`), so it restates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from storage import parquet


@dataclass(frozen=True)
class LateReach:
    """Late records of one day found by later runs."""

    records: int
    """Late records not yet within the day's finalized range."""
    reach: dict[int, int]
    """Partition -> the offset a run of the day must read up to (every entry, pending or not)."""
    found_by: tuple[date, ...]
    """The days whose runs found the pending records."""


def range_ends(manifest: Mapping[str, Any] | None, topic: str) -> dict[int, int] | None:
    """Partition -> end offset of a manifest's range in ``topic`` (``None``: no such range)."""
    if manifest is None or manifest.get("topic") != topic:
        return None
    return {int(part["partition"]): int(part["end_offset"]) for part in manifest["partitions"]}


def late_reach(data_dir: Path, day: date, manifest: Mapping[str, Any] | None) -> LateReach:
    """What later runs found of ``day`` (``manifest``: its current one, if finalized)."""
    topic = manifest.get("topic") if manifest is not None else None
    ends = range_ends(manifest, topic) if isinstance(topic, str) else None
    reach: dict[int, int] = {}
    pending = 0
    found_by: list[date] = []
    for later in parquet.manifest_days(data_dir):
        if later <= day:
            continue
        other = parquet.read_manifest(data_dir, later)
        entry = (other or {}).get("late_records", {}).get(day.isoformat())
        if other is None or entry is None or (topic is not None and other["topic"] != topic):
            continue
        offsets = {int(p): int(offset) for p, offset in entry["reach"].items()}
        for partition, offset in offsets.items():
            reach[partition] = max(reach.get(partition, 0), offset)
        if ends is None or any(offset > ends.get(p, 0) for p, offset in offsets.items()):
            pending += int(entry["records"])
            found_by.append(later)
    return LateReach(pending, reach, tuple(found_by))


def revision(previous: Mapping[str, Any] | None) -> int:
    """The revision number of the next run of a day whose manifest is ``previous``."""
    if previous is None:
        return 1
    return int(previous.get("revision", 1)) + 1


def reason(previous: Mapping[str, Any] | None, late: LateReach, complete: bool) -> str:
    """Why a day is run again, when the caller gave no reason."""
    if previous is None:
        return "first run"
    if late.records:
        days = ", ".join(str(day) for day in late.found_by)
        return f"late records: {late.records} found by the run(s) of {days}"
    if previous.get("forced") and complete:
        return "forced day revisited: every partition is complete now"
    return "run again"


def late_entries(
    counts: Mapping[date, int], reach: Mapping[date, Mapping[int, int]]
) -> dict[str, Any]:
    """The ``late_records`` manifest field of a run's late records
    (:class:`storage.kafka.planning.LateRecords`)."""
    return {
        day.isoformat(): {
            "records": counts[day],
            "reach": {str(p): offset for p, offset in sorted(reach[day].items())},
        }
        for day in sorted(counts)
    }
