"""The local Redis of ``kassa services``: one server, or with ``up --sentinel`` a master,
its replica and three Sentinels (:mod:`services.sentinel`); what ``up`` starts and their rows."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from common.settings import Settings
from services.cluster import KafkaCluster
from services.exceptions import ServiceError
from services.manager.rows import ServiceStatus, State
from services.process import is_local
from services.redis import RedisRefusedError, RedisSentinel, RedisServer
from services.security import SECURE_FOLDER, SecureFiles
from services.sentinel import (
    DEFAULT_SENTINEL_PORTS,
    DOWN_AFTER_MS,
    MIN_SENTINELS,
    QUORUM,
    SENTINEL_FOLDER,
    Address,
    NodeStart,
    SentinelShape,
    address_text,
)


def redis_server(settings: Settings) -> RedisServer:
    """The local redis-server at ``KASSA_REDIS_URL``'s host and port.

    Secured by ``up --secure`` (:meth:`SecureFiles.redis_made`): TLS only, its ACL users,
    logged in to as ``admin``. Else with kassa's login (``KASSA_REDIS_USERNAME`` and
    ``KASSA_REDIS_PASSWORD`` or its file, else the URL's, percent-decoded as redis-py reads
    them), whose password it requires.
    """
    url = urlsplit(settings.redis_url)
    password = settings.redis_password
    if password is None and url.password:
        password = SecretStr(unquote(url.password))
    username = settings.redis_username or (unquote(url.username) if url.username else None)
    server = RedisServer(
        host=url.hostname or "127.0.0.1",
        port=url.port or 6379,
        home=settings.state_dir / "redis",
        appendfsync=settings.redis_appendfsync,
        username=username,
        password=password,
    )
    secure = SecureFiles(settings.state_dir / SECURE_FOLDER)
    if not secure.redis_made:
        return server
    users = secure.redis_users()
    admin = users[0]
    return dataclasses.replace(
        server, username=admin.name, password=admin.password, tls=secure.redis_tls, users=users
    )


SECURE_SENTINELS: Final = (
    "'kassa services up --sentinel' starts plaintext Redis nodes and Sentinels, and "
    "'--secure' a TLS-only Redis: they do not go together{why}. For TLS Sentinels run your "
    "own (kassa's client follows them: KASSA_REDIS_SENTINELS and a rediss:// KASSA_REDIS_URL, "
    "docs/security.md), or use another KASSA_STATE_DIR"
)


def redis_sentinels(settings: Settings, *, sentinel: bool = False) -> SentinelShape | None:
    """The master, replica and Sentinels ``up --sentinel`` recorded under ``KASSA_STATE_DIR``;
    else, with ``sentinel``, a new shape to make; else ``None`` (the single Redis).

    The nodes log in with ``KASSA_REDIS_URL``'s password (:func:`redis_server`), which the
    Sentinels also give them; the Sentinels require ``KASSA_REDIS_SENTINEL_PASSWORD``. A new
    shape's Sentinels listen at ``KASSA_REDIS_SENTINELS`` (each on this machine), else on
    ports 26379-26381 of the URL's host.
    """
    home = settings.state_dir / SENTINEL_FOLDER
    first = redis_server(settings)
    watching = RedisSentinel(
        first.host,
        DEFAULT_SENTINEL_PORTS[0],
        home,
        settings.redis_sentinel_master,
        first.host,
        first.port,
        quorum=QUORUM,
        down_after_ms=DOWN_AFTER_MS,
        username=settings.redis_sentinel_username or None,
        password=settings.redis_sentinel_password,
        master_username=first.username,
        master_password=first.password,
    )
    shape = SentinelShape.load(home, first, watching)
    if shape is None and sentinel:
        _check_ip_address(first.host)
        addresses = _sentinel_addresses(settings, first.host)
        shape = SentinelShape.plan(home, settings.redis_sentinel_master, first, watching, addresses)
    return shape


def _check_ip_address(host: str) -> None:
    """Refuse a host name for the master: Sentinels name masters by IP address, which a
    name would never match (and Redis 7's refuse names without ``resolve-hostnames``)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        msg = (
            f"KASSA_REDIS_URL names the host {host!r}; 'kassa services up --sentinel' needs "
            "its IP address (Sentinels name masters by address): write e.g. "
            "redis://127.0.0.1:6379/0"
        )
        raise ServiceError(msg) from None


