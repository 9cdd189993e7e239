"""``kassa daily`` as a user runs it: exit statuses, summaries, and the documented readers."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow.dataset as ds
import pytest

from common.settings import Settings
from jobs.daily.job import day_lock, run_day
from storage import keys, parquet
from storage.connections import open_redis
from tests.helpers import KASSA, free_port, noon_zone, run_kassa, settings_env
from tests.jobs.daily.helpers import checkout, produce, seal, utc


def _kassa(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return run_kassa(*args, env=settings_env(settings))


def test_backfill_prints_a_line_per_day_and_the_documented_readers_work(
    settings: Settings,
) -> None:
    produce(settings, [checkout("a", utc(2026, 11, 19, 9), [("soap", 2, "1.10")])])
    produce(settings, [checkout("b", utc(2026, 11, 20, 9), [("tea", 3, "2.00")])])
    seal(settings, utc(2026, 11, 22))

    done = _kassa(settings, "daily", "backfill", "--from", "2026-11-19", "--to", "2026-11-20")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("2026-11-19 complete: 1 checkouts, 1 lines, 2 units")
    assert lines[1].startswith("2026-11-20 complete: 1 checkouts, 1 lines, 3 units")

    data = settings.data_dir
    items = pl.scan_parquet(f"{data}/daily_item_sales/**/*.parquet", hive_partitioning=True)
    day = items.filter(pl.col("date") == pl.date(2026, 11, 20)).collect()
    assert day.select("sku", "units").rows() == [("tea", 3)]
    dataset = ds.dataset(data / "daily_item_sales", format="parquet", partitioning="hive")
    table = dataset.to_table(filter=ds.field("date") == "2026-11-19")
    assert table.column("sku").to_pylist() == ["soap"]


def test_bad_input_exits_2(settings: Settings) -> None:
    assert _kassa(settings, "daily", "run", "--day", "2026-13-01").returncode == 2
    backwards = _kassa(settings, "daily", "backfill", "--from", "2026-11-20", "--to", "2026-11-19")
    assert backwards.returncode == 2
    assert "--from 2026-11-20 is after --to 2026-11-19" in backwards.stderr


def _schedule_until_first_wait(settings: Settings) -> str:
    """Run ``kassa daily schedule`` through its catch-up to its first wait, then Ctrl-C it;
    its log up to the wait."""
    child = subprocess.Popen(
        [*KASSA, "daily", "schedule"], env=settings_env(settings), stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stderr is not None
        lines = []
        for line in child.stderr:
            lines.append(line)
            if "daily job scheduled" in line:
                break
        port = settings.daily_metrics_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as health:
            assert json.loads(health.read())["state"] == "running"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as metrics:
            text = metrics.read().decode()
        child.send_signal(signal.SIGINT)
        assert child.wait(30) == 130
    finally:
        child.kill()
        child.wait()
        if child.stderr is not None:
            child.stderr.close()
    return "".join(lines) + text


@pytest.mark.parametrize(("minutes", "finished"), [(-2, 2), (30, 1)])
def test_schedule_catches_up_the_days_due_then_waits_until_interrupted(
    settings: Settings, minutes: int, finished: int
) -> None:
    # KASSA_DAILY_AT just before "now" makes yesterday due, just after it not yet: both
    # sides are proven at any hour, in a zone where "now" is about noon.
    now = datetime.now(UTC)
    zone = ZoneInfo(noon_zone(now))
    daily_at = (now.astimezone(zone) + timedelta(minutes=minutes)).time().replace(microsecond=0)
    window = settings.model_copy(
        update={
            "daily_catchup_days": 1,
            "daily_metrics_port": free_port(),
            "timezone": str(zone),
            "daily_at": daily_at,
        }
    )
    log = _schedule_until_first_wait(window)
    assert f"daily run finished {finished} day(s)" in log, log
    assert "next run" in log
    assert f'kassa_daily_runs_total{{outcome="complete"}} {finished}.0' in log
    yesterday = now.astimezone(zone).date() - timedelta(days=1)
    expected = [yesterday - timedelta(days=1), yesterday][:finished]
    assert parquet.manifest_days(window.data_dir) == expected


def test_status_lists_each_state_from_the_manifests(settings: Settings) -> None:
    idle_soon = settings.model_copy(update={"daily_idle_margin_seconds": 366 * 86_400})
    produce(settings, [checkout("a", utc(2026, 11, 17, 9), [("soap", 2, "1.10")])], partition=0)
    produce(settings, [checkout("b", utc(2026, 11, 18, 9), [("tea", 1, "2")])], partition=1)
    run_day(settings, date(2026, 11, 16))
    run_day(settings, date(2026, 11, 17))
    run_day(idle_soon, date(2026, 11, 18), force=True)  # partitions not idle yet: forced
    # A late record of 2026-11-17 on partition 0, found by the run of 2026-11-19.
    produce(settings, [checkout("late", utc(2026, 11, 17, 21), [("soap", 1, "1.10")])], partition=0)
    run_day(settings, date(2026, 11, 19))
    run_day(settings, date(2026, 11, 16))  # a second revision
    lines = {}
    with day_lock(settings, date(2026, 11, 21)):
        shown = _kassa(settings, "daily", "status", "--days", "6", "--to", "2026-11-21")
        as_json = _kassa(settings, "daily", "status", "--days", "6", "--to", "2026-11-21", "--json")
    assert shown.returncode == 0, shown.stderr
    for line in shown.stdout.splitlines():
        day, state, *_ = line.split()
        lines[day] = state
    assert lines == {
        "2026-11-21": "running",
        "2026-11-20": "missing",
        "2026-11-19": "complete",
        "2026-11-18": "forced",
        "2026-11-17": "late-pending",
        "2026-11-16": "restated",
    }
    assert "1 late records pending" in shown.stdout
    entries = {entry["day"]: entry for entry in json.loads(as_json.stdout)}
    assert entries["2026-11-17"]["late_pending"] == 1
    assert entries["2026-11-16"]["revision"] == 2
    assert entries["2026-11-19"]["completeness"] == {"idle": 3}
    assert {day: entry["redis"] for day, entry in entries.items()} == {
        "2026-11-21": None,
        "2026-11-20": None,
        "2026-11-19": "current",
        "2026-11-18": "current",
        "2026-11-17": "current",
        "2026-11-16": "current",
    }
    assert shown.stdout.count("; Redis: current") == 4

    with closing(open_redis(settings)) as client:
        client.delete(keys.manifest_key(settings.key_space, date(2026, 11, 19)))
    lost = _kassa(settings, "daily", "status", "--days", "1", "--to", "2026-11-19")
    assert lost.stdout.endswith(
        "; Redis: missing from Redis (restored from an older copy, or flushed?)\n"
    ), lost.stdout


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MB file system (tmpfs) of the test's own, to fill up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(f"the full-disk test mounts a small tmpfs and needs root: {mounted.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> None:
    """Write into ``folder`` until its file system has no byte left."""
    with (folder / "filler").open("wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65_536)
                filler.flush()
        except OSError:
            pass


def test_a_full_data_disk_is_one_line_and_status_8_and_the_previous_snapshot_stays(
    settings: Settings, small_disk: Path
) -> None:
    settings = settings.model_copy(update={"data_dir": small_disk / "data"})
    day = date(2026, 11, 20)
    produce(
        settings,
        [checkout(f"t{n}", utc(2026, 11, 20, 9), [("soap", 1, "1.10")]) for n in range(50)],
    )
    seal(settings, utc(2026, 11, 22))
    assert _kassa(settings, "daily", "run", "--day", str(day), "--quiet").returncode == 0
    before = parquet.read_manifest_bytes(settings.data_dir, day)
    _fill(small_disk)

    full = _kassa(settings, "daily", "run", "--day", str(day), "--quiet")

    assert full.returncode == 8, full.stderr
    errors = [line for line in full.stderr.splitlines() if line.startswith("kassa: error:")]
    assert len(errors) == 1, full.stderr
    assert f"KASSA_DATA_DIR={str(settings.data_dir)!r}" in errors[0]
    assert "No space left on device" in errors[0]
    assert "free space on that disk" in errors[0]
    assert "unexpected" not in full.stderr
    assert parquet.read_manifest_bytes(settings.data_dir, day) == before
    items = pl.read_parquet(parquet.table_path(settings.data_dir, "daily_item_sales", day))
    assert items["units"].sum() == 50


def test_a_day_beyond_the_calendar_is_refused_before_anything_is_written(
    settings: Settings,
) -> None:
    refused = _kassa(settings, "daily", "run", "--day", "9999-12-31")

    assert refused.returncode == 2, refused.stderr
    assert "9999-12-31" in refused.stderr
    assert not parquet.lock_path(settings.data_dir, date(9999, 12, 31)).parent.exists()
