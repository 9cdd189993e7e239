"""A real redis-server on 127.0.0.1 with append-only persistence, its password, or its TLS
listener and ACL users.

A password (``KASSA_REDIS_URL``'s) or an ACL user's reaches the server through a
configuration file only its user can read (``<home>/redis.conf``, mode 0600; an ACL user's as
its SHA-256), never through the command line, which ``ps`` shows to every user. With
:class:`RedisTls` the server listens with TLS only (``--port 0 --tls-port``), a client
certificate optional.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import redis
from pydantic import SecretStr
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationWrongNumberOfArgsError
from redis.retry import Retry

from services.exceptions import ServiceError
from services.process import RecordedServer, await_ready, require_tool, spawn

logger = logging.getLogger(__name__)

# Hashes longer than this become real hash tables: the stream job's field reads and writes
# on per-store hashes then cost O(1) instead of a listpack scan (measured ~18 -> ~7 us per
# checkout with one HINCRBY per field).
HASH_MAX_LISTPACK_ENTRIES = 64
REDIS_INSTALL_HINT = "sudo apt-get install redis-server (Debian/Ubuntu; 'make' does it as root)"
DEFAULT_USER: Final = "default"
"""The one Redis user whose password the redis-server kassa starts sets (``requirepass``)."""
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


class RedisRefusedError(ServiceError):
    """A Redis server answers but refuses the user name and password kassa logs in with."""

    def __init__(self, address: str, cause: object, fix: str) -> None:
        super().__init__(
            f"Redis at {address} answers but refuses the user name and password of "
            f"KASSA_REDIS_URL ({cause}); {fix}"
        )
        self.address = address


def redis_server_binary() -> str:
    """The path of ``redis-server``, or :class:`MissingToolError` naming the install command."""
    return require_tool("redis-server", REDIS_INSTALL_HINT)


@dataclass(frozen=True)
class RedisTls:
    """The files of a TLS listener: the server's certificate and key, and the CA whose client
    certificates it accepts (a client certificate is optional)."""

    certificate: Path
    key: Path
    ca: Path


@dataclass(frozen=True)
class AclUser:
    """A Redis ACL user: its name, password and rules (``~pattern``, ``+command``, ...)."""

    name: str
    password: SecretStr
    rules: tuple[str, ...]

    def config_line(self) -> str:
        """The ``user`` line of redis.conf: on, the password's SHA-256, the rules."""
        digest = hashlib.sha256(self.password.get_secret_value().encode()).hexdigest()
        return " ".join(("user", self.name, "reset", "on", f"#{digest}", *self.rules))


