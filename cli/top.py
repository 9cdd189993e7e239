"""``kassa top``: a ranking of a day or a range of days from Redis, as a table or as JSON.

Exit status: 0 printed; 1 nothing to show (the message says why: no data, unknown store,
daily ranking not computed, day past the retention); 2 bad arguments; 3 Redis unreachable.
"""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime

from cli import arguments
from cli.terminal import printable, printable_json
from common.days import business_day, yesterday
from common.errors import KassaError
from common.settings import Settings
from storage import figures
from storage.connections import open_redis, redis_failures
from storage.rankings import (
    MAX_LIMIT,
    RankedItem,
    RankingQuery,
    Retention,
    day_range,
    stores_of,
    top,
)

SOURCES = ("live", "daily")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``top``."""
    parser = subparsers.add_parser(
        "top",
        help="print the best-selling items of a day or a range of days",
        description="Read a ranking from Redis: 'live' (kept by kassa stream) or 'daily' "
        "(written by kassa daily), for one day (--day) or a range (--from/--to, combined in "
        "Redis), by net units or revenue. Best first; ties by sku. Exit status: 0 printed, "
        "1 nothing to show (the message says why), 2 bad arguments, 3 Redis unreachable.",
    )
    parser.add_argument("--source", choices=SOURCES, default="live", help="which ranking")
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--day",
        type=arguments.day,
        help="business day YYYY-MM-DD in KASSA_TIMEZONE (default: today for live, "
        "yesterday for daily)",
    )
    when.add_argument("--from", dest="first", type=arguments.day, help="first day of a range")
    parser.add_argument("--to", dest="last", type=arguments.day, help="last day of a range")
    parser.add_argument(
        "-n", type=_item_count, default=10, help=f"how many items, 1..{MAX_LIMIT} (default 10)"
    )
    parser.add_argument(
        "--by",
        choices=figures.RANKED_BY,
        default=figures.BY_UNITS,
        help="rank by net units or revenue",
    )
    parser.add_argument("--store", help="one store's ranking instead of the whole chain")
    parser.add_argument(
        "--stores", action="store_true", help="list the stores of the day(s) instead"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=run)


def _item_count(text: str) -> int:
    value = arguments.positive_int(text)
    if value > MAX_LIMIT:
        msg = f"{text!r} is more than {MAX_LIMIT}; ask for 1 to {MAX_LIMIT} items"
        raise argparse.ArgumentTypeError(msg)
    return value


def _days(args: argparse.Namespace, settings: Settings) -> tuple[date, date]:
    if (args.first is None) != (args.last is None):
        msg = "--from and --to go together: give both days of the range (YYYY-MM-DD)"
        raise KassaError(msg)
    if args.first is not None:
        return args.first, args.last
    if args.day is not None:
        return args.day, args.day
    now = datetime.now(UTC)
    day = (
        yesterday(now, settings.zone)
        if args.source == "daily"
        else business_day(now, settings.zone)
    )
    return day, day


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Print the ranking (or the stores); a reason for having none is an error (status 1)."""
    first, last = _days(args, settings)
    client = open_redis(settings)
    try:
        with redis_failures(settings, f"read the {args.source} ranking from"):
            if args.stores:
                stores = stores_of(client, settings.key_space, args.source, day_range(first, last))
                print(printable_json(stores) if args.json else "\n".join(map(printable, stores)))
                return 0
            query = RankingQuery(
                settings.key_space, args.source, first, last, args.n, args.by, args.store
            )
            retention = Retention(settings.zone, settings.retention_days, settings.data_dir)
            ranking = top(client, query, retention, datetime.now(UTC))
    finally:
        client.close()
    if args.json:
        print(printable_json([item.as_json() for item in ranking]))
    else:
        print(_table(ranking, query.describe()))
    return 0


def _table(ranking: list[RankedItem], title: str) -> str:
    rows: list[tuple[str, ...]] = [("rank", "sku", "name", figures.BY_UNITS, figures.BY_REVENUE)]
    rows += [
        (str(i.rank), printable(i.sku), printable((i.name or "").strip()), str(i.units),
         str(i.revenue))
        for i in ranking
    ]  # fmt: skip
    widths = [max(len(row[col]) for row in rows) for col in range(5)]
    right = {0, 3, 4}
    lines = [printable(title)]
    for row in rows:
        cells = [
            cell.rjust(widths[col]) if col in right else cell.ljust(widths[col])
            for col, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
