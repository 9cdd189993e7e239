"""Settings of the daily job (``kassa daily``): when it runs, what it waits for, how long
what it writes is kept."""

from __future__ import annotations

from datetime import time

from pydantic import Field
from pydantic_settings import BaseSettings


class DailySettings(BaseSettings):
    """The daily job's part of :class:`common.settings.Settings`."""

    daily_at: time = Field(time(2, 30), description="local time at which the daily job runs")
    lateness_seconds: int = Field(3600, ge=0, description="how late an event may arrive")
    retention_days: int = Field(
        35,
        ge=1,
        description="how long per-day Redis keys live after the later of their day's end and "
        "their last write",
    )
    daily_grace_seconds: int = Field(
        300, ge=0, le=86_400, description="daily job reads from this long before the day starts"
    )
    daily_misfire_grace_seconds: int = Field(
        6 * 3600,
        ge=1,
        description="how late the scheduled daily run may still start (e.g. after a reboot)",
    )
    daily_catchup_days: int = Field(
        7,
        ge=0,
        le=366,
        description="days before yesterday that 'kassa daily schedule' checks for missed runs",
    )
    daily_idle_margin_seconds: int = Field(
        1800,
        ge=0,
        le=366 * 86_400,
        description="a partition with no record past day end + lateness counts as idle (closed "
        "stores) once the clock is this far past that and it received nothing newer meanwhile",
    )
    daily_lookahead_seconds: int = Field(
        3600,
        ge=0,
        le=86_400,
        description="a partition's range ends only at a record stamped this long past day end + "
        "lateness (keep it >= KASSA_LATENESS_SECONDS so late records behind a fast clock are read)",
    )
    daily_lookahead_records: int = Field(
        10,
        ge=1,
        le=10_000,
        description="...and only if it and the records after it, this many in all, are all "
        "stamped past day end + lateness (an isolated fast clock does not end the range)",
    )
    daily_retry_seconds: int = Field(
        600,
        ge=1,
        le=86_400,
        description="after KASSA_DAILY_AT the scheduler re-checks unfinished days this often",
    )
    daily_deadline_seconds: int = Field(
        12 * 3600,
        ge=0,
        le=30 * 86_400,
        description="a day still incomplete this long after its end is finalized as forced (and "
        "revisited once complete)",
    )
    daily_lock_seconds: int = Field(
        60,
        ge=3,
        le=3600,
        description="with an object-store KASSA_DATA_DIR, runs of a day take a lock in Redis: "
        "how long it outlives a run that died holding it (a live run renews it every third)",
    )
    daily_max_invalid_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="a day whose invalid records exceed this share of its range is not "
        "finalized (exit status 10; --force finalizes it, marked). 0.05: a healthy fleet sends "
        "a few invalid records in ten thousand, a cause that hits a fleet (a message version "
        "not accepted, a wrong currency) far more than one in twenty",
    )
    daily_metrics_port: int = Field(
        9109,
        ge=0,
        le=65535,
        description="scheduler's /metrics and /healthz port (on KASSA_METRICS_HOST); 0 disables it",
    )
