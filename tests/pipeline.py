"""The whole pipeline on one set of settings, checked against the ground truth: the stream
job's live figures and the daily job's Parquet snapshot of the same checkouts."""

from __future__ import annotations

from datetime import date

from common.settings import Settings
from jobs.daily.job import run_day
from storage import parquet
from storage.connections import open_redis
from tests.jobs.daily.helpers import expected_of, parquet_figures, seal, utc
from tests.jobs.stream.helpers import assert_exact, publish_checkouts, run_once, valid_checkouts

DAY = date(2026, 11, 21)


def assert_pipeline_exact(settings: Settings, count: int = 300, seed: int = 22) -> None:
    """Publish ``count`` checkouts of :data:`DAY`, run the stream job once and the daily job
    for the day: every live figure in Redis and every figure of the daily snapshot is exact."""
    checkouts = valid_checkouts(count, seed=seed, day=DAY)
    publish_checkouts(settings, checkouts)
    run_once(settings)
    client = open_redis(settings)
    try:
        assert_exact(client, settings, checkouts)
    finally:
        client.close()
    seal(settings, utc(2026, 11, 23))
    manifest = run_day(settings, DAY).manifest
    assert manifest.complete
    path = parquet.table_path(settings.data_dir, "daily_item_sales", DAY)
    assert parquet_figures(path) == expected_of(checkouts, DAY, settings.zone)
