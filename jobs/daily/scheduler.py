"""``kassa daily schedule``: every business day finalized once it is complete, retried until
it is, restated when late records arrive.

APScheduler 3.x runs a pass (:func:`catch_up`) at ``KASSA_DAILY_AT`` local time every day
and every ``KASSA_DAILY_RETRY_SECONDS`` in between, with ``coalesce`` (missed fire times
collapse into one run) and ``max_instances=1``; a pass also runs once at start. A pass looks
at yesterday and the ``KASSA_DAILY_CATCHUP_DAYS`` days before it whose ``KASSA_DAILY_AT`` has
come (never today): a day without a manifest is run once it is complete (or as forced
``KASSA_DAILY_DEADLINE_SECONDS`` after its end), a day with late records pending is restated,
and a forced day is revisited once complete. A day the invalid-share guard refused
(:mod:`jobs.daily.refusals`) stays unfinished and is run again only once the rules that
judged it changed (e.g. ``KASSA_SCHEMA_VERSIONS``); later days do not wait for it. A
finished day is never run again otherwise;
when Redis does not hold the run of it the manifest names (Redis flushed, or restored from an
older copy), the pass republishes it from its Parquet snapshot (:mod:`jobs.daily.republish`).

APScheduler's ``CronTrigger`` fires twice on the day daylight saving time ends when the run
time falls in the repeated hour (and can then repeat the second time). :class:`DailyTrigger`
fires exactly once per local calendar day instead: at the first instance of the wall-clock
time, or, on the day that time does not exist, at the same time in the offset before the
change (one hour later on the clock).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from common.days import day_bounds, yesterday
from common.metrics import MetricsServer
from common.settings import Settings
from jobs.daily import refusals
from jobs.daily.exceptions import IncompleteDay, InvalidShareExceeded, RetentionGap, SnapshotKept
from jobs.daily.job import run_day
from jobs.daily.lock import DayLocks
from jobs.daily.manifest import read_manifest
from jobs.daily.metrics import DailyMetrics
from jobs.daily.republish import republish_stale
from jobs.daily.run import DayResult
from jobs.daily.status import day_status, day_statuses
from storage import parquet

logger = logging.getLogger(__name__)

JOB_ID = "kassa-daily"
RETRY_JOB_ID = "kassa-daily-retry"


class DailyTrigger(BaseTrigger):  # type: ignore[misc]
    """Fires once per local calendar day at ``at`` in ``zone`` (see the module docstring)."""

    def __init__(self, at: time, zone: ZoneInfo) -> None:
        self.at = at
        self.zone = zone

    def fire_time(self, day: date) -> datetime:
        """The instant the job runs on local ``day`` (aware, in ``zone``)."""
        wall = datetime.combine(day, self.at, tzinfo=self.zone)
        return wall.astimezone(UTC).astimezone(self.zone)

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """The first fire time at or after ``now`` and after ``previous_fire_time``."""
        day = now.astimezone(self.zone).date() - timedelta(days=1)
        while True:
            candidate = self.fire_time(day)
            late_enough = candidate.astimezone(UTC) >= now.astimezone(UTC)
            if previous_fire_time is not None:
                late_enough = late_enough and (
                    candidate.astimezone(UTC) > previous_fire_time.astimezone(UTC)
                    and day > previous_fire_time.astimezone(self.zone).date()
                )
            if late_enough:
                return candidate
            day += timedelta(days=1)

    def __str__(self) -> str:
        return f"daily at {self.at:%H:%M} {self.zone.key}"


def due_days(settings: Settings, now: datetime) -> list[date]:
    """Yesterday and the ``KASSA_DAILY_CATCHUP_DAYS`` days before it whose scheduled time
    (``KASSA_DAILY_AT`` on the day after) has come, oldest first. Never today or later."""
    last = yesterday(now, settings.zone)
    trigger = DailyTrigger(settings.daily_at, settings.zone)
    window = [last - timedelta(days=n) for n in range(settings.daily_catchup_days, -1, -1)]
    return [day for day in window if trigger.fire_time(day + timedelta(days=1)) <= now]


def missed_days(settings: Settings, now: datetime) -> list[date]:
    """The due days (:func:`due_days`) that have no manifest, oldest first."""
    finished = set(parquet.manifest_days(settings.data_dir))
    return [day for day in due_days(settings, now) if day not in finished]


def deadline(settings: Settings, day: date) -> datetime:
    """When an incomplete ``day`` is finalized as forced: its end + the deadline."""
    _, end = day_bounds(day, settings.zone)
    return end + timedelta(seconds=settings.daily_deadline_seconds)


def _todo(settings: Settings, day: date) -> str | None:
    """What a pass does with ``day``: ``missing``, ``late`` (restate), ``forced`` (revisit),
    ``refused`` (run again: the rules that refused it changed)."""
    status = day_status(settings.data_dir, day, DayLocks.of(settings))
    if status.refusal is not None and status.refusal.rules == refusals.rules_of(settings):
        return None  # refused under the same rules: an operator's turn
    if status.state == "invalid-share":
        return "refused"
    return {"missing": "missing", "late-pending": "late", "forced": "forced"}.get(status.state)


def catch_up(
    settings: Settings, now: datetime | None = None, metrics: DailyMetrics | None = None
) -> list[DayResult]:
    """One pass of the scheduler over the due days, oldest first (see the module docstring).

    A day without a manifest is run; incomplete, it is finalized as forced once its deadline
    has passed, otherwise the pass stops there (later days wait for it). A day with late
    records pending is restated; a forced day is revisited and rewritten once complete. The
    days are swept again while a sweep ran something (a run may find late records). Last,
    every finalized day whose run Redis does not hold is republished from its snapshot
    (:func:`jobs.daily.republish.republish_stale`; not among the results: nothing was run).
    """
    clock = now or datetime.now(UTC)
    results: list[DayResult] = []
    for _ in range(settings.daily_catchup_days + 2):
        ran = _sweep(settings, clock, metrics, results)
        if not ran:
            break
    republish_stale(settings, due_days(settings, clock), clock)
    if metrics is not None:
        statuses = day_statuses(settings.data_dir, due_days(settings, clock), DayLocks.of(settings))
        metrics.on_window(
            statuses,
            lambda day: day_bounds(day, settings.zone),
            lambda day: deadline(settings, day),
            clock,
        )
    return results


def _sweep(
    settings: Settings, now: datetime, metrics: DailyMetrics | None, results: list[DayResult]
) -> bool:
    ran = False
    for day in due_days(settings, now):
        todo = _todo(settings, day)
        if todo is None:
            continue
        result = _run(settings, day, now, todo, metrics)
        if result is None and todo == "missing":
            return ran
        if result is not None:
            results.append(result)
            ran = True
            if metrics is not None:
                metrics.on_run(result.manifest, now)
    return ran


def _run(
    settings: Settings, day: date, now: datetime, todo: str, metrics: DailyMetrics | None
) -> DayResult | None:
    """Run ``day`` for ``todo``; ``None`` when it cannot be finalized now.

    Late records of a forced day are restated as forced again; a forced day is revisited
    without ``force``, so it is rewritten only once complete.
    """
    previous = read_manifest(settings.data_dir, day)
    force = todo == "late" and previous is not None and previous.forced
    accept_invalid = previous is not None and previous.invalid_share_forced
    refusal = None
    try:
        return run_day(settings, day, now=now, force=force, accept_invalid=accept_invalid)
    except IncompleteDay as exc:
        outcome = "incomplete"
        due = deadline(settings, day)
        if todo == "missing" and now >= due:
            logger.warning("%s; deadline %s passed: finalizing as forced", exc, due)
            reason = f"deadline {due.isoformat()} passed: finalized incomplete"
            return run_day(settings, day, now=now, force=True, reason=reason)
        if todo == "missing":
            logger.warning("%s; will check again in %d s", exc, settings.daily_retry_seconds)
        else:
            logger.info("%s day %s is not complete yet: %s", todo, day, exc)
    except InvalidShareExceeded as exc:
        outcome = "invalid_share"
        refusal = f"{exc} (kassa daily status shows it as invalid-share)"
        if metrics is not None:
            metrics.on_invalid(exc.invalid)
    except (RetentionGap, SnapshotKept) as exc:
        outcome = "retention_gap" if isinstance(exc, RetentionGap) else "snapshot_kept"
        refusal = str(exc)
    if refusal is not None:
        logger.error("%s; the scheduler leaves this day to an operator", refusal)
    if metrics is not None:
        metrics.runs.labels(outcome).inc()
    return None


class Scheduler:
    """The passes of ``kassa daily schedule``: one at a time, with metrics and health."""

    def __init__(
        self, settings: Settings, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.metrics = DailyMetrics(clock)
        self._lock = threading.Lock()

    def run_pass(self) -> list[DayResult]:
        """One pass at ``clock()``; skipped while another pass runs; failures are logged."""
        if not self._lock.acquire(blocking=False):
            return []
        try:
            results = catch_up(self.settings, self.clock(), self.metrics)
        except Exception as exc:
            logger.exception(
                "daily pass failed; will try again in %d s", self.settings.daily_retry_seconds
            )
            self.metrics.runs.labels("failed").inc()
            self.metrics.state = "failing"
            self.metrics.last_error = f"{type(exc).__name__}: {exc}"
            return []
        finally:
            self._lock.release()
        self.metrics.state = "running"
        self.metrics.last_error = None
        if results:
            logger.info(
                "daily run finished %d day(s): %s", len(results), [str(r.day) for r in results]
            )
        return results


def build_scheduler(settings: Settings, daily: Scheduler | None = None) -> BlockingScheduler:
    """The scheduler with the daily job and its retries added (not started)."""
    passes = daily or Scheduler(settings)
    scheduler = BlockingScheduler(timezone=settings.zone)
    scheduler.add_job(
        passes.run_pass,
        DailyTrigger(settings.daily_at, settings.zone),
        id=JOB_ID,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=settings.daily_misfire_grace_seconds,
        replace_existing=True,
    )
    scheduler.add_job(
        passes.run_pass,
        IntervalTrigger(seconds=settings.daily_retry_seconds, timezone=settings.zone),
        id=RETRY_JOB_ID,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=settings.daily_retry_seconds,
        replace_existing=True,
    )
    return scheduler


def serve(settings: Settings) -> None:
    """Catch up, then pass at ``KASSA_DAILY_AT`` and every ``KASSA_DAILY_RETRY_SECONDS`` until
    interrupted; metrics and health on ``KASSA_METRICS_HOST``:``KASSA_DAILY_METRICS_PORT``
    (0: none)."""
    daily = Scheduler(settings)
    server = None
    if settings.daily_metrics_port:
        server = MetricsServer(
            daily.metrics,
            settings.daily_metrics_port,
            settings.metrics_host,
            name="kassa-daily-metrics",
        )
        server.start()
    try:
        daily.run_pass()
        scheduler = build_scheduler(settings, daily)
        trigger = DailyTrigger(settings.daily_at, settings.zone)
        logger.info(
            "daily job scheduled %s, re-checked every %d s; next run %s",
            trigger,
            settings.daily_retry_seconds,
            trigger.get_next_fire_time(None, datetime.now(UTC)),
        )
        scheduler.start()
    finally:
        if server is not None:
            server.stop()
