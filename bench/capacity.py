"""A capacity plan from this run's per-checkout costs: a chain of 1,000 stores, 5M checkouts/day.

Nothing here is a measured-elsewhere number: the rates and CPU per checkout come from the
stream, scaling, producer, restart and daily sections of the same run, and the Redis bytes
from :mod:`bench.footprint` (``MEMORY USAGE`` on the keys the stream job wrote for a day at
the chain's density). The assumptions are the constants below, stated in the section.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Final

from bench import broker, daily, footprint
from bench.report import Figure, Section, figure, table
from bench.session import Bench
from bench.stream import CPU

STORES: Final = 1_000
CHECKOUTS_PER_DAY: Final = 5_000_000
PEAK_HOUR_SHARE: Final = 0.15
BURST: Final = 3.0
"""The design rate is this many times the peak hour's average (bursts within the hour)."""
CATCH_UP_HOURS: Final = 1.0
"""An outage of this long must be caught up while the peak hour's traffic goes on."""
HEADROOM: Final = 0.5
"""Plan each process at this share of its measured saturation (a shared, busy machine)."""
REPLICATION: Final = 3
BROKERS: Final = 3
MIN_INSYNC: Final = 2
TOPIC_RETENTION_DAYS: Final = 7
NIGHT_WINDOW_HOURS: Final = 4.5
"""The daily job's window: 02:30 (KASSA_DAILY_AT) to the stores' opening at 07:00."""
GIB: Final = 2**30


@dataclass(frozen=True)
class Load:
    """The chain's traffic."""

    peak: float
    design: float
    catch_up: float


def _load() -> Load:
    peak = CHECKOUTS_PER_DAY * PEAK_HOUR_SHARE / 3600
    backlog = peak * CATCH_UP_HOURS * 3600
    # catch the backlog up within an hour while the peak continues
    return Load(peak, peak * BURST, peak + backlog / 3600)


def _needed(bench: Bench, section: str, name: str, **labels: object) -> Figure:
    found = bench.find(section, name, **labels)
    if found is None:
        msg = (
            f"the capacity plan needs {name!r} of section {section!r} from the same run; run "
            f"'python -m bench' with {section} before capacity"
        )
        raise RuntimeError(msg)
    return found


def _stream(bench: Bench, load: Load) -> tuple[list[tuple[str, str]], dict[str, float]]:
    rate = _needed(bench, "stream", "kassa stream, exactly-once (default)").median
    cpu = {
        process: _needed(bench, "stream", CPU, variant="exactly-once", process=process).median
        for process in ("consumer", "writers", "redis", "broker")
    }
    needed = max(load.design, load.catch_up)
    replicas = max(2, math.ceil(needed / (rate * HEADROOM)))
    job_cores = (cpu["consumer"] + cpu["writers"]) * needed / 1e6
    rows = [
        ("peak hour / design / catch-up rate", f"{load.peak:,.0f} / {load.design:,.0f} / "
         f"{load.catch_up:,.0f} checkouts/s"),
        ("one replica's measured saturation (exactly-once)", f"{rate:,.0f} checkouts/s"),
        ("stream replicas", f"{replicas} (at {HEADROOM:.0%} of saturation; 2 at least, so one "
         "can fail)"),
        ("stream CPU at the higher of design and catch-up", f"{job_cores:.2f} cores "
         f"({cpu['consumer']:.1f} + {cpu['writers']:.1f} µs per checkout)"),
        ("Redis CPU at that rate", f"{cpu['redis'] * needed / 1e6:.2f} cores "
         f"({cpu['redis']:.1f} µs per checkout)"),
    ]  # fmt: skip
    use = {
        "stream consumer (one replica)": needed / replicas / rate,
        "Redis (one core)": cpu["redis"] * needed / 1e6,
    }
    return rows, {"replicas": replicas, **{f"use: {k}": v for k, v in use.items()}}


def _kafka(bench: Bench, load: Load, replicas: int) -> tuple[list[tuple[str, str]], float]:
    size = float(bench.sections["producer"].notes.get("bytes_per_checkout", 820.0))
    disk_per_checkout = _needed(bench, "broker", broker.DISK).median
    write_cpu = _needed(bench, "broker", broker.BROKER_WRITE_CPU).median
    read_cpu = _needed(bench, "stream", CPU, variant="exactly-once", process="broker").median
    scaling = bench.sections.get("scaling")
    best = max(scaling.figures, key=lambda f: f.median) if scaling else None
    writers = best.labels["writers"] if best else 2
    partitions = max(6, replicas * writers * 2)
    inbound = load.design * disk_per_checkout / 2**20
    disk = CHECKOUTS_PER_DAY * disk_per_checkout * REPLICATION * TOPIC_RETENTION_DAYS / GIB
    # Every copy is written once (the leader's, then each follower's) and read once (the
    # stream job reads the leader's; each follower's fetch reads it again).
    per_checkout = (write_cpu + read_cpu) * REPLICATION
    cores = per_checkout * load.design / 1e6 / BROKERS
    rows = [
        ("partitions", f"{partitions} (every replica's writers get a partition each, twice "
         "over, so a replica can be added without repartitioning)"),
        ("brokers and replication", f"{BROKERS} brokers, replication factor {REPLICATION}, "
         f"min ISR {MIN_INSYNC} (one broker may fail with writes going on)"),
        ("broker traffic at the design rate", f"{inbound:.2f} MiB/s in (compressed batches), "
         f"{inbound * REPLICATION:.2f} MiB/s written with replicas"),
        ("broker CPU at the design rate", f"{cores:.3f} cores per broker ({write_cpu:.1f} µs "
         f"to write and {read_cpu:.1f} µs to read a checkout, measured; times "
         f"{REPLICATION} copies, over {BROKERS} brokers)"),
        ("broker disk", f"{disk:,.1f} GiB for {TOPIC_RETENTION_DAYS} days with {REPLICATION} "
         f"copies ({disk_per_checkout:,.0f} bytes per checkout in the log segments, measured; "
         f"{size:,.0f} encoded)"),
    ]  # fmt: skip
    return rows, cores