def _sentinel_addresses(settings: Settings, host: str) -> list[Address]:
    """Where the Sentinels of a new shape listen: ``KASSA_REDIS_SENTINELS``, else ports
    26379-26381 of ``host``."""
    if not settings.redis_sentinels:
        return [(host, port) for port in DEFAULT_SENTINEL_PORTS]
    addresses = settings.redis_sentinel_addresses
    for address in addresses:
        if not is_local(address[0]):
            msg = (
                f"KASSA_REDIS_SENTINELS names {address_text(address)}, not an address of this "
                "machine, where 'kassa services up --sentinel' starts the Sentinels: list "
                "local addresses (e.g. 127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381), or "
                "unset it for those"
            )
            raise ServiceError(msg)
    if len(addresses) < MIN_SENTINELS:
        msg = (
            f"KASSA_REDIS_SENTINELS names {len(addresses)} Sentinel(s); 'kassa services up "
            f"--sentinel' starts at least {MIN_SENTINELS} (quorum {QUORUM}, so that a failover "
            "still happens with one of them down): list three addresses, or unset it"
        )
        raise ServiceError(msg)
    return addresses


def sentinels_to_start(
    settings: Settings, cluster: KafkaCluster, *, sentinel: bool
) -> SentinelShape | None:
    """The Sentinel shape ``up`` makes or keeps (:func:`redis_sentinels`), if any: refused
    if the settings name another, or if the local services are secured."""
    shape = redis_sentinels(settings, sentinel=sentinel)
    if shape is None:
        return None
    _check_recorded(settings, shape)
    if cluster.secure is not None or redis_server(settings).tls is not None:
        why = f" (the local services in {settings.state_dir} are secured)"
        raise ServiceError(SECURE_SENTINELS.format(why=why))
    return shape


def _check_recorded(settings: Settings, shape: SentinelShape) -> None:
    """Refuse settings that name another shape than the one recorded (``up`` would start
    servers the others do not know)."""
    url = urlsplit(settings.redis_url)
    wanted = [
        ("master name", shape.master_name, settings.redis_sentinel_master,
         "KASSA_REDIS_SENTINEL_MASTER"),
        ("first Redis node", shape.nodes[0].address,
         f"{url.hostname or '127.0.0.1'}:{url.port or 6379}", "KASSA_REDIS_URL"),
    ]  # fmt: skip
    if settings.redis_sentinels:
        given = ",".join(map(address_text, settings.redis_sentinel_addresses))
        wanted.append(("Sentinels", shape.sentinel_list, given, "KASSA_REDIS_SENTINELS"))
    for what, recorded, given, setting in wanted:
        if recorded != given:
            msg = (
                f"the local Redis Sentinel shape in {shape.home} has the {what} {recorded}, "
                f"not {given} ({setting}); set that back, or run 'kassa services down' and "
                "delete that folder, or use another KASSA_STATE_DIR"
            )
            raise ServiceError(msg)


def redis_to_start(redis: RedisServer, shape: SentinelShape | None) -> dict[Address, str]:
    """The address of each Redis node (and Sentinel) that does not answer, and so that ``up``
    starts; each checked that it can be started with its login."""
    needed: dict[Address, str] = {}
    for node in shape.nodes if shape is not None else (redis,):
        if node.info() is None:
            node.check_can_start()
            needed[(node.host, node.port)] = "Redis"
    for sentinel in shape.sentinels if shape is not None else ():
        if not sentinel.answers():
            sentinel.check_can_start()
            needed[(sentinel.host, sentinel.port)] = "Redis Sentinel"
    return needed


def up_redis(settings: Settings) -> ServiceStatus:
    """Start the single Redis of ``settings`` unless it answers; its row."""
    server = redis_server(settings)
    if server.info() is not None:
        return redis_status(server)
    pid = server.start()
    info = server.info() or {}
    return ServiceStatus(
        "redis",
        server.address,
        "started",
        _redis_version(info),
        pid,
        server.data_dir,
        _aof(info),
        security=_redis_security(server),
    )


def up_sentinels(settings: Settings, shape: SentinelShape) -> list[ServiceStatus]:
    """Start what of ``shape`` does not run; a row per node and Sentinel, and the settings
    clients need if they are not those of ``settings``."""
    nodes, sentinels = shape.start()
    rows = [_started_node(n, start) for n, start in enumerate(nodes, start=1)]
    for n, (sentinel, started) in enumerate(zip(shape.sentinels, sentinels, strict=True), start=1):
        row = sentinel_status(n, sentinel)
        rows.append(
            dataclasses.replace(row, state="started") if started and row.state == "running" else row
        )
    listed = [(sentinel.host, sentinel.port) for sentinel in shape.sentinels]
    if settings.redis_sentinel_addresses != listed:
        hint = (
            f"clients: export KASSA_REDIS_SENTINELS={shape.sentinel_list} "
            f"KASSA_REDIS_SENTINEL_MASTER={shape.master_name}"
        )
        rows.append(ServiceStatus("redis", shape.sentinel_list, "running", detail=hint))
    return rows


