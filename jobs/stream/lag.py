"""The consumer lag in seconds: how long ago the log ended where the job now stands.

Kafka tells the lag in messages (the log end offset minus the consumer's position); a
number of messages means nothing to an operator without the rate they arrive at. Like
kafka-lag-exporter, :class:`LogEnd` keeps a short history of a partition's log end offset
(from librdkafka's statistics, every few seconds) and answers with the time at which the
log end passed the offset the job applies next: ``now`` minus that time is the lag in
seconds, 0 when the job applied everything the log held at the last sample.
"""

from __future__ import annotations

from collections import deque
from typing import Final

HISTORY: Final = 720
"""Samples kept per partition (an hour at librdkafka's 5-second statistics)."""


class LogEnd:
    """The history of one partition's log end offset: ``(time, end offset)`` samples."""

    def __init__(self, history: int = HISTORY) -> None:
        self._samples: deque[tuple[float, int]] = deque(maxlen=history)

    def observe(self, at: float, end: int) -> None:
        """The log ended before offset ``end`` at time ``at`` (kept when it moved)."""
        if self._samples and self._samples[-1][1] == end:
            return
        if self._samples and end < self._samples[-1][1]:
            self._samples.clear()  # a new log (the topic was recreated): the past is no guide
        self._samples.append((at, end))

    def lag_seconds(self, position: int, now: float) -> float | None:
        """Seconds since the log end passed ``position`` (the next offset to apply); 0 when
        the newest sample's end is not past it, None without a sample.

        The record at ``position`` arrived between the last sample that did not hold it and
        the first that did; the time is interpolated linearly between them. When even the
        oldest sample is past ``position`` the answer is the age of that sample, a lower
        bound.
        """
        if not self._samples:
            return None
        if self._samples[-1][1] <= position:
            return 0.0
        passed_at = self._samples[0][0]
        previous: tuple[float, int] | None = None
        for at, end in self._samples:
            if end > position:
                if previous is not None:
                    before_at, before_end = previous
                    share = (position + 1 - before_end) / (end - before_end)
                    passed_at = before_at + share * (at - before_at)
                break
            previous = (at, end)
        return max(0.0, now - passed_at)
