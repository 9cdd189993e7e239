"""The README's promises point at tests that exist."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import repo_root

_REFERENCE = re.compile(r"`((?:[\w/]+/)?test_\w+\.py)::(test_\w+)`")


def _guarantees() -> str:
    readme = (repo_root() / "README.md").read_text()
    start = readme.index("\n## Guarantees\n")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def _test_file(name: str) -> Path:
    """``name`` as written in the README: a path from the root, or a file name in tests/."""
    if "/" in name:
        return repo_root() / name
    [found] = list((repo_root() / "tests").rglob(name))
    return found


def test_every_test_the_guarantees_name_exists() -> None:
    references = _REFERENCE.findall(_guarantees())
    assert len(references) > 30
    missing = [
        f"{file}::{test}"
        for file, test in references
        if not re.search(rf"^def {test}\(", _test_file(file).read_text(), re.MULTILINE)
    ]
    assert missing == []
