"""How each business day stands, from its manifest and lock (no Kafka; Redis only for the
lock of an object-store ``KASSA_DATA_DIR``, :mod:`jobs.daily.lock`).

States, the first that applies: ``running`` (a run holds the day's lock), ``invalid-share``
(no manifest: the last run refused the day for too many invalid records,
:mod:`jobs.daily.refusals`), ``missing`` (no manifest), ``late-pending`` (later runs found
late records past the day's range; the scheduler restates it), ``forced`` (finalized
incomplete; revisited once complete), ``restated`` (revision 2 or later), ``complete``.
``kassa daily status``, the scheduler, ``/api/days`` and ``/health`` all read a day's state
here (:class:`DayStatus`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

from common.settings.location import DataLocation
from jobs.daily import revisions
from jobs.daily.lock import DayLocks
from jobs.daily.manifest import Manifest, read_manifest
from jobs.daily.refusals import Refusal, read_refusal
from storage import parquet
from storage.summaries import ManifestSummary

State = Literal[
    "running", "invalid-share", "missing", "late-pending", "forced", "restated", "complete"
]
STATES: Final[tuple[State, ...]] = (
    "running",
    "invalid-share",
    "missing",
    "late-pending",
    "forced",
    "restated",
    "complete",
)


@dataclass(frozen=True)
class DayStatus:
    """One day's state and, once it is finished, its manifest."""

    day: date
    state: State
    manifest: Manifest | None = None
    late_pending: int = 0
    """Late records later runs found past the day's range."""
    refusal: Refusal | None = None
    """Why the last run did not finalize the day (the invalid-share guard), if it did not."""

    @property
    def summary(self) -> ManifestSummary | None:
        """The summary of the day's manifest (``None``: not finished)."""
        return None if self.manifest is None else self.manifest.summary()

    def completeness(self) -> dict[str, int]:
        """How many partitions were complete by each case (``records``, ``idle``, ...)."""
        cases: dict[str, int] = {}
        for part in self.manifest.partitions if self.manifest is not None else ():
            cases[part.case] = cases.get(part.case, 0) + 1
        return dict(sorted(cases.items()))

    def as_json(self) -> dict[str, Any]:
        """JSON-ready, as ``kassa daily status --json`` prints it."""
        manifest = self.manifest
        return {
            "day": self.day.isoformat(),
            "state": self.state,
            "revision": None if manifest is None else manifest.revision,
            "reason": None if manifest is None else manifest.revision_reason,
            "checkouts": None if manifest is None else manifest.totals.checkouts,
            "late_pending": self.late_pending,
            "finished_at": None if manifest is None else manifest.finished_at,
            "completeness": None if manifest is None else self.completeness(),
            "run_id": None if manifest is None else manifest.run_id,
            "refused": None if self.refusal is None else self.refusal.headline(),
        }

    def summary_json(self) -> dict[str, Any] | None:
        """The manifest in brief, JSON-ready, as ``/api/days`` and ``/health`` show it: its
        summary and how many items drifted from the live figures (``None``: not finished)."""
        if self.manifest is None:
            return None
        drifted = self.manifest.reconciliation.drifted_items
        return {**self.manifest.summary().as_json(), "drifted_items": drifted}


def day_statuses(
    location: DataLocation, days: Sequence[date], locks: DayLocks | None = None
) -> list[DayStatus]:
    """The state of each of ``days``, in their order (see the module docstring).

    Reads each manifest from the earliest of ``days`` on once. ``locks``: where runs lock
    their day (default: the lock files of a local ``location``; an object store's are in
    Redis: :meth:`DayLocks.of` the settings).
    """
    if not days:
        return []
    first = min(days)
    finished = {
        day: manifest
        for day in parquet.manifest_days(location)
        if day >= first and (manifest := read_manifest(location, day)) is not None
    }
    held = locks or DayLocks(location)
    return [_status(held.held(day), day, finished, location) for day in days]


def day_status(location: DataLocation, day: date, locks: DayLocks | None = None) -> DayStatus:
    """The state of ``day`` (see the module docstring)."""
    return day_statuses(location, [day], locks)[0]


def _status(
    running: bool, day: date, finished: dict[date, Manifest], location: DataLocation
) -> DayStatus:
    manifest = finished.get(day)
    refusal = read_refusal(location, day)
    if manifest is None:
        if running:
            return DayStatus(day, "running", refusal=refusal)
        return DayStatus(day, "missing" if refusal is None else "invalid-share", refusal=refusal)
    later = [other for other_day, other in finished.items() if other_day > day]
    late = revisions.late_reach(day, manifest, later)
    state: State
    if running:
        state = "running"
    elif late.records:
        state = "late-pending"
    elif manifest.forced:
        state = "forced"
    elif manifest.revision > 1:
        state = "restated"
    else:
        state = "complete"
    return DayStatus(day, state, manifest, late.records, refusal)
