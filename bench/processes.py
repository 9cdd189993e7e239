"""The processes a benchmark measures: their CPU time, and child runs with their peak memory.

CPU time is read from ``/proc/<pid>/stat`` (``utime + stime``, every thread of the process);
a :class:`CpuMeter` samples it from a thread, so the CPU of a span can be read after the
processes exited (the stream job's writers end with the job). A child run's peak resident
memory and CPU come from ``os.wait4``'s rusage, taken by a small launcher
(:mod:`bench.measured`): only the child counts, not the benchmark.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

_TICKS: Final = os.sysconf("SC_CLK_TCK")
_LAUNCHER: Final = Path(__file__).with_name("measured.py")
_LISTEN: Final = "0A"
"""The TCP state of a listening socket in /proc/net/tcp."""


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far; None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def listener(port: int) -> int | None:
    """The pid of this user's process listening on TCP ``port`` (e.g. the Kafka broker)."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
        except (PermissionError, FileNotFoundError, ProcessLookupError):
            continue
        if links & wanted:
            return int(entry.name)
    return None


class CpuMeter:
    """Samples the CPU seconds of named processes every ``interval`` seconds from a thread.

    ``spent(name, start, end)`` is the CPU between the last sample at or before ``start``
    and the first at or after ``end`` (the last one if the process ended before).
    """

    def __init__(self, pids: Mapping[str, Sequence[int]], interval: float = 0.1) -> None:
        self._pids = {name: list(group) for name, group in pids.items()}
        self._interval = interval
        self._samples: list[tuple[float, dict[int, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        reading = {}
        for group in self._pids.values():
            for pid in group:
                value = cpu_seconds(pid)
                if value is not None:
                    reading[pid] = value
        self._samples.append((time.perf_counter(), reading))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> CpuMeter:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def spent(self, name: str, start: float, end: float) -> float:
        """CPU seconds the processes called ``name`` used from ``start`` to ``end``."""
        before = [s for t, s in self._samples if t <= start] or [self._samples[0][1]]
        after = [s for t, s in self._samples if t >= end] or [self._samples[-1][1]]
        total = 0.0
        for pid in self._pids[name]:
            last = next((s[pid] for _, s in reversed(self._samples) if pid in s), 0.0)
            first = before[-1].get(pid, 0.0)
            total += after[0].get(pid, last) - first
        return total


@dataclass(frozen=True)
class ChildRun:
    """What one child process did: exit status, wall and CPU seconds, peak memory."""

    status: int
    seconds: float
    cpu_seconds: float
    peak_rss_bytes: int


def run_child(command: Sequence[str], env: Mapping[str, str], output: Path) -> ChildRun:
    """Run ``command`` to its end with its output in ``output``; measure it with ``wait4``
    in :mod:`bench.measured` (a child of this process would inherit its peak memory)."""
    report = output.with_suffix(".rusage.json")
    launcher = [sys.executable, str(_LAUNCHER), str(report), "--", *command]
    started = time.perf_counter()
    with output.open("wb") as out:
        child = subprocess.run(
            launcher, env=dict(env), stdout=out, stderr=subprocess.PIPE, check=False
        )
    seconds = time.perf_counter() - started
    if child.returncode != 0:
        msg = f"{' '.join(command)} exited {child.returncode}: {child.stderr.decode()[-2000:]}"
        raise RuntimeError(msg)
    measured = json.loads(report.read_text())
    return ChildRun(0, seconds, measured["cpu_seconds"], measured["peak_rss_bytes"])
