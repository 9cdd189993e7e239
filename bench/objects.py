"""What an object store costs the daily job: the same day on the local disk and on S3Proxy.

The module starts its own S3Proxy (:mod:`services.s3proxy`, as ``kassa services up --s3``
does: transient backend, objects in memory) in a temporary folder on a free port, and stops it
at the end. One seeded day of synthetic checkouts is produced once; the real job then runs it
as a child process (``kassa daily run --json``) with ``KASSA_DATA_DIR`` a local temporary
folder and an S3 prefix alternately (local, S3, local, S3, ...; one untimed pair first), each
run a new revision of the day in its own place. Figures: the job's seconds and its write phase
(from each manifest), and the median of the pairs' S3/local ratios.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Final

from bench.daily import bench_day
from bench.processes import run_child
from bench.report import Figure, Section, figure, table
from bench.session import Bench
from bench.workload import child_environment, day_of_checkouts, day_seal, drop_topic, fresh_topic
from bench.workload import produce as produce_day
from common.settings import Settings
from common.settings.location import DataUrl
from jobs.daily.manifest import Manifest, decode
from services.process import free_port
from services.s3proxy import S3ProxyServer, ensure_s3proxy

SEED: Final = 11
PAIRS_AT_LEAST: Final = 3
VARIANTS: Final = ("local disk", "S3Proxy")
JOB: Final = "job seconds (manifest)"
WRITE: Final = "write phase seconds (manifest)"
PROCESS: Final = "process seconds (start-up and publication included)"
RATIO: Final = "S3Proxy / local disk job seconds"
PROCESS_RATIO: Final = "S3Proxy / local disk process seconds"


@contextmanager
def s3proxy(settings: Settings) -> Iterator[S3ProxyServer]:
    """An S3Proxy in a temporary folder on a free port, stopped at the end."""
    with tempfile.TemporaryDirectory(prefix="kassa-bench-s3-") as folder:
        jar = ensure_s3proxy(settings.cache_dir, settings.s3proxy_version)
        server = S3ProxyServer("127.0.0.1", free_port(), Path(folder), jar)
        server.start()
        try:
            yield server
        finally:
            server.stop()


def _run(
    settings: Settings, day: date, environment: dict[str, str], folder: Path
) -> tuple[float, Manifest]:
    """One child run of the daily job: its seconds (start-up and publication included) and
    its manifest."""
    command = [sys.executable, "-m", "cli.main", "daily", "run", "--day", day.isoformat()]
    output = folder / "manifest.json"
    child = run_child([*command, "--json", "--quiet"], environment, output)
    return child.seconds, decode(output.read_bytes(), day, output)


def _measure(bench: Bench, server: S3ProxyServer, checkouts: int) -> list[Figure]:
    day = bench_day()
    with tempfile.TemporaryDirectory(prefix="kassa-bench-objects-") as folder:
        base = fresh_topic(bench.settings, "objects").model_copy(
            update={"timezone": "UTC", "daily_metrics_port": 0}
        )
        places = {
            VARIANTS[0]: base.model_copy(update={"data_dir": Path(folder) / "data"}),
            VARIANTS[1]: base.model_copy(
                update={"data_dir": DataUrl(server.data_url(f"bench-{base.topic}"))}
            ),
        }
        s3_client = {
            name: value
            for name, value in server.client_environment().items()
            if name.startswith("AWS_")
        }
        environments = {
            VARIANTS[0]: child_environment(places[VARIANTS[0]]),
            VARIANTS[1]: child_environment(places[VARIANTS[1]]) | s3_client,
        }
        try:
            produce_day(base, day_of_checkouts(SEED, day, checkouts))
            produce_day(base, day_seal(day, base.partitions))
            runs: dict[str, list[tuple[float, Manifest]]] = {variant: [] for variant in VARIANTS}
            for pair in range(max(PAIRS_AT_LEAST, bench.scale.repetitions) + 1):
                for variant in VARIANTS:
                    measured = _run(places[variant], day, environments[variant], Path(folder))
                    if pair:  # the first pair warms both up
                        runs[variant].append(measured)
        finally:
            drop_topic(base)
    found: list[Figure] = []
    for variant in VARIANTS:
        manifests = [manifest for _, manifest in runs[variant]]
        found += [
            figure(JOB, "s", [m.timings_seconds.total for m in manifests], place=variant),
            figure(WRITE, "s", [m.timings_seconds.write for m in manifests], place=variant),
            figure(PROCESS, "s", [seconds for seconds, _ in runs[variant]], place=variant),
        ]
    pairs = list(zip(runs[VARIANTS[0]], runs[VARIANTS[1]], strict=True))
    ratios = [
        s3.timings_seconds.total / local.timings_seconds.total for (_, local), (_, s3) in pairs
    ]
    process_ratios = [s3 / local for (local, _), (s3, _) in pairs]
    bytes_written = sum(table.size for table in runs[VARIANTS[1]][-1][1].tables.values())
    found.append(figure(RATIO, "ratio", ratios, "derived"))
    found.append(figure(PROCESS_RATIO, "ratio", process_ratios, "derived"))
    found.append(figure("Parquet bytes per run", "bytes", [bytes_written], "input"))
    return found


def run(bench: Bench) -> Section:
    """The daily job's seconds on the local disk and on S3Proxy, alternated; one section."""
    checkouts = bench.scale.daily_sizes[0]
    with s3proxy(bench.settings) as server:
        found = _measure(bench, server, checkouts)
    ratio = next(f for f in found if f.name == RATIO)
    process_ratio = next(f for f in found if f.name == PROCESS_RATIO)
    rows = []
    for variant in VARIANTS:
        job, write, process = (
            next(f for f in found if f.name == name and f.labels["place"] == variant)
            for name in (JOB, WRITE, PROCESS)
        )
        spread = f"{min(job.runs):.2f} - {max(job.runs):.2f}"
        rows.append(
            (variant, f"{job.median:.2f}", spread, f"{write.median:.2f}", f"{process.median:.2f}")
        )
    size = next(f for f in found if f.name == "Parquet bytes per run").median
    markdown = "\n\n".join(
        [
            f"`kassa daily run` on one day of {checkouts:,} synthetic checkouts "
            f"({bench.settings.partitions} partitions), as a child process, with "
            "`KASSA_DATA_DIR` a local folder and a prefix of a bucket on S3Proxy (started for "
            "this section on the same machine: transient backend, objects in memory, plain "
            "HTTP), alternately, after one untimed pair; each run is a new revision of the day "
            f"({size / 2**20:.1f} MB of Parquet). Medians. Command: "
            "`python -m bench --only objects`.",
            table(["KASSA_DATA_DIR", "job s", "min - max", "write phase s", "process s"], rows),
            f"S3Proxy / local disk job seconds: **{ratio.median:.2f}**; process seconds "
            f"(start-up, the manifest and the publication after it included): "
            f"**{process_ratio.median:.2f}** (medians of each pair's ratio). On S3 the run "
            "uploads its objects (multipart) instead of renaming files, then writes the "
            "manifest, copies each object over its hive name and deletes the previous "
            "revision's. No target: a real object store adds network round trips S3Proxy "
            "on loopback does not.",
        ]
    )
    notes = {"checkouts": checkouts, "partitions": bench.settings.partitions}
    return Section(
        "objects", "Daily job on an object store (S3Proxy)", markdown, tuple(found), (), notes
    )
