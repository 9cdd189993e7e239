"""``kassa stream``: the live stream job, run as a long-lived service."""

from __future__ import annotations

import argparse

from cli import arguments
from common.settings import Settings
from common.topics import ensure_topics


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``stream``."""
    parser = subparsers.add_parser(
        "stream",
        help="count checkouts live into Redis (Quix Streams), exactly once",
        description="Consume KASSA_TOPIC as consumer group KASSA_CONSUMER_GROUP and keep the "
        "live per-day rankings in KASSA_REDIS_URL up to date. Runs until SIGTERM or Ctrl+C, "
        "then writes what it has and commits. Metrics and health on "
        "http://KASSA_METRICS_HOST:KASSA_METRICS_PORT/metrics and /healthz.",
    )
    parser.add_argument(
        "--idle-timeout",
        type=arguments.non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="stop cleanly once no message arrived for SECONDS (catch up a backlog, then "
        "exit); default 0 = run until SIGTERM",
    )
    parser.set_defaults(handler=run, folders=("state_dir",), kafka=True)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Create missing topics, then run the stream job until it is told to stop."""
    from jobs.stream.app import run_stream  # noqa: PLC0415 - Quix is slow to import

    ensure_topics(settings)
    run_stream(settings, idle_timeout=args.idle_timeout)
    return 0
