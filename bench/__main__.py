"""``python -m bench``: run every benchmark against running services and write BENCHMARKS.md.

Each module in :data:`MODULES` has ``run(settings) -> str`` returning a Markdown section.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from common.settings import Settings, load_settings

MODULES = ("producer", "stream", "daily")
HISTORY = "## History"
"""The hand-written section of BENCHMARKS.md that a new run keeps (how the figures came about)."""
logger = logging.getLogger("bench")


def machine() -> str:
    """One line about the machine the numbers come from."""
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            memory_kb = int(line.split()[1])
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    return (
        f"{os.cpu_count()} cores ({model}), {memory_kb / 2**20:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"{java.stderr.splitlines()[0] if java.stderr else 'java ?'}"
    )


def kept_history(report: Path) -> str:
    """The History section of an earlier ``report`` (to its end), or nothing."""
    if not report.is_file():
        return ""
    text = report.read_text()
    start = text.find(f"\n{HISTORY}\n")
    return "" if start < 0 else text[start:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--command", default="python -m bench", help="recorded in the report")
    parser.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--only", nargs="*", choices=MODULES, default=list(MODULES))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    settings: Settings = load_settings()
    sections = []
    failed = False
    for name in args.only:
        logger.info("running bench.%s", name)
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            sections.append(module.run(settings).strip())
        except Exception:  # a broken benchmark is reported; the others still run
            failed = True
            sections.append(f"## {name}\n\nFAILED:\n\n```\n{traceback.format_exc()}```")
        logger.info("bench.%s took %.0f s", name, time.perf_counter() - started)
    header = (
        "# Benchmarks\n\n"
        f"Produced by `{args.command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.\n\n"
        f"Machine: {machine()}. Kafka {settings.kafka_version} and Redis run on the same "
        "machine (127.0.0.1), started by `kassa services up`.\n\n"
        "Every figure is the median of the repetitions stated in its section; baselines are "
        "measured in the same run on the same data.\n"
    )
    body = header + "\n" + "\n\n".join(sections) + "\n" + kept_history(args.output)
    args.output.write_text(body)
    print(f"wrote {args.output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
