"""A real Prometheus server for the tests (Debian's ``prometheus``), configured from
``deploy/prometheus/prometheus.yml`` with kassa's alert rules, and its HTTP API."""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Final

import yaml

from services.process import await_ready, spawn, terminate
from tests.helpers import free_port, repo_root

INSTALL: Final = (
    "promtool and prometheus are not installed: run 'make bootstrap' (as root it installs "
    "Debian's prometheus package; elsewhere: sudo apt-get install prometheus)"
)
INTERVAL: Final = "1s"
"""Scrape and rule evaluation interval of the test server."""


def deploy_file(*parts: str) -> Path:
    """A file of the repository's ``deploy/`` folder."""
    return repo_root().joinpath("deploy", *parts)


def binary(name: str) -> str:
    """The path of ``prometheus`` or ``promtool``; fails naming the install command."""
    found = shutil.which(name)
    assert found is not None, INSTALL
    return found


class PrometheusServer:
    """``prometheus`` on a free port with data under ``home``: the jobs and rule files of the
    shipped example configuration, each job's targets read from a file the test writes."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._pid: int | None = None
        self.jobs = self._write_config()

    def _write_config(self) -> list[str]:
        example = deploy_file("prometheus", "prometheus.yml")
        config: dict[str, Any] = yaml.safe_load(example.read_text())
        config["global"] = {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL}
        config["rule_files"] = [str(example.parent / name) for name in config["rule_files"]]
        jobs = []
        for job in config["scrape_configs"]:
            del job["static_configs"]
            job["file_sd_configs"] = [{"files": [str(self._targets_file(job["job_name"]))]}]
            jobs.append(job["job_name"])
            self.set_targets(job["job_name"], [])
        (self.home / "prometheus.yml").write_text(yaml.safe_dump(config))
        return jobs

    def _targets_file(self, job: str) -> Path:
        return self.home / f"{job}.json"

    def set_targets(self, job: str, targets: list[str]) -> None:
        """Scrape ``targets`` (host:port) as ``job`` from now on (the file is watched)."""
        path = self._targets_file(job)
        path.with_suffix(".tmp").write_text(json.dumps([{"targets": targets}]))
        path.with_suffix(".tmp").replace(path)

    def start(self) -> None:
        """Start the server and wait until it is ready."""
        log = self.home / "prometheus.log"
        self._pid = spawn(
            [
                binary("prometheus"),
                f"--config.file={self.home / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.home / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            log,
            self.home / "prometheus.pid",
        )
        await_ready(self._pid, self._ready, "prometheus", log, timeout=60)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server."""
        if self._pid is not None:
            terminate(self._pid)

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of a successful answer of ``/api/v1/<path>``."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now (a scalar as one sample)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def target_health(self) -> dict[str, list[str]]:
        """Job -> the health of each of its active targets (``up``, ``down``, ``unknown``)."""
        health: dict[str, list[str]] = {}
        for target in self.api("targets", state="active")["activeTargets"]:
            health.setdefault(target["labels"]["job"], []).append(target["health"])
        return health

    def alert_states(self) -> dict[str, str]:
        """Alert name -> ``pending`` or ``firing`` for each active alert."""
        return {
            alert["labels"]["alertname"]: alert["state"] for alert in self.api("alerts")["alerts"]
        }
