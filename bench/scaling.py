"""Stream job throughput by partitions and writer processes (``KASSA_STREAM_WRITERS``).

The same seeded checkouts go to one topic per partition count; the real job (exactly-once)
reads each with 1 or 2 writer processes, the median of the scale's repetitions.
"""

from __future__ import annotations

from typing import Final

from bench import plots
from bench.report import Figure, Section, figure, table
from bench.session import Bench
from bench.stream import RATE, stream_run
from bench.workload import drop_topic, fresh_topic, produce, stream_checkouts
from jobs.stream.malloc import keep_batch_memory

SEED: Final = 4
NAME: Final = "kassa stream, exactly-once"


def _partition_figures(bench: Bench, partitions: int) -> list[Figure]:
    source = fresh_topic(bench.settings, f"scaling_{partitions}", partitions=partitions)
    found = []
    try:
        produce(source, stream_checkouts(SEED, bench.scale.scaling_messages))
        for writers in bench.scale.scaling_writers:
            runs = [
                stream_run(bench, source, stream_writers=writers)
                for _ in range(bench.scale.repetitions)
            ]
            rates = [r.count / r.seconds for r in runs]
            found.append(figure(NAME, RATE, rates, partitions=partitions, writers=writers))
    finally:
        drop_topic(source)
    return found


def run(bench: Bench) -> Section:
    """Throughput for every partition count and writer count of the scale."""
    keep_batch_memory()
    scale = bench.scale
    found = [f for p in scale.scaling_partitions for f in _partition_figures(bench, p)]
    rate = {(f.labels["partitions"], f.labels["writers"]): f.median for f in found}
    rows = [
        (f"{p}", *(f"{rate[(p, w)]:,.0f}" for w in scale.scaling_writers))
        for p in scale.scaling_partitions
    ]
    headers = ["partitions", *(f"{w} writer(s), checkouts/s" for w in scale.scaling_writers)]
    series = {
        f"{w} writer(s)": [rate[(p, w)] for p in scale.scaling_partitions]
        for w in scale.scaling_writers
    }
    plot = plots.lines(
        bench.results, "scaling.png", "Stream job throughput by partitions and writers",
        x=list(scale.scaling_partitions), series=series, axis_labels=("partitions", RATE),
    )  # fmt: skip
    best = max(found, key=lambda f: f.median)
    markdown = "\n\n".join(
        [
            f"`kassa stream` (exactly-once, in one process) on {scale.scaling_messages:,} "
            f"pre-produced checkouts per topic, median of {scale.repetitions} runs. Command: "
            "`python -m bench --only scaling`.",
            table(headers, rows),
            f"Best: {best.median:,.0f} checkouts/s with {best.labels['partitions']} partitions "
            f"and {best.labels['writers']} writer(s). One consumer process reads every "
            "partition: partitions add parallelism only through the writer processes (and "
            "through more replicas, one per core pair).",
        ]
    )
    return Section("scaling", "Stream job scaling", markdown, tuple(found), (plot,))
