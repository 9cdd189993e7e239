"""kassa on a master watched by three Sentinels: every process asks them for the master and
follows a failover. The master killed with SIGKILL while the stream job counts a steady
replay: the replica is promoted (it may be behind the master: a failover loses the writes
it had not received), the job finds Redis behind and recounts from its watermarks, and the
live figures are exact afterwards; the daily job, run after, is exact too."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from common.settings import Settings
from jobs.daily.job import run_day
from storage import parquet
from storage.connections import open_redis
from tests.helpers import wait_until
from tests.jobs.daily.helpers import expected_of, parquet_figures, seal, utc
from tests.jobs.stream.helpers import (
    assert_exact,
    caught_up,
    publish_checkouts,
    start_stream,
    stop_stream,
    valid_checkouts,
    watermark_sum,
)
from tests.pipeline import DAY
from tests.redis_shapes.conftest import Sentinels

RATE = 250
"""Checkouts a second of the steady replay."""


def test_a_sentinel_failover_under_load_leaves_the_live_and_daily_figures_exact(
    sentinels: Sentinels, sentinel_settings: Settings, tmp_path: Path
) -> None:
    settings = sentinel_settings
    before, during = valid_checkouts(600, seed=41, day=DAY), valid_checkouts(2400, seed=42, day=DAY)
    publish_checkouts(settings, before)
    client = open_redis(settings)
    log = tmp_path / "stream.log"
    child = start_stream(settings, log)
    replay = threading.Thread(
        target=publish_checkouts, args=(settings, during), kwargs={"rate": RATE}
    )
    try:
        wait_until(lambda: watermark_sum(client, settings.key_space) > 300, 60, "a first count")
        replay.start()
        counted = watermark_sum(client, settings.key_space)
        wait_until(
            lambda: watermark_sum(client, settings.key_space) > counted + 200,
            60,
            "the job counting the replay",
        )
        master_pid = sentinels.master.pid
        assert master_pid is not None
        os.kill(master_pid, signal.SIGKILL)
        promoted = (sentinels.replica.host, sentinels.replica.port)
        wait_until(lambda: sentinels.master_address() == promoted, 60, "the replica's promotion")
        replay.join(60)
        assert not replay.is_alive()
        wait_until(caught_up(client, settings), 180, "the job to count every checkout")
        assert_exact(client, settings, before + during)
    finally:
        status = stop_stream(child)
        client.close()
    assert status == 0, log.read_text()[-3000:]
    assert "REDIS IS BEHIND" in log.read_text() or "restarting the stream job" in log.read_text()

    seal(settings, utc(2026, 11, 23))
    manifest = run_day(settings, DAY).manifest
    assert manifest.complete
    path = parquet.table_path(settings.data_dir, "daily_item_sales", DAY)
    assert parquet_figures(path) == expected_of(before + during, DAY, settings.zone)
