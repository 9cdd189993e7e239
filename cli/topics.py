"""``kassa topics create``: create the sales and dead-letter topics explicitly."""

from __future__ import annotations

import argparse

from common.settings import Settings
from common.topics import ensure_topics


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``topics``."""
    parser = subparsers.add_parser(
        "topics",
        help="create kassa's Kafka topics (the broker never auto-creates them)",
        description="Create KASSA_TOPIC and its dead-letter topic with KASSA_PARTITIONS "
        "partitions unless they exist.",
    )
    parser.add_argument("action", choices=("create",))
    parser.set_defaults(handler=run, kafka=True)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Create the missing topics and say which."""
    created = ensure_topics(settings)
    for name in (settings.topic, settings.dead_letter_topic):
        print(f"{name}: {'created' if name in created else 'exists'}")
    return 0