def _started_node(n: int, start: NodeStart) -> ServiceStatus:
    row = redis_status(start.node, redis_node_name(n), replication=True)
    if not start.started or row.state != "running":
        return row
    how = (
        "as the master" if start.master is None else f"as a replica of {address_text(start.master)}"
    )
    return dataclasses.replace(row, state="started", detail=f"{row.detail}; started {how}")


def redis_node_name(n: int) -> str:
    """The row name of Redis node ``n`` of a Sentinel shape (``redis-1`` is the first)."""
    return f"redis-{n}"


def _sentinel_name(n: int) -> str:
    return f"sentinel-{n}"


def sentinel_status(n: int, sentinel: RedisSentinel) -> ServiceStatus:
    """Whether the Sentinel answers (with its login) and which master it names."""
    name = _sentinel_name(n)
    try:
        answers = sentinel.answers()
        master = sentinel.master_address() if answers else None
    except RedisRefusedError as exc:
        return ServiceStatus(
            name, sentinel.address, "refused", pid=sentinel.pid, role="sentinel", detail=str(exc)
        )
    if not answers:
        return ServiceStatus(name, sentinel.address, "down", role="sentinel")
    pid = sentinel.pid
    state: State = "running" if pid else "reused"
    if master is None:
        named = f"knows no master {sentinel.master!r}"
        state = "degraded"  # clients asking it find no master
    else:
        named = f"names {address_text(master)} the master {sentinel.master!r}"
    return ServiceStatus(
        name,
        sentinel.address,
        state,
        pid=pid,
        data_dir=sentinel.home if pid else None,
        detail=named,
        role="sentinel",
        security="password (KASSA_REDIS_SENTINEL_PASSWORD)" if sentinel.password else "no password",
    )


def stop_sentinels(shape: SentinelShape) -> list[ServiceStatus]:
    """Stop the Sentinels, then the nodes, of ``shape``; a row for each."""
    sentinels, nodes = shape.stop()
    rows = [
        ServiceStatus(redis_node_name(n), node.address, "stopped" if was else "down")
        for n, (node, was) in enumerate(zip(shape.nodes, nodes, strict=True), start=1)
    ]
    rows += [
        ServiceStatus(_sentinel_name(n), sentinel.address, "stopped" if was else "down")
        for n, (sentinel, was) in enumerate(zip(shape.sentinels, sentinels, strict=True), start=1)
    ]
    return rows


def redis_status(
    redis: RedisServer, name: str = "redis", *, replication: bool = False
) -> ServiceStatus:
    """The row of one Redis server; with ``replication``, its role and master as it says."""
    try:
        info = redis.info()
    except RedisRefusedError as exc:
        return ServiceStatus(name, redis.address, "refused", pid=redis.pid, detail=str(exc))
    if info is None:
        return ServiceStatus(name, redis.address, "down")
    state: State = "running" if redis.pid else "reused"
    version = _redis_version(info)
    role, detail = "", _aof(info)
    if replication:
        role, replicating = _replication(info)
        detail = f"{detail}; {replicating}"
        if role == "replica" and info.get("master_link_status") != "up":
            state = "degraded"  # it holds no copy a failover could promote
    return ServiceStatus(
        name,
        redis.address,
        state,
        version,
        redis.pid,
        _own(redis),
        detail,
        role,
        security=_redis_security(redis),
    )


def _replication(info: dict[str, object]) -> tuple[str, str]:
    """The role (``master``/``replica``) and a few words on replication from ``INFO``."""
    if info.get("role") == "master":
        return "master", f"{info.get('connected_slaves', 0)} replica(s) connected"
    master = f"{info.get('master_host')}:{info.get('master_port')}"
    return "replica", f"replica of {master}, link {info.get('master_link_status')}"


def _redis_security(server: RedisServer) -> str:
    """How kassa logs in to Redis: ``no password``, a password, or TLS
    and its ACL users (secured by ``up --secure``)."""
    if server.tls is not None:
        users = ", ".join(repr(user.name) for user in server.users)
        return f"TLS (CA {server.tls.ca}), ACL users {users}, default user off"
    return (
        "password (KASSA_REDIS_URL or KASSA_REDIS_PASSWORD)" if server.password else "no password"
    )


def _own(server: RedisServer) -> Path | None:
    return server.data_dir if server.pid else None


def _redis_version(info: dict[str, object]) -> str:
    return f"Redis {info.get('redis_version', '?')}"


def _aof(info: dict[str, object]) -> str:
    return "appendonly on" if info.get("aof_enabled") == 1 else "appendonly OFF"
