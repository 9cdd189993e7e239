"""What the local-services tests share: running ``kassa services`` and reading its pids."""

from __future__ import annotations

import subprocess

from tests.helpers import run_kassa


def kassa(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_kassa(*args, env=env, timeout=180)


def pids_in(output: str) -> dict[str, int]:
    """``{service: pid}`` from the lines ``kassa services`` prints."""
    found = {}
    for line in output.splitlines():
        words = line.split()
        if "pid" in words:
            found[words[0]] = int(words[words.index("pid") + 1])
    return found
