"""``kassa``: one console script, one subcommand per job.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``handler(args, settings) -> int``
as the parser's ``handler`` default.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from collections.abc import Sequence

from cli import daily, produce, serve, services, stream, top, topics
from common.errors import KassaError
from common.settings import Settings, load_settings

logger = logging.getLogger(__name__)

COMMANDS = (services, topics, produce, stream, daily, top, serve)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="kassa",
        description="Live and daily sales rankings from supermarket checkouts.",
        epilog="Configuration comes from KASSA_* environment variables; see .env.example.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(verbose: bool, as_json: bool) -> None:
    """Log to stderr, human-readable or one JSON object per line."""
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])


def _silence_import_warnings() -> None:
    """Hide a deprecation warning printed at import time about code kassa never calls.

    confluent-kafka's schema registry client (imported by Quix Streams) imports authlib's
    deprecated httpx integration, and authlib forces its own warnings to "always" on import,
    so the filter must come after authlib's.
    """
    try:
        from authlib.deprecate import AuthlibDeprecationWarning  # noqa: PLC0415
    except ImportError:
        return
    warnings.filterwarnings("ignore", category=AuthlibDeprecationWarning)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``kassa`` subcommand and return its exit status."""
    _silence_import_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.log_json)
    try:
        settings: Settings = load_settings()
        status: int = args.handler(args, settings)
    except KassaError as exc:
        print(f"kassa: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
