"""The local Redis of ``kassa services up --sentinel``: a master, its replica and three
Sentinels (quorum 2), their addresses kept in ``<KASSA_STATE_DIR>/redis-sentinel/shape.json``.

Node 1 is the Redis plain ``up`` starts (``KASSA_REDIS_URL``'s host and port, under
``redis/``), node 2 listens on the next port (under ``redis-sentinel/redis-2``); Sentinel
``i`` keeps its files in ``redis-sentinel/sentinel-<i>``. After a failover node 2 may be the
master, so every node is (re)started as a replica of the current master
(:meth:`SentinelShape.current_master`) unless it is that master, and every Sentinel watching
it: a killed master never comes back as a second master with older data.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import redis

from services.exceptions import ServiceError
from services.process import stop_all
from services.redis import RedisSentinel, RedisServer

logger = logging.getLogger(__name__)

SENTINEL_FOLDER: Final = "redis-sentinel"
SHAPE_FILE: Final = "shape.json"
DEFAULT_SENTINEL_PORTS: Final = (26379, 26380, 26381)
MIN_SENTINELS: Final = 3
"""With quorum 2, fewer Sentinels could not fail over with one of them down."""
QUORUM: Final = 2
DOWN_AFTER_MS: Final = 5000
"""A master that does not answer for this long is failed over."""

REPLICATION_OPTIONS: Final = ("--repl-diskless-sync-delay", "0")
"""Further redis-server arguments of the nodes: a master sends its data to a (re)started
replica at once, not after 5 s of waiting for more replicas (there is only one)."""

Address = tuple[str, int]


def address_text(address: Address) -> str:
    """``host:port``."""
    return f"{address[0]}:{address[1]}"


@dataclass(frozen=True)
class NodeStart:
    """How :meth:`SentinelShape.start` started one node, or that it was already running."""

    node: RedisServer
    started: bool
    master: Address | None
    """The master it replicates from when started; ``None`` if started as the master."""


@dataclass(frozen=True)
class SentinelShape:
    """The Redis nodes and Sentinels of one local Sentinel shape, kept under ``home``.

    ``nodes`` carry the login of ``KASSA_REDIS_URL``, ``sentinels`` the Sentinels' own login
    and that of the nodes; each Sentinel's monitored address is node 1's until :meth:`start`
    points it at the current master.
    """

    home: Path
    master_name: str
    nodes: tuple[RedisServer, ...]
    sentinels: tuple[RedisSentinel, ...]

    @classmethod
    def plan(
        cls,
        home: Path,
        master_name: str,
        first: RedisServer,
        sentinel: RedisSentinel,
        sentinel_addresses: Sequence[Address],
    ) -> SentinelShape:
        """A new shape: ``first`` (the Redis at ``KASSA_REDIS_URL``) and a replica on the next
        port, and one Sentinel like ``sentinel`` at each of ``sentinel_addresses``."""
        nodes = [(first.host, first.port), (first.host, first.port + 1)]
        shape = cls.make(
            home, master_name, first, sentinel, nodes=nodes, sentinels=sentinel_addresses
        )
        ports: dict[Address, str] = {}
        for what, address in shape.addresses():
            if address in ports:
                msg = (
                    f"{address_text(address)} would be both the {ports[address]} and the {what}; "
                    "move KASSA_REDIS_URL or KASSA_REDIS_SENTINELS"
                )
                raise ServiceError(msg)
            ports[address] = what
        return shape

    @classmethod
    def make(
        cls,
        home: Path,
        master_name: str,
        first: RedisServer,
        sentinel: RedisSentinel,
        *,
        nodes: Sequence[Address],
        sentinels: Sequence[Address],
    ) -> SentinelShape:
        """The shape with nodes at ``nodes`` (the first kept in ``first``'s folder) and
        Sentinels at ``sentinels``, each like ``sentinel`` and watching the first node."""
        servers = tuple(
            dataclasses.replace(
                first,
                host=host,
                port=port,
                home=first.home if n == 1 else home / f"redis-{n}",
                options=(*first.options, *REPLICATION_OPTIONS),
            )
            for n, (host, port) in enumerate(nodes, start=1)
        )
        watching = tuple(
            dataclasses.replace(
                sentinel,
                host=host,
                port=port,
                home=home / f"sentinel-{n}",
                master=master_name,
                master_host=servers[0].host,
                master_port=servers[0].port,
            )
            for n, (host, port) in enumerate(sentinels, start=1)
        )
        return cls(home, master_name, servers, watching)

    @classmethod
    def load(cls, home: Path, first: RedisServer, sentinel: RedisSentinel) -> SentinelShape | None:
        """The shape ``up --sentinel`` recorded in ``home``, if any (logins as in ``first`` and
        ``sentinel``)."""
        try:
            recorded = json.loads((home / SHAPE_FILE).read_text())
        except FileNotFoundError:
            return None
        nodes = [(host, int(port)) for host, port in recorded["nodes"]]
        sentinels = [(host, int(port)) for host, port in recorded["sentinels"]]
        return cls.make(
            home, recorded["master_name"], first, sentinel, nodes=nodes, sentinels=sentinels
        )

    def save(self) -> None:
        """Record the shape, so that ``status``, ``down`` and ``up`` find it again."""
        self.home.mkdir(parents=True, exist_ok=True)
        recorded = {
            "master_name": self.master_name,
            "nodes": [[node.host, node.port] for node in self.nodes],
            "sentinels": [[sentinel.host, sentinel.port] for sentinel in self.sentinels],
        }
        (self.home / SHAPE_FILE).write_text(json.dumps(recorded, indent=2) + "\n")

    def addresses(self) -> list[tuple[str, Address]]:
        """What listens where: ``("Redis node 1", address)``, ..., ``("Sentinel 1", ...)``."""
        return [
            *((f"Redis node {n}", (node.host, node.port)) for n, node in enumerate(self.nodes, 1)),
            *((f"Sentinel {n}", (s.host, s.port)) for n, s in enumerate(self.sentinels, 1)),
        ]

    @property
    def sentinel_list(self) -> str:
        """The Sentinels' ``host:port`` list, for ``KASSA_REDIS_SENTINELS``."""
        return ",".join(sentinel.address for sentinel in self.sentinels)

    def current_master(self) -> Address:
        """Where the master is now.

        As most answering Sentinels name it; else the one answering node that says it is a
        master; else as the Sentinels last wrote it in their files (the highest configuration
        epoch: after a failover they all stopped); else node 1.
        """
        named = Counter(
            address
            for address in (sentinel.master_address() for sentinel in self.sentinels)
            if address is not None
        )
        if named:
            return named.most_common(1)[0][0]
        masters = [
            (node.host, node.port)
            for node in self.nodes
            if (node.info() or {}).get("role") == "master"
        ]
        if len(masters) == 1:
            return masters[0]
        recorded = [found for s in self.sentinels if (found := s.recorded_master()) is not None]
        if recorded:
            _, host, port = max(recorded)
            return host, port
        return self.nodes[0].host, self.nodes[0].port

    def _check_no_failover_pending(self, master: Address) -> None:
        """Refuse to restart ``master`` while the Sentinels still name it but another node
        answers: they are about to fail over to it (within :data:`DOWN_AFTER_MS`), and a
        master restarted from its append-only file (synced once a second) would make that
        replica drop writes it had acknowledged, or stand beside it as a second master."""
        node = next((n for n in self.nodes if (n.host, n.port) == master), None)
        if node is None or node.info() is not None:
            return
        named = any(sentinel.master_address() == master for sentinel in self.sentinels)
        others = [n for n in self.nodes if n is not node and n.info() is not None]
        if named and others:
            msg = (
                f"the Sentinels name {address_text(master)} the master of "
                f"{self.master_name!r}, which does not answer, while {others[0].address} "
                "does: a failover is under way (a master is failed over after "
                f"{DOWN_AFTER_MS // 1000} s down); run 'kassa services up' again once "
                "'kassa services status' shows the new master"
            )
            raise ServiceError(msg)

    def start(self, timeout: float = 60.0) -> tuple[list[NodeStart], list[bool]]:
        """Start every node and Sentinel that does not answer, then wait until the replicas
        are in sync and the Sentinels know them and each other.

        The current master (:meth:`current_master`) starts first, as a master; every other
        node as its replica; every Sentinel watching it. Returns, per node, how it started,
        and per Sentinel whether it was started.
        """
        self.save()
        master = self.current_master()
        self._check_no_failover_pending(master)
        logger.info("the master of %r is at %s", self.master_name, address_text(master))
        order = sorted(self.nodes, key=lambda node: (node.host, node.port) != master)
        started: dict[str, NodeStart] = {}
        for node in order:
            if node.info() is not None:
                started[node.address] = NodeStart(node, started=False, master=None)
            elif (node.host, node.port) == master:
                node.start()
                started[node.address] = NodeStart(node, started=True, master=None)
            else:
                replica = dataclasses.replace(
                    node, options=(*node.options, "--replicaof", master[0], str(master[1]))
                )
                replica.start()
                started[node.address] = NodeStart(node, started=True, master=master)
        # a Sentinel asks a master for its replicas every 10 s: start them once they are known
        self.await_watching(master, timeout, sentinels=False)
        sentinels = []
        for sentinel in self.sentinels:
            if sentinel.answers():
                sentinels.append(False)
                continue
            watching = dataclasses.replace(sentinel, master_host=master[0], master_port=master[1])
            watching.start()
            sentinels.append(True)
        self.await_watching(master, timeout)
        return [started[node.address] for node in self.nodes], sentinels

    def await_watching(
        self, master: Address, timeout: float = 60.0, *, sentinels: bool = True
    ) -> None:
        """Wait until every node but ``master`` is its replica in sync, and (with
        ``sentinels``) every Sentinel knows those replicas and the other Sentinels (a
        failover can then happen)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lagging = self.not_ready(master, sentinels=sentinels)
            if not lagging:
                return
            time.sleep(0.2)
        msg = (
            f"{', '.join(lagging)} not ready within {timeout:.0f} s; see redis.log and "
            f"sentinel.log under {self.nodes[0].home} and {self.home}"
        )
        raise ServiceError(msg)

    def not_ready(self, master: Address, *, sentinels: bool = True) -> list[str]:
        """What is not ready yet for a failover away from ``master``, each as a few words:
        a replica not in sync, a Sentinel not knowing every replica and other Sentinel."""
        lagging = []
        for node in self.nodes:
            if (node.host, node.port) == master:
                continue
            info = node.info() or {}
            if info.get("master_link_status") != "up":
                lagging.append(f"the replica at {node.address} (in sync with the master)")
        for sentinel in self.sentinels if sentinels else ():
            client = sentinel.client()
            try:
                answer = client.sentinel_master(self.master_name)
            except redis.RedisError:
                answer = {}
            finally:
                client.close()
            fields = answer if isinstance(answer, dict) else {}
            replicas = int(fields.get("num-slaves", 0))
            others = int(fields.get("num-other-sentinels", 0))
            if replicas < len(self.nodes) - 1 or others < len(self.sentinels) - 1:
                lagging.append(f"the Sentinel at {sentinel.address} (knowing every node)")
        return lagging

    def stop(self) -> tuple[list[bool], list[bool]]:
        """Stop the Sentinels first (so that none fails over while the nodes stop), then the
        nodes; return, per Sentinel and per node, whether it was running."""
        sentinels = stop_all([s.pid_file for s in self.sentinels], RedisSentinel.STOP_TIMEOUT)
        nodes = stop_all([node.pid_file for node in self.nodes], RedisServer.STOP_TIMEOUT)
        return sentinels, nodes
