"""From a restart of ``kassa stream`` to its first write in Redis, after ``kill -9`` and SIGTERM.

A steady stream of checkouts goes to a fresh topic while ``kassa stream`` runs as a child
process. It is stopped (``kill -9``, or SIGTERM and a clean exit) and started again at once;
the figure is the time from the new process's start to the first batch it writes (Redis'
watermark sum grows past what it was when the old process stopped). With static membership
the restarted job takes its partitions back without waiting for the session timeout; the
full run also measures dynamic membership after ``kill -9`` once, for comparison.
"""

from __future__ import annotations

import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from bench import plots
from bench.report import Figure, Section, figure, spread, table
from bench.scale import Scale
from bench.session import Bench
from bench.workload import child_environment, drop_topic, fresh_topic
from common.settings import Settings
from producers.publish import publish
from producers.synthetic import generate
from storage import keys
from storage.connections import Client, open_redis

logger = logging.getLogger(__name__)

RATE: Final = 200
"""Checkouts per second while the job is stopped and restarted."""
TIMEOUT_SECONDS: Final = 180.0
NAME: Final = "restart to first write"


class StreamChild:
    """``kassa stream`` as a child process, restartable."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self._environment = child_environment(settings)
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start the job; the ``time.monotonic()`` of the start."""
        with self._log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "stream"],
                env=self._environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return time.monotonic()

    def stop(self, how: signal.Signals) -> None:
        """Send ``how`` and wait for the exit (a SIGTERM must end cleanly)."""
        assert self.process is not None
        self.process.send_signal(how)
        status = self.process.wait(TIMEOUT_SECONDS)
        if how is signal.SIGTERM and status != 0:
            msg = f"kassa stream exited {status} after SIGTERM; see {self._log}"
            raise RuntimeError(msg)


def watermarks(client: Client, settings: Settings) -> dict[int, int]:
    """The live watermarks by partition (the hash's other fields left out)."""
    raw = client.hgetall(keys.applied_offsets_key(settings.key_space))
    return {int(k): int(v) for k, v in raw.items() if k.isdigit()}


def _first_write(client: Client, settings: Settings, above: int, since: float) -> float:
    deadline = since + TIMEOUT_SECONDS
    while sum(watermarks(client, settings).values()) <= above:
        if time.monotonic() > deadline:
            msg = f"no write within {TIMEOUT_SECONDS:.0f} s of the restart"
            raise RuntimeError(msg)
        time.sleep(0.02)
    return time.monotonic() - since


def _restarts(
    job: StreamChild, client: Client, settings: Settings, how: signal.Signals, scale: Scale
) -> list[float]:
    seconds = []
    for _ in range(scale.restarts):
        time.sleep(scale.restart_pause)
        job.stop(how)
        written = sum(watermarks(client, settings).values())
        started = job.start()
        seconds.append(_first_write(client, settings, written, started))
        logger.info("%s: first write %.2f s after the restart", how.name, seconds[-1])
    return seconds


def _measure(bench: Bench, settings: Settings, client: Client, log: Path) -> list[Figure]:
    job = StreamChild(settings, log)
    _first_write(client, settings, -len(watermarks(client, settings)) - 1, job.start())
    killed = _restarts(job, client, settings, signal.SIGKILL, bench.scale)
    stopped = _restarts(job, client, settings, signal.SIGTERM, bench.scale)
    job.stop(signal.SIGTERM)
    found = [
        figure(NAME, "s", killed, stopped_by="kill -9", membership="static"),
        figure(NAME, "s", stopped, stopped_by="SIGTERM", membership="static"),
    ]
    if bench.scale.dynamic_restart:
        dynamic = StreamChild(settings.model_copy(update={"stream_static_membership": False}), log)
        started = dynamic.start()
        _first_write(client, settings, sum(watermarks(client, settings).values()), started)
        once = replace(bench.scale, restarts=1)
        slow = _restarts(dynamic, client, settings, signal.SIGKILL, once)
        dynamic.stop(signal.SIGTERM)
        found.append(
            figure(NAME, "s", slow, "baseline", stopped_by="kill -9", membership="dynamic")
        )
    return found


def traffic(settings: Settings, stop: threading.Event) -> threading.Thread:
    """Publish :data:`RATE` checkouts/s until ``stop`` is set, from a thread."""
    # The simulated clock runs ahead of the wall clock; starting a day back keeps it behind.
    source = generate(7, datetime.now(UTC) - timedelta(days=1))
    thread = threading.Thread(
        target=publish, args=(settings, source), kwargs={"rate": RATE, "stop": stop}
    )
    thread.start()
    return thread


def run(bench: Bench) -> Section:
    """Measure the restarts; a section."""
    state = Path(tempfile.mkdtemp(prefix="kassa-bench-restart-"))
    settings = fresh_topic(bench.settings, "restart").model_copy(
        update={"metrics_port": 0, "state_dir": state, "stream_instance_id": ""}
    )
    client = open_redis(settings)
    stop = threading.Event()
    publisher = traffic(settings, stop)
    try:
        found = _measure(bench, settings, client, state / "stream.log")
        shutil.rmtree(state)  # kept after a failure: its stream.log says why
    finally:
        stop.set()
        publisher.join()
        client.close()
        drop_topic(settings)
    rows = [
        (f"{f.labels['stopped_by']}, {f.labels['membership']} membership", f"{f.median:.1f} s",
         f"{spread(f, 1)} s", len(f.runs))
        for f in found
    ]  # fmt: skip
    plot = plots.bars(
        bench.results, "restart.png", "kassa stream: restart to first write (s)",
        {f"{f.labels['stopped_by']}, {f.labels['membership']}": f.median for f in found}, "s",
    )  # fmt: skip
    markdown = "\n\n".join(
        [
            f"Seconds from starting `kassa stream` again to its first write to Redis, while "
            f"{RATE} checkouts/s arrive ({settings.partitions} partitions, session timeout "
            f"{settings.stream_session_timeout_ms / 1000:.0f} s, process start-up included). "
            "Command: `python -m bench --only restart`.",
            table(["stopped by, membership", "median", "min - max", "restarts"], rows),
            table(["target", "measured"], [("<= 5 s after kill -9", f"{found[0].median:.1f} s")]),
        ]
    )
    return Section("restart", "Stream job restarts", markdown, tuple(found), (plot,))
