"""kassa's settings: one frozen object, read from ``KASSA_*`` environment variables.

Only the CLI builds a :class:`Settings` from the environment (:func:`load_settings`); every
other module receives it as an argument.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Final, Literal
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.errors import SettingsError
from common.schema import (
    CURRENCY,
    CURRENCY_PATTERN,
    EARLIEST_EVENT,
    MAX_EVENT_AHEAD,
    MAX_QUANTITY_CAP,
    Limits,
)

ENV_PREFIX = "KASSA_"
NOT_SETTINGS = frozenset({"KASSA_ENV_FILE", "KASSA_DEMO_SERVE", "KASSA_TEST_ARTIFACTS"})
"""``KASSA_*`` variables that are not settings: the env_file docker-compose.yml reads, and
switches of ``make demo`` and of the dashboard test."""
RENAMED: Final = {"kassa_redis_namespace": "KASSA_REDIS_KEY_SPACE"}
"""Variables of an earlier kassa that a setting took over: still read, the new name first,
with a warning (:func:`common.environment.unknown_variables`)."""
_FIRST_EVENT = datetime(1, 1, 3, tzinfo=UTC)
"""The lowest KASSA_EVENT_TIME_MIN: UTC offsets are below a day, so every accepted instant's
business day and its bounds exist (:mod:`common.days`)."""


class Settings(BaseSettings):
    """Everything kassa can be configured with. Each field is the variable ``KASSA_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", env_file=None, populate_by_name=True
    )

    # Kafka
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    topic: str = Field("sales", pattern=r"^[A-Za-z0-9._-]{1,200}$", description="sales topic")
    dlq_topic: str = Field("", description="dead-letter topic; empty means '<topic>.dlq'")
    partitions: int = Field(3, ge=1, le=1000, description="partitions of the topics kassa creates")
    replication_factor: int = Field(
        1,
        ge=1,
        le=32,
        description="copies of each partition of the topics kassa creates (at most the "
        "cluster's broker count; 3 for a production cluster)",
    )
    min_insync_replicas: int = Field(
        1,
        ge=1,
        le=32,
        description="min.insync.replicas of the topics kassa creates: an acknowledged checkout "
        "is on at least this many brokers (2 with a replication factor of 3)",
    )
    consumer_group: str = Field("kassa-stream", min_length=1, description="stream job's group")

    # Redis
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", pattern=r"^rediss?://", description="Redis server and database"
    )
    redis_key_space: str = Field(
        "",
        pattern=r"^[A-Za-z0-9._-]{0,200}$",
        # the variable's name before kassa 0.2 is still read (see RENAMED)
        validation_alias=AliasChoices("redis_key_space", "kassa_redis_key_space", *RENAMED),
        description="key space of this topic's Redis keys (kassa:<key space>:...); empty "
        "means the topic's name. Two topics on one database need two key spaces",
    )
    redis_appendfsync: Literal["always", "everysec", "no"] = Field(
        "everysec", description="AOF fsync policy of the redis-server kassa starts"
    )

    # Files
    data_dir: Path = Field(Path("./data"), description="Parquet snapshots and manifests")
    state_dir: Path = Field(Path("./.kassa"), description="local services' data and pid files")
    cache_dir: Path = Field(Path("~/.cache/kassa"), description="downloaded Kafka jars")

    # Business days
    timezone: str = Field("UTC", description="IANA time zone in which business days are cut")

    # Message limits (defaults accept every row of the UCI Online Retail dataset)
    max_lines: int = Field(2000, ge=1, description="lines per checkout")
    max_quantity: int = Field(
        100_000,
        ge=1,
        le=MAX_QUANTITY_CAP,
        description="absolute quantity per line (at most 1000000: see docs/stream.md, exact sums)",
    )
    max_message_bytes: int = Field(1_000_000, ge=256, description="encoded checkout size")

    # What a checkout must be to count (docs/producers.md; others are dead-lettered)
    currency: str = Field(
        CURRENCY,
        pattern=CURRENCY_PATTERN,
        description="the one ISO 4217 currency counted; checkouts in any other are refused "
        "(reason currency)",
    )
    event_time_min: datetime = Field(
        EARLIEST_EVENT,
        description="earliest plausible occurred_at (a day, midnight UTC, or ISO 8601 with "
        "a UTC offset); earlier checkouts are refused (reason event_time)",
    )
    event_time_max_ahead_seconds: int = Field(
        round(MAX_EVENT_AHEAD.total_seconds()),
        ge=0,
        le=10 * 366 * 86_400,
        description="how far occurred_at may lie ahead of the clock of the job judging it; "
        "later checkouts are refused (reason event_time)",
    )

    # Producers (`kassa produce`)
    producer_linger_ms: int = Field(
        20, ge=0, le=10_000, description="how long the producer waits to fill a batch"
    )
    producer_compression: Literal["none", "lz4", "zstd", "gzip", "snappy"] = Field(
        "lz4", description="compression of produced batches"
    )
    delivery_timeout_ms: int = Field(
        30_000,
        ge=1_000,
        le=3_600_000,
        description="how long a checkout may wait for delivery before it counts as failed",
    )
    replay_dataset: Path | None = Field(
        None,
        description="the UCI Online Retail Parquet file `kassa produce replay` reads; empty "
        "means the copy shipped with kassa (producers/datasets/online_retail.parquet)",
    )

    # Stream job (`kassa stream`)
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
        description="stream job's HTTP bind address (0.0.0.0: every interface)",
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

    # HTTP API and dashboard (`kassa serve`)
    api_host: str = Field(
        "127.0.0.1", min_length=1, description="address `kassa serve` binds (0.0.0.0: all)"
    )
    api_port: int = Field(8000, ge=1, le=65535, description="port of the API and dashboard")

    # Local services started by `kassa services up`
    kafka_version: str = Field(
        "4.1.1", pattern=r"^4\.\d+\.\d+$", description="Apache Kafka release fetched from Maven"
    )
    kafka_controller_port: int = Field(
        9093, ge=1, le=65535, description="KRaft controller port of the local broker"
    )
    kafka_heap: str = Field(
        "1g",
        pattern=r"^\d+[kmgKMG]$",
        description="Java heap of each local Kafka node (384m is enough for each node of a "
        "development cluster)",
    )

    # Daily job
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
    daily_metrics_port: int = Field(
        9109,
        ge=0,
        le=65535,
        description="scheduler's /metrics and /healthz port on 127.0.0.1; 0 disables it",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"unknown IANA time zone {value!r}; use a name such as 'Europe/London' or 'UTC'"
            raise ValueError(msg) from None
        return value

    @field_validator("event_time_min", mode="before")
    @classmethod
    def _day_is_utc_midnight(cls, value: object) -> object:
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            return value.strip() + "T00:00:00Z"
        return value

    @field_validator("event_time_min")
    @classmethod
    def _aware_and_in_range(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            msg = f"{value.isoformat()} has no UTC offset; write e.g. '2000-01-01T00:00:00Z'"
            raise ValueError(msg)
        if value < _FIRST_EVENT:
            msg = (
                f"must be {_FIRST_EVENT.isoformat()} or later, so that every business day "
                "of an accepted checkout exists in Python's dates"
            )
            raise ValueError(msg)
        return value.astimezone(UTC)

    @field_validator("kafka_bootstrap")
    @classmethod
    def _host_port_list(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                msg = f"{server!r} is not host:port; write e.g. '127.0.0.1:9092'"
                raise ValueError(msg)
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        parts = urlsplit(value)
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            msg = f"the port of {value!r} is not a number; write e.g. 'redis://127.0.0.1:6379/0'"
            raise ValueError(msg) from None
        if not parts.hostname:
            msg = f"{value!r} names no host; write e.g. 'redis://127.0.0.1:6379/0'"
            raise ValueError(msg)
        databases = [parts.path.removeprefix("/"), *parse_qs(parts.query).get("db", [])]
        for database in databases:
            if database and not database.isdigit():
                msg = (
                    f"database {database!r} of {value!r} is not a number; write the database "
                    "index, e.g. 'redis://127.0.0.1:6379/0'"
                )
                raise ValueError(msg)
        return value

    @field_validator("replay_dataset", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> Settings:
        if self.min_insync_replicas > self.replication_factor:
            msg = (
                f"KASSA_MIN_INSYNC_REPLICAS={self.min_insync_replicas} is larger than "
                f"KASSA_REPLICATION_FACTOR={self.replication_factor}: every acks=all write "
                "would be refused; use at most the replication factor (e.g. 3 and 2)"
            )
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _expand_paths(self) -> Settings:
        for name in ("data_dir", "state_dir", "cache_dir", "replay_dataset"):
            path = getattr(self, name)
            if path is not None:
                object.__setattr__(self, name, path.expanduser())
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The business time zone."""
        return ZoneInfo(self.timezone)

    @property
    def limits(self) -> Limits:
        """The rules every decoder applies beyond the message's types."""
        return Limits(
            self.max_lines,
            self.max_quantity,
            self.max_message_bytes,
            self.currency,
            self.event_time_min,
            timedelta(seconds=self.event_time_max_ahead_seconds),
        )

    @property
    def key_space(self) -> str:
        """The key space of this topic's Redis keys (see :mod:`storage.keys`)."""
        return self.redis_key_space or self.topic

    @property
    def dead_letter_topic(self) -> str:
        """Where the stream job sends messages it cannot count."""
        return self.dlq_topic or f"{self.topic}.dlq"


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment (and ``overrides``), or explain what is wrong.

    Raises :class:`SettingsError` naming each offending ``KASSA_*`` variable, its value and
    the fix.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            reason = error["msg"].removeprefix("Value error, ")
            if not error["loc"]:  # a check across variables names them in its message
                problems.append(reason)
                continue
            name = _variable("_".join(str(part) for part in error["loc"]))
            problems.append(f"{name}={error.get('input')!r}: {reason}")
        msg = "invalid settings (fix these environment variables):\n  " + "\n  ".join(problems)
        raise SettingsError(msg) from None


def _variable(field: str) -> str:
    """The variable that set ``field``: ``KASSA_<FIELD>``, or the older name it still has."""
    name = ENV_PREFIX + field.upper()
    for old, new in RENAMED.items():
        if new == name and old.upper() in os.environ and name not in os.environ:
            return old.upper()
    return name
