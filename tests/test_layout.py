"""Imports point one way: ``common`` <- ``storage`` <- ``jobs`` / ``producers`` (<- ``api``,
``cli``), and the stream and daily jobs never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import repo_root

FORBIDDEN = {
    "common": ("storage", "jobs", "producers", "api", "cli"),
    "storage": ("jobs", "producers", "api", "cli"),
    "jobs.stream": ("jobs.daily",),
    "jobs.daily": ("jobs.stream",),
}
"""Package -> the packages its modules may not import."""


def _module(path: Path) -> str:
    parts = path.relative_to(repo_root()).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(f"{package}.")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str) -> None:
    folder = repo_root().joinpath(*package.split("."))
    modules = sorted(folder.rglob("*.py"))
    assert modules, f"no modules under {folder}"
    wrong = sorted(
        f"{_module(path)} imports {name}"
        for path in modules
        for name in _imports(path)
        if any(_within(name, banned) for banned in FORBIDDEN[package])
    )
    assert wrong == []


def test_the_rule_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text("def f():\n    from jobs.daily import job\n")
    assert "jobs.daily.job" in _imports(module)
    assert any(_within(name, "jobs.daily") for name in _imports(module))
