"""The alert rules pass promtool's checks and their unit tests, the board is its generator's
output and well formed, and every metric name they read is one kassa's code exports."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

from prometheus_client import CollectorRegistry

from api.metrics import ApiMetrics
from deploy.grafana.board import board_json
from jobs.daily.metrics import DailyMetrics
from jobs.stream.metrics import StreamMetrics
from tests.helpers import repo_root
from tests.operating.expressions import BOARD, RULES, alert_rules, board_queries, metric_names
from tests.operating.prometheus import binary, deploy_file

SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args], capture_output=True, text=True, check=False, timeout=60
    )


def test_the_rules_and_the_example_configuration_pass_promtool_check() -> None:
    for args in (
        ("check", "rules", str(RULES)),
        ("check", "config", str(deploy_file("prometheus", "prometheus.yml"))),
    ):
        result = _promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr


def test_each_alert_fires_on_its_fault_and_stays_silent_without_it() -> None:
    tests = deploy_file("prometheus", "kassa-alerts.test.yml")
    result = _promtool("test", "rules", str(tests))
    assert result.returncode == 0, result.stdout + result.stderr
    tested = tests.read_text()
    untested = [alert for alert in alert_rules() if f"alertname: {alert}" not in tested]
    assert not untested, f"no promtool test for {untested}"


def test_the_board_is_the_output_of_its_generator() -> None:
    assert BOARD.read_text() == board_json(), "regenerate it: make grafana-board"


def test_the_board_is_well_formed() -> None:
    board = json.loads(BOARD.read_text())
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        taken = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not taken & cells, f"{panel['title']!r} overlaps another panel"
        cells |= taken
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource"]


def _exported(registry: CollectorRegistry) -> Iterator[str]:
    for family in registry.collect():
        for suffix in SUFFIXES.get(family.type, ("",)):
            yield family.name + suffix


def test_every_metric_name_of_the_rules_and_the_board_is_exported_by_kassa() -> None:
    exported = {
        name
        for registry in (StreamMetrics().registry, DailyMetrics().registry, ApiMetrics().registry)
        for name in _exported(registry)
    }
    used = {
        name
        for expr in [*alert_rules().values(), *board_queries().values()]
        for name in metric_names(expr)
    }
    assert used - exported == set(), "renamed in the code? one home for each name"
    assert {"kassa_stream_freshness_seconds", "kassa_api_requests_total"} <= used


def test_every_alert_has_its_runbook_section_in_docs_operations_md() -> None:
    docs = (repo_root() / "docs" / "operations.md").read_text()
    runbooks = {alert: f"docs/operations.md#{alert.lower()}" for alert in alert_rules()}
    rules = RULES.read_text()
    assert [a for a in runbooks if f"\n### {a}\n" not in docs] == []
    assert [a for a, runbook in runbooks.items() if f"runbook: {runbook}\n" not in rules] == []
