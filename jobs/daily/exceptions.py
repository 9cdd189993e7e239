"""Errors of the daily job; ``exit_code`` is the status ``kassa daily`` exits with."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from common.errors import KassaError, RedisUnavailableError
from common.redaction import RedisPlace
from common.settings.location import DataLocation


class DailyError(KassaError):
    """Base class of the daily job's errors."""

    exit_code = 2


class IncompleteDay(DailyError):  # noqa: N818 - reads as "raise IncompleteDay(...)"
    """Some partitions have no record past the day's end plus the lateness margin yet."""

    exit_code = 3

    def __init__(self, day: date, topic: str, behind: Sequence[tuple[int, str]]) -> None:
        listed = "; ".join(f"partition {partition}: {why}" for partition, why in behind)
        super().__init__(
            f"day {day} is not complete in topic {topic!r}: {len(behind)} partition(s) "
            f"behind ({listed}); wait for newer records, or pass --force to finalize anyway"
        )
        self.day = day
        self.partitions = [partition for partition, _ in behind]


class RedisWriteError(RedisUnavailableError, DailyError):
    """The day's Parquet files are written but Redis could not be updated."""

    exit_code = 5
    advice = (
        "the Parquet files are written but the day is not finished (no manifest): "
        "start Redis and run the day again"
    )

    def __init__(self, target: str | RedisPlace, day: date, cause: object) -> None:
        super().__init__(target, f"write the rankings of {day} to", cause)
        self.day = day


class DayLockUnavailable(RedisUnavailableError, DailyError):  # noqa: N818 - reads as a state
    """The Redis lock of a day (object-store ``KASSA_DATA_DIR``) could not be taken or kept."""

    exit_code = 5
    advice = (
        "nothing of the day was published (its previous snapshot stays): start Redis, where "
        "runs of an object-store KASSA_DATA_DIR take their lock, and run the day again"
    )

    def __init__(self, target: str | RedisPlace, day: date, cause: object) -> None:
        super().__init__(target, f"hold the lock of {day} in", cause)
        self.day = day


class DayLockLost(DailyError):  # noqa: N818 - reads as "raise DayLockLost(...)"
    """A run's Redis lock of its day expired before the run published its manifest."""

    exit_code = 5

    def __init__(self, day: date, seconds: int) -> None:
        super().__init__(
            f"the lock of {day} expired before this run published its manifest (it was not "
            f"renewed within KASSA_DAILY_LOCK_SECONDS={seconds}: the process stalled or Redis "
            "was out of reach), so another run may hold the day; this run published nothing. "
            f"Run the day again, with a larger KASSA_DAILY_LOCK_SECONDS if it stalls"
        )
        self.day = day


class RetentionGap(DailyError):  # noqa: N818 - reads as "raise RetentionGap(...)"
    """The broker no longer holds part of the day's range (retention deleted it)."""

    exit_code = 6

    def __init__(self, day: date, topic: str, gaps: Sequence[tuple[int, int]]) -> None:
        listed = "; ".join(
            f"partition {partition}: records before offset {low} are deleted"
            for partition, low in gaps
        )
        super().__init__(
            f"day {day} is partly deleted from topic {topic!r} (low watermark inside the day's "
            f"range: {listed}); its snapshot is kept. Pass --force to finalize what is left "
            "(a snapshot with more checkouts is never replaced)"
        )
        self.day = day
        self.partitions = [partition for partition, _ in gaps]


class SnapshotKept(DailyError):  # noqa: N818 - reads as "raise SnapshotKept(...)"
    """A forced run over a partly deleted day found fewer checkouts than the day's snapshot."""

    exit_code = 7

    def __init__(self, day: date, found: int, kept: int, revision: int) -> None:
        super().__init__(
            f"day {day}: the broker now holds {found} checkout(s) of it, the snapshot (revision "
            f"{revision}) has {kept}; retention deleted part of the day, so the snapshot and "
            "ranking are kept unchanged"
        )
        self.day = day
        self.found = found
        self.kept = kept


class LiveRepairRefused(DailyError):  # noqa: N818 - reads as "raise LiveRepairRefused(...)"
    """``--repair-live`` found the stream job behind the day's range: live left as it was."""

    exit_code = 3

    def __init__(self, day: date, behind: dict[int, tuple[int, int]]) -> None:
        listed = "; ".join(
            f"partition {p}: live watermark {mark}, range ends at offset {end}"
            for p, (mark, end) in sorted(behind.items())
        )
        super().__init__(
            f"day {day} is finished, but its live figures were NOT repaired: the stream job "
            f"has not applied the whole day yet ({listed}); a repair now would count the "
            "records it applies later twice. Let 'kassa stream' catch up, then run "
            f"'kassa daily run --day {day} --repair-live' again"
        )
        self.day = day
        self.partitions = sorted(behind)


class SnapshotUnusable(DailyError):  # noqa: N818 - reads as "raise SnapshotUnusable(...)"
    """A finalized day cannot be republished to Redis from its Parquet snapshot."""

    exit_code = 2

    def __init__(self, day: date, problem: str) -> None:
        super().__init__(
            f"day {day} cannot be republished to Redis from its snapshot: {problem}; run it "
            f"again from Kafka with 'kassa daily run --day {day}'"
        )
        self.day = day


class ManifestUnreadable(DailyError):  # noqa: N818 - reads as "raise ManifestUnreadable(...)"
    """A day's manifest file does not decode as a manifest (:mod:`jobs.daily.manifest`)."""

    exit_code = 2

    def __init__(self, day: date, path: DataLocation, problem: str) -> None:
        super().__init__(
            f"the daily manifest of {day} at {path} cannot be read: {problem}; rewrite it by "
            f"running the day again with 'kassa daily run --day {day}'"
        )
        self.day = day
        self.path = path


class DataWriteError(DailyError):
    """The data folder refused a write (a full disk, a read-only or foreign folder)."""

    exit_code = 8

    def __init__(self, data_dir: Path, day: date, cause: OSError) -> None:
        where = f" ({cause.filename})" if cause.filename else ""
        super().__init__(
            f"cannot write the snapshot of {day} under KASSA_DATA_DIR={str(data_dir)!r}: "
            f"{cause.strerror or cause}{where}; free space on that disk (or make the folder "
            f"writable) and run the day again: its previous snapshot is unchanged"
        )
        self.day = day


class InvalidShareExceeded(DailyError):  # noqa: N818 - reads as "raise InvalidShareExceeded(...)"
    """More of the day's records are invalid than ``KASSA_DAILY_MAX_INVALID_SHARE`` allows."""

    exit_code = 10

    def __init__(self, day: date, headline: str, invalid: dict[str, int]) -> None:
        super().__init__(
            f"day {day} NOT finalized: {headline}; fix the cause (the producers, or a setting "
            f"such as KASSA_SCHEMA_VERSIONS) and run it again, or finalize it anyway with "
            f"'kassa daily run --day {day} --force'"
        )
        self.day = day
        self.invalid = invalid
        """The invalid records by reason."""
