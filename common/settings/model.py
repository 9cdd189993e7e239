"""kassa's settings: one frozen object, read from ``KASSA_*`` environment variables (and a
secret from the file its ``KASSA_<NAME>_FILE`` names).

Only the CLI builds a :class:`Settings` from the environment (:func:`load_settings`); every
other module receives it as an argument. The Kafka, stream job and daily job settings live in
their own modules of this package; the rest are here.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from common.errors import SettingsError
from common.redaction import HIDDEN, redacted
from common.schema import (
    CURRENCY,
    CURRENCY_PATTERN,
    EARLIEST_EVENT,
    MAX_EVENT_AHEAD,
    MAX_QUANTITY_CAP,
    VERSIONS,
    Limits,
)
from common.settings.daily import DailySettings
from common.settings.kafka import KafkaSettings
from common.settings.location import DataLocation, parse_location
from common.settings.redis import RedisSettings
from common.settings.secrets import SecretFileSource, is_secret
from common.settings.stream import StreamSettings

ENV_PREFIX = "KASSA_"
NOT_SETTINGS = frozenset(
    {
        "KASSA_ENV_FILE",
        "KASSA_DEMO_SERVE",
        "KASSA_DEMO_BROKERS",
        "KASSA_DEMO_SECURE",
        "KASSA_DEMO_S3",
        "KASSA_TEST_ARTIFACTS",
    }
)
"""``KASSA_*`` variables that are not settings: the env_file docker-compose.yml reads, and
switches of ``make demo`` and of the dashboard test."""
RENAMED: Final = {"kassa_redis_namespace": "KASSA_REDIS_KEY_SPACE"}
"""Variables of an earlier kassa that a setting took over: still read, the new name first,
with a warning (:func:`common.environment.unknown_variables`)."""
_FIRST_EVENT = datetime(1, 1, 3, tzinfo=UTC)
"""The lowest KASSA_EVENT_TIME_MIN: UTC offsets are below a day, so every accepted instant's
business day and its bounds exist (:mod:`common.days`)."""


class Settings(RedisSettings, DailySettings, StreamSettings, KafkaSettings):
    """Everything kassa can be configured with. Each field is the variable ``KASSA_<NAME>``;
    a secret (``SecretStr``) field may instead come from the file ``KASSA_<NAME>_FILE`` names."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="forbid", env_file=None, populate_by_name=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments first, then ``KASSA_<SECRET>_FILE`` files, then ``KASSA_*`` variables.

        A file wins over its variable only when the variable is empty (the line an env file
        copied from .env.example holds); both set is refused by :class:`SecretFileSource`.
        """
        return init_settings, SecretFileSource(settings_cls, ENV_PREFIX), env_settings

    # Redis (the connection: common/settings/redis.py)
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
    data_dir: DataLocation = Field(
        Path("./data"),
        description="Parquet snapshots and manifests: a local folder, or s3://BUCKET/PREFIX, "
        "gs://BUCKET/PREFIX, abfs://CONTAINER@ACCOUNT.dfs.core.windows.net/PREFIX (docs/daily.md)",
    )
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

    schema_versions: str = Field(
        ",".join(str(version) for version in VERSIONS),
        description="the checkout message versions both jobs read (comma-separated, from "
        f"{','.join(str(version) for version in VERSIONS)}); others are refused (reason "
        "unsupported_version). See docs/fleet-upgrade.md",
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

    # HTTP API and dashboard (`kassa serve`)
    api_host: str = Field(
        "127.0.0.1", min_length=1, description="address `kassa serve` binds (0.0.0.0: all)"
    )
    api_port: int = Field(8000, ge=1, le=65535, description="port of the API and dashboard")
    api_token: SecretStr | None = Field(
        None,
        description="when set, every route but /health needs it (Authorization: Bearer <token>, "
        "or HTTP Basic with it as the password); empty means an open API; or "
        "KASSA_API_TOKEN_FILE",
    )

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

    s3proxy_version: str = Field(
        "2.6.0",
        pattern=r"^\d+\.\d+\.\d+$",
        description="S3Proxy release (org.gaul:s3proxy) that `kassa services up --s3` fetches",
    )
    s3proxy_port: int = Field(
        9000,
        ge=1,
        le=65535,
        description="port of the local S3 server `kassa services up --s3` starts",
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

    @field_validator("schema_versions")
    @classmethod
    def _known_versions(cls, value: str) -> str:
        known = ",".join(str(version) for version in VERSIONS)
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not parts or not all(part.isdigit() and int(part) in VERSIONS for part in parts):
            msg = f"list the message versions to read, comma-separated, from {known} (e.g. '1,2')"
            raise ValueError(msg)
        return ",".join(str(number) for number in sorted({int(part) for part in parts}))

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

    @field_validator("data_dir", mode="before")
    @classmethod
    def _data_location(cls, value: object) -> object:
        return parse_location(value)

    @field_validator("replay_dataset", "api_token", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("api_token")
    @classmethod
    def _header_safe_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[!-~]+", value.get_secret_value()):
            msg = (
                "the token must be printable ASCII without spaces, as HTTP headers carry it; "
                "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _expand_paths(self) -> Settings:
        for name in ("data_dir", "state_dir", "cache_dir", "replay_dataset"):
            path = getattr(self, name)
            if isinstance(path, Path):
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
            frozenset(int(version) for version in self.schema_versions.split(",")),
        )

    @property
    def key_space(self) -> str:
        """The key space of this topic's Redis keys (see :mod:`storage.keys`)."""
        return self.redis_key_space or self.topic


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
            field = "_".join(str(part) for part in error["loc"])
            problems.append(f"{_variable(field)}={_shown(field, error.get('input'))}: {reason}")
        msg = "invalid settings (fix these environment variables):\n  " + "\n  ".join(problems)
        raise SettingsError(msg) from None


def _shown(field: str, value: object) -> str:
    """A refused value as a message shows it: a secret hidden, a URL (or what was meant as
    one: a ``*_url`` setting's value) without its password."""
    known = Settings.model_fields.get(field)
    if (known is not None and is_secret(known)) or isinstance(value, SecretStr):
        return repr(HIDDEN)
    if isinstance(value, str) and ("://" in value or field.endswith("_url")):
        return repr(redacted(value))
    return repr(value)


def _variable(field: str) -> str:
    """The variable that set ``field``: ``KASSA_<FIELD>``, or the older name it still has."""
    name = ENV_PREFIX + field.upper()
    for old, new in RENAMED.items():
        if new == name and old.upper() in os.environ and name not in os.environ:
            return old.upper()
    return name
