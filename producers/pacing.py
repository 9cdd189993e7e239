"""Holding checkouts back in time: replay speed and the broker's future-timestamp limit."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Final

from common.schema import Checkout

logger = logging.getLogger(__name__)

HORIZON_SECONDS: Final = 50 * 60.0
"""How far ahead of the wall clock a checkout may be dated when it is sent.

Kafka 4 refuses records dated more than ``log.message.timestamp.after.max.ms`` (default one
hour) after the broker's clock; ten minutes are left for clock skew.
"""

_SLICE_SECONDS: Final = 0.1


def _wait(seconds: float, stop: threading.Event) -> bool:
    """Sleep ``seconds`` in short slices; False when ``stop`` was set meanwhile."""
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, _SLICE_SECONDS))
    return False


def at_speed(
    checkouts: Iterable[Checkout], speed: float, stop: threading.Event
) -> Iterator[Checkout]:
    """Yield each checkout when its ``occurred_at`` comes, ``speed`` times faster than real time.

    The first checkout goes as soon as ``checkouts`` gives it; each later one goes when the
    time since then reaches its distance in event time divided by ``speed``. Ends early when
    ``stop`` is set.
    """
    if speed <= 0:
        msg = f"speed {speed} is not positive; pass e.g. 1 (real time), 60, or 'max'"
        raise ValueError(msg)
    first_event: float | None = None
    started = 0.0
    for checkout in checkouts:
        event = checkout.occurred_at.timestamp()
        if first_event is None:
            first_event = event
            started = time.monotonic()
        ahead = started + (event - first_event) / speed - time.monotonic()
        if ahead > 0 and not _wait(ahead, stop):
            return
        if stop.is_set():
            return
        yield checkout


def not_ahead_of_clock(
    checkouts: Iterable[Checkout],
    stop: threading.Event,
    horizon: float = HORIZON_SECONDS,
) -> Iterator[Checkout]:
    """Yield each checkout once it is dated at most ``horizon`` seconds after now.

    A simulated or shifted clock that runs ahead of the real one is held back instead of
    producing records the broker would refuse. Ends early when ``stop`` is set.
    """
    limit = time.time() + horizon
    held = False
    for checkout in checkouts:
        event = checkout.occurred_at.timestamp()
        if event > limit:
            limit = time.time() + horizon
            if event > limit:
                if not held:
                    held = True
                    logger.info(
                        "holding checkouts dated %s and later until the wall clock is within "
                        "%.0f min of them (the broker refuses records dated further ahead)",
                        checkout.occurred_at.isoformat(),
                        horizon / 60,
                    )
                if not _wait(event - limit, stop):
                    return
                limit = time.time() + horizon
        if stop.is_set():
            return
        yield checkout
