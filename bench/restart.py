"""``python -m bench.restart``: from a restart of ``kassa stream`` to its first write in Redis.

A steady stream of checkouts goes to a fresh topic while ``kassa stream`` runs as a child
process. It is stopped (``kill -9``, or SIGTERM and a clean exit) and started again at once;
the figure is the time from the new process's start to the first batch it writes (Redis'
watermark sum grows past what it was when the old process stopped). With static membership
the restarted job takes its partitions back without waiting for the session timeout;
dynamic membership after ``kill -9`` is measured once for comparison.
"""

from __future__ import annotations

import logging
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis

from common.settings import ENV_PREFIX, Settings
from common.topics import ensure_topics
from producers.publish import publish
from producers.synthetic import generate
from storage import keys

logger = logging.getLogger(__name__)

REPETITIONS = 3
RATE = 200
"""Checkouts per second while the job is stopped and restarted."""
REDIS_DB = 15
TIMEOUT_SECONDS = 180.0


def _environment(settings: Settings) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        **{ENV_PREFIX + k.upper(): str(v) for k, v in settings.model_dump(mode="json").items()},
    }


class _Job:
    """``kassa stream`` as a child process, restartable."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self._environment = _environment(settings)
        self._log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        with self._log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "stream"],
                env=self._environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return time.monotonic()

    def stop(self, how: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(how)
        status = self.process.wait(TIMEOUT_SECONDS)
        if how is signal.SIGTERM and status != 0:
            msg = f"kassa stream exited {status} after SIGTERM; see {self._log}"
            raise RuntimeError(msg)


def _watermarks(client: redis.Redis, settings: Settings) -> int:
    """The sum of the live watermarks (the hash's identity fields left out)."""
    raw = client.hgetall(keys.applied_offsets_key(settings.key_space))
    return sum(int(v) for k, v in raw.items() if k.isdigit())


def _first_write(client: redis.Redis, settings: Settings, above: int, since: float) -> float:
    deadline = since + TIMEOUT_SECONDS
    while _watermarks(client, settings) <= above:
        if time.monotonic() > deadline:
            msg = f"no write within {TIMEOUT_SECONDS:.0f} s of the restart"
            raise RuntimeError(msg)
        time.sleep(0.02)
    return time.monotonic() - since


def _restarts(
    job: _Job, client: redis.Redis, settings: Settings, how: signal.Signals, count: int
) -> list[float]:
    seconds = []
    for _ in range(count):
        time.sleep(3)  # some batches and a commit or two after the previous start
        job.stop(how)
        written = _watermarks(client, settings)
        started = job.start()
        seconds.append(_first_write(client, settings, written, started))
        logger.info("%s: first write %.2f s after the restart", how.name, seconds[-1])
    return seconds


def _measure(settings: Settings, client: redis.Redis, log: Path) -> list[tuple[str, list[float]]]:
    job = _Job(settings, log)
    started = job.start()
    _first_write(client, settings, 0, started)
    rows = [
        ("kill -9, static membership", _restarts(job, client, settings, signal.SIGKILL, 3)),
        ("SIGTERM, static membership", _restarts(job, client, settings, signal.SIGTERM, 3)),
    ]
    job.stop(signal.SIGTERM)
    dynamic = _Job(settings.model_copy(update={"stream_static_membership": False}), log)
    started = dynamic.start()
    _first_write(client, settings, _watermarks(client, settings), started)
    rows.append(
        ("kill -9, dynamic membership", _restarts(dynamic, client, settings, signal.SIGKILL, 1))
    )
    dynamic.stop(signal.SIGTERM)
    return rows


def run(settings: Settings) -> str:
    """Measure the restarts; a Markdown section."""
    redis_url = urlunsplit(urlsplit(settings.redis_url)._replace(path=f"/{REDIS_DB}"))
    name = f"bench_restart_{uuid.uuid4().hex[:8]}"
    state = Path(tempfile.mkdtemp(prefix="kassa-bench-restart-"))
    settings = settings.model_copy(
        update={
            "topic": name,
            "consumer_group": name,
            "redis_url": redis_url,
            "metrics_port": 0,
            "state_dir": state,
            "stream_instance_id": "",
        }
    )
    ensure_topics(settings)
    client = redis.Redis.from_url(redis_url)
    stop = threading.Event()
    # The simulated clock runs ahead of the wall clock; starting a day back keeps it behind.
    source = generate(7, datetime.now(UTC) - timedelta(days=1))
    traffic = threading.Thread(
        target=publish, args=(settings, source), kwargs={"rate": RATE, "stop": stop}
    )
    traffic.start()
    try:
        rows = _measure(settings, client, state / "stream.log")
    finally:
        stop.set()
        traffic.join()
        client.close()
    lines = [
        f"| {label} | {statistics.median(values):.1f} s | "
        f"{min(values):.1f} - {max(values):.1f} s | {len(values)} |"
        for label, values in rows
    ]
    return "\n".join(
        [
            "## Stream job restarts",
            "",
            f"Seconds from starting `kassa stream` again to its first write to Redis, while "
            f"{RATE} checkouts/s arrive (3 partitions, session timeout "
            f"{settings.stream_session_timeout_ms / 1000:.0f} s, process start-up included). "
            "Command: `python -m bench.restart`.",
            "",
            "| stopped by, membership | median | min - max | restarts |",
            "|---|---:|---:|---:|",
            *lines,
            "",
            "| target | measured |",
            "|---|---:|",
            f"| <= 5 s after kill -9 | {statistics.median(rows[0][1]):.1f} s |",
        ]
    )


if __name__ == "__main__":
    from common.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    print(run(load_settings()))
