"""``kassa top``: read a day's item ranking from Redis, as a table or as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

import redis

from common.days import business_day, parse_day, yesterday
from common.errors import KassaError
from common.settings import Settings
from storage import parquet
from storage.connections import redis_failures
from storage.rankings import RankedItem, read_ranking

SOURCES = ("live", "daily")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``top``."""
    parser = subparsers.add_parser(
        "top",
        help="print a day's best-selling items (net units)",
        description="Read a day's ranking from Redis: 'live' (kept by kassa stream) or "
        "'daily' (written by kassa daily). Best first; ties by sku.",
    )
    parser.add_argument("--source", choices=SOURCES, default="live", help="which ranking")
    parser.add_argument(
        "--day",
        help="business day YYYY-MM-DD in KASSA_TIMEZONE (default: today for live, "
        "yesterday for daily)",
    )
    parser.add_argument("-n", type=int, default=10, help="how many items (default 10)")
    parser.add_argument("--store", help="one store's ranking instead of the whole chain")
    parser.add_argument("--json", action="store_true", help="print a JSON array")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Print the ranking; an empty ranking prints ``[]`` (JSON) or a note, exit status 0."""
    now = datetime.now(UTC)
    if args.day:
        day = parse_day(args.day)
    elif args.source == "daily":
        day = yesterday(now, settings.zone)
    else:
        day = business_day(now, settings.zone)
    if args.n < 1:
        msg = f"-n {args.n} is not positive; ask for at least 1 item"
        raise KassaError(msg)
    client = redis.Redis.from_url(settings.redis_url)
    try:
        with redis_failures(settings.redis_url, f"read the {args.source} ranking from"):
            ranking = read_ranking(client, settings.key_space, args.source, day, args.n, args.store)
    finally:
        client.close()
    snapshot = parquet.table_path(settings.data_dir, "daily_item_sales", day)
    if not ranking and snapshot.exists():
        note = (
            f"the {args.source} keys of {day} are gone from Redis (expired after "
            f"KASSA_RETENTION_DAYS={settings.retention_days}, or deleted); the daily "
            f"snapshot of the day is {snapshot}"
        )
        print(f"kassa: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps([item.as_json() for item in ranking], ensure_ascii=False))
    else:
        print(_table(ranking, args.source, day.isoformat(), args.store))
    return 0


def _table(ranking: list[RankedItem], source: str, day: str, store: str | None) -> str:
    scope = f"store {store}" if store else "all stores"
    if not ranking:
        return f"no {source} ranking for {day} ({scope})"
    rows = [("rank", "sku", "name", "units", "revenue")]
    rows += [
        (str(i.rank), i.sku, (i.name or "").strip(), str(i.units), str(i.revenue)) for i in ranking
    ]
    widths = [max(len(row[col]) for row in rows) for col in range(5)]
    right = {0, 3, 4}
    lines = [f"{source} ranking for {day} ({scope})"]
    for row in rows:
        cells = [
            cell.rjust(widths[col]) if col in right else cell.ljust(widths[col])
            for col, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
