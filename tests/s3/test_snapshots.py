"""Snapshots on a real S3 server (S3Proxy): publication through the manifest, a crash before
it, the Redis day lock across processes, the republish, the API and ``kassa daily status``."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow.dataset as ds
import redis

from common.settings import Settings
from jobs.daily.job import run_day
from jobs.daily.lock import DayLocks
from jobs.daily.manifest import Manifest, read_manifest
from jobs.daily.republish import read_snapshot, republish_stale
from jobs.daily.status import day_status
from storage import keys, parquet
from storage.figures import COLUMNS
from storage.location import ObjectStore, open_store
from tests.api.helpers import get, serving
from tests.helpers import KASSA, run_kassa, settings_env, wait_until
from tests.jobs.daily.helpers import (
    Expected,
    expected_of,
    produce_four_store_day,
    utc,
)

DAY = date(2026, 11, 20)
QUIET_SECONDS = 2.0
"""How long the store must stay unchanged before a run waiting on Redis is killed."""


def _store(settings: Settings) -> ObjectStore:
    store = open_store(settings.data_dir)
    assert isinstance(store, ObjectStore)
    return store


def _objects(settings: Settings) -> dict[str, bytes]:
    """Every object under the test's prefix, with its content."""
    store = _store(settings)
    return {path: store.read_bytes(path) or b"" for path in store.files("")}


def _table(settings: Settings, manifest: Manifest, table: parquet.Table) -> pl.DataFrame:
    """``table`` of ``manifest``'s revision, read through the manifest."""
    return parquet.scan_table(settings.data_dir, manifest.tables[table].path).collect()


def _figures(frame: pl.DataFrame) -> Expected:
    return {sku: tuple(row) for sku, *row in frame.select("sku", *COLUMNS).iter_rows()}


def _published(manifest: Manifest) -> set[str]:
    """The objects of a day published by ``manifest``: its own, the hive copies, itself."""
    revision = {table.path for table in manifest.tables.values()}
    hive = {parquet.table_file(table, manifest.day) for table in parquet.TABLES}
    return revision | hive | {parquet.manifest_file(manifest.day)}


def _other_runs(settings: Settings, manifest: Manifest) -> list[str]:
    """The objects of ``manifest``'s day written by other runs than its own."""
    folder = parquet.revision_folder(manifest.day)
    return [
        path
        for path in _store(settings).files(folder)
        if not path.startswith(f"{folder}/{manifest.run_id}/")
    ]


def _quiet(settings: Settings, seconds: float, timeout: float = 60) -> None:
    """Return once the objects under the test's prefix stayed the same for ``seconds``."""
    deadline = time.monotonic() + timeout
    seen, since = _objects(settings), time.monotonic()
    while time.monotonic() - since < seconds:
        assert time.monotonic() < deadline, f"the objects kept changing for {timeout} s"
        time.sleep(0.2)
        now = _objects(settings)
        if now != seen:
            seen, since = now, time.monotonic()


def _hive_rows(settings: Settings, table: parquet.Table) -> int:
    """The rows a reader listing the hive folders of ``table`` sees (pyarrow dataset)."""
    store = _store(settings)
    found = ds.dataset(
        store.path(table), filesystem=store.filesystem, format="parquet", partitioning="hive"
    )
    return int(found.count_rows())


def test_a_day_is_written_rerun_as_revision_2_and_read_back_exact(
    s3_settings: Settings, tmp_path: Path
) -> None:
    sales = produce_four_store_day(s3_settings)
    expected = expected_of(sales, DAY, s3_settings.zone)

    first = run_day(s3_settings, DAY).manifest

    assert first.revision == 1
    for table in parquet.TABLES:
        assert (
            first.tables[table].path == f"_revisions/date=2026-11-20/{first.run_id}/{table}.parquet"
        )
    objects = _objects(s3_settings)
    assert set(objects) == _published(first)
    for table in parquet.TABLES:
        assert objects[parquet.table_file(table, DAY)] == objects[first.tables[table].path]
        assert first.tables[table].size == len(objects[first.tables[table].path])
    assert _figures(_table(s3_settings, first, "daily_item_sales")) == expected
    assert read_manifest(s3_settings.data_dir, DAY) == first

    second = run_day(s3_settings, DAY).manifest

    assert (second.revision, second.revision_reason) == (2, "run again")
    assert set(_objects(s3_settings)) == _published(second), "revision 1's objects are gone"
    assert _figures(_table(s3_settings, second, "daily_item_sales")) == expected
    assert _hive_rows(s3_settings, "daily_item_sales") == second.tables["daily_item_sales"].rows
    assert _hive_rows(s3_settings, "sales_lines") == second.counts.lines

    local = s3_settings.model_copy(update={"data_dir": tmp_path / "local"})
    run_day(local, DAY)
    for table in parquet.TABLES:
        on_disk = pl.read_parquet(parquet.table_path(tmp_path / "local", table, DAY))
        assert _table(s3_settings, second, table).equals(on_disk), table


