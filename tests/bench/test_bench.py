"""The benchmarks run end to end at a tiny scale against the real broker and Redis.

Not a measurement: a broken benchmark (an import, a changed API, a figure it can no longer
find) fails here instead of in the next ``make bench``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench.processes import run_child
from bench.report import HISTORY
from bench.scale import TINY
from bench.session import MODULES, run_benchmarks
from common.settings import Settings

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.services
def test_every_benchmark_writes_its_section_json_and_plots(
    settings: Settings, tmp_path: Path
) -> None:
    output = tmp_path / "BENCHMARKS.md"
    results = tmp_path / "results"
    output.write_text(f"# Benchmarks\n\nold figures\n\n{HISTORY}\n\nhow they came about\n")

    # one writer process per stream job: fewer processes to start on a busy CI machine
    one_writer = settings.model_copy(update={"stream_writers": 1})
    sections = run_benchmarks(one_writer, TINY, output, results, command="pytest")

    assert [s.key for s in sections] == list(MODULES)
    failed = [s.markdown for s in sections if s.title.endswith("(FAILED)")]
    assert not failed, "\n".join(failed)
    report = output.read_text()
    assert "old figures" not in report
    assert report.rstrip().endswith(f"{HISTORY}\n\nhow they came about")
    for section in sections:
        assert f"## {section.title}" in report
        saved = json.loads((results / f"{section.key}.json").read_text())
        assert saved["figures"], section.key
        assert all(f["runs"] and f["unit"] for f in saved["figures"])
        for plot in section.plots:
            assert (results / plot.file).read_bytes().startswith(PNG_MAGIC)
            assert f"](results/{plot.file})" in report


def test_a_child_run_reports_the_childs_peak_memory_not_the_benchmarks(tmp_path: Path) -> None:
    held = bytearray(400 * 2**20)  # the benchmark's own memory, touched page by page
    held[::4096] = b"\1" * len(held[::4096])
    child = [sys.executable, "-c", "x = bytearray(100 * 2**20); x[::4096] = b'1' * len(x[::4096])"]
    run = run_child(child, {"PATH": "/usr/bin:/bin"}, tmp_path / "out")
    assert 100 * 2**20 < run.peak_rss_bytes < 300 * 2**20
    assert len(held) == 400 * 2**20
