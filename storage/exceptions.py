"""Errors of the storage readers: why a ranking or figure cannot be given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from common.errors import KassaError


@dataclass(frozen=True)
class Snapshot:
    """A day's Parquet file as a message names it: where (no password), and whether it is
    there."""

    shown: str
    exists: bool

    def __str__(self) -> str:
        return self.shown


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
        self, expired: Sequence[date], retention_days: int, source: str, snapshot: Snapshot
    ) -> None:
        """``snapshot``: the Parquet file that keeps the first of the ``expired`` days."""
        where = "" if snapshot.exists else " (no such file here: it was never finalized)"
        super().__init__(
            f"{_listed(expired)} is past the Redis retention of {retention_days} days "
            f"(KASSA_RETENTION_DAYS), so its {source} keys expired; read the Parquet "
            f"snapshot {snapshot}{where}"
        )


def _listed(days: Sequence[date]) -> str:
    shown = ", ".join(str(day) for day in days[:5])
    return shown if len(days) <= 5 else f"{shown} and {len(days) - 5} more"


class DataStoreError(KassaError):
    """The object store ``KASSA_DATA_DIR`` names refused a request or could not be reached
    (wrong credentials, a missing bucket, no connection); exit status 8, as a data folder that
    refuses a write."""

    exit_code = 8

    def __init__(self, location: str, doing: str, cause: object) -> None:
        """``location``: already redacted; ``doing`` completes "cannot ..."."""
        reason = " ".join(str(cause).split())
        super().__init__(
            f"cannot {doing} in KASSA_DATA_DIR={location!r}: {reason}; check the store's "
            "credentials (for S3: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or "
            "the instance role), that the bucket exists and that its endpoint answers"
        )
        self.location = location
