"""What ``/health`` reports besides Redis and Kafka (:mod:`storage.kafka.probe`): the last
daily run, the newest manifest under ``KASSA_DATA_DIR``."""

from __future__ import annotations

from typing import Any

from common.settings import Settings
from jobs.daily.exceptions import ManifestUnreadable
from jobs.daily.lock import DayLocks
from jobs.daily.status import day_status
from storage import parquet


def last_daily_run(settings: Settings) -> dict[str, Any] | None:
    """The newest daily manifest under ``KASSA_DATA_DIR`` in brief, with its day and state
    (:meth:`jobs.daily.status.DayStatus.summary_json`); an unreadable one is reported."""
    days = parquet.manifest_days(settings.data_dir)
    if not days:
        return None
    try:
        status = day_status(settings.data_dir, days[-1], DayLocks.of(settings))
    except ManifestUnreadable as exc:
        return {"day": days[-1].isoformat(), "state": "unreadable", "reason": str(exc)}
    summary = status.summary_json()
    if summary is None:
        return None
    return {"day": days[-1].isoformat(), "state": status.state, **summary}
