"""``kassa stream``: the live stream job, run as a long-lived service."""

from __future__ import annotations

import argparse

from cli import arguments
from common.settings import Settings
from storage.connections import open_redis
from storage.kafka.topics import ensure_topics


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
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    rebuild = actions.add_parser(
        "rebuild",
        help="clear live days and let the stream job recount them from Kafka, exactly",
        description="The one answer to 'the live figures are wrong': clear the live figures "
        "of every day (or of DAY and later) and move the stream job's watermarks back so it "
        "recounts them from Kafka. Safe while 'kassa stream' runs: its next batch finds "
        "Redis behind and it resumes from the new watermarks. Refused when Kafka no longer "
        "holds the start of those days (the daily job's --repair-live repairs those).",
    )
    rebuild.add_argument(
        "--from",
        dest="first",
        type=arguments.day,
        metavar="DAY",
        help="rebuild DAY (YYYY-MM-DD in KASSA_TIMEZONE) and later days only",
    )
    rebuild.add_argument("--yes", action="store_true", help="do it (without: only print the plan)")
    rebuild.set_defaults(handler=rebuild_command)


def rebuild_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print the rebuild plan; with ``--yes``, carry it out."""

    from jobs.stream.rebuild import execute_rebuild, plan_rebuild  # noqa: PLC0415
    from storage.live import LiveStore  # noqa: PLC0415

    client = open_redis(settings)
    try:
        store = LiveStore(client, settings.key_space, settings.zone, settings.retention_days)
        plan = plan_rebuild(settings, store, args.first)
        print(plan.describe())
        if not args.yes:
            print("nothing changed: run again with --yes to rebuild")
            return 0
        cleared = execute_rebuild(settings, store, plan)
    finally:
        client.close()
    print(f"rebuilt: {cleared} live keys cleared; 'kassa stream' recounts them now")
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Create missing topics, then run the stream job until it is told to stop."""
    from jobs.stream.supervisor import run_stream  # noqa: PLC0415 - Quix is slow to import

    ensure_topics(settings)
    run_stream(settings, idle_timeout=args.idle_timeout)
    return 0
