"""The PromQL kassa ships: the alert rules' expressions and the Grafana board's queries, read
from the files in ``deploy/`` (never copied into the tests)."""

from __future__ import annotations

import json
import re
from typing import Any, Final

import yaml

from tests.operating.prometheus import deploy_file

RULES: Final = deploy_file("prometheus", "kassa-alerts.yml")
BOARD: Final = deploy_file("grafana", "kassa.json")
GRAFANA_VARIABLES: Final = {"$__rate_interval": "1m"}
"""What Grafana puts in place of its variables, for a query sent straight to Prometheus."""
_NAME = re.compile(r"\b(?:kassa|process)_[a-z0-9_]+\b")


def alert_rules() -> dict[str, str]:
    """Alert name -> its expression."""
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def board_queries() -> dict[str, str]:
    """``<panel title> <refId>`` -> the query, Grafana's variables filled in."""
    board = json.loads(BOARD.read_text())
    queries = {}
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries[f"{panel['title']} {target['refId']}"] = expr
    return queries


def metric_names(expr: str) -> set[str]:
    """The names of kassa's (and the process collector's) series that ``expr`` reads."""
    return set(_NAME.findall(expr))
