"""``kassa services up | down | status | fetch``: a local Kafka cluster and Redis (one server,
or a master, its replica and three Sentinels)."""

from __future__ import annotations

import argparse

from cli import arguments
from common.settings import Settings
from services import manager
from services.kafka import ensure_jars
from services.s3proxy import ensure_s3proxy


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``services`` and its actions."""
    parser = subparsers.add_parser(
        "services",
        help="start, stop or show the local Kafka cluster and Redis server",
        description="Run real Apache Kafka nodes (KRaft) and redis-server on this machine.",
    )
    parser.add_argument(
        "action",
        choices=("up", "down", "status", "fetch"),
        help="up: start (reusing what already runs) and create topics; down: stop every "
        "process up started; status: show each Kafka node, the active controller and Redis; "
        "fetch: only download the Kafka jars and S3Proxy",
    )
    parser.add_argument(
        "--brokers",
        type=arguments.positive_int,
        help="up: Kafka nodes of a new local cluster (default 1); node i listens on the "
        "KASSA_KAFKA_BOOTSTRAP port + 2(i-1), nodes 1-3 are also the controller quorum",
    )
    parser.add_argument(
        "--heap",
        help="up: Java heap of each Kafka node started (default KASSA_KAFKA_HEAP), e.g. 384m",
    )
    parser.add_argument(
        "--secure",
        action="store_true",
        help="up: a new local cluster with a SASL_SSL listener (SCRAM-SHA-512 users 'admin' "
        "and 'kassa', a CA and certificates made here, ACLs); it prints the file of client "
        "settings to load (docs/security.md)",
    )
    parser.add_argument(
        "--sentinel",
        action="store_true",
        help="up: Redis as a master (KASSA_REDIS_URL's port), a replica (the next port) and "
        "three Sentinels (KASSA_REDIS_SENTINELS, else ports 26379-26381; quorum 2) watching "
        "it as KASSA_REDIS_SENTINEL_MASTER; after a failover a restarted node comes back as a "
        "replica of the new master (docs/stream.md#redis-shapes); not with --secure",
    )
    parser.add_argument(
        "--s3",
        action="store_true",
        help="up: also a local S3 server (S3Proxy, objects in memory) with the bucket 'kassa'; "
        "it prints the file of client settings to load, KASSA_DATA_DIR included (docs/daily.md)",
    )
    parser.set_defaults(handler=run, folders=("state_dir",))


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out one services action and print a line per service (and per Kafka node)."""
    if args.action == "fetch":
        print(ensure_jars(settings.cache_dir, settings.kafka_version))
        print(ensure_s3proxy(settings.cache_dir, settings.s3proxy_version))
        return 0
    if args.action == "up":
        statuses = manager.up(
            settings,
            brokers=args.brokers,
            heap=args.heap,
            secure=args.secure,
            s3=args.s3,
            sentinel=args.sentinel,
        )
    elif args.action == "down":
        statuses = manager.down(settings)
    else:
        statuses = manager.status(settings)
    for status in statuses:
        parts = [f"{status.name:<10}", f"{status.address:<21}", f"{status.state:<8}"]
        if status.role:
            parts.append(f"{status.role:<17}")
        if status.version:
            parts.append(status.version)
        if status.pid:
            parts.append(f"pid {status.pid}")
        if status.data_dir:
            parts.append(f"data {status.data_dir}")
        if status.security:
            parts.append(status.security)
        if status.detail:
            parts.append(status.detail)
        print("  ".join(parts))
    failed = ("down", "degraded", "refused")
    if args.action == "status" and any(status.state in failed for status in statuses):
        return 1
    return 0
