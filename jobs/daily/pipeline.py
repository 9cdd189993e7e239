"""The daily job's pipeline stages: work ahead on threads, decoding ahead, paused collection.

pyarrow, Polars and librdkafka release the GIL, so a stage on a thread of its own overlaps
with the others on both cores.
"""

from __future__ import annotations

import gc
import queue
import threading
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Final, TypeVar

from common.columns import Decoded, decode_batch
from common.schema import Limits

PREFETCH_CHUNKS: Final = 2
DECODERS: Final = 2

T = TypeVar("T")


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (unless it was off already).

    A read allocates a Kafka message object per record; they are freed by reference counting,
    but their sheer number triggers collections that traverse every live object again and
    again, holding the GIL that the fetching and decoding threads need.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def in_background(items: Iterator[T], depth: int = PREFETCH_CHUNKS) -> Generator[T, None, None]:
    """The items of ``items``, computed ahead on a thread (at most ``depth`` waiting).

    Closing the returned generator (or leaving a ``with closing(...)`` block) stops the
    thread, closes ``items`` on that thread and waits for it, so whatever ``items`` uses
    (a Kafka consumer) is free again afterwards.
    """
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def work() -> None:
        try:
            for item in items:
                if not offer(("item", item)):
                    return
            offer(("done", None))
        except BaseException as exc:  # handed to the consuming thread
            offer(("error", exc))
        finally:
            close = getattr(items, "close", None)
            if callable(close):
                close()

    thread = threading.Thread(target=work, name="kassa-daily-worker", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


def decode_ahead(
    chunks: Iterable[list[bytes | None]], limits: Limits, decoders: int = DECODERS
) -> Iterator[tuple[int, Decoded]]:
    """``(records, decoded)`` for each chunk, in order, ``decoders`` chunks decoded at once.

    Each decoder parses on its own thread (pyarrow and Polars release the GIL), so fetching,
    decoding and aggregating share both cores.
    """
    with ThreadPoolExecutor(decoders, thread_name_prefix="kassa-daily-decoder") as pool:
        pending: deque[tuple[int, Future[Decoded]]] = deque()
        for values in chunks:
            pending.append((len(values), pool.submit(decode_batch, values, limits)))
            if len(pending) >= decoders:
                records, decoded = pending.popleft()
                yield records, decoded.result()
        while pending:
            records, decoded = pending.popleft()
            yield records, decoded.result()
