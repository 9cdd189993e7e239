"""Settings of the stream job (``kassa stream``): how it commits, writes, waits and reports."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings


class StreamSettings(BaseSettings):
    """The stream job's part of :class:`common.settings.Settings`."""

    stream_guarantee: Literal["exactly-once", "at-least-once"] = Field(
        "exactly-once",
        description="exactly-once skips Kafka offsets Redis already holds; at-least-once may "
        "count a replayed batch twice after a crash",
    )
    stream_commit_interval: float = Field(
        5.0,
        gt=0,
        le=60,
        description="seconds between the stream job's Kafka offset commits (each waits for "
        "every Redis write before it)",
    )
    stream_write_interval: float = Field(
        0.25,
        gt=0,
        le=60,
        description="seconds a partition's batch collects checkouts before it is written to "
        "Redis (how stale the live counts may be)",
    )
    stream_writers: int = Field(
        2,
        ge=1,
        le=32,
        description="writer processes that decode and aggregate the stream job's batches (each "
        "partition goes to one); more help when the consumer has cores to spare",
    )
    stream_session_timeout_ms: int = Field(
        45_000,
        ge=6_000,
        le=1_800_000,
        description="how long the group waits for a vanished stream replica before moving "
        "its partitions",
    )
    stream_outage_limit_seconds: int = Field(
        900,
        ge=10,
        le=7 * 86_400,
        description="how long the running stream job waits for an unreachable Kafka cluster "
        "(then it exits with status 4) or Redis (status 3), retrying",
    )
    stream_unassigned_limit_seconds: int = Field(
        120,
        ge=1,
        le=86_400,
        description="/healthz of a stream job that has held no partition this long answers 503",
    )
    stream_stuck_seconds: int = Field(
        60,
        ge=1,
        le=86_400,
        description="/healthz answers 503 when a batch has waited this long for its writer",
    )
    stream_static_membership: bool = Field(
        True,
        description="join the group as a static member (group.instance.id), so a restarted job "
        "gets its partitions back at once instead of after the session timeout",
    )
    stream_instance_id: str = Field(
        "",
        pattern=r"^[A-Za-z0-9._-]{0,200}$",
        description="group.instance.id of this replica; empty means '<host name>-<n>', n the "
        "lowest number no other replica sharing KASSA_STATE_DIR holds",
    )
    metrics_host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="HTTP bind address of the stream job's and the scheduler's /metrics and "
        "/healthz (0.0.0.0: every interface)",
    )
    stream_check_seconds: float = Field(
        2.0,
        gt=0,
        le=300,
        description="how often the running stream job checks that its topic is the one its "
        "watermarks count, that Redis still holds what it applied, and the partition count "
        "(docs/stream.md)",
    )
    metrics_port: int = Field(
        9108, ge=0, le=65535, description="stream job's /metrics and /healthz port; 0 disables it"
    )
