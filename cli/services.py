"""``kassa services up | down | status | fetch``: local Kafka and Redis."""

from __future__ import annotations

import argparse

from common.settings import Settings
from services import manager
from services.kafka import ensure_jars


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``services`` and its actions."""
    parser = subparsers.add_parser(
        "services",
        help="start, stop or show the local Kafka broker and Redis server",
        description="Run a real Apache Kafka broker (KRaft) and redis-server on this machine.",
    )
    parser.add_argument(
        "action",
        choices=("up", "down", "status", "fetch"),
        help="up: start (reusing what already answers) and create topics; down: stop what up "
        "started; status: show each service; fetch: only download the Kafka jars",
    )
    parser.set_defaults(handler=run, folders=("state_dir",))


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Carry out one services action and print a line per service."""
    if args.action == "fetch":
        print(ensure_jars(settings.cache_dir, settings.kafka_version))
        return 0
    action = {"up": manager.up, "down": manager.down, "status": manager.status}[args.action]
    statuses = action(settings)
    for status in statuses:
        parts = [f"{status.name:<6}", f"{status.address:<21}", f"{status.state:<8}"]
        if status.version:
            parts.append(status.version)
        if status.pid:
            parts.append(f"pid {status.pid}")
        if status.data_dir:
            parts.append(f"data {status.data_dir}")
        if status.detail:
            parts.append(status.detail)
        print("  ".join(parts))
    if args.action == "status" and any(s.state == "down" for s in statuses):
        return 1
    return 0
