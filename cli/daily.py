"""``kassa daily run|backfill|schedule|status``: finalize business days into Parquet and Redis.

Exit status: 0 done; 2 bad input or settings; 3 a day is not complete yet (the message names
the partitions behind; ``--force`` finalizes anyway and records it); 4 Kafka could not be
read; 5 Redis could not be written (the day stays unfinished); 6 retention deleted part of
the day's range (``--force`` finalizes what is left); 7 a forced run over such a day found
fewer checkouts than the snapshot, which is kept; 8 ``KASSA_DATA_DIR`` not writable; 9 the
Kafka cluster refused kassa (an ACL, a login); 10 more
of the day's records are invalid than ``KASSA_DAILY_MAX_INVALID_SHARE`` allows (the one-line
message names the share and the top reasons; ``--force`` finalizes it, marked).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Final

import msgspec
import redis
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

from cli import arguments
from common.days import yesterday
from common.settings import Settings
from common.settings.location import shown_location
from jobs.daily.job import backfill, run_day
from jobs.daily.lock import DayLocks
from jobs.daily.manifest import encode
from jobs.daily.republish import redis_states
from jobs.daily.run import DayResult
from jobs.daily.scheduler import serve
from jobs.daily.status import DayStatus, day_statuses
from storage import figures
from storage.connections import open_redis

REDIS_TIMEOUT: Final = 5.0
"""Seconds ``kassa daily status`` waits for Redis before it reports it unreachable."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``daily run``, ``daily backfill``, ``daily schedule`` and ``daily status``."""
    parser = subparsers.add_parser(
        "daily",
        help="finalize business days: Parquet tables, Redis daily rankings, manifests",
        description="The daily job: read a business day's offset range from KASSA_TOPIC and "
        "write Parquet under KASSA_DATA_DIR and the day's rankings to Redis. Exit status: 0 "
        "done, 2 bad input, 3 day not complete yet (see --force), 4 Kafka unreadable, 5 Redis "
        "unwritable, 6 part of the day deleted by retention (see --force), 7 snapshot kept, 8 "
        "KASSA_DATA_DIR not writable (a full disk), 9 refused by Kafka (an ACL), 10 too many "
        "invalid records "
        "(KASSA_DAILY_MAX_INVALID_SHARE; see --force).",
    )
    parser.set_defaults(folders=("data_dir",), kafka=True)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    _register_run(actions)
    _register_backfill(actions)
    schedule = actions.add_parser(
        "schedule",
        help="run every day at KASSA_DAILY_AT, retrying until done, catching up missed days",
        description="Catch up the days of the last KASSA_DAILY_CATCHUP_DAYS, then run at "
        "KASSA_DAILY_AT (KASSA_TIMEZONE) and re-check every KASSA_DAILY_RETRY_SECONDS until "
        "interrupted; metrics on 127.0.0.1:KASSA_DAILY_METRICS_PORT.",
    )
    schedule.set_defaults(handler=schedule_command)
    _register_status(actions)


