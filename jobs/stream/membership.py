"""Static group membership: the ``group.instance.id`` of a stream replica.

A static member that restarts within the session timeout gets its partitions back at once,
without a rebalance (KIP-345). Its id must be stable across restarts and unique among the
group's live replicas, so when ``KASSA_STREAM_INSTANCE_ID`` is empty each replica takes
``<host name>-<n>``, ``n`` the lowest number whose lock file in ``KASSA_STATE_DIR`` no other
replica holds. The kernel releases the lock when a process dies, also after ``kill -9``, so
a restarted replica takes its old number again.
"""

from __future__ import annotations

import fcntl
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from common.errors import SettingsError
from common.settings import Settings

MAX_REPLICAS_PER_HOST = 256


@contextmanager
def claimed_instance_id(settings: Settings) -> Iterator[str | None]:
    """The replica's ``group.instance.id`` (None without static membership), held until
    the block ends."""
    if not settings.stream_static_membership:
        yield None
        return
    if settings.stream_instance_id:
        yield settings.stream_instance_id
        return
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname()) or "host"
    folder = settings.state_dir / "instances"
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(MAX_REPLICAS_PER_HOST):
        with (folder / f"{number}.lock").open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live replica holds this number
            yield f"{host}-{number}"
            return
    msg = (
        f"{MAX_REPLICAS_PER_HOST} stream replicas already share KASSA_STATE_DIR="
        f"{str(settings.state_dir)!r}; give this one its own KASSA_STREAM_INSTANCE_ID"
    )
    raise SettingsError(msg)
