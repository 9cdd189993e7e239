"""How each business day stands, from its manifest and lock file (no Kafka, no Redis).

States, the first that applies: ``running`` (a run holds the day's lock), ``missing`` (no
manifest), ``late-pending`` (later runs found late records past the day's range; the
scheduler restates it), ``forced`` (finalized incomplete; revisited once complete),
``restated`` (revision 2 or later), ``complete``.
"""

from __future__ import annotations

import fcntl
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Final

from jobs.daily import revisions
from storage import parquet
from storage.figures import CHECKOUTS, COLUMNS

STATES: Final = ("running", "missing", "late-pending", "forced", "restated", "complete")


@dataclass(frozen=True)
class DayStatus:
    """One day's state and what its manifest says."""

    day: date
    state: str
    revision: int | None = None
    reason: str | None = None
    checkouts: int | None = None
    late_pending: int = 0
    finished_at: str | None = None
    completeness: dict[str, int] | None = None
    """How many partitions were complete by each case (``records``, ``idle``, ...)."""
    run_id: str | None = None
    """The run that wrote the manifest."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        entry = asdict(self)
        entry["day"] = self.day.isoformat()
        return entry


def is_running(data_dir: Path, day: date) -> bool:
    """Whether a run of ``day`` holds its lock right now."""
    path = parquet.lock_path(data_dir, day)
    if not path.exists():
        return False
    with path.open("a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False


def day_status(data_dir: Path, day: date) -> DayStatus:
    """The state of ``day`` (see the module docstring)."""
    running = is_running(data_dir, day)
    manifest = parquet.read_manifest(data_dir, day)
    if manifest is None:
        return DayStatus(day, "running" if running else "missing")
    late = revisions.late_reach(data_dir, day, manifest)
    revision = int(manifest.get("revision", 1))
    if running:
        state = "running"
    elif late.records:
        state = "late-pending"
    elif manifest["forced"]:
        state = "forced"
    elif revision > 1:
        state = "restated"
    else:
        state = "complete"
    cases: dict[str, int] = {}
    for part in manifest["partitions"]:
        case = part.get("completeness", "records" if part["complete"] else "waiting")
        cases[case] = cases.get(case, 0) + 1
    return DayStatus(
        day,
        state,
        revision,
        manifest.get("revision_reason"),
        int(manifest["totals"][COLUMNS[CHECKOUTS]]),
        late.records,
        manifest.get("finished_at"),
        dict(sorted(cases.items())),
        manifest.get("run_id"),
    )


def day_statuses(data_dir: Path, last: date, days: int) -> list[DayStatus]:
    """The states of the ``days`` days up to ``last``, newest first."""
    return [day_status(data_dir, last - timedelta(days=n)) for n in range(days)]
