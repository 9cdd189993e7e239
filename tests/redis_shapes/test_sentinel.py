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

import pytest
from pydantic import SecretStr

from common.settings import Settings
from jobs.daily.job import run_day
from storage import parquet
from storage.connections import open_redis
from storage.kafka.topics import ensure_topics
from tests.conftest import Services, fresh_settings
from tests.helpers import free_port, one_error_line, run_kassa, settings_env, wait_until
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
from tests.redis_shapes.conftest import Sentinels, on_sentinels, started_sentinels

ACCESS_REFUSED = 9
"""kassa's exit status when Kafka or Redis refuses it (docs/operations.md)."""
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


SENTINEL_PASSWORD = "sentinels-own-Pw-31"


def test_sentinels_refusing_kassas_login_stop_a_command_in_one_line_with_exit_status_9(
    services: Services, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Sentinels requiring a password (``requirepass``) refuse kassa without it or with a
    wrong one: ``kassa top`` and the stream job stop at once (retrying cannot help), naming
    the Sentinels' login settings, never the password; with it, kassa counts through them."""
    wrong = "not-the-sentinels-password"
    with started_sentinels(tmp_path / "redis", SecretStr(SENTINEL_PASSWORD)) as shape:
        url = f"redis://{shape.master.address}/0"
        settings = fresh_settings(request, tmp_path, services.kafka.bootstrap, url)
        # the master is found through the Sentinels: a client ignoring them finds no server
        nowhere = f"redis://127.0.0.1:{free_port()}/0"
        settings = on_sentinels(settings.model_copy(update={"redis_url": nowhere}), shape)
        ensure_topics(settings)
        checkouts = valid_checkouts(20, seed=7, day=DAY)
        publish_checkouts(settings, checkouts)
        top = ("top", "--day", DAY.isoformat())
        for given, command in (
            (None, top),
            (wrong, top),
            (wrong, ("stream", "--idle-timeout", "3")),
        ):
            password = None if given is None else SecretStr(given)
            env = settings_env(settings.model_copy(update={"redis_sentinel_password": password}))
            result = run_kassa(*command, env=env)
            assert result.returncode == ACCESS_REFUSED, result.stderr[-2000:]
            line = one_error_line(result.stderr)
            assert "the Sentinels refused kassa's login" in line
            assert "KASSA_REDIS_SENTINEL_PASSWORD" in line
            assert f"KASSA_REDIS_SENTINELS={shape.addresses!r}" in line
            assert SENTINEL_PASSWORD not in result.stdout + result.stderr
            assert wrong not in result.stdout + result.stderr

        allowed = settings.model_copy(
            update={"redis_sentinel_password": SecretStr(SENTINEL_PASSWORD)}
        )
        env = settings_env(allowed)
        counted = run_kassa("stream", "--idle-timeout", "3", env=env)
        assert counted.returncode == 0, counted.stderr[-2000:]
        client = open_redis(allowed)
        try:
            assert_exact(client, allowed, checkouts)
        finally:
            client.close()
        ranked = run_kassa(*top, env=env)
        assert ranked.returncode == 0, ranked.stderr[-2000:]
        assert f"live ranking by units for {DAY}" in ranked.stdout
