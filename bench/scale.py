"""How big each benchmark's workload is: the full run, ``--quick``, and a tiny one for tests.

Every workload is seeded, so two runs at one scale measure the same records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Scale:
    """The sizes and repetitions of one benchmark run."""

    name: str
    repetitions: int
    """Repetitions of each timed variant (the figure is their median)."""
    idle_seconds: float
    """A bounded stream run ends after this long without a message (not timed)."""
    producer_messages: int
    naive_messages: int
    stream_messages: int
    freshness_rates: tuple[int, ...]
    freshness_seconds: float
    scaling_partitions: tuple[int, ...]
    scaling_writers: tuple[int, ...]
    scaling_messages: int
    restarts: int
    restart_pause: float
    """Seconds the job runs (batches, a commit or two) before each restart."""
    dynamic_restart: bool
    """Also measure one restart with dynamic membership (waits for the session timeout)."""
    rebuild_messages: int
    daily_sizes: tuple[int, ...]
    daily_partitions: tuple[int, ...]
    daily_partition_checkouts: int
    broker_messages: int
    footprint_stores: int
    footprint_checkouts_per_store: int


FULL: Final = Scale(
    name="full",
    repetitions=3,
    idle_seconds=3.0,
    producer_messages=400_000,
    naive_messages=2_000,
    stream_messages=600_000,
    freshness_rates=(500, 2_000, 10_000),
    freshness_seconds=15.0,
    scaling_partitions=(1, 3, 6, 12),
    scaling_writers=(1, 2),
    scaling_messages=300_000,
    restarts=3,
    restart_pause=3.0,
    dynamic_restart=True,
    rebuild_messages=600_000,
    daily_sizes=(100_000, 1_000_000, 5_000_000),
    daily_partitions=(1, 3, 6),
    daily_partition_checkouts=300_000,
    broker_messages=1_000_000,
    footprint_stores=100,
    footprint_checkouts_per_store=5_000,
)
QUICK: Final = Scale(
    name="quick",
    repetitions=1,
    idle_seconds=2.0,
    producer_messages=100_000,
    naive_messages=1_000,
    stream_messages=100_000,
    freshness_rates=(500, 2_000, 10_000),
    freshness_seconds=4.0,
    scaling_partitions=(1, 6),
    scaling_writers=(1, 2),
    scaling_messages=60_000,
    restarts=1,
    restart_pause=3.0,
    dynamic_restart=False,
    rebuild_messages=60_000,
    daily_sizes=(100_000, 1_000_000),
    daily_partitions=(1, 6),
    daily_partition_checkouts=50_000,
    broker_messages=200_000,
    footprint_stores=20,
    footprint_checkouts_per_store=5_000,
)
TINY: Final = Scale(
    name="tiny",
    repetitions=1,
    idle_seconds=0.5,
    producer_messages=2_000,
    naive_messages=100,
    stream_messages=3_000,
    freshness_rates=(200, 500),
    freshness_seconds=1.0,
    scaling_partitions=(1, 3),
    scaling_writers=(1,),
    scaling_messages=2_000,
    restarts=1,
    restart_pause=1.0,
    dynamic_restart=False,
    rebuild_messages=2_000,
    daily_sizes=(2_000, 5_000),
    daily_partitions=(1,),
    daily_partition_checkouts=2_000,
    broker_messages=5_000,
    footprint_stores=3,
    footprint_checkouts_per_store=300,
)
SCALES: Final = {scale.name: scale for scale in (FULL, QUICK, TINY)}
