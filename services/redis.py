"""A real redis-server on 127.0.0.1 with append-only persistence, its password, or its TLS
listener and ACL users; and a Redis Sentinel watching a master, with its own password.

A password (``KASSA_REDIS_URL``'s, the Sentinels') or an ACL user's reaches the server through
a configuration file only its user can read (``<home>/redis.conf`` or ``sentinel.conf``, mode
0600; an ACL user's as its SHA-256), never through the command line, which ``ps`` shows to
every user. With :class:`RedisTls` the server listens with TLS only (``--port 0
--tls-port``), a client certificate optional.
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

from common.settings.redis import DEFAULT_USER
from services.exceptions import ServiceError
from services.process import RecordedServer, await_ready, require_tool, spawn

logger = logging.getLogger(__name__)

# Hashes longer than this become real hash tables: the stream job's field reads and writes
# on per-store hashes then cost O(1) instead of a listpack scan (measured ~18 -> ~7 us per
# checkout with one HINCRBY per field).
HASH_MAX_LISTPACK_ENTRIES = 64
REDIS_INSTALL_HINT = "sudo apt-get install redis-server (Debian/Ubuntu; 'make' does it as root)"
RESTART_WITH_THE_PASSWORD: Final = (
    "'kassa services up' started it with another password (or none): restart it with the "
    "current one by 'kassa services down' then 'kassa services up'"
)
"""The fix when a server kassa started refuses the password of today's settings."""
LOGIN_REFUSED: Final = (redis.AuthenticationError, AuthenticationWrongNumberOfArgsError)
"""What redis-py raises when a server refuses the user name and password."""
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


