"""``kassa topics create | describe``: kassa's Kafka topics and where their partitions live."""

from __future__ import annotations

import argparse

from common.settings import Settings
from storage.kafka.topics import describe_topics, ensure_topics


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``topics``."""
    parser = subparsers.add_parser(
        "topics",
        help="create kassa's Kafka topics (the broker never auto-creates them) or describe them",
        description="create: KASSA_TOPIC and its dead-letter topic with KASSA_PARTITIONS "
        "partitions, KASSA_REPLICATION_FACTOR replicas and KASSA_MIN_INSYNC_REPLICAS, unless "
        "they exist. describe: each partition's leader, replicas and in-sync replicas.",
    )
    parser.add_argument("action", choices=("create", "describe"))
    parser.add_argument(
        "topic", nargs="*", help="describe: topics to show (default: the sales and dead-letter)"
    )
    parser.set_defaults(handler=run, kafka=True)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Create the missing topics and say which, or describe them."""
    names = [settings.topic, settings.dead_letter_topic]
    if args.action == "describe":
        return _describe(settings, args.topic or names)
    created = ensure_topics(settings)
    for name in names:
        print(f"{name}: {'created' if name in created else 'exists'}")
    return 0


def _describe(settings: Settings, names: list[str]) -> int:
    """Print the topics like ``kafka-topics --describe``; 1 if a partition is under-replicated."""
    under_replicated = 0
    for topic in describe_topics(settings, names):
        min_insync = "?" if topic.min_insync_replicas is None else topic.min_insync_replicas
        print(
            f"Topic: {topic.name}\tPartitionCount: {len(topic.partitions)}\t"
            f"ReplicationFactor: {topic.replication_factor}\t"
            f"Configs: min.insync.replicas={min_insync}"
        )
        for part in topic.partitions:
            note = ""
            if part.leader < 0:
                note = "\t(no leader: offline)"
            elif len(part.isr) < len(part.replicas):
                note = "\t(under-replicated)"
            under_replicated += bool(note)
            print(
                f"\tTopic: {topic.name}\tPartition: {part.partition}\tLeader: {part.leader}\t"
                f"Replicas: {_ids(part.replicas)}\tIsr: {_ids(part.isr)}{note}"
            )
    return 1 if under_replicated else 0


def _ids(ids: tuple[int, ...]) -> str:
    return ",".join(map(str, ids)) or "-"
