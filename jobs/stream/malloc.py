"""glibc's allocator tuned for the stream job's big, short-lived batch buffers.

A batch travels between processes as a pickle of several MiB. By default glibc serves blocks
that big with a fresh ``mmap`` and returns them on ``free``, so every batch pays a page fault
per 4 KiB page on each side (about two thirds of the cost of pickling a batch, measured).
Keeping big blocks in the heap and not trimming it reuses the same pages; the process keeps
its peak heap (bounded by the sink's batch limits) instead of returning it to the system.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Final

logger = logging.getLogger(__name__)

M_TRIM_THRESHOLD: Final = -1
M_TOP_PAD: Final = -2
M_MMAP_THRESHOLD: Final = -3
SETTINGS: Final = (
    (M_MMAP_THRESHOLD, 64 << 20),  # above a batch pickle (the sink hands over at 32 MiB)
    (M_TRIM_THRESHOLD, 256 << 20),
    (M_TOP_PAD, 64 << 20),
)


def keep_batch_memory() -> bool:
    """Apply :data:`SETTINGS` with ``mallopt``; False where the C library has no ``mallopt``
    (musl, macOS), which changes only speed."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        logger.debug("no mallopt in the C library: allocator left as it is")
        return False
    return all(mallopt(option, value) == 1 for option, value in SETTINGS)
