"""The stream job's adapter to Quix Streams: every private hook of Quix that kassa overrides.

Quix Streams has no public hook for a rebalance, a stop signal or its consumer's error
callback, so :class:`StreamApplication` overrides private names of Quix's ``Application``
and of its consumer. They are listed in :data:`PRIVATE_HOOKS` with what each is for;
``tests/jobs/stream/test_quix.py`` checks that the pinned Quix still has each one with a
compatible signature and still calls it itself, and that no override is missing from the
list. Review that list when upgrading quixstreams.

The adapter knows nothing of Redis: what the job does when partitions come and go is a
:class:`Listener` (:class:`jobs.stream.assignment.Assignments`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import TopicPartition
from quixstreams import Application
from quixstreams.kafka.consumer import BaseConsumer

from jobs.stream.commits import retrying_commit
from jobs.stream.failures import ErrorLog
from jobs.stream.metrics import StreamMetrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrivateHook:
    """A private name of Quix Streams the adapter overrides or replaces."""

    owner: type
    """The Quix class that defines the name (on its instances, for an attribute)."""
    name: str
    arguments: tuple[str, ...]
    """What Quix passes when it calls the hook, besides ``self``."""
    why: str
    attribute: bool = False
    """An attribute of ``owner``'s instances the adapter replaces, not a method it overrides."""


PRIVATE_HOOKS = (
    PrivateHook(
        Application,
        "_get_internal_consumer",
        (),
        "builds the application's consumer: its commit is wrapped by retrying_commit (ride a "
        "group coordinator moving to another broker) and its error callback replaced",
    ),
    PrivateHook(
        Application,
        "_on_assign",
        ("consumer", "topic_partitions"),
        "the rebalance callback: each sales partition's start offset is set from Redis's "
        "watermark BEFORE Quix assigns the list it gets",
    ),
    PrivateHook(
        Application,
        "_on_revoke",
        ("consumer", "topic_partitions"),
        "the rebalance callback: after Quix committed, the sink forgets the partitions",
    ),
    PrivateHook(
        Application,
        "_on_lost",
        ("consumer", "topic_partitions"),
        "the rebalance callback for lost partitions: the sink forgets them",
    ),
    PrivateHook(
        Application,
        "_on_sigterm",
        ("signum", "frame"),
        "the SIGTERM handler: the job is stopping, not to be rebuilt",
    ),
    PrivateHook(
        Application,
        "_on_sigint",
        ("signum", "frame"),
        "the SIGINT handler: the job is stopping, not to be rebuilt",
    ),
    PrivateHook(
        BaseConsumer,
        "_user_error_cb",
        ("error",),
        "the consumer's error callback behind Quix's own (which logs every librdkafka error "
        "at ERROR): replaced by ErrorLog",
        attribute=True,
    ),
)
"""Every private name of Quix Streams 3.28 that :class:`StreamApplication` relies on."""


class Listener(Protocol):
    """What the job does when the group moves partitions (Quix calls it from its consumer's
    rebalance callbacks)."""

    def assigning(self, consumer: Any, topic_partitions: list[TopicPartition]) -> None:
        """Partitions are being assigned: set their start offsets in ``topic_partitions``."""

    def assigned(self, topic_partitions: list[TopicPartition]) -> None:
        """Quix assigned ``topic_partitions``."""

    def revoked(self, topic_partitions: list[TopicPartition]) -> None:
        """``topic_partitions`` were revoked (after Quix committed) or lost."""


class StreamApplication(Application):
    """A Quix ``Application`` that tells ``listener`` about every rebalance, rides a moving
    group coordinator, and logs librdkafka's errors once a minute each (:class:`ErrorLog`).

    ``_on_assign`` calls :meth:`Listener.assigning` BEFORE Quix's own work (which calls
    ``consumer.assign`` with the list it gets), so the listener sets where each partition
    resumes. ``**kwargs`` are ``Application``'s.
    """

    def __init__(self, listener: Listener, metrics: StreamMetrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._listener = listener
        self._metrics = metrics
        self.stopping = False
        """Set by SIGTERM/SIGINT: the job is to stop, not to be rebuilt."""

    def _get_internal_consumer(self, *args: Any, **kwargs: Any) -> Any:
        consumer = super()._get_internal_consumer(*args, **kwargs)
        # ride a group coordinator moving to another broker (Quix would stop on it)
        consumer.commit = retrying_commit(consumer.commit)  # type: ignore[method-assign]
        # Quix logs every librdkafka error as an ERROR line (several a second while the
        # broker is away); the job's probe and restart loop say what matters.
        consumer._user_error_cb = ErrorLog()
        return consumer

    def _on_sigterm(self, *args: Any) -> None:
        logger.info("SIGTERM: writing the last batches, committing and stopping")
        self.stopping = True
        self._metrics.state = "stopping"
        super()._on_sigterm(*args)  # type: ignore[no-untyped-call]  # Quix is untyped

    def _on_sigint(self, *args: Any) -> None:
        self.stopping = True
        super()._on_sigint(*args)  # type: ignore[no-untyped-call]  # Quix is untyped

    def _on_assign(self, consumer: Any, topic_partitions: list[TopicPartition]) -> None:
        self._listener.assigning(consumer, topic_partitions)
        super()._on_assign(consumer, topic_partitions)
        self._listener.assigned(topic_partitions)

    def _on_revoke(self, consumer: Any, topic_partitions: list[TopicPartition]) -> None:
        super()._on_revoke(consumer, topic_partitions)  # commits what the sink holds first
        self._listener.revoked(topic_partitions)

    def _on_lost(self, consumer: Any, topic_partitions: list[TopicPartition]) -> None:
        self._listener.revoked(topic_partitions)
        super()._on_lost(consumer, topic_partitions)
