"""``kassa``: one console script, one subcommand per job.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``handler(args, settings) -> int``
as the parser's ``handler`` default; ``folders`` (names of settings such as ``"state_dir"``)
and ``kafka`` defaults say what :func:`main` checks before it calls the handler.

Every way a command stops prints one line naming the cause and the fix, and exits with the
error's ``exit_code`` (1 for an unexpected error; ``-v`` shows its traceback).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence

from cli.terminal import PrintableFormatter, printable, printable_lines
from common.environment import check_folders, unknown_variables
from common.errors import KassaError
from common.settings import Settings, load_settings
from storage.kafka.topics import check_broker

logger = logging.getLogger(__name__)

COMMANDS = ("services", "topics", "produce", "stream", "dead-letters", "daily", "top", "serve")
"""The subcommands, each in module ``cli.<name>`` (``-`` spelled ``_``)."""


def build_parser(commands: Sequence[str] = COMMANDS) -> argparse.ArgumentParser:
    """The argument parser of ``commands`` (every subcommand by default)."""
    parser = argparse.ArgumentParser(
        prog="kassa",
        description="Live and daily sales rankings from supermarket checkouts.",
        epilog="Configuration comes from KASSA_* environment variables; see .env.example.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    parser.set_defaults(folders=(), kafka=False)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in commands:
        importlib.import_module(f"cli.{name.replace('-', '_')}").register(subparsers)
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
        handler.setFormatter(PrintableFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
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
    argv = sys.argv[1:] if argv is None else list(argv)
    # Only the invoked subcommand's module is imported: the daily job's and the API's
    # imports take seconds, which a restarted stream job would wait for.
    named = [arg for arg in argv if not arg.startswith("-")][:1]
    parser = build_parser(named if named and named[0] in COMMANDS else COMMANDS)
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.log_json)
    for warning in unknown_variables(os.environ):
        logger.warning("%s", warning)
    try:
        settings: Settings = load_settings()
        check_folders(settings, args.folders)
        if args.kafka:
            check_broker(settings)
        status: int = args.handler(args, settings)
    except KassaError as exc:
        print(f"kassa: error: {printable_lines(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.verbose:
            raise
        print(
            f"kassa: error: unexpected {type(exc).__name__}: {printable(str(exc))}; this is a "
            "bug in kassa: "
            "run the command again with -v for the traceback and report it",
            file=sys.stderr,
        )
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
