"""The root of kassa's error hierarchy, and the errors every layer shares.

Every error kassa raises on purpose derives from :class:`KassaError`; its message names the
value that was wrong and what to do about it. An error that has values to report takes them
in ``__init__`` and builds its message itself, so the message is written once, not at each
raise site. Subpackages define their own subclasses in their ``exceptions.py``.

``exit_code`` is the status ``kassa`` exits with when the error ends a command.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any, ClassVar

from common.redaction import RedisPlace, redacted, redis_location

if TYPE_CHECKING:
    from common.schema import Reason


class KassaError(Exception):
    """Base class of every error kassa raises on purpose."""

    exit_code: ClassVar[int] = 2

    def __reduce__(self) -> tuple[Any, ...]:
        # The default pickles the message as the argument of __init__, which subclasses
        # that build their message from values cannot take; the stream job's writer
        # processes send their errors to the consumer process pickled.
        return _unpickle, (type(self), self.args), self.__dict__


def _unpickle(cls: type[KassaError], args: tuple[Any, ...]) -> KassaError:
    """A ``cls`` with ``args`` as they were, without calling ``cls.__init__`` again."""
    error = cls.__new__(cls)
    error.args = args
    return error


class SettingsError(KassaError):
    """A ``KASSA_*`` environment variable has a value kassa cannot use."""


class InvalidCheckout(KassaError):  # noqa: N818 - reads as "raise InvalidCheckout(...)"
    """A message that is not a valid checkout; ``reason`` classifies it, the text explains."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class InvalidDay(KassaError):  # noqa: N818 - reads as "raise InvalidDay(...)"
    """A day given by a user is not a ``YYYY-MM-DD`` date."""

    def __init__(self, text: str) -> None:
        super().__init__(f"day {text!r} is not a date; write it as YYYY-MM-DD, e.g. 2026-11-21")
        self.text = text


class InvalidDayRange(KassaError):  # noqa: N818 - reads as "raise InvalidDayRange(...)"
    """A range of days given by a user ends before it starts."""

    def __init__(self, first: date, last: date) -> None:
        super().__init__(f"--from {first} is after --to {last}; pass the days in order")
        self.first = first
        self.last = last


class DayOutOfRange(KassaError):  # noqa: N818 - reads as "raise DayOutOfRange(...)"
    """An instant or day whose business day or bounds Python's dates cannot hold."""

    def __init__(self, value: object, zone: str) -> None:
        super().__init__(
            f"{value} in {zone} lies outside the business days kassa can compute "
            "(years 1 to 9999); checkouts this far out are refused as event_time "
            "(KASSA_EVENT_TIME_MIN, KASSA_EVENT_TIME_MAX_AHEAD_SECONDS)"
        )
        self.value = str(value)
        self.zone = zone


class FigureLimitError(KassaError):
    """A live figure would pass what Redis holds exactly (net units beyond +-2^53)."""

    exit_code = 3

    def __init__(self, where: str) -> None:
        super().__init__(
            f"net units of {where} would pass 2^53, beyond what the live ranking holds "
            "exactly, so the batch was not written; the daily job still counts the day "
            "exactly: delete that key or lower KASSA_MAX_QUANTITY, then restart kassa stream"
        )
        self.where = where


class KafkaUnavailableError(KassaError):
    """The Kafka cluster could not be reached."""

    exit_code = 4

    def __init__(self, bootstrap: str, cause: object) -> None:
        super().__init__(
            f"cannot reach Kafka at KASSA_KAFKA_BOOTSTRAP={bootstrap!r} ({cause}); "
            "start it with 'kassa services up' or fix the address"
        )
        self.bootstrap = bootstrap
        self.cause = str(cause)


class TopicError(KassaError):
    """A topic could not be created."""

    def __init__(self, topic: str, cause: object) -> None:
        super().__init__(f"cannot create topic {topic!r}: {cause}")
        self.topic = topic
        self.cause = str(cause)


class ReplicationFactorError(KassaError):
    """Topics would get more replicas than the cluster has brokers up."""

    def __init__(self, factor: int, brokers: int, bootstrap: str) -> None:
        super().__init__(
            f"KASSA_REPLICATION_FACTOR={factor} is larger than the {brokers} broker(s) up at "
            f"{bootstrap!r}; start more brokers ('kassa services up --brokers {factor}') or "
            f"lower KASSA_REPLICATION_FACTOR to {brokers} or less"
        )
        self.factor = factor
        self.brokers = brokers


class TopicNotFoundError(KassaError):
    """Topics kassa was asked about do not exist."""

    def __init__(self, topics: list[str]) -> None:
        names = ", ".join(repr(topic) for topic in topics)
        super().__init__(f"no topic {names}; create it with 'kassa topics create'")
        self.topics = topics


def _shown_url(target: str | RedisPlace) -> str:
    """The URL of ``target`` without its password (:attr:`RedisUnavailableError.url`)."""
    return redacted(target if isinstance(target, str) else target.redis_url)


class RedisUnavailableError(KassaError):
    """Redis could not be reached, read or written.

    ``target`` is the Redis settings (or a URL), named by
    :func:`~common.redaction.redis_location`; ``doing`` completes "cannot ... Redis", e.g.
    ``"read the ranking from"``; subclasses replace :attr:`advice` with what the failure
    means for their job. :attr:`url` is the URL without its password.
    """

    exit_code = 3
    advice: ClassVar[str] = "start Redis or fix its settings"

    def __init__(self, target: str | RedisPlace, doing: str, cause: object) -> None:
        super().__init__(f"cannot {doing} {redis_location(target)} ({cause}); {self.advice}")
        self.url = _shown_url(target)
        self.doing = doing
        self.cause = str(cause)


class RedisAccessError(RedisUnavailableError):
    """Redis answered but refused kassa: its login, its TLS, or an ACL rule.

    Retrying cannot help (unlike :class:`RedisUnavailableError`, which a running job waits
    out): the message names what was refused and the setting or rule that fixes it.
    """

    exit_code = 9

    def __init__(self, target: str | RedisPlace, refused: str, fix: str) -> None:
        KassaError.__init__(self, f"{redis_location(target)} {refused}; {fix}")
        self.url = _shown_url(target)
        self.doing = "reach"
        self.cause = refused