class RedisRefusedError(ServiceError):
    """A Redis server (or Sentinel) answers but refuses the user name and password kassa logs
    in with (``login`` names the settings they come from)."""

    def __init__(
        self,
        address: str,
        cause: object,
        fix: str,
        *,
        what: str = "Redis",
        login: str = "KASSA_REDIS_URL or KASSA_REDIS_USERNAME/_PASSWORD",
    ) -> None:
        super().__init__(
            f"{what} at {address} answers but refuses the user name and password of "
            f"{login} ({cause}); {fix}"
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
        client = _checking_client(
            self.host,
            self.port,
            self.username,
            self.password,
            timeout,
            ssl=self.tls is not None,
            ssl_ca_certs=str(self.tls.ca) if self.tls is not None else None,
        )
        try:
            return client.info()
        except LOGIN_REFUSED as exc:
            raise RedisRefusedError(self.address, exc, self._login_fix()) from None
        except (redis.ConnectionError, redis.TimeoutError):
            return None
        finally:
            client.close()

    def _login_fix(self) -> str:
        if self.pid is not None:
            return RESTART_WITH_THE_PASSWORD
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
        pid = spawn(command, log_file, self.pid_file, private=True)
        ready = lambda: self.info() is not None  # noqa: E731
        await_ready(pid, ready, f"redis-server at {self.address}", log_file, timeout)
        logger.info("Redis answers at %s (pid %d)", self.address, pid)
        return pid

    def _write_config(self) -> None:
        """Write :attr:`config_file`, readable by this user only: the password or the ACL
        users, if any.

        With a password, the server also logs in to a master with it (``masterauth``): any
        node of a master and its replicas may become a replica when the Sentinels fail over.
        """
        lines = ["# written by 'kassa services up' on every start: the password of KASSA_REDIS_URL"]
        if self.users:
            lines.append("user default reset off")
            lines += [user.config_line() for user in self.users]
        elif self.password is not None and self.password.get_secret_value():
            password = _quoted(self.password.get_secret_value())
            lines += [f"requirepass {password}", f"masterauth {password}"]
            if self.username:
                lines.append(f"masteruser {_quoted(self.username)}")
        _write_private(self.config_file, lines)


def _write_private(path: Path, lines: list[str]) -> None:
    """Write ``lines`` to ``path``, readable by this user only (mode 0600)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
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
    itself as it learns replicas, other Sentinels and failovers; :meth:`start` writes it anew,
    keeping only the Sentinel's id (so the other Sentinels know it again, not as one more).
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
    username: str | None = None
    password: SecretStr | None = None
    """The Sentinel's own login: it requires ``password`` (``requirepass``, which it also
    gives the other Sentinels) and :meth:`answers` logs in with both."""
    master_username: str | None = None
    master_password: SecretStr | None = None
    """The login the Sentinel gives the master and its replicas (``sentinel auth-user`` and
    ``auth-pass``)."""

    @property
    def address(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"

    @property
    def config_file(self) -> Path:
        """The configuration file holding the passwords (mode 0600)."""
        return self.home / self.CONFIG_NAME

    def client(self, timeout: float = 1.0) -> redis.Redis:
        """A client of this Sentinel, logged in with :attr:`username` and :attr:`password`
        (replies decoded), that does not retry."""
        return _checking_client(
            self.host, self.port, self.username, self.password, timeout, decode_responses=True
        )

    def answers(self, timeout: float = 1.0) -> bool:
        """Whether the Sentinel answers a ``PING``; :class:`RedisRefusedError` when it answers
        but refuses the login (it names the fix)."""
        client = self.client(timeout)
        try:
            return bool(client.ping())
        except LOGIN_REFUSED as exc:
            raise self._refused(exc) from None
        except (redis.ConnectionError, redis.TimeoutError):
            return False
        finally:
            client.close()

    def master_address(self, timeout: float = 1.0) -> tuple[str, int] | None:
        """Where the Sentinel says :attr:`master` is now; ``None`` if it does not answer or
        knows no such master (:class:`RedisRefusedError` if it refuses the login)."""
        client = self.client(timeout)
        try:
            found = client.sentinel_get_master_addr_by_name(self.master)
        except LOGIN_REFUSED as exc:
            raise self._refused(exc) from None
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            return None
        finally:
            client.close()
        if not isinstance(found, tuple):
            return None  # it knows no master of that name
        return str(found[0]), int(found[1])

    def _refused(self, cause: BaseException) -> RedisRefusedError:
        if self.pid is not None:
            fix = RESTART_WITH_THE_PASSWORD
        else:
            fix = (
                "it is not kassa's: set KASSA_REDIS_SENTINEL_PASSWORD (or its _FILE) to its "
                "password, or unset it if it sets none"
            )
        return RedisRefusedError(
            self.address,
            cause,
            fix,
            what="Redis Sentinel",
            login="KASSA_REDIS_SENTINEL_USERNAME/_PASSWORD",
        )

    def recorded_master(self) -> tuple[int, str, int] | None:
        """The configuration epoch and address of :attr:`master` as the Sentinel last wrote
        them to its configuration file (it does after every failover), if it has one."""
        epoch, address = 0, None
        for words in self._config_lines():
            if words[:3] == ["sentinel", "monitor", self.master] and len(words) >= 5:
                address = (words[3], int(words[4]))
            elif words[:3] == ["sentinel", "config-epoch", self.master] and len(words) >= 4:
                epoch = int(words[3])
        return None if address is None else (epoch, *address)

    def _config_lines(self) -> list[list[str]]:
        try:
            return [line.split() for line in self.config_file.read_text().splitlines()]
        except FileNotFoundError:
            return []

    def check_can_start(self) -> None:
        """Raise :class:`ServiceError` if :meth:`start` could not give the Sentinel its login:
        it sets only the default user's password."""
        if self.username and self.username != DEFAULT_USER:
            msg = (
                f"KASSA_REDIS_SENTINEL_USERNAME is {self.username!r}, but the Sentinels 'kassa "
                "services up --sentinel' starts only set the default user's password: unset "
                "it, or start Sentinels with that ACL user yourself"
            )
            raise ServiceError(msg)

    def start(self, timeout: float = 30.0) -> int:
        """Start the Sentinel, wait until it answers; return its pid."""
        self.check_can_start()
        binary = redis_server_binary()
        self.home.mkdir(parents=True, exist_ok=True)
        name = self.master
        known_id = [words for words in self._config_lines() if words[:2] == ["sentinel", "myid"]]
        lines = [
            "# written by 'kassa services up' on every start, then by the Sentinel itself",
            f"port {self.port}",
            f"bind {self.host}",
            f"dir {self.home}",
            *(" ".join(words) for words in known_id[:1]),
            f"sentinel monitor {name} {self.master_host} {self.master_port} {self.quorum}",
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}",
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {name} 1",
        ]
        if self.master_password is not None and self.master_password.get_secret_value():
            lines.append(
                f"sentinel auth-pass {name} {_quoted(self.master_password.get_secret_value())}"
            )
            if self.master_username:
                lines.append(f"sentinel auth-user {name} {_quoted(self.master_username)}")
        if self.password is not None and self.password.get_secret_value():
            lines.append(f"requirepass {_quoted(self.password.get_secret_value())}")
        _write_private(self.config_file, lines)
        log_file = self.home / "sentinel.log"
        pid = spawn(
            [binary, str(self.config_file), "--sentinel"], log_file, self.pid_file, private=True
        )
        await_ready(pid, self.answers, f"Redis Sentinel at {self.address}", log_file, timeout)
        logger.info("Redis Sentinel answers at %s (pid %d)", self.address, pid)
        return pid


def _checking_client(
    host: str,
    port: int,
    username: str | None,
    password: SecretStr | None,
    timeout: float,
    **options: object,
) -> redis.Redis:
    """A client that logs in as given and does not retry: what ``up`` and ``status`` ask
    a server with (``options``: redis-py's TLS or decoding options)."""
    return redis.Redis(
        host=host,
        port=port,
        username=username or None,
        password=password.get_secret_value() if password else None,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        **options,  # type: ignore[arg-type]
    )
