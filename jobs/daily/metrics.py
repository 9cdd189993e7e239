"""Prometheus metrics and the health of the daily scheduler.

Served on ``127.0.0.1:KASSA_DAILY_METRICS_PORT`` by ``kassa daily schedule`` with the same
endpoint as the stream job's (:class:`common.metrics.MetricsServer`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector

from common.schema import Reason
from jobs.daily.manifest import Manifest
from jobs.daily.status import STATES, DayStatus

OUTCOMES: Final = (
    "complete",
    "forced",
    "incomplete",
    "invalid_share",
    "retention_gap",
    "snapshot_kept",
    "failed",
)


class DailyMetrics:
    """The scheduler's metrics, in a registry of their own; ``clock`` gives "now"."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        # A flat declaration list, one statement per metric (over the 60-line limit on purpose).
        self.clock = clock
        self.registry = CollectorRegistry()
        registry = self.registry
        ProcessCollector(registry=registry)  # process_start_time_seconds: restarts
        self.runs = Counter(
            "kassa_daily_runs", "day runs by outcome", ["outcome"], registry=registry
        )
        for outcome in OUTCOMES:
            self.runs.labels(outcome)
        self.late_records = Counter(
            "kassa_daily_late_records",
            "late records of finalized days found by runs",
            registry=registry,
        )
        self.invalid = Counter(
            "kassa_daily_invalid_records",
            "invalid records the daily runs read, by reason (finished and refused runs; the "
            "stream job's kassa_stream_dead_letters counts the same reasons)",
            ["reason"],
            registry=registry,
        )
        for reason in Reason:
            self.invalid.labels(reason.value)
        self.last_finalized_day = Gauge(
            "kassa_daily_last_finalized_day",
            "start (Unix time, UTC) of the newest finalized business day",
            registry=registry,
        )
        self.last_success = Gauge(
            "kassa_daily_last_success_timestamp_seconds",
            "when a run last finalized a day (Unix time)",
            registry=registry,
        )
        self.since_success = Gauge(
            "kassa_daily_seconds_since_last_success",
            "seconds since a run last finalized a day (-1: none yet)",
            registry=registry,
        )
        self.since_success.set_function(self.seconds_since_last_success)
        self.last_run_seconds = Gauge(
            "kassa_daily_last_run_duration_seconds",
            "duration of the last successful run",
            registry=registry,
        )
        self.last_run_records = Gauge(
            "kassa_daily_last_run_records",
            "records read by the last successful run",
            registry=registry,
        )
        self.days = Gauge(
            "kassa_daily_days",
            "days of the scheduler's window by state (kassa daily status)",
            ["state"],
            registry=registry,
        )
        self.days_incomplete = Gauge(
            "kassa_daily_days_incomplete",
            "due days of the window without a finished run",
            registry=registry,
        )
        self.days_overdue = Gauge(
            "kassa_daily_days_overdue",
            "due days of the window without a finished run past their deadline "
            "(KASSA_DAILY_DEADLINE_SECONDS after the day's end; the scheduler forces them then)",
            registry=registry,
        )
        self.since_finalized_day = Gauge(
            "kassa_daily_seconds_since_last_finalized_day_end",
            "seconds from the end of the newest finalized business day to now (-1: none yet)",
            registry=registry,
        )
        self.since_finalized_day.set_function(self.seconds_since_last_finalized_day_end)
        self.days_forced = Gauge(
            "kassa_daily_days_forced",
            "days of the window finalized incomplete (forced), not yet revisited",
            registry=registry,
        )
        self.days_refused = Gauge(
            "kassa_daily_days_refused",
            "days of the window whose last run the invalid-share guard refused (no ranking, or "
            "a restatement not published) until a run finalizes them",
            registry=registry,
        )
        self.state = "starting"
        self.last_error: str | None = None
        self.last_success_at: datetime | None = None
        self.newest_day: date | None = None
        self.newest_day_end: datetime | None = None
        self.incomplete = 0
        self._lock = threading.Lock()

    def seconds_since_last_success(self) -> float:
        """Seconds from the last finalized run to ``clock()`` (-1 before the first)."""
        if self.last_success_at is None:
            return -1.0
        return (self.clock() - self.last_success_at).total_seconds()

    def seconds_since_last_finalized_day_end(self) -> float:
        """Seconds from the end of the newest finalized day to ``clock()`` (-1 before one)."""
        if self.newest_day_end is None:
            return -1.0
        return (self.clock() - self.newest_day_end).total_seconds()

    def on_run(self, manifest: Manifest, at: datetime) -> None:
        """A run finished and wrote ``manifest``."""
        with self._lock:
            self.runs.labels("forced" if manifest.forced else "complete").inc()
            late = sum(entry.records for entry in manifest.late_records.values())
            self.late_records.inc(late)
            self.last_success_at = at
            self.last_success.set(at.timestamp())
            self.last_run_seconds.set(manifest.timings_seconds.total)
            self.last_run_records.set(manifest.counts.records)
        self.on_invalid(manifest.counts.invalid)

    def on_invalid(self, invalid: dict[str, int]) -> None:
        """A run read ``invalid`` records by reason (finished or refused)."""
        for reason, count in invalid.items():
            self.invalid.labels(reason).inc(count)

    def on_window(
        self,
        statuses: Sequence[DayStatus],
        bounds_of: Callable[[date], tuple[datetime, datetime]],
        deadline_of: Callable[[date], datetime],
        now: datetime,
    ) -> None:
        """The window's states after a pass at ``now``: ``bounds_of(day)`` is a day's start
        and end, ``deadline_of(day)`` when an incomplete day is finalized as forced."""
        counts = dict.fromkeys(STATES, 0)
        finalized = [status.day for status in statuses if status.manifest is not None]
        for status in statuses:
            counts[status.state] = counts.get(status.state, 0) + 1
        with self._lock:
            for state, count in counts.items():
                self.days.labels(state).set(count)
            self.incomplete = counts["missing"] + counts["running"]
            self.days_incomplete.set(self.incomplete)
            self.days_forced.set(sum(1 for status in statuses if status.state == "forced"))
            self.days_refused.set(sum(1 for status in statuses if status.refusal is not None))
            self.days_overdue.set(
                sum(
                    1
                    for status in statuses
                    if status.manifest is None and now >= deadline_of(status.day)
                )
            )
            if finalized:
                self.newest_day = max(finalized)
                start, self.newest_day_end = bounds_of(self.newest_day)
                self.last_finalized_day.set(start.timestamp())

    def health(self) -> tuple[int, dict[str, Any]]:
        """HTTP status and body of ``/healthz``: 200 while passes succeed."""
        body = {
            "state": self.state,
            "last_finalized_day": self.newest_day.isoformat() if self.newest_day else None,
            "seconds_since_last_success": self.seconds_since_last_success()
            if self.last_success_at
            else None,
            "days_incomplete": self.incomplete,
            "last_error": self.last_error,
        }
        return (200 if self.state == "running" else 503), body