def test_a_run_killed_between_its_objects_and_its_manifest_leaves_revision_1_whole(
    s3_settings: Settings, redis_client: redis.Redis
) -> None:
    settings = s3_settings.model_copy(update={"daily_lock_seconds": 3})
    sales = produce_four_store_day(settings)
    first = run_day(settings, DAY).manifest
    before = _objects(settings)
    lock = keys.day_lock_key(settings.key_space, DAY)

    child = subprocess.Popen(
        [*KASSA, "daily", "run", "--day", str(DAY), "--quiet"],
        env=settings_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not redis_client.exists(lock):  # polled tightly: the run writes Redis soon after
            assert child.poll() is None and time.monotonic() < deadline, "no lock taken"
        # Redis now refuses every write, so the run cannot stage its keys, swap them or write
        # its manifest (it does so only after the swap): it uploads its objects and waits.
        redis_client.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")
        try:
            wait_until(
                lambda: len(_other_runs(settings, first)) == len(parquet.TABLES),
                60,
                "the second run's four objects",
            )
            _quiet(settings, QUIET_SECONDS)  # whatever the run does without Redis, it has done
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        finally:
            redis_client.execute_command("CLIENT", "UNPAUSE")
    finally:
        if child.poll() is None:
            child.kill()

    after = _objects(settings)
    orphans = set(after) - set(before)
    assert {path.rsplit("/", 1)[1] for path in orphans} == {
        f"{table}.parquet" for table in parquet.TABLES
    }
    assert {path: after.get(path) for path in before} == before, "revision 1 untouched"
    assert read_manifest(settings.data_dir, DAY) == first
    items, snapshot = read_snapshot(settings.data_dir, DAY, first)
    assert _figures(items) == expected_of(sales, DAY, settings.zone)
    assert snapshot.totals == first.totals.in_units()
    assert _hive_rows(settings, "daily_item_sales") == first.tables["daily_item_sales"].rows

    wait_until(
        lambda: day_status(settings.data_dir, DAY, DayLocks.of(settings)).state == "complete",
        10,
        "the killed run's lock to expire",
    )
    again = run_day(settings, DAY).manifest
    assert again.revision == 2
    assert set(_objects(settings)) == _published(again), "the killed run's objects are gone"


def test_a_run_whose_redis_lock_expired_under_it_publishes_nothing(
    s3_settings: Settings, redis_client: redis.Redis
) -> None:
    produce_four_store_day(s3_settings)
    first = run_day(s3_settings, DAY).manifest
    before = _objects(s3_settings)
    lock = keys.day_lock_key(s3_settings.key_space, DAY)

    child = subprocess.Popen(
        [*KASSA, "daily", "run", "--day", str(DAY), "--quiet"],
        env=settings_env(s3_settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not redis_client.exists(lock):  # polled tightly, as in the test above
        assert child.poll() is None and time.monotonic() < deadline, "no lock taken"
    redis_client.delete(lock)  # what its expiry does: the run stalled past its time to live
    _, stderr = child.communicate(timeout=120)

    assert child.returncode == 5, stderr
    (line,) = stderr.strip().splitlines()
    assert f"the lock of {DAY} expired before this run published its manifest" in line
    assert "this run published nothing" in line
    assert read_manifest(s3_settings.data_dir, DAY) == first
    after = _objects(s3_settings)
    assert {path: after.get(path) for path in before} == before, "revision 1 untouched"


def test_two_runs_of_a_day_in_two_processes_take_turns_through_the_redis_lock(
    s3_settings: Settings,
) -> None:
    produce_four_store_day(s3_settings)
    env = settings_env(s3_settings)
    command = [*KASSA, "daily", "run", "--day", str(DAY), "--quiet", "--json"]
    children = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs

    runs = sorted((json.loads(out) for out, _ in outputs), key=lambda run: run["revision"])
    assert [run["revision"] for run in runs] == [1, 2]
    assert datetime.fromisoformat(runs[1]["run_at"]) >= datetime.fromisoformat(
        runs[0]["finished_at"]
    ), "the second run started after the first finished"
    final = read_manifest(s3_settings.data_dir, DAY)
    assert final is not None and final.run_id == runs[1]["run_id"]
    assert set(_objects(s3_settings)) == _published(final)


def test_a_flushed_redis_is_republished_from_the_s3_snapshot(
    s3_settings: Settings, redis_client: redis.Redis
) -> None:
    produce_four_store_day(s3_settings)
    run_day(s3_settings, DAY)
    space = s3_settings.key_space
    ranking = keys.day_key(space, "daily", DAY, "units")
    written = redis_client.zrange(ranking, 0, -1, withscores=True)
    summary = redis_client.hgetall(keys.manifest_key(space, DAY))
    del summary[b"finished_at"]  # the staged summary's time; the republish restores the manifest's

    redis_client.flushdb()
    assert republish_stale(s3_settings, [DAY], utc(2026, 11, 21, 3)) == [DAY]

    assert redis_client.zrange(ranking, 0, -1, withscores=True) == written
    restored = redis_client.hgetall(keys.manifest_key(space, DAY))
    assert {field: value for field, value in restored.items() if field in summary} == summary


def test_the_api_and_daily_status_read_the_s3_snapshot(s3_settings: Settings) -> None:
    produce_four_store_day(s3_settings)
    manifest = run_day(s3_settings, DAY).manifest

    status = run_kassa(
        "daily", "status", "--to", str(DAY), "--days", "1", "--json",
        env=settings_env(s3_settings), timeout=60,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    (entry,) = json.loads(status.stdout)
    assert (entry["state"], entry["revision"], entry["run_id"]) == (
        "complete",
        1,
        manifest.run_id,
    )
    assert entry["checkouts"] == manifest.totals.checkouts
    assert entry["redis"] == "current"

    with serving(s3_settings, probe_kafka=False) as base:
        code, days = get(f"{base}/api/days?from={DAY}&to={DAY}")
        assert code == 200
        assert days["days"][0]["state"] == "complete"
        code, body = get(f"{base}/api/manifests/{DAY}")
        assert code == 200
        assert body["run_id"] == manifest.run_id
        code, missing = get(f"{base}/api/manifests/{DAY - timedelta(days=1)}")
        assert code == 404
        assert "$KASSA_DATA_DIR/_manifests/date=2026-11-19/manifest.json" in missing["detail"]
        code, health = get(f"{base}/health")
        assert health["daily"]["day"] == str(DAY)
        assert health["daily"]["run_id"] == manifest.run_id
