"""Redis connections: the one place that makes a Redis client, and where an error of the
Redis client becomes kassa's error.

A client is made from the Redis settings (:class:`~common.settings.redis.RedisSettings`) in
one of three shapes: one server (``KASSA_REDIS_URL``), the master a set of Sentinels names
(``KASSA_REDIS_SENTINELS``: redis-py's ``Sentinel.master_for``, which asks them again after a
failover) or a Redis Cluster (``KASSA_REDIS_CLUSTER``: redis-py's ``RedisCluster``); each
with the login (``KASSA_REDIS_USERNAME``/``PASSWORD`` or the URL's) and TLS (``rediss://``
and the ``KASSA_REDIS_SSL_*`` files) of the settings. A Redis URL becomes text only through
:func:`~common.redaction.redacted` (its password never reaches a message or a log line).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeAlias
from urllib.parse import unquote, urlsplit

import redis
from redis.cluster import RedisCluster
from redis.connection import SSLConnection, parse_url
from redis.exceptions import AuthenticationWrongNumberOfArgsError
from redis.sentinel import MasterNotFoundError, Sentinel

from common.errors import RedisAccessError, RedisUnavailableError
from common.settings.redis import DEFAULT_USER, RedisSettings

Client: TypeAlias = redis.Redis | RedisCluster
"""A client of kassa's Redis: one server's (or the Sentinels' master's), or a cluster's."""
Target: TypeAlias = str | RedisSettings
"""What :func:`open_redis` connects to: a Redis URL (one server), or the Redis settings."""
_URL_ONLY = frozenset({"host", "port", "connection_class"})
_SENTINEL_REFUSAL = "AuthenticationError"
"""How redis-py's ``MasterNotFoundError`` lists a Sentinel that refused the login (it quotes
the ``repr`` of each Sentinel's error)."""


def open_redis(target: Target, *, timeout: float | None = None, **options: Any) -> Client:
    """A client of the Redis that ``target`` (the settings, or a URL) describes.

    ``timeout`` bounds both connecting and each command, in seconds (None: wait as long as
    it takes); ``options`` are redis-py's own (e.g. ``retry``).
    """
    if timeout is not None:
        options = {"socket_timeout": timeout, "socket_connect_timeout": timeout, **options}
    if isinstance(target, str):
        return redis.Redis.from_url(target, **options)
    options = {**_login(target), **options}
    if target.redis_cluster:
        return RedisCluster.from_url(target.redis_url, **options)
    if target.redis_sentinels:
        return _sentinels_master(target, options)
    return redis.Redis.from_url(target.redis_url, **options)


def _login(settings: RedisSettings) -> dict[str, Any]:
    """redis-py's options for the user name, password and TLS files of ``settings``."""
    options: dict[str, Any] = {}
    if settings.redis_username:
        options["username"] = settings.redis_username
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if settings.redis_ssl_ca_location is not None:
        options["ssl_ca_certs"] = str(settings.redis_ssl_ca_location)
    if settings.redis_ssl_certificate_location is not None:
        options["ssl_certfile"] = str(settings.redis_ssl_certificate_location)
        options["ssl_keyfile"] = str(settings.redis_ssl_key_location)
    return options


def _sentinels_master(settings: RedisSettings, options: dict[str, Any]) -> redis.Redis:
    """A client of the master the Sentinels name, reached with the URL's scheme, login and
    database; the Sentinels themselves are asked with the same TLS and their own login
    (``KASSA_REDIS_SENTINEL_USERNAME``/``PASSWORD``), if any."""
    parsed: dict[str, Any] = parse_url(settings.redis_url)  # type: ignore[no-untyped-call]
    tls = parsed.get("connection_class") is SSLConnection
    master = {key: value for key, value in parsed.items() if key not in _URL_ONLY}
    master.update(options)
    asking = {
        key: value
        for key, value in master.items()
        if key.startswith(("socket_", "ssl_")) or key == "retry"
    }
    if tls:
        master["ssl"] = asking["ssl"] = True
    if settings.redis_sentinel_username:
        asking["username"] = settings.redis_sentinel_username
    if settings.redis_sentinel_password is not None:
        asking["password"] = settings.redis_sentinel_password.get_secret_value()
    # redis-py leaves Sentinel unannotated
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        settings.redis_sentinel_addresses, sentinel_kwargs=asking, **master
    )
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        settings.redis_sentinel_master
    )
    return client


@contextmanager
def redis_failures(
    target: Target,
    doing: str,
    error: Callable[[Target, str, BaseException], RedisUnavailableError] = RedisUnavailableError,
) -> Iterator[None]:
    """Turn any Redis error in the block into ``error(target, doing, cause)``, or into
    :class:`~common.errors.RedisAccessError` when Redis answered but refused kassa (its
    login, its TLS or an ACL rule): retrying cannot help then.

    ``doing`` completes "cannot ... Redis", e.g. ``"read the ranking from"``; ``error`` is
    :class:`~common.errors.RedisUnavailableError` or a subclass that says what the failure
    means for its job.
    """
    try:
        yield
    except redis.RedisError as exc:
        refusal = access_refusal(target, exc)
        if refusal is not None:
            raise refusal from exc
        raise error(target, doing, exc) from exc


def access_refusal(target: Target, exc: redis.RedisError) -> RedisAccessError | None:
    """The :class:`~common.errors.RedisAccessError` ``exc`` means, if Redis refused kassa's
    login, TLS or command; ``None`` for any other failure."""
    if isinstance(target, str):
        user, ca, host = _url_user(target), None, "the host of KASSA_REDIS_URL"
    else:
        user, ca = target.redis_user, target.redis_ssl_ca_location
        host = (
            "the host the Sentinels name"
            if target.redis_sentinels
            else "the host of KASSA_REDIS_URL"
        )
        if isinstance(exc, MasterNotFoundError) and _SENTINEL_REFUSAL in str(exc):
            return RedisAccessError(
                target,
                f"cannot be found: the Sentinels refused kassa's login ({exc})",
                "fix KASSA_REDIS_SENTINEL_PASSWORD (or its _FILE) and "
                "KASSA_REDIS_SENTINEL_USERNAME: the Sentinels' own login, not the master's",
            )
    if isinstance(exc, redis.AuthenticationError | AuthenticationWrongNumberOfArgsError):
        return RedisAccessError(
            target,
            f"refused the login of user {user!r} ({exc})",
            "fix KASSA_REDIS_PASSWORD (or its _FILE, or the URL's password) and "
            "KASSA_REDIS_USERNAME for that ACL user",
        )
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return RedisAccessError(
            target,
            f"denied user {user!r} a command or key kassa needs ({exc})",
            "grant the user the ACL rules docs/security.md lists",
        )
    if isinstance(exc, redis.ConnectionError) and _tls_failure(exc):
        shown = f"KASSA_REDIS_SSL_CA_LOCATION={str(ca)!r}" if ca else "the system's CAs"
        return RedisAccessError(
            target,
            f"refused TLS ({exc})",
            f"the server's certificate must be signed by a CA in {shown} and name {host}; "
            "point KASSA_REDIS_SSL_CA_LOCATION at its CA",
        )
    return None


def _tls_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) is a failed TLS handshake."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) or "SSL" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _url_user(url: str) -> str:
    return unquote(urlsplit(url).username or "") or DEFAULT_USER
