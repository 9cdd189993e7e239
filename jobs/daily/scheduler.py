"""``kassa daily schedule``: the daily job once per business day, and missed days caught up.

APScheduler 3.x runs :func:`catch_up` at ``KASSA_DAILY_AT`` local time every day with
``coalesce`` (missed fire times collapse into one run), ``max_instances=1`` and a misfire
grace time; :func:`catch_up` also runs once at start. It finalizes yesterday and each of the
``KASSA_DAILY_CATCHUP_DAYS`` days before it that has no manifest yet, oldest first, so each
missed day is run exactly once and a finished day is never run again.

APScheduler's ``CronTrigger`` fires twice on the day daylight saving time ends when the run
time falls in the repeated hour (and can then repeat the second time). :class:`DailyTrigger`
fires exactly once per local calendar day instead: at the first instance of the wall-clock
time, or, on the day that time does not exist, at the same time in the offset before the
change (one hour later on the clock).
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger

from common.days import yesterday
from common.settings import Settings
from jobs.daily.exceptions import IncompleteDay
from jobs.daily.job import run_day
from jobs.daily.manifest import DayResult
from storage import parquet

logger = logging.getLogger(__name__)

JOB_ID = "kassa-daily"


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


def missed_days(settings: Settings, now: datetime) -> list[date]:
    """Yesterday and the ``KASSA_DAILY_CATCHUP_DAYS`` days before it, if they have no
    manifest, oldest first."""
    last = yesterday(now, settings.zone)
    finished = set(parquet.manifest_days(settings.data_dir))
    window = [last - timedelta(days=n) for n in range(settings.daily_catchup_days, -1, -1)]
    return [day for day in window if day not in finished]


def catch_up(settings: Settings, now: datetime | None = None) -> list[DayResult]:
    """Run every missed day once, oldest first; stop at the first incomplete day."""
    results = []
    for day in missed_days(settings, now or datetime.now(UTC)):
        try:
            results.append(run_day(settings, day))
        except IncompleteDay as exc:
            logger.warning("%s; will try again at the next run", exc)
            break
    return results


def _scheduled_run(settings: Settings) -> None:
    try:
        results = catch_up(settings)
    except Exception:
        logger.exception("daily run failed; will try again at the next run")
        return
    logger.info("daily run finished %d day(s): %s", len(results), [str(r.day) for r in results])


def build_scheduler(settings: Settings) -> BlockingScheduler:
    """The scheduler with the daily job added (not started)."""
    scheduler = BlockingScheduler(timezone=settings.zone)
    scheduler.add_job(
        _scheduled_run,
        DailyTrigger(settings.daily_at, settings.zone),
        args=[settings],
        id=JOB_ID,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=settings.daily_misfire_grace_seconds,
        replace_existing=True,
    )
    return scheduler


def serve(settings: Settings) -> None:
    """Catch up missed days, then run every day at ``KASSA_DAILY_AT`` until interrupted."""
    _scheduled_run(settings)
    scheduler = build_scheduler(settings)
    trigger = DailyTrigger(settings.daily_at, settings.zone)
    logger.info(
        "daily job scheduled %s; next run %s",
        trigger,
        trigger.get_next_fire_time(None, datetime.now(UTC)),
    )
    scheduler.start()
