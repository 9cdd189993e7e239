"""PNG plots of the benchmark figures (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from bench.report import Plot

_SIZE = (7.0, 3.8)


def bars(folder: Path, file: str, caption: str, values: Mapping[str, float], unit: str) -> Plot:
    """Horizontal bars, one per label (drawn top to bottom in the order given)."""
    labels = list(values)[::-1]
    height = max(2.0, 0.45 * len(labels) + 1.0)
    fig, axes = plt.subplots(figsize=(_SIZE[0], height))
    axes.barh(labels, [values[label] for label in labels], color="#4c72b0")
    axes.set_xlabel(unit)
    axes.set_title(caption, fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, folder, file, caption)


def stacked_bars(
    folder: Path, file: str, caption: str, stacks: Mapping[str, Mapping[str, float]], unit: str
) -> Plot:
    """One horizontal bar per stack label, split into its parts."""
    labels = list(stacks)[::-1]
    parts = list(dict.fromkeys(part for stack in stacks.values() for part in stack))
    fig, axes = plt.subplots(figsize=(_SIZE[0], max(2.0, 0.6 * len(labels) + 1.2)))
    left = [0.0] * len(labels)
    for part in parts:
        widths = [stacks[label].get(part, 0.0) for label in labels]
        axes.barh(labels, widths, left=left, label=part)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    axes.set_xlabel(unit)
    axes.set_title(caption, fontsize=10)
    axes.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, folder, file, caption)


def lines(
    folder: Path,
    file: str,
    caption: str,
    *,
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    axis_labels: tuple[str, str],
    log_x: bool = False,
) -> Plot:
    """One line with markers per series over the same ``x``."""
    fig, axes = plt.subplots(figsize=_SIZE)
    for name, values in series.items():
        axes.plot(list(x), list(values), marker="o", label=name)
    if log_x:
        axes.set_xscale("log")
    axes.set_xticks(list(x), [f"{v:,.0f}" for v in x])
    axes.set_xlabel(axis_labels[0])
    axes.set_ylabel(axis_labels[1])
    axes.set_ylim(bottom=0)
    axes.set_title(caption, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, folder, file, caption)


def _save(fig: Figure, folder: Path, file: str, caption: str) -> Plot:
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / file, dpi=100)
    plt.close(fig)
    return Plot(file, caption)