def _register_run(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = actions.add_parser(
        "run",
        help="finalize one day (default: yesterday in KASSA_TIMEZONE)",
        description="Finalize one business day. Re-running a day replaces its files and keys.",
    )
    run.add_argument("--day", type=arguments.day, help="YYYY-MM-DD (default: yesterday)")
    run.add_argument(
        "--force",
        action="store_true",
        help="finalize even if partitions are behind or too many records are invalid (recorded)",
    )
    run.add_argument(
        "--repair-live",
        action="store_true",
        help="overwrite the live figures of the day with the daily result when they drift",
    )
    run.add_argument("--json", action="store_true", help="print the whole manifest as JSON")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(handler=run_command)


def _register_backfill(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fill = actions.add_parser(
        "backfill",
        help="finalize every day of a range",
        description="Finalize every day from --from to --to (inclusive), oldest first; stops "
        "at the first incomplete day unless --force.",
    )
    fill.add_argument("--from", dest="first", type=arguments.day, required=True, help="YYYY-MM-DD")
    fill.add_argument("--to", dest="last", type=arguments.day, required=True, help="YYYY-MM-DD")
    fill.add_argument("--force", action="store_true", help="finalize incomplete days too")
    fill.add_argument("--quiet", action="store_true", help="no progress bar")
    fill.set_defaults(handler=backfill_command)


def _register_status(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = actions.add_parser(
        "status",
        help="list recent days: complete, forced, late-pending, restated, missing, "
        "invalid-share, running",
        description="Each day's state from its manifest (newest first), and whether Redis holds "
        "the run of it the manifest names; reads no Kafka.",
    )
    status.add_argument(
        "--days",
        type=arguments.positive_int,
        default=7,
        metavar="N",
        help="how many days (default 7)",
    )
    status.add_argument(
        "--to", dest="last", type=arguments.day, help="newest day listed (default: yesterday)"
    )
    status.add_argument("--json", action="store_true", help="print a JSON list")
    status.set_defaults(handler=status_command)


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    """Finalize one day and print its summary (or manifest)."""
    day: date = args.day or yesterday(datetime.now(UTC), settings.zone)
    with progress_bars(enabled=not args.quiet) as bars:
        result = run_day(
            settings,
            day,
            force=args.force,
            repair_live=args.repair_live,
            progress=bars,
            accept_invalid=args.force,
        )
    if args.json:
        print(encode(result.manifest).decode(), end="")
    else:
        print(_summary(result, settings))
    return 0


def backfill_command(args: argparse.Namespace, settings: Settings) -> int:
    """Finalize a range of days and print one summary line per day."""
    with progress_bars(enabled=not args.quiet) as bars:
        results = backfill(
            settings,
            args.first,
            args.last,
            force=args.force,
            progress=bars,
            accept_invalid=args.force,
        )
    for result in results:
        print(_summary(result, settings))
    return 0


def schedule_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run the scheduler until interrupted."""
    serve(settings)
    return 0


def status_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print the state of each recent day."""
    last: date = args.last or yesterday(datetime.now(UTC), settings.zone)
    days = [last - timedelta(days=n) for n in range(args.days)]
    statuses = day_statuses(settings.data_dir, days, DayLocks.of(settings))
    in_redis = _redis_states(settings, statuses)
    if args.json:
        entries = [{**s.as_json(), "redis": in_redis.get(s.day)} for s in statuses]
        print(json.dumps(entries, indent=2))
    else:
        for status in statuses:
            print(_status_line(status, in_redis.get(status.day)))
    return 0


def _redis_states(settings: Settings, statuses: list[DayStatus]) -> dict[date, str]:
    """Whether Redis holds each finished day's run (:func:`jobs.daily.republish.redis_states`)."""
    snapshots = {s.day: s.manifest.published for s in statuses if s.manifest is not None}
    if not snapshots:
        return {}
    try:
        client = open_redis(settings, timeout=REDIS_TIMEOUT)
        with closing(client):
            return redis_states(settings, client, snapshots, datetime.now(UTC))
    except redis.RedisError as exc:
        return dict.fromkeys(snapshots, f"unknown: Redis unreachable ({exc})")


def _status_line(status: DayStatus, in_redis: str | None) -> str:
    text = f"{status.day} {status.state:<13}"
    manifest = status.manifest
    if status.refusal is not None:
        refused = f"NOT finalized at {status.refusal.run_at}: {status.refusal.headline()}"
        if manifest is None:
            return f"{text} {refused}; kept unfinished until fixed or run with --force"
        text += f" (the last restatement was {refused})"
    if manifest is None:
        return text.rstrip()
    cases = ", ".join(f"{count} {case}" for case, count in status.completeness().items())
    text += f" revision {manifest.revision}: {manifest.totals.checkouts:,} checkouts "
    text += f"({manifest.revision_reason})"
    text += f"; partitions: {cases}"
    if status.late_pending:
        text += f"; {status.late_pending:,} late records pending"
    if in_redis is not None:
        text += f"; Redis: {in_redis}"
    return text


class ProgressBars:
    """A run's progress as bars on stderr, one per task (see :class:`jobs.daily.job.Progress`)."""

    def __init__(self, bars: Progress) -> None:
        self._bars = bars
        self._tasks: dict[str, TaskID] = {}

    def start(self, task: str, total: int) -> None:
        """Show a bar for ``task``."""
        self._tasks[task] = self._bars.add_task(task, total=total)

    def advance(self, task: str, steps: int = 1) -> None:
        """Move the bar of ``task`` on."""
        self._bars.advance(self._tasks[task], steps)

    def finish(self, task: str) -> None:
        """Remove the bar of ``task``."""
        self._bars.remove_task(self._tasks.pop(task))


@contextmanager
def progress_bars(*, enabled: bool) -> Iterator[ProgressBars]:
    """Progress bars on stderr, shown only when ``enabled`` and stderr is a terminal."""
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not (enabled and console.is_terminal),
        transient=True,
    ) as bars:
        yield ProgressBars(bars)


def _summary(result: DayResult, settings: Settings) -> str:
    manifest = result.manifest
    counts = manifest.counts
    state = "complete"
    if manifest.forced:
        state = "FORCED (incomplete)" if not manifest.complete else "FORCED (retention gap)"
    elif manifest.invalid_share_forced:
        state = "FORCED (invalid share)"
    text = (
        f"{manifest.day} {state}: {figures.summary(msgspec.structs.asdict(manifest.totals))}; "
        f"{counts.invalid_total:,} invalid, {counts.duplicates:,} "
        f"duplicates, {counts.outside_day:,} outside the day; "
        f"{manifest.timings_seconds.total:.1f} s -> {shown_location(settings.data_dir)}; "
        f"revision {manifest.revision} ({manifest.revision_reason})"
    )
    reconciliation = manifest.reconciliation
    if reconciliation.live_items:
        text += (
            f"\n  live vs daily: {reconciliation.drifted_items} of "
            f"{reconciliation.daily_items} items drift"
        )
        if reconciliation.repaired_live:
            text += " (live repaired)"
        for drift in reconciliation.drifts[:10]:
            text += f"\n    {drift.sku}: live - daily = {drift.difference}"
    return text
