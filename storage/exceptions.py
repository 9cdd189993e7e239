"""Errors of the storage readers: why a ranking or figure cannot be given."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from common.errors import KassaError


class RankingError(KassaError):
    """A ranking or figure cannot be given; the message says why and what to do."""

    exit_code = 1


class InvalidQueryError(RankingError):
    """A parameter of a query is out of its accepted form; ``parameter`` names it."""

    exit_code = 2

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class NoDataError(RankingError):
    """Redis holds nothing for any day of the query."""


class UnknownStoreError(RankingError):
    """The query names a store with no checkouts on any of its days."""


class DailyNotComputedError(RankingError):
    """The daily job has not finished some day of a daily query yet."""

    def __init__(self, missing: Sequence[date]) -> None:
        if len(missing) == 1:
            command = f"kassa daily run --day {missing[0]}"
        else:
            command = f"kassa daily backfill --from {missing[0]} --to {missing[-1]}"
        super().__init__(
            f"the daily ranking of {_listed(missing)} is not computed yet; compute it with "
            f"`{command}`, or ask for the live source"
        )


class DayExpiredError(RankingError):
    """Some day of the query is past the Redis retention; its Parquet snapshot remains."""

    exit_code = 1

    def __init__(
        self, expired: Sequence[date], retention_days: int, source: str, snapshot: Path
    ) -> None:
        """``snapshot``: the Parquet file that keeps the first of the ``expired`` days."""
        where = "" if snapshot.is_file() else " (no such file here: it was never finalized)"
        super().__init__(
            f"{_listed(expired)} is past the Redis retention of {retention_days} days "
            f"(KASSA_RETENTION_DAYS), so its {source} keys expired; read the Parquet "
            f"snapshot {snapshot}{where}"
        )


def _listed(days: Sequence[date]) -> str:
    shown = ", ".join(str(day) for day in days[:5])
    return shown if len(days) <= 5 else f"{shown} and {len(days) - 5} more"
