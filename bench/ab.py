"""Compare the runs of ``scripts/bench-ab.sh``: each figure's median per side and B/A.

``python bench/ab.py OUT ROUNDS`` reads ``OUT/<A|B><round>/results/{stream,daily}.json``.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

FIGURES: list[tuple[str, str, str, dict[str, object]]] = [
    ("stream, exactly-once (checkouts/s)", "stream", "kassa stream, exactly-once (default)", {}),
    (
        "stream, consumer CPU per checkout (µs)",
        "stream",
        "cpu per checkout",
        {"process": "consumer", "variant": "exactly-once"},
    ),
    ("Quix passthrough (checkouts/s)", "stream", "Quix passthrough app (framework ceiling)", {}),
    ("daily job, 100k checkouts (s)", "daily", "job seconds (manifest)", {"checkouts": 100_000}),
    ("daily job, 1M checkouts (s)", "daily", "job seconds (manifest)", {"checkouts": 1_000_000}),
    (
        "raw consume of the 1M range (s)",
        "daily",
        "raw consume, values only (baseline)",
        {"checkouts": 1_000_000},
    ),
]


def _median(path: Path, name: str, labels: dict[str, object]) -> float:
    for figure in json.loads(path.read_text())["figures"]:
        found = figure.get("labels", {})
        if figure.get("name") == name and all(found.get(k) == v for k, v in labels.items()):
            return float(figure["median"])
    msg = f"{path} has no figure {name!r} {labels}"
    raise LookupError(msg)


def main() -> None:
    """Print a Markdown table of the medians per side and their ratio."""
    out, rounds = Path(sys.argv[1]), int(sys.argv[2])
    print("| figure | A | B | B/A |\n|---|---:|---:|---:|")
    for title, section, name, labels in FIGURES:
        sides = {
            side: statistics.median(
                _median(out / f"{side}{r}" / "results" / f"{section}.json", name, labels)
                for r in range(1, rounds + 1)
            )
            for side in "AB"
        }
        print(
            f"| {title} | {sides['A']:,.2f} | {sides['B']:,.2f} | {sides['B'] / sides['A']:.2f} |"
        )


if __name__ == "__main__":
    main()
