"""The lock that serializes runs of one business day, across processes and, for an object
store, across machines (:class:`DayLocks`).

A local ``KASSA_DATA_DIR`` keeps the lock file ``_manifests/date=D/.lock`` (``fcntl``: the
kernel frees it when its process dies). An object-store ``KASSA_DATA_DIR`` is shared by
schedulers on several hosts, which share no kernel: the lock is the Redis key
:func:`storage.keys.day_lock_key` in kassa's Redis (whatever its shape: one server, the
Sentinels' master, a cluster), taken with a random token by redis-py's :class:`Lock`
(``SET NX PX``; only the token's holder may renew or release it). It expires
``KASSA_DAILY_LOCK_SECONDS`` after its last renewal, so a run that died does not hold the day
for ever; a live run renews it every third of that on a thread, and checks it still holds the
lock just before it publishes its manifest (:meth:`HeldLock.check`).
"""

from __future__ import annotations

import fcntl
import logging
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final

import redis
from redis.exceptions import LockError
from redis.lock import Lock

from common.settings import Settings
from common.settings.location import DataLocation
from jobs.daily.exceptions import DayLockLost, DayLockUnavailable
from storage import keys, parquet
from storage.connections import Target, open_redis

logger = logging.getLogger(__name__)

RENEWALS_PER_TIMEOUT: Final = 3


@dataclass(frozen=True)
class HeldLock:
    """A day's lock while a run holds it: ``lock`` is the Redis lock (of the database at
    ``url``, renewed until ``lost`` is set), ``None`` for a lock file."""

    day: date
    seconds: int
    lock: Lock | None = None
    lost: threading.Event | None = None
    url: str = ""

    def check(self) -> None:
        """Raise :class:`DayLockLost` unless the run still holds its Redis lock (its token is
        the key's value); a lock file is held until its process ends."""
        if self.lock is None:
            return
        try:
            owned = self.lock.owned() and not (self.lost and self.lost.is_set())
        except redis.RedisError as exc:
            raise DayLockUnavailable(self.url, self.day, exc) from exc
        if not owned:
            raise DayLockLost(self.day, self.seconds)


@dataclass(frozen=True)
class DayLocks:
    """Where runs of a day take their lock: a file beside a local ``location``, else Redis
    (``redis``: the Redis settings, or one server's URL; and ``key_space``, required then)."""

    location: DataLocation
    redis: Target | None = None
    key_space: str = ""
    seconds: int = 60
    """The Redis lock's time to live (``KASSA_DAILY_LOCK_SECONDS``)."""

    @classmethod
    def of(cls, settings: Settings) -> DayLocks:
        """The locks of ``settings``' data location."""
        return cls(settings.data_dir, settings, settings.key_space, settings.daily_lock_seconds)

    @contextmanager
    def hold(self, day: date) -> Iterator[HeldLock]:
        """Hold the lock of ``day``: a second run of the same day waits for the first."""
        if isinstance(self.location, Path):
            with _file_lock(parquet.lock_path(self.location, day)):
                yield HeldLock(day, self.seconds)
            return
        redis_target, url = self._redis()
        with closing(open_redis(redis_target)) as client:
            lock = client.lock(
                keys.day_lock_key(self.key_space, day),
                timeout=self.seconds,
                sleep=0.1,
                thread_local=False,
            )
            try:
                lock.acquire()
            except redis.RedisError as exc:
                raise DayLockUnavailable(url, day, exc) from exc
            lost = threading.Event()
            stop = threading.Event()
            renewer = threading.Thread(
                target=_renew,
                args=(lock, self.seconds / RENEWALS_PER_TIMEOUT, stop, lost),
                name="kassa-daily-lock",
                daemon=True,
            )
            renewer.start()
            try:
                yield HeldLock(day, self.seconds, lock, lost, url)
            finally:
                stop.set()
                renewer.join()
                with suppress(LockError, redis.RedisError):
                    lock.release()

    def held(self, day: date) -> bool:
        """Whether a run holds the lock of ``day`` right now."""
        if isinstance(self.location, Path):
            return _file_held(parquet.lock_path(self.location, day))
        redis_target, url = self._redis()
        try:
            with closing(open_redis(redis_target)) as client:
                return bool(client.exists(keys.day_lock_key(self.key_space, day)))
        except redis.RedisError as exc:
            raise DayLockUnavailable(url, day, exc) from exc

    def _redis(self) -> tuple[Target, str]:
        """The Redis of the locks, and its URL (for messages)."""
        if self.redis is None:
            msg = "an object-store data location locks its days in Redis: give DayLocks one"
            raise ValueError(msg)
        return self.redis, self.redis if isinstance(self.redis, str) else self.redis.redis_url


@contextmanager
def day_lock(settings: Settings, day: date) -> Iterator[HeldLock]:
    """Hold the lock of ``day`` (:meth:`DayLocks.hold` of ``settings``)."""
    with DayLocks.of(settings).hold(day) as held:
        yield held


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _file_held(path: Path) -> bool:
    if not path.exists():
        return False
    with path.open("a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return False


def _renew(lock: Lock, every: float, stop: threading.Event, lost: threading.Event) -> None:
    """Reset ``lock``'s time to live every ``every`` seconds until ``stop``; when the lock is
    no longer the run's (it expired, or Redis stayed out of reach past its time to live), set
    ``lost``: the run reports it (:meth:`HeldLock.check`)."""
    while not stop.wait(every):
        try:
            lock.reacquire()
        except LockError:
            lost.set()
            return
        except redis.RedisError as exc:
            logger.warning("cannot renew the daily lock %r (%s); retrying", lock.name, exc)
