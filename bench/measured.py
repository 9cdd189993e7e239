"""``python -m bench.measured REPORT -- COMMAND...``: run COMMAND, write its rusage to REPORT.

Linux carries a process's peak resident memory (``ru_maxrss``) across ``fork`` and ``exec``:
a child forked (or ``posix_spawn``-ed) by a benchmark holding 1.5 GB reports at least 1.5 GB,
whatever it used itself. This small process forks the command instead, so the command's
``ru_maxrss`` starts from this launcher's few megabytes, and writes the command's rusage as
JSON (``status``, ``cpu_seconds``, ``peak_rss_bytes``) for :func:`bench.processes.run_child`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    report, separator, *command = argv
    if separator != "--" or not command:
        sys.exit("usage: python -m bench.measured REPORT -- COMMAND...")
    pid = os.posix_spawnp(command[0], command, os.environ)
    _, status, usage = os.wait4(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    measured = {
        "status": code,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_bytes": usage.ru_maxrss * 1024,  # kilobytes on Linux
    }
    Path(report).write_text(json.dumps(measured))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
