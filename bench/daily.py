"""The daily job by day size and by partitions: time, throughput, CPU and peak memory.

Each day is produced to a fresh topic (seeded checkouts spread evenly over one UTC day, then
a few records after it in every partition, so the day is complete) before timing. The job
runs as a child process, ``kassa daily run --day D --json --quiet``, and ``os.wait4``'s
rusage gives its CPU seconds and peak resident memory: only the job counts, not the
benchmark. Next to it, interleaved in each repetition: a bare confluent-kafka consume of the
same topic (values only), the raw-consume baseline of the same offset range.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from bench import plots
from bench.broker import python_consume
from bench.processes import ChildRun, run_child
from bench.report import Figure, Plot, Section, figure, table
from bench.session import Bench
from bench.stream import clear_live
from bench.workload import (
    child_environment,
    day_of_checkouts,
    day_seal,
    drop_topic,
    fresh_topic,
    produce,
)
from common.settings import Settings
from jobs.daily.manifest import Manifest, decode
from storage.connections import open_redis

SEED: Final = 7
JOB: Final = "job seconds (manifest)"
PROCESS: Final = "process seconds (start-up included)"
RAW: Final = "raw consume, values only (baseline)"
DEDUP: Final = "checkout-id set"
ID_SET_RSS: Final = "checkout-id set alone: peak RSS per checkout"
GROWTH: Final = "peak RSS growth per checkout between the two largest days"
MB: Final = 2**20


def bench_day() -> date:
    """The day the daily benchmarks run: three days ago (UTC)."""
    return datetime.now(UTC).date() - timedelta(days=3)


def _job(settings: Settings, day: date, folder: Path) -> tuple[ChildRun, Manifest]:
    """One child run of the daily job; its measurements and manifest."""
    command = [sys.executable, "-m", "cli.main", "daily", "run", "--day", day.isoformat()]
    output = folder / "manifest.json"
    child = run_child([*command, "--json", "--quiet"], child_environment(settings), output)
    return child, decode(output.read_bytes(), day, output)


def _measure_day(
    bench: Bench, checkouts: int, partitions: int | None, labels: dict[str, Any]
) -> list[Figure]:
    """Produce one day; time the job and the raw consume, interleaved."""
    day = bench_day()
    with tempfile.TemporaryDirectory(prefix="kassa-bench-daily-") as folder:
        settings = fresh_topic(bench.settings, "daily", partitions=partitions).model_copy(
            update={"timezone": "UTC", "data_dir": Path(folder) / "data", "daily_metrics_port": 0}
        )
        try:
            produce(settings, day_of_checkouts(SEED, day, checkouts))
            produce(settings, day_seal(day, settings.partitions))
            runs, raw = [], []
            for _ in range(bench.scale.repetitions):
                raw.append(checkouts / python_consume(settings, checkouts))
                runs.append(_job(settings, day, Path(folder)))
        finally:
            drop_topic(settings)
            client = open_redis(settings)
            clear_live(client, settings.key_space)
            client.close()
    return _figures(checkouts, runs, raw, labels)


def _id_set(checkouts: int) -> Figure:
    """The checkout-id set alone (:mod:`bench.idset`): its peak RSS growth per checkout."""
    with tempfile.TemporaryDirectory(prefix="kassa-bench-idset-") as folder:
        output = Path(folder) / "idset.json"
        runs = {
            n: run_child([sys.executable, "-m", "bench.idset", str(n)], os.environ, output)
            for n in (0, checkouts)
        }
    grown = runs[checkouts].peak_rss_bytes - runs[0].peak_rss_bytes
    return figure(ID_SET_RSS, "bytes", [grown / checkouts], "input", checkouts=checkouts)


def _memory_growth(found: list[Figure], sizes: tuple[int, ...]) -> Figure:
    """Peak RSS growth per checkout between the two largest days (the capacity plan's too)."""
    small, large = sizes[-2], sizes[-1]
    grown = _value(found, "peak RSS", checkouts=large) - _value(found, "peak RSS", checkouts=small)
    return figure(GROWTH, "bytes", [grown * MB / (large - small)], "derived")


def _figures(
    checkouts: int,
    runs: list[tuple[ChildRun, Manifest]],
    raw: list[float],
    labels: dict[str, Any],
) -> list[Figure]:
    lines = runs[-1][1].counts.lines
    job_seconds = [m.timings_seconds.total for _, m in runs]
    return [
        figure(JOB, "s", job_seconds, **labels),
        figure(PROCESS, "s", [c.seconds for c, _ in runs], **labels),
        figure("checkouts/s", "checkouts/s", [checkouts / s for s in job_seconds], **labels),
        figure("lines/s", "lines/s", [lines / s for s in job_seconds], **labels),
        figure("CPU seconds", "s", [c.cpu_seconds for c, _ in runs], **labels),
        figure("peak RSS", "MB", [c.peak_rss_bytes / MB for c, _ in runs], **labels),
        figure(DEDUP, "MB", [m.counts.dedup_set_bytes / MB for _, m in runs], **labels),
        figure(RAW, "s", raw, "baseline", **labels),
        figure("lines", "lines", [lines], "input", **labels),
    ]


def _value(found: list[Figure], name: str, **labels: Any) -> float:
    return next(f.median for f in found if f.name == name and labels.items() <= f.labels.items())


def _size_table(found: list[Figure], sizes: tuple[int, ...]) -> str:
    rows = []
    for size in sizes:
        at = {"checkouts": size}
        job, raw = _value(found, JOB, **at), _value(found, RAW, **at)
        rows.append((
            f"{size:,}", f"{job:.2f}", f"{_value(found, PROCESS, **at):.2f}",
            f"{_value(found, 'checkouts/s', **at):,.0f}", f"{_value(found, 'lines/s', **at):,.0f}",
            f"{_value(found, 'CPU seconds', **at):.2f}", f"{_value(found, 'peak RSS', **at):,.0f}",
            f"{_value(found, DEDUP, **at):,.1f}", f"{raw:.2f}", f"{raw / job:.0%}",
        ))  # fmt: skip
    headers = [
        "checkouts", "job s", "process s", "checkouts/s", "lines/s", "CPU s", "peak RSS MB",
        "id set MB", "raw consume s", "job rate / raw",
    ]  # fmt: skip
    return table(headers, rows)


def _growth(found: list[Figure], sizes: tuple[int, ...]) -> str:
    """Peak memory and time per checkout between the two largest days, against the whole day's
    rates and the checkout-id set's own bytes per checkout."""
    small, large = sizes[-2], sizes[-1]
    per_checkout = next(f.median for f in found if f.name == GROWTH)
    ids = _value(found, DEDUP, checkouts=large) * MB / large
    alone = _value(found, ID_SET_RSS, checkouts=large)
    seconds = [_value(found, JOB, checkouts=n) for n in (small, large)]
    rates = [_value(found, "checkouts/s", checkouts=n) for n in sizes]
    memory = (
        f"From {small:,} to {large:,} checkouts, peak memory grows by {per_checkout:,.0f} "
        f"bytes per checkout. The day's checkout-id set estimates itself at {ids:,.0f} bytes "
        f"per checkout at {large:,} (the manifest's `dedup_set_bytes`); run alone over "
        f"{large:,} ids (`python -m bench.idset {large}`, a child process against one with "
        f"none), it grows a process's peak RSS by {alone:,.0f} bytes per checkout, allocator "
        "and merge copies included (target: no growth beyond the id set; at most 1.5 GB at "
        "5,000,000)."
    )
    throughput = (
        f"Whole-run throughput of the largest day against the smallest: "
        f"{rates[-1] / rates[0]:.0%}; against the {small:,}-checkout day: "
        f"{rates[-1] / rates[-2]:.0%} (target: within 10%)."
    )
    if seconds[1] <= seconds[0]:
        return f"{memory} {throughput}"
    marginal = (large - small) / (seconds[1] - seconds[0])
    fixed = seconds[0] - small / marginal
    return (
        f"{memory} Time: {marginal:,.0f} checkouts/s at the margin between those days, on "
        f"top of {fixed:.2f} s a run spends whatever the day's size (planning, writing, "
        f"Redis). {throughput}"
    )


def run(bench: Bench) -> Section:
    """The day sizes (3 partitions), then the partition counts at one size."""
    scale = bench.scale
    found = [f for n in scale.daily_sizes for f in _measure_day(bench, n, None, {"checkouts": n})]
    found += [_id_set(scale.daily_sizes[-1]), _memory_growth(found, scale.daily_sizes)]
    size = scale.daily_partition_checkouts
    by_partitions = [
        f for p in scale.daily_partitions
        for f in _measure_day(bench, size, p, {"partitions": p, "checkouts_per_day": size})
    ]  # fmt: skip
    sizes = scale.daily_sizes
    part_rows = [
        (f"{p}", f"{_value(by_partitions, JOB, partitions=p):.2f}",
         f"{_value(by_partitions, 'checkouts/s', partitions=p):,.0f}",
         f"{_value(by_partitions, 'peak RSS', partitions=p):,.0f}",
         f"{_value(by_partitions, RAW, partitions=p):.2f}")
        for p in scale.daily_partitions
    ]  # fmt: skip
    drawn = _plots(bench, found, by_partitions)
    markdown = "\n\n".join(
        [
            f"`kassa daily run` as a child process on one UTC day of seeded checkouts, median "
            f"of {scale.repetitions} runs; job seconds are the manifest's total (process "
            "start-up excluded), CPU and peak RSS are the child's (`os.wait4`). The raw "
            "consume reads the same topic's offset range in the benchmark's process. "
            "Command: `python -m bench --only daily`.",
            "By day size (3 partitions):",
            _size_table(found, sizes),
            _growth(found, sizes),
            f"By partitions ({size:,} checkouts):",
            table(
                ["partitions", "job s", "checkouts/s", "peak RSS MB", "raw consume s"], part_rows
            ),
        ]
    )
    figures = (*found, *by_partitions)
    return Section("daily", "Daily job", markdown, figures, drawn)


def _plots(bench: Bench, found: list[Figure], by_partitions: list[Figure]) -> tuple[Plot, ...]:
    scale = bench.scale
    size = scale.daily_partition_checkouts
    sizes = scale.daily_sizes
    plot_size = plots.lines(
        bench.results, "daily-size.png", "Daily job by day size",
        x=list(sizes), series={
            "job seconds": [_value(found, JOB, checkouts=n) for n in sizes],
            "raw consume seconds": [_value(found, RAW, checkouts=n) for n in sizes],
        }, axis_labels=("checkouts in the day", "s"), log_x=True,
    )  # fmt: skip
    plot_memory = plots.lines(
        bench.results, "daily-memory.png", "Daily job peak resident memory (MB)",
        x=list(sizes), series={"peak RSS": [_value(found, "peak RSS", checkouts=n) for n in sizes]},
        axis_labels=("checkouts in the day", "MB"), log_x=True,
    )  # fmt: skip
    plot_parts = plots.bars(
        bench.results, "daily-partitions.png", f"Daily job seconds, {size:,} checkouts",
        {f"{p} partitions": _value(by_partitions, JOB, partitions=p)
         for p in scale.daily_partitions}, "s",
    )  # fmt: skip
    return plot_size, plot_memory, plot_parts
