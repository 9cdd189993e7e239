"""What a benchmark returns and how a run is written down.

Each module's ``run(bench)`` returns a :class:`Section`: its Markdown, the measured
:class:`Figure` s (with their units, and which of them are baselines measured in the same
run), and the plots it drew. :func:`write_report` turns the sections into ``BENCHMARKS.md``
and one ``<results>/<section>.json`` each.
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Role = Literal["kassa", "baseline", "ceiling", "input", "derived"]
HISTORY = "## History"
"""The hand-written section of BENCHMARKS.md that a new run keeps (how the figures came about)."""


@dataclass(frozen=True)
class Figure:
    """One measured quantity: every repetition's value, in ``unit``.

    ``role`` says what it is: kassa's own code, a ``baseline`` (simpler code doing the same
    work), a ``ceiling`` (what the client library or broker does alone), an ``input`` of the
    workload, or a figure ``derived`` from others of the same run.
    """

    name: str
    unit: str
    runs: tuple[float, ...]
    role: Role = "kassa"
    labels: dict[str, Any] = field(default_factory=dict)
    """Coordinates of the figure in a grid (partitions, writers, rate, checkouts, ...)."""

    @property
    def median(self) -> float:
        """The median of the repetitions."""
        return statistics.median(self.runs)

    def to_json(self) -> dict[str, Any]:
        """The figure as JSON: its median, every run, unit, role and labels."""
        return {
            "name": self.name,
            "unit": self.unit,
            "median": self.median,
            "runs": list(self.runs),
            "role": self.role,
            **({"labels": self.labels} if self.labels else {}),
        }


def figure(
    name: str, unit: str, runs: Iterable[float], role: Role = "kassa", **labels: Any
) -> Figure:
    """A :class:`Figure` of ``runs`` (at least one)."""
    values = tuple(float(v) for v in runs)
    if not values:
        msg = f"figure {name!r} has no measurement; the benchmark measured nothing"
        raise ValueError(msg)
    return Figure(name, unit, values, role, dict(labels))


@dataclass(frozen=True)
class Plot:
    """A PNG a section drew, under the results folder."""

    file: str
    caption: str


@dataclass(frozen=True)
class Section:
    """One benchmark's part of the report."""

    key: str
    """Short name: the module, the JSON file's name."""
    title: str
    markdown: str
    """The body below the title (tables, notes), without the plots."""
    figures: tuple[Figure, ...]
    plots: tuple[Plot, ...] = ()
    notes: dict[str, Any] = field(default_factory=dict)
    """Other JSON-able facts of the run (workload sizes, configuration)."""

    def find(self, name: str, **labels: Any) -> Figure | None:
        """The figure called ``name`` whose labels include ``labels``, if measured."""
        for candidate in self.figures:
            if candidate.name == name and labels.items() <= candidate.labels.items():
                return candidate
        return None

    def to_json(self) -> dict[str, Any]:
        """The section as JSON."""
        return {
            "section": self.key,
            "title": self.title,
            "figures": [f.to_json() for f in self.figures],
            "plots": [{"file": p.file, "caption": p.caption} for p in self.plots],
            "notes": self.notes,
        }

    def render(self, plot_folder: str) -> str:
        """The section's Markdown, its plots linked from ``plot_folder``."""
        images = [f"![{p.caption}]({plot_folder}/{p.file})" for p in self.plots]
        parts = [f"## {self.title}", self.markdown.strip(), *images]
        return "\n\n".join(part for part in parts if part)


def failed_section(key: str, trace: str) -> Section:
    """What the report shows of a benchmark that raised."""
    return Section(key, f"{key} (FAILED)", f"```\n{trace}```", ())


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table; the first column is left-aligned, the others right-aligned."""
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(["---", *["---:"] * (len(headers) - 1)]) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def spread(value: Figure, digits: int = 0) -> str:
    """``min - max`` of a figure's runs."""
    return f"{min(value.runs):,.{digits}f} - {max(value.runs):,.{digits}f}"


def rate_row(value: Figure) -> tuple[str, str, str, str]:
    """A throughput table's row: name, checkouts per run (empty for a ceiling), median, spread."""
    checkouts = value.labels.get("checkouts")
    return (
        value.name,
        "" if checkouts is None else f"{checkouts:,}",
        f"{value.median:,.0f}",
        spread(value),
    )


def kept_history(report: Path) -> str:
    """The History section of an earlier ``report`` (up to the next section), or nothing."""
    if not report.is_file():
        return ""
    text = report.read_text()
    start = text.find(f"\n{HISTORY}\n")
    if start < 0:
        return ""
    end = text.find("\n## ", start + len(HISTORY) + 2)
    return text[start:] if end < 0 else text[start:end] + "\n"


def write_report(header: str, sections: Sequence[Section], output: Path, results: Path) -> None:
    """Write ``output`` (Markdown) and ``results/<key>.json`` for each section."""
    results.mkdir(parents=True, exist_ok=True)
    for section in sections:
        path = results / f"{section.key}.json"
        path.write_text(json.dumps(section.to_json(), indent=2, sort_keys=True) + "\n")
    folder = Path(os.path.relpath(results, output.parent)).as_posix()
    body = "\n\n".join([header.strip(), *(s.render(folder) for s in sections)])
    output.write_text(body + "\n" + kept_history(output))
