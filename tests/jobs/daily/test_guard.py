"""The invalid-share guard: a day whose records are mostly invalid (here: version 2 checkouts
while the jobs read only version 1) is not finalized, says why in one line, stays unfinished
in the scheduler and in ``kassa daily status``; ``--force`` finalizes it, marked; widening
``KASSA_SCHEMA_VERSIONS`` lets the scheduler finalize it exactly."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime

from common.settings import Settings
from jobs.daily.manifest import read_manifest
from jobs.daily.refusals import read_refusal
from jobs.daily.scheduler import Scheduler
from jobs.daily.status import day_status
from producers.synthetic import generate
from storage import parquet
from tests.helpers import run_kassa, settings_env
from tests.jobs.daily.helpers import expected_of, parquet_figures, produce, seal, utc

DAY = date(2026, 11, 16)
PASS_AT = utc(2026, 11, 17, 2, 30)
"""When the scheduler's pass for DAY runs."""


class Clock:
    """The scheduler's clock, fixed."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _half_upgraded_day(settings: Settings) -> tuple[list[object], int]:
    """DAY's checkouts from a fleet half on version 2 (and a sealed next day); the
    checkouts and how many are version 2."""
    checkouts = list(generate(21, datetime(2026, 11, 16, 9, tzinfo=UTC), 300, versions="mix"))
    produce(settings, checkouts)
    seal(settings, utc(2026, 11, 17, 1, 30))
    return checkouts, sum(1 for checkout in checkouts if checkout.schema_version == 2)


def _sample(daily: Scheduler, name: str, **labels: str) -> float | None:
    return daily.metrics.registry.get_sample_value(name, labels or None)


def test_a_day_over_the_invalid_share_is_not_finalized_until_forced(settings: Settings) -> None:
    window = settings.model_copy(update={"daily_catchup_days": 0, "schema_versions": "1"})
    checkouts, upgraded = _half_upgraded_day(window)
    records = len(checkouts) + 3 * window.daily_lookahead_records
    share = upgraded / records
    assert share > window.daily_max_invalid_share == 0.05

    daily = Scheduler(window, Clock(PASS_AT))
    assert daily.run_pass() == []
    assert daily.run_pass() == []  # refused under the same rules: left to an operator

    assert read_manifest(window.data_dir, DAY) is None
    assert not parquet.table_path(window.data_dir, "daily_item_sales", DAY).exists()
    assert day_status(window.data_dir, DAY).state == "invalid-share"
    assert _sample(daily, "kassa_daily_runs_total", outcome="invalid_share") == 1
    assert _sample(daily, "kassa_daily_days_refused") == 1
    assert (
        _sample(daily, "kassa_daily_invalid_records_total", reason="unsupported_version")
        == upgraded
    )
    status = run_kassa("daily", "status", "--to", str(DAY), "--days", "1", env=settings_env(window))
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(f"{DAY} invalid-share")
    assert "NOT finalized" in status.stdout
    assert f"unsupported_version {upgraded:,}" in status.stdout

    run = run_kassa("daily", "run", "--day", str(DAY), "--quiet", env=settings_env(window))

    assert run.returncode == 10, run.stderr
    [line] = run.stderr.splitlines()
    assert f"{share:.1%} of {records:,} records invalid (unsupported_version {upgraded:,})" in line
    assert "KASSA_DAILY_MAX_INVALID_SHARE=0.05" in line
    assert "--force" in line
    assert read_manifest(window.data_dir, DAY) is None

    forced = run_kassa(
        "daily", "run", "--day", str(DAY), "--quiet", "--force", "--json", env=settings_env(window)
    )

    assert forced.returncode == 0, forced.stderr
    manifest = json.loads(forced.stdout)
    assert manifest["invalid_share_forced"] is True
    assert re.search(r"FORCED although \d+\.\d% of .* records invalid", manifest["revision_reason"])
    assert manifest["counts"]["invalid"] == {"unsupported_version": upgraded}
    assert read_refusal(window.data_dir, DAY) is None
    assert day_status(window.data_dir, DAY).state == "complete"
    v1 = [checkout for checkout in checkouts if checkout.schema_version == 1]  # type: ignore[attr-defined]
    daily_figures = parquet_figures(parquet.table_path(window.data_dir, "daily_item_sales", DAY))
    assert daily_figures == expected_of(v1, DAY, window.zone)  # type: ignore[arg-type]
    assert daily.run_pass() == []  # an operator's decision is not revisited


def test_the_scheduler_finalizes_a_refused_day_once_its_version_is_accepted(
    settings: Settings,
) -> None:
    before = settings.model_copy(update={"daily_catchup_days": 0, "schema_versions": "1"})
    checkouts, _ = _half_upgraded_day(before)
    assert Scheduler(before, Clock(PASS_AT)).run_pass() == []
    assert day_status(before.data_dir, DAY).state == "invalid-share"

    after = before.model_copy(update={"schema_versions": "1,2"})
    [result] = Scheduler(after, Clock(PASS_AT)).run_pass()

    assert result.day == DAY
    assert result.manifest.counts.invalid == {}
    assert not result.manifest.invalid_share_forced
    assert read_refusal(after.data_dir, DAY) is None
    assert day_status(after.data_dir, DAY).state == "complete"
    daily_figures = parquet_figures(parquet.table_path(after.data_dir, "daily_item_sales", DAY))
    assert daily_figures == expected_of(checkouts, DAY, after.zone)  # type: ignore[arg-type]
