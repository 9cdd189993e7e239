"""``kassa dead-letters list|replay``: the dead letters not yet replayed, and putting back those
the current settings accept (exactly once; :mod:`jobs.stream.replay`).

Exit status: 0 done; 2 bad input or settings; 4 Kafka could not be read or written (the
failed transaction is aborted: run the replay again); 9 Kafka refused kassa (an ACL).
"""

from __future__ import annotations

import argparse
import json
from datetime import date

from cli import arguments
from common.settings import Settings
from jobs.stream.replay import Listing, Replayed, Selection, list_dead_letters, replay


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dead-letters list`` and ``dead-letters replay``."""
    parser = subparsers.add_parser(
        "dead-letters",
        help="list the dead letters, or replay those the current settings accept",
        description="The dead letters pending (not yet replayed) on the dead-letter topic: list "
        "counts them by reason and day; replay re-produces those the current settings accept "
        "(e.g. after widening KASSA_SCHEMA_VERSIONS) to KASSA_TOPIC with their key and "
        "occurred_at, exactly once (a Kafka transaction commits them with the replay group's "
        "offsets); the others stay pending. See docs/fleet-upgrade.md.",
    )
    parser.set_defaults(kafka=True)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="counts per reason and day, a few examples")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=list_command)
    again = actions.add_parser(
        "replay", help="re-produce the dead letters the current settings accept, exactly once"
    )
    again.add_argument(
        "--reason", help="only dead letters of this reason (e.g. unsupported_version)"
    )
    again.add_argument(
        "--from", dest="first", type=arguments.day, help="only from this day (YYYY-MM-DD)"
    )
    again.add_argument("--to", dest="last", type=arguments.day, help="only to this day")
    again.add_argument(
        "--batch",
        type=arguments.positive_int,
        default=1000,
        help="dead letters per transaction (default 1000)",
    )
    again.set_defaults(handler=replay_command)


def list_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print the pending dead letters by reason and day."""
    listing = list_dead_letters(settings)
    if args.json:
        print(json.dumps(_listing_json(listing), indent=2))
        return 0
    print(f"{listing.total:,} dead letter(s) pending on {settings.dead_letter_topic!r}")
    for (reason, day), count in sorted(listing.counts.items(), key=_by_reason_and_day):
        print(f"  {reason:<20} {_day_text(day):<10} {count:>10,}")
    for reason, examples in sorted(listing.examples.items()):
        print(f"{reason}:")
        for example in examples:
            print(f"  {example.partition}/{example.offset} {example.detail}: {example.value}")
    return 0


def replay_command(args: argparse.Namespace, settings: Settings) -> int:
    """Replay and print what was replayed, and what stays pending."""
    selection = Selection(args.reason, args.first, args.last)
    report = replay(settings, selection, batch=args.batch)
    print(_replayed_text(report, settings))
    return 0


def _replayed_text(report: Replayed, settings: Settings) -> str:
    replayed = sum(report.replayed.values())
    days = ", ".join(f"{day} {count:,}" for day, count in sorted(report.replayed.items()))
    refused = ", ".join(f"{reason} {count:,}" for reason, count in report.refused.most_common())
    return (
        f"replayed {replayed:,} record(s) to {settings.topic!r}"
        + (f" ({days})" if days else "")
        + f" in {report.transactions} transaction(s); "
        + f"{sum(report.refused.values()):,} still refused"
        + (f" ({refused})" if refused else "")
        + f" and {report.skipped:,} not selected, pending on {settings.dead_letter_topic!r}"
    )


def _listing_json(listing: Listing) -> dict[str, object]:
    return {
        "pending": listing.total,
        "counts": [
            {"reason": reason, "day": _day_text(day), "count": count}
            for (reason, day), count in sorted(listing.counts.items(), key=_by_reason_and_day)
        ],
        "examples": {
            reason: [
                {
                    "partition": e.partition,
                    "offset": e.offset,
                    "day": _day_text(e.day),
                    "detail": e.detail,
                    "value": e.value,
                }
                for e in examples
            ]
            for reason, examples in sorted(listing.examples.items())
        },
    }


def _by_reason_and_day(item: tuple[tuple[str, date | None], int]) -> tuple[str, date]:
    (reason, day), _ = item
    return reason, day or date.min


def _day_text(day: date | None) -> str:
    return day.isoformat() if day is not None else "unknown"
