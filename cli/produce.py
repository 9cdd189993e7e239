"""``kassa produce synthetic|replay``: send checkouts to the sales topic.

Both create the topics first, log a progress line every second on stderr, print a delivery
summary at the end, and exit 1 when any checkout was not delivered (0 otherwise, also after
SIGINT/SIGTERM once everything accepted was flushed).
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

from cli import arguments
from common.schema import Checkout
from common.settings import Settings
from producers import replay, synthetic
from producers.exceptions import DeliveryError
from producers.pacing import at_speed, not_ahead_of_clock
from producers.publish import PublishReport, publish
from storage.kafka.access import access_error
from storage.kafka.topics import ensure_topics


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``produce synthetic`` and ``produce replay``."""
    parser = subparsers.add_parser(
        "produce",
        help="send checkouts to Kafka (simulated or replayed)",
        description="Send checkouts to KASSA_TOPIC, one Kafka record per checkout.",
    )
    parser.set_defaults(kafka=True)
    sources = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
    _register_synthetic(sources)
    _register_replay(sources)


def _register_synthetic(sources: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = sources.add_parser(
        "synthetic",
        help="a simulated supermarket chain",
        description="Simulated checkouts of a supermarket chain. The simulated clock follows "
        "opening hours and a daily traffic curve; checkouts dated more than 50 min after the "
        "wall clock are held back (the broker refuses them), so use an earlier --start for "
        "volume.",
    )
    pace = sim.add_mutually_exclusive_group()
    pace.add_argument(
        "--rate", type=arguments.positive_float, help="checkouts per second (default 100)"
    )
    pace.add_argument("--max", action="store_true", help="as fast as possible")
    sim.add_argument("--count", type=arguments.positive_int, help="stop after this many checkouts")
    sim.add_argument(
        "--duration", type=arguments.positive_float, help="stop after this many seconds"
    )
    sim.add_argument("--seed", type=int, default=1, help="same seed, same checkouts (default 1)")
    sim.add_argument(
        "--start",
        type=_aware_datetime,
        help="simulated clock start, ISO-8601 (default: 24 h ago in KASSA_TIMEZONE); without an "
        "offset it is read in KASSA_TIMEZONE, whose wall clock the stores keep",
    )
    sim.add_argument(
        "--stores", type=arguments.positive_int, default=20, help="stores in the chain (default 20)"
    )
    sim.add_argument(
        "--schema-version",
        choices=synthetic.VERSION_CHOICES,
        default="1",
        help="message version: 1 (default), 2 (with promotions: discounts on about one "
        "product in eight) or mix (every other store on version 2, as during a fleet upgrade)",
    )
    sim.add_argument("--quiet", action="store_true", help="no progress line")
    sim.set_defaults(handler=run_synthetic)


def _register_replay(sources: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rep = sources.add_parser(
        "replay",
        help="the UCI Online Retail dataset, one checkout per invoice",
        description="Replay the UCI Online Retail dataset (Europe/London wall clock), one "
        "checkout per invoice, and print what was sent per day.",
    )
    rep.add_argument(
        "--from", dest="first", type=arguments.day, help="first dataset day (inclusive)"
    )
    rep.add_argument("--to", dest="last", type=arguments.day, help="last dataset day (inclusive)")
    rep.add_argument(
        "--speed",
        type=_speed,
        default=None,
        help="1 = real time, N = N times faster, 'max' = no pacing (default max)",
    )
    rep.add_argument(
        "--shift-to",
        type=arguments.day,
        help="move the --from day (or the dataset's first day) to this day, keeping times",
    )
    rep.add_argument(
        "--dataset",
        type=Path,
        help="the Online Retail Parquet file (default KASSA_REPLAY_DATASET, else the copy "
        "shipped with kassa)",
    )
    rep.add_argument("--quiet", action="store_true", help="no progress line")
    rep.set_defaults(handler=run_replay)


def run_synthetic(args: argparse.Namespace, settings: Settings) -> int:
    """Publish simulated checkouts until --count, --duration or a signal."""
    start = args.start or (datetime.now(settings.zone) - timedelta(days=1)).replace(
        second=0, microsecond=0
    )
    if start.tzinfo is None:
        start = start.replace(tzinfo=settings.zone)
    rate = None if args.max else (args.rate or 100.0)
    stop = threading.Event()
    checkouts: Iterator[Checkout] = synthetic.generate(
        args.seed,
        start,
        args.count,
        store_count=args.stores,
        currency=settings.currency,
        versions=args.schema_version,
    )
    checkouts = not_ahead_of_clock(checkouts, stop)
    ensure_topics(settings)
    # the timer also ends a wait for the clock, which publish() cannot see
    timer = threading.Timer(args.duration, stop.set) if args.duration else None
    if timer is not None:
        timer.start()
    try:
        report = publish(
            settings,
            checkouts,
            rate=rate,
            duration=args.duration,
            progress=not args.quiet,
            stop=stop,
        )
    finally:
        if timer is not None:
            timer.cancel()
    return _finish(report, settings)


def run_replay(args: argparse.Namespace, settings: Settings) -> int:
    """Publish the dataset's invoices, then print the per-day table."""
    dataset = args.dataset or settings.replay_dataset or replay.DEFAULT_DATASET
    first: date | None = args.first
    last: date | None = args.last
    totals = replay.ReplayTotals()
    stop = threading.Event()
    checkouts: Iterator[Checkout] = replay.checkouts(dataset, first, last, args.shift_to)
    checkouts = not_ahead_of_clock(checkouts, stop)
    if args.speed is not None:
        checkouts = at_speed(checkouts, args.speed, stop)
    ensure_topics(settings)
    report = publish(settings, totals.count(checkouts), progress=not args.quiet, stop=stop)
    print(totals.table())
    if not totals.days and report.stopped_by is None:
        print(
            f"kassa: no invoices in {dataset} from {first or 'the start'} to {last or 'the end'}"
            " (the Online Retail file covers 2010-12-01 to 2011-12-09, without Saturdays)",
            file=sys.stderr,
        )
    return _finish(report, settings)


def _finish(report: PublishReport, settings: Settings) -> int:
    if report.refusal is not None:
        topic = f"topic {report.topic!r}"
        refused = access_error(report.refusal, settings, operation="WRITE", resource=topic)
        if refused is not None:
            raise refused
    if report.failed:
        raise DeliveryError(report.summary())
    print(report.summary(), file=sys.stderr)
    return 0


def _speed(text: str) -> float | None:
    if text == "max":
        return None
    try:
        return arguments.positive_float(text)
    except argparse.ArgumentTypeError:
        msg = f"speed {text!r} is neither a positive number nor 'max'; e.g. 1, 60 or max"
        raise argparse.ArgumentTypeError(msg) from None


def _aware_datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        msg = f"{text!r} is not an ISO-8601 time; write e.g. 2026-11-21T08:00:00+01:00"
        raise argparse.ArgumentTypeError(msg) from None
