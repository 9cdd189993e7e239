"""``python -m bench``: run the benchmarks and write BENCHMARKS.md, bench/results/*.json, plots.

``--quick`` chooses the smaller workloads of ``make bench-quick``; ``--services`` starts
kassa's local Kafka and Redis (``kassa services up``, with the ``KASSA_*`` settings) and
stops them at the end if it started them. The benchmarks write only under Redis database
:data:`REDIS_DB` and delete their topics.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from bench.scale import QUICK, SCALES
from bench.session import MODULES, run_benchmarks
from common.settings import Settings, load_settings
from services import manager

REDIS_DB: Final = 15
logger = logging.getLogger("bench")


@contextmanager
def local_services(settings: Settings) -> Iterator[None]:
    """``kassa services up`` now, ``down`` at the end if everything was started here."""
    statuses = manager.up(settings)
    started = all(status.state == "started" for status in statuses)
    logger.info("services: %s", ", ".join(f"{s.name} {s.state}" for s in statuses))
    try:
        yield
    finally:
        if started:
            manager.down(settings)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the bench-quick workloads")
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--services", action="store_true", help="start and stop the services")
    parser.add_argument("--command", default="python -m bench", help="recorded in the report")
    parser.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--results", type=Path, default=Path("bench/results"))
    parser.add_argument("--only", nargs="*", choices=MODULES, default=list(MODULES))
    return parser.parse_args()


def main() -> int:
    """Run the benchmarks; exit status 1 if one of them failed."""
    args = _arguments()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("quixstreams").setLevel(logging.WARNING)
    settings = load_settings()
    scale = QUICK if args.quick else SCALES[args.scale]
    redis_url = urlunsplit(urlsplit(settings.redis_url)._replace(path=f"/{REDIS_DB}"))
    bench_settings = settings.model_copy(update={"redis_url": redis_url, "metrics_port": 0})
    with local_services(settings) if args.services else _nothing():
        sections = run_benchmarks(
            bench_settings, scale, args.output, args.results, only=args.only, command=args.command
        )
    print(f"wrote {args.output} and {args.results}/")
    return 1 if any(s.title.endswith("(FAILED)") for s in sections) else 0


@contextmanager
def _nothing() -> Iterator[None]:
    yield


if __name__ == "__main__":
    sys.exit(main())
