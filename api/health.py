"""What ``/health`` reports besides Redis and Kafka (:mod:`storage.kafka.probe`): the last
daily run, the newest manifest under ``KASSA_DATA_DIR``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from storage import parquet
from storage.rankings import manifest_summary


def last_daily_run(data_dir: Path) -> dict[str, Any] | None:
    """The summary of the newest daily manifest under ``data_dir``, with its day."""
    days = parquet.manifest_days(data_dir)
    if not days:
        return None
    manifest = parquet.read_manifest(data_dir, days[-1])
    if manifest is None:
        return None
    return {"day": days[-1].isoformat(), **manifest_summary(manifest)}
