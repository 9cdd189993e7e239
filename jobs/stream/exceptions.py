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


class WriterError(StreamError):
    """The writer process failed on a batch in a way kassa did not foresee."""

    def __init__(self, partition: int, first: int, last: int, cause: BaseException) -> None:
        super().__init__(
            f"the stream job's writer failed on partition {partition}, offsets {first}..{last}: "
            f"{type(cause).__name__}: {cause}; restart kassa stream (it resumes from the last "
            "commit) and report the traceback above if it happens again"
        )
        self.partition = partition
        self.first = first
        self.last = last
        self.cause = f"{type(cause).__name__}: {cause}"
