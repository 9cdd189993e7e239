"""The daily job's errors: kassa's shared ones, with the daily exit statuses."""

from __future__ import annotations

import pickle
from datetime import date

from common.errors import RedisUnavailableError
from jobs.daily.exceptions import (
    DailyError,
    RedisWriteError,
    RetentionGap,
    SnapshotKept,
)


def test_redis_down_means_parquet_written_and_the_day_unfinished() -> None:
    error = RedisWriteError("redis://127.0.0.1:1/1", date(2026, 11, 20), "refused")

    copy: RedisWriteError = pickle.loads(pickle.dumps(error))

    assert (
        str(copy)
        == str(error)
        == (
            "cannot write the rankings of 2026-11-20 to Redis at "
            "KASSA_REDIS_URL='redis://127.0.0.1:1/1' (refused); the Parquet files are written "
            "but the day is not finished (no manifest): start Redis and run the day again"
        )
    )
    assert isinstance(copy, RedisUnavailableError)
    assert isinstance(copy, DailyError)
    assert copy.exit_code == 5
    assert copy.day == date(2026, 11, 20)


def test_retention_refusals_name_partitions_offsets_and_their_exit_statuses() -> None:
    gap = RetentionGap(date(2026, 11, 20), "sales", [(0, 20), (2, 7)])
    kept = SnapshotKept(date(2026, 11, 20), 10, 30, 1)

    assert gap.exit_code == 6
    assert gap.partitions == [0, 2]
    assert "partition 0: records before offset 20 are deleted" in str(gap)
    assert "partition 2: records before offset 7 are deleted" in str(gap)
    assert "--force" in str(gap)
    assert kept.exit_code == 7
    assert str(pickle.loads(pickle.dumps(kept))) == str(kept)
    assert "holds 10 checkout(s) of it, the snapshot (revision 1) has 30" in str(kept)
