"""One benchmark run: the services and settings it measures, and every section so far.

:func:`run_benchmarks` runs the modules of :data:`MODULES` in order; each module's
``run(bench)`` gets the :class:`Bench` (later modules read earlier sections: the capacity
plan reads every per-checkout cost) and returns a :class:`~bench.report.Section`.
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
import subprocess
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Final, Protocol

from bench.processes import listener
from bench.report import Figure, Section, failed_section, write_report
from bench.scale import Scale
from common.settings import Settings
from storage.connections import open_redis

logger = logging.getLogger(__name__)

MODULES: Final = (
    "broker", "producer", "stream", "security", "redis_tls", "scaling", "restart", "rebuild",
    "watch", "daily", "objects", "capacity",
)  # fmt: skip


@dataclass
class Bench:
    """What every benchmark module is handed."""

    settings: Settings
    """The services (a Redis database of the benchmarks' own) and defaults to start from."""
    scale: Scale
    results: Path
    """Where plots (and the JSON) go."""
    sections: dict[str, Section] = field(default_factory=dict)

    def find(self, section: str, name: str, **labels: object) -> Figure | None:
        """A figure of an earlier section, if that section ran and measured it."""
        found = self.sections.get(section)
        return None if found is None else found.find(name, **labels)

    def broker_pid(self, bootstrap: str | None = None) -> int | None:
        """The Kafka broker process listening on the first address of ``bootstrap`` (by
        default the settings' ``kafka_bootstrap``)."""
        first = (bootstrap or self.settings.kafka_bootstrap).split(",")[0]
        return listener(int(first.rsplit(":", 1)[1]))

    def redis_pid(self) -> int:
        """The redis-server process."""
        client = open_redis(self.settings)
        try:
            return int(client.info("server")["process_id"])
        finally:
            client.close()


class _Module(Protocol):
    def run(self, bench: Bench) -> Section: ...


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
    return (
        f"{os.cpu_count()} cores ({model}), {memory_kb / 2**20:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}"
    )


def versions(settings: Settings) -> dict[str, str]:
    """The versions of everything measured."""
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    client = open_redis(settings)
    try:
        redis_version = str(client.info("server")["redis_version"])
    finally:
        client.close()
    return {
        "kassa": metadata.version("kassa"),
        "Kafka": settings.kafka_version,
        "Redis": redis_version,
        "Python": platform.python_version(),
        "quixstreams": metadata.version("quixstreams"),
        "polars": metadata.version("polars"),
        "confluent-kafka": metadata.version("confluent-kafka"),
        "Java": java.stderr.splitlines()[0] if java.stderr else "?",
    }


def header(settings: Settings, scale: Scale, command: str, started: datetime) -> str:
    """The top of BENCHMARKS.md: what ran where, when, with which versions."""
    listed = ", ".join(f"{name} {version}" for name, version in versions(settings).items())
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        "# Benchmarks\n\n"
        f"Produced by `{command}` ({scale.name} scale) on {started:%Y-%m-%d %H:%M} UTC, "
        f"load average at the end {load} (1, 5, 15 min).\n\n"
        f"Machine: {machine()}. Versions: {listed}. The Kafka broker and Redis run on the "
        "same machine (127.0.0.1), started by `kassa services up`.\n\n"
        "Every figure is the median of the repetitions stated in its section; each baseline "
        "is measured in the same run on the same records, so only the ratios travel between "
        "machines. Machine-readable figures: `bench/results/<section>.json`."
    )


def run_benchmarks(
    settings: Settings,
    scale: Scale,
    output: Path,
    results: Path,
    *,
    only: Sequence[str] = MODULES,
    command: str = "python -m bench",
) -> list[Section]:
    """Run the modules ``only`` (in :data:`MODULES` order) and write the report."""
    started = datetime.now(UTC)
    bench = Bench(settings, scale, results)
    for name in (m for m in MODULES if m in only):
        logger.info("running bench.%s (%s scale)", name, scale.name)
        began = time.perf_counter()
        try:
            module: _Module = importlib.import_module(f"bench.{name}")
            bench.sections[name] = module.run(bench)
        except Exception:  # a broken benchmark is reported; the others still run
            logger.exception("bench.%s failed", name)
            bench.sections[name] = failed_section(name, traceback.format_exc())
        logger.info("bench.%s took %.0f s", name, time.perf_counter() - began)
    sections = list(bench.sections.values())
    write_report(header(settings, scale, command, started), sections, output, results)
    return sections
