"""The lock that serializes runs of one business day (across processes)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from common.settings import Settings
from storage import parquet


@contextmanager
def day_lock(settings: Settings, day: date) -> Iterator[None]:
    """Hold the day's lock file: a second run of the same day waits for the first."""
    path = parquet.lock_path(settings.data_dir, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
