"""The daily manifest hash in Redis: a finished run of a day in brief.

The daily job stores a :class:`ManifestSummary` beside the day's rankings, in the hash
:func:`storage.keys.manifest_key` (``kassa:<space>:daily:<day>:manifest``, flat string
fields): it names the run whose snapshot the daily keys hold (:attr:`ManifestSummary.published`).
The same summary of a day's manifest is what ``/api/days`` and ``/health`` show. It is built
from a run or a manifest by :mod:`jobs.daily.manifest`; this module only stores and reads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from common.schema import from_money_units, to_money_units
from storage import keys
from storage.connections import Client
from storage.figures import CHECKOUTS, COLUMNS, LINES, REVENUE


@dataclass(frozen=True, slots=True)
class Published:
    """Which run of a day published its snapshot: the revision and the run's id."""

    revision: int
    run_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestSummary:
    """A finished run of a day in brief: who ran it, how it stands, its main totals."""

    run_id: str
    revision: int
    """1 for the day's first run, one more for each later run."""
    complete: bool
    forced: bool
    checkouts: int
    lines: int
    revenue: Decimal
    finished_at: str
    """ISO 8601, as the run recorded it."""
    code_version: str

    @property
    def published(self) -> Published:
        """The run this summary names."""
        return Published(self.revision, self.run_id)

    def to_redis(self) -> dict[str, str | int]:
        """The fields of the manifest hash (booleans as 0/1, revenue in integer money units)."""
        return {
            "run_id": self.run_id,
            "complete": int(self.complete),
            "forced": int(self.forced),
            "revision": self.revision,
            COLUMNS[CHECKOUTS]: self.checkouts,
            LINES: self.lines,
            COLUMNS[REVENUE]: to_money_units(self.revenue),
            "finished_at": self.finished_at,
            "code_version": self.code_version,
        }

    @classmethod
    def from_redis(cls, fields: Mapping[bytes, bytes]) -> ManifestSummary | None:
        """The summary in a manifest hash's ``fields``; ``None`` when the hash is absent or
        lacks a field (written by an older kassa: the day is republished)."""
        values = {name.decode(): value.decode() for name, value in fields.items()}
        try:
            return cls(
                run_id=values["run_id"],
                revision=int(values["revision"]),
                complete=values["complete"] == "1",
                forced=values["forced"] == "1",
                checkouts=int(values[COLUMNS[CHECKOUTS]]),
                lines=int(values[LINES]),
                revenue=from_money_units(int(values[COLUMNS[REVENUE]])),
                finished_at=values["finished_at"],
                code_version=values["code_version"],
            )
        except KeyError:
            return None

    def as_json(self) -> dict[str, Any]:
        """JSON-ready (revenue as a decimal string)."""
        return {
            "run_id": self.run_id,
            "revision": self.revision,
            "complete": self.complete,
            "forced": self.forced,
            COLUMNS[CHECKOUTS]: self.checkouts,
            LINES: self.lines,
            COLUMNS[REVENUE]: str(self.revenue),
            "finished_at": self.finished_at,
            "code_version": self.code_version,
        }


def read_summaries(
    client: Client, space: str, days: Sequence[date]
) -> dict[date, ManifestSummary | None]:
    """The manifest hash of each of ``days`` (``None`` where absent), in one round trip."""
    pipe = client.pipeline(transaction=False)
    for day in days:
        pipe.hgetall(keys.manifest_key(space, day))
    answers: list[dict[bytes, bytes]] = pipe.execute()
    return {
        day: ManifestSummary.from_redis(fields) for day, fields in zip(days, answers, strict=True)
    }
