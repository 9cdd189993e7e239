"""What the running stream job's watch costs (:mod:`jobs.stream.watch`): one check of the
topic's identity and partition count and of Redis's watermarks, repeated.

The check runs in this process against the services, as the job runs it on its watch
thread: the figures are the wall time of one check and the CPU it costs this process, the
broker and redis-server, per check. ``KASSA_STREAM_CHECK_SECONDS`` is chosen from them
(docs/stream.md): at the default of 2 s the check costs the share of a core printed here.
"""

from __future__ import annotations

import time
from typing import Final

from bench.processes import CpuMeter
from bench.report import Section, figure, table
from bench.session import Bench
from bench.workload import drop_topic, fresh_topic
from jobs.stream.metrics import StreamMetrics
from jobs.stream.watch import Watch
from storage.connections import open_redis
from storage.kafka.identity import read_identity
from storage.kafka.topics import admin_client
from storage.live import LiveStore

CHECKS_PER_REPETITION: Final = 200
DEFAULT_INTERVAL: Final = 2.0
"""``KASSA_STREAM_CHECK_SECONDS``'s default, for the share of a core it costs."""


def run(bench: Bench) -> Section:
    """Time ``CHECKS_PER_REPETITION`` checks per repetition; a section."""
    settings = fresh_topic(bench.settings, "watch")
    client = open_redis(settings)
    try:
        admin = admin_client(settings)
        identity = read_identity(admin, settings.topic)
        store = LiveStore(client, settings.key_space, settings.zone, settings.retention_days)
        store.claim(identity)
        applied = {p: -1 for p in range(settings.partitions)}
        watch = Watch(
            admin,
            store,
            StreamMetrics(),
            topic=settings.topic,
            interval=DEFAULT_INTERVAL,
            applied=lambda: (applied, 0),
            stop=lambda: None,
        )
        watch.assigned(identity, settings.partitions)
        checks = CHECKS_PER_REPETITION * bench.scale.repetitions
        pids = {"redis": [bench.redis_pid()], "broker": [p for p in [bench.broker_pid()] if p]}
        with CpuMeter(pids) as meter:
            started_cpu, started = time.process_time(), time.perf_counter()
            walls = []
            for _ in range(checks):
                begun = time.perf_counter()
                assert watch.check() is None, "the check found a problem on a quiet topic"
                walls.append(time.perf_counter() - begun)
            own_cpu, ended = time.process_time() - started_cpu, time.perf_counter()
            time.sleep(ended - started)  # the servers' own idle CPU over as long, subtracted
            idle_end = time.perf_counter()
        server_cpu = {
            name: max(0.0, meter.spent(name, started, ended) - meter.spent(name, ended, idle_end))
            for name in pids
        }
    finally:
        client.close()
        drop_topic(settings)
    per_check = {
        "kassa stream (client)": own_cpu / checks,
        **{name: cpu / checks for name, cpu in server_cpu.items()},
    }
    found = (
        figure("one check: wall time", "ms", [w * 1000 for w in walls]),
        *(
            figure("CPU per check", "ms", [cpu * 1000], process=name)
            for name, cpu in per_check.items()
        ),
    )
    share = sum(per_check.values()) / DEFAULT_INTERVAL
    rows = [(f"CPU per check, {name}", f"{cpu * 1000:.2f} ms") for name, cpu in per_check.items()]
    markdown = "\n\n".join(
        [
            f"{checks} checks of a quiet topic of {settings.partitions} partitions: "
            "`describe_topics` and `describe_cluster` to the broker, one watermark read from "
            "Redis. A server's CPU is what it spent during the checks less what it spent idle "
            "over as long right after. Command: `python -m bench --only watch`.",
            table(
                ["measurement", "value"],
                [("one check, wall time (median)", f"{found[0].median:.2f} ms"), *rows],
            ),
            f"At `KASSA_STREAM_CHECK_SECONDS={DEFAULT_INTERVAL:g}` the checks cost "
            f"{share:.2%} of one core, client and servers together.",
        ]
    )
    return Section("watch", "Stream job checks (what changes under it)", markdown, found, ())
