"""``kassa stream rebuild`` on a replayed backlog: how long until the live days are recounted.

A backlog of seeded checkouts (days in 2001) sits in a fresh topic; ``kassa stream`` runs as
a child process and counts it (the first count, process start-up included) while a trickle
of current checkouts keeps arriving. Then ``kassa stream rebuild --yes`` (the real command)
clears every live day and moves the watermarks back; the running job notices at its next
batch, restarts its consumer and recounts. The figure is the time from the command to every
partition's watermark back at the end of the backlog, and the records recounted per second.
The backlog days' totals must come out exactly as before (the ground truth).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Final

from confluent_kafka import Consumer, TopicPartition

from bench import plots
from bench.report import Section, figure, table
from bench.restart import StreamChild, traffic, watermarks
from bench.session import Bench
from bench.stream import RATE
from bench.workload import (
    child_environment,
    drop_topic,
    fresh_topic,
    produce,
    stream_checkouts,
)
from common.settings import Settings
from storage import keys
from storage.connections import Client, open_redis
from storage.kafka.config import client_config

SEED: Final = 6
LIMIT_SECONDS: Final = 600.0


def _ends(settings: Settings) -> dict[int, int]:
    """Each partition's high watermark (the offset after its last record)."""
    consumer = Consumer(client_config(settings, {"group.id": "bench"}))
    try:
        topic = consumer.list_topics(settings.topic, timeout=30).topics[settings.topic]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(settings.topic, p), timeout=30)[1]
            for p in topic.partitions
        }
    finally:
        consumer.close()


def _caught_up(client: Client, settings: Settings, ends: dict[int, int]) -> float:
    """Wait until every partition's watermark reached ``ends``; the monotonic time then."""
    deadline = time.monotonic() + LIMIT_SECONDS
    while True:
        marks = watermarks(client, settings)
        if all(marks.get(p, -1) >= end - 1 for p, end in ends.items()):
            return time.monotonic()
        if time.monotonic() > deadline:
            msg = f"kassa stream did not reach offsets {ends} within {LIMIT_SECONDS:.0f} s"
            raise RuntimeError(msg)
        time.sleep(0.02)


def _backlog_totals(client: Client, settings: Settings) -> dict[Any, Any]:
    """The totals hashes of the backlog's days (2001), chain and stores."""
    pattern = f"{keys.source_prefix(settings.key_space, 'live')}2001-*:totals"
    return {key: client.hgetall(key) for key in client.scan_iter(pattern, count=1000)}


def _rebuild_command(settings: Settings) -> tuple[float, float]:
    """Run ``kassa stream rebuild --yes``; the monotonic time it started, and its seconds."""
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "cli.main", "stream", "rebuild", "--yes"],
        env=child_environment(settings),
        capture_output=True,
        check=True,
        timeout=LIMIT_SECONDS,
    )
    return started, time.monotonic() - started


def _measure(bench: Bench, settings: Settings, log: Path) -> dict[str, float]:
    client = open_redis(settings)
    job = StreamChild(settings, log)
    stop = threading.Event()
    publisher = traffic(settings, stop)
    try:
        started = job.start()
        first = _caught_up(client, settings, _ends(settings)) - started
        before = _backlog_totals(client, settings)
        ends = _ends(settings)
        issued, command = _rebuild_command(settings)
        total = _caught_up(client, settings, ends) - issued
        after = _backlog_totals(client, settings)
        job.stop(signal.SIGTERM)
    finally:
        stop.set()
        publisher.join()
        client.close()
    if before != after or not before:
        msg = f"the rebuild changed the backlog's totals ({len(before)} keys before)"
        raise RuntimeError(msg)
    return {"first": first, "command": command, "total": total, "records": sum(ends.values())}


def run(bench: Bench) -> Section:
    """One rebuild of the scale's backlog while the job runs; a section."""
    state = Path(tempfile.mkdtemp(prefix="kassa-bench-rebuild-"))
    settings = fresh_topic(bench.settings, "rebuild").model_copy(
        update={"metrics_port": 0, "state_dir": state, "stream_instance_id": ""}
    )
    try:
        produce(settings, stream_checkouts(SEED, bench.scale.rebuild_messages))
        measured = _measure(bench, settings, state / "stream.log")
        shutil.rmtree(state)  # kept after a failure: its stream.log says why
    finally:
        drop_topic(settings)
    records = measured["records"]
    total = measured["total"]
    found = (
        figure("first count of the backlog (process start included)", "s", [measured["first"]],
               "baseline"),
        figure("kassa stream rebuild --yes (the command)", "s", [measured["command"]]),
        figure("rebuild: command to recounted", "s", [total]),
        figure("rebuild: records recounted per second", RATE, [records / total]),
        figure("first count: records per second", RATE, [records / measured["first"]], "baseline"),
    )  # fmt: skip
    rows = [(f.name, f"{f.median:,.1f}", f.unit) for f in found]
    plot = plots.bars(
        bench.results, "rebuild.png", "Backlog counted first, and again after a rebuild (s)",
        {"first count": measured["first"], "rebuild": total}, "s",
    )  # fmt: skip
    markdown = "\n\n".join(
        [
            f"A backlog of {bench.scale.rebuild_messages:,} checkouts ({records:,} records "
            f"with the trickle) in {settings.partitions} partitions; one rebuild while "
            "`kassa stream` runs (it restarts its consumer when its next batch finds the "
            "watermarks moved back). The backlog's day totals are the same after the "
            "rebuild as before it. Command: `python -m bench --only rebuild`.",
            table(["measurement", "value", "unit"], rows),
        ]
    )
    return Section("rebuild", "Stream rebuild", markdown, found, (plot,), {"records": records})
