"""Errors of the stream job."""

from __future__ import annotations

from common.errors import KassaError, RedisUnavailableError


class StreamError(KassaError):
    """The stream job cannot go on."""

    exit_code = 3


class DeadLetterError(StreamError):
    """Dead-lettered messages could not be delivered to the dead-letter topic."""


class StreamRedisUnavailableError(RedisUnavailableError, StreamError):
    """Redis could not be reached, read or written by the stream job."""

    exit_code = 3
    advice = (
        "start Redis or fix the URL, then restart kassa stream: it resumes from the last commit"
    )
