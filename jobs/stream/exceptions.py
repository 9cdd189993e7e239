"""Errors of the stream job."""

from __future__ import annotations

from common.errors import KassaError


class StreamError(KassaError):
    """The stream job cannot go on."""

    exit_code = 3


class DeadLetterError(StreamError):
    """Dead-lettered messages could not be delivered to the dead-letter topic."""


class RedisUnavailableError(StreamError):
    """Redis could not be read or written."""
