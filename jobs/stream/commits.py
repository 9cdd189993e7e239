"""Offset commits that ride a group coordinator moving to another broker.

When the broker holding the group's coordinator dies or stops, the next synchronous commit
fails with ``COORDINATOR_LOAD_IN_PROGRESS``, ``NOT_COORDINATOR`` or a timeout until the
coordinator is loaded on its new broker (seconds). Quix Streams turns any failed commit into
an error that stops the application; :func:`retrying_commit` retries those errors instead,
for a bounded time. Committing the same offsets again is harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

logger = logging.getLogger(__name__)

COMMIT_RETRY_SECONDS = 60.0
_COORDINATOR_MOVING = frozenset(
    {
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._WAIT_COORD,
    }
)

Commit = Callable[..., list[TopicPartition] | None]


def _retriable(error: KafkaError) -> bool:
    return error.code() in _COORDINATOR_MOVING


def retrying_commit(commit: Commit, limit: float = COMMIT_RETRY_SECONDS) -> Commit:
    """``commit`` (a consumer's ``commit``) retrying synchronous commits for up to ``limit`` s
    while the coordinator moves; other errors, and asynchronous commits, pass unchanged."""

    def commit_until_done(*args: Any, **kwargs: Any) -> list[TopicPartition] | None:
        if kwargs.get("asynchronous", True):
            return commit(*args, **kwargs)
        deadline = time.monotonic() + limit
        delay = 0.1
        while True:
            try:
                partitions = commit(*args, **kwargs)
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if not _retriable(error) or time.monotonic() >= deadline:
                    raise
            else:
                errors = [p.error for p in partitions or [] if p.error is not None]
                if not errors or not all(map(_retriable, errors)):
                    return partitions
                if time.monotonic() >= deadline:
                    return partitions
                error = errors[0]
            logger.warning(
                "offset commit failed (%s): the group coordinator is moving; retrying in %.1f s",
                error.str(),
                delay,
            )
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    return commit_until_done