def _redis(bench: Bench, size: footprint.Footprint) -> tuple[list[tuple[str, str]], float]:
    retention = bench.settings.retention_days
    names = size.name_bytes / size.items
    pairs = STORES * size.pairs_per_store
    day = (
        pairs * size.per_pair
        + size.items * size.per_item
        + STORES * (size.store_fixed_bytes / size.stores)
    )
    total = 2 * day * retention + size.items * names
    rows = [
        ("measured", f"{size.per_pair:,.0f} bytes per store-item pair, {size.per_item:,.0f} "
         f"per item of the chain, {names:,.0f} per item name; {size.pairs_per_store:,.0f} "
         f"items per store a day at {size.checkouts // size.stores:,} checkouts per store "
         f"({size.stores} stores)"),
        ("live figures per day", f"{day / 2**20:,.1f} MiB ({pairs:,.0f} store-item pairs)"),
        ("for the retention", f"{total / GIB:,.2f} GiB: {retention} days "
         "(KASSA_RETENTION_DAYS) of live and daily figures (the daily source has the live "
         "key layout, `storage/daily.py`, so it is planned at the live one's size)"),
    ]  # fmt: skip
    return rows, total


def _daily(bench: Bench) -> tuple[list[tuple[str, str]], float]:
    sizes = bench.scale.daily_sizes
    largest = sizes[-1]
    rate = _needed(bench, "daily", "checkouts/s", checkouts=largest).median
    rss = _needed(bench, "daily", "peak RSS", checkouts=largest).median
    growth = max(0.0, _needed(bench, "daily", daily.GROWTH).median / 2**20)  # MB per checkout
    memory = rss + growth * max(0, CHECKOUTS_PER_DAY - largest)
    hours = CHECKOUTS_PER_DAY / rate / 3600
    rows = [
        ("daily job time", f"{hours * 60:,.1f} min for {CHECKOUTS_PER_DAY:,} checkouts at "
         f"{rate:,.0f} checkouts/s (measured at {largest:,})"),
        ("daily job memory", f"{memory / 1024:,.2f} GiB peak RSS ("
         + ("measured" if largest >= CHECKOUTS_PER_DAY else
            f"{rss:,.0f} MB at {largest:,}, extrapolated by {growth * 2**20:,.0f} bytes per "
            "checkout") + ")"),
    ]  # fmt: skip
    return rows, hours / NIGHT_WINDOW_HOURS


def run(bench: Bench) -> Section:
    """Measure the Redis footprint, then plan from every section of this run."""
    size = footprint.measure(bench)
    load = _load()
    stream_rows, stream = _stream(bench, load)
    kafka_rows, broker_use = _kafka(bench, load, int(stream["replicas"]))
    redis_rows, redis_bytes = _redis(bench, size)
    daily_rows, daily_use = _daily(bench)
    use = {
        "stream consumer (one replica)": stream["use: stream consumer (one replica)"],
        "Redis (one core)": stream["use: Redis (one core)"],
        "broker (one core)": broker_use,
        "daily job (night window)": daily_use,
    }
    first = max(use, key=lambda name: use[name])
    found = (
        figure("bytes per store-item pair", "bytes", [size.per_pair], "derived"),
        figure("bytes per item", "bytes", [size.per_item], "derived"),
        figure("Redis for the retention", "GiB", [redis_bytes / GIB], "derived"),
        figure("stream replicas", "replicas", [stream["replicas"]], "derived"),
        *(figure("utilisation", "share", [v], "derived", of=k) for k, v in use.items()),
    )
    markdown = "\n\n".join(
        [
            f"On paper, from this run's measurements: {STORES:,} stores, "
            f"{CHECKOUTS_PER_DAY:,} checkouts a day, the peak hour {PEAK_HOUR_SHARE:.0%} of "
            f"the day. Assumptions: bursts of {BURST:.0f}x the peak hour's average; an outage "
            f"of {CATCH_UP_HOURS:.0f} h caught up within the next hour at peak; every process "
            f"planned at {HEADROOM:.0%} of its measured saturation; topic retention "
            f"{TOPIC_RETENTION_DAYS} days; the daily job's window {NIGHT_WINDOW_HOURS} h. "
            "Sources: the sections above (same run) and `MEMORY USAGE` on the stream job's "
            "keys (`storage/keys.py` layout) for a day at the chain's density.",
            table(["stream job", "plan"], stream_rows),
            table(["Kafka", "plan"], kafka_rows),
            table(["Redis memory", "plan"], redis_rows),
            table(["daily job", "plan"], daily_rows),
            table(
                ["resource", "use at the plan's rate"], [(k, f"{v:.0%}") for k, v in use.items()]
            ),
            f"First bottleneck: **{first}** ({use[first]:.0%} of it at the plan's rate): the "
            f"chain's traffic could grow about {1 / max(use[first], 1e-9):,.0f}x on this plan "
            "before it saturates (replicas, brokers and Redis as above). The stream job's "
            "consumer is one thread per replica: adding replicas (and partitions) is how "
            "the job grows; Redis is one core and is shared by every replica.",
        ]
    )
    notes = {"footprint": asdict(size), "load": asdict(load)}
    return Section("capacity", "Capacity plan", markdown, found, (), notes)