@dataclass(frozen=True)
class RedisServer(RecordedServer):
    """One local redis-server and the files it keeps under ``home``.

    ``username`` and ``password`` are those :meth:`info` logs in with (``KASSA_REDIS_URL``'s);
    without ``users``, :meth:`start` makes the server require ``password`` of the default
    user; with ``users``, the default user is off and those users are the server's only ones.
    ``tls`` makes it listen with TLS only.
    """

    PID_NAME = "redis.pid"
    CONFIG_NAME = "redis.conf"

    host: str
    port: int
    home: Path
    appendfsync: str = "everysec"
    databases: int = 16
    username: str | None = None
    password: SecretStr | None = None
    tls: RedisTls | None = None
    users: tuple[AclUser, ...] = ()
    options: tuple[str, ...] = ()
    """Further redis-server arguments (``--cluster-enabled yes``, ``--replicaof ...``)."""

    @property
    def address(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"

    @property
    def config_file(self) -> Path:
        """The configuration file holding the password (mode 0600)."""
        return self.home / self.CONFIG_NAME

    def info(self, timeout: float = 1.0) -> dict[str, object] | None:
        """``INFO`` of the Redis server at ``host:port``, logged in as kassa would be, or
        ``None`` when nothing answers; :class:`RedisRefusedError` when it answers but refuses
        the login (it names the fix)."""
        client = redis.Redis(
            host=self.host,
            port=self.port,
            username=self.username or None,
            password=self.password.get_secret_value() if self.password else None,
            ssl=self.tls is not None,
            ssl_ca_certs=str(self.tls.ca) if self.tls is not None else None,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            return client.info()
        except (redis.AuthenticationError, AuthenticationWrongNumberOfArgsError) as exc:
            raise RedisRefusedError(self.address, exc, self._login_fix()) from None
        except (redis.ConnectionError, redis.TimeoutError):
            return None
        finally:
            client.close()

    def _login_fix(self) -> str:
        if self.pid is not None:
            return (
                "'kassa services up' started it with another password (or none): restart it "
                "with the current one by 'kassa services down' then 'kassa services up'"
            )
        return (
            "it is not kassa's: put its password in KASSA_REDIS_URL "
            "(redis://:PASSWORD@host:port/db, or redis://USER:PASSWORD@... for an ACL user; "
            "percent-encode / ? # @ : in it), or none if it sets none"
        )

    def check_can_start(self) -> None:
        """Raise :class:`ServiceError` if :meth:`start` could not give the server this login:
        it sets only the default user's password."""
        if self.username and self.username not in {DEFAULT_USER, *(u.name for u in self.users)}:
            msg = (
                f"KASSA_REDIS_URL logs in as Redis user {self.username!r}, but the local Redis "
                "'kassa services up' starts only sets the default user's password: drop the "
                "user name (redis://:PASSWORD@host:port/db), or start a Redis with that ACL "
                "user yourself"
            )
            raise ServiceError(msg)

    def start(self, timeout: float = 30.0) -> int:
        """Start redis-server with AOF on (and :attr:`password` required), wait until it
        answers; return its pid."""
        self.check_can_start()
        binary = redis_server_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        if self.tls is None:
            listener = ["--port", str(self.port)]
        else:
            listener = [
                "--port", "0", "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls.certificate), "--tls-key-file", str(self.tls.key),
                "--tls-ca-cert-file", str(self.tls.ca), "--tls-auth-clients", "optional",
            ]  # fmt: skip
        command = [
            binary, str(self.config_file), "--bind", self.host, *listener,
            "--dir", str(self.data_dir),
            "--appendonly", "yes", "--appendfsync", self.appendfsync, "--save", "",
            "--databases", str(self.databases), "--daemonize", "no", "--protected-mode", "yes",
            "--hash-max-listpack-entries", str(HASH_MAX_LISTPACK_ENTRIES), *self.options,
        ]  # fmt: skip
        log_file = self.home / "redis.log"
        pid = spawn(command, log_file, self.pid_file)
        ready = lambda: self.info() is not None  # noqa: E731
        await_ready(pid, ready, f"redis-server at {self.address}", log_file, timeout)
        logger.info("Redis answers at %s (pid %d)", self.address, pid)
        return pid

    def _write_config(self) -> None:
        """Write :attr:`config_file`, readable by this user only: the password or the ACL
        users, if any."""
        lines = ["# written by 'kassa services up' on every start: the password of KASSA_REDIS_URL"]
        if self.users:
            lines.append("user default reset off")
            lines += [user.config_line() for user in self.users]
        elif self.password is not None and self.password.get_secret_value():
            lines.append(f"requirepass {_quoted(self.password.get_secret_value())}")
        descriptor = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # an older file keeps its mode through O_CREAT
        with os.fdopen(descriptor, "w") as config:
            config.write("\n".join(lines) + "\n")


def _quoted(value: str) -> str:
    """``value`` as a double-quoted string of redis.conf: every byte but letters and digits
    as ``\\xHH``, so no character of a password can end or bend the line."""
    encoded = "".join(
        char if char in _PLAIN else "".join(f"\\x{byte:02x}" for byte in char.encode())
        for char in value
    )
    return f'"{encoded}"'


@dataclass(frozen=True)
class RedisSentinel(RecordedServer):
    """One local Redis Sentinel (``redis-server --sentinel``) watching the master ``master``
    at ``master_host:master_port``, and the files it keeps under ``home``.

    Its configuration file (``<home>/sentinel.conf``, mode 0600) is rewritten by the Sentinel
    itself as it learns replicas, other Sentinels and failovers; :meth:`start` writes it anew.
    """

    PID_NAME = "sentinel.pid"
    CONFIG_NAME = "sentinel.conf"

    host: str
    port: int
    home: Path
    master: str
    master_host: str
    master_port: int
    quorum: int = 2
    down_after_ms: int = 1000
    failover_timeout_ms: int = 10_000

    @property
    def address(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"

    def answers(self, timeout: float = 1.0) -> bool:
        """Whether the Sentinel answers a ``PING``."""
        client = redis.Redis(
            host=self.host,
            port=self.port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError):
            return False
        finally:
            client.close()

    def start(self, timeout: float = 30.0) -> int:
        """Start the Sentinel, wait until it answers; return its pid."""
        binary = redis_server_binary()
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / self.CONFIG_NAME
        name = self.master
        lines = [
            f"port {self.port}",
            f"bind {self.host}",
            f"dir {self.home}",
            f"sentinel monitor {name} {self.master_host} {self.master_port} {self.quorum}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write("\n".join(lines) + "\n")
        log_file = self.home / "sentinel.log"
        pid = spawn([binary, str(config), "--sentinel"], log_file, self.pid_file)
        await_ready(pid, self.answers, f"Redis Sentinel at {self.address}", log_file, timeout)
        logger.info("Redis Sentinel answers at %s (pid %d)", self.address, pid)
        return pid
