"""Operating kassa: one real Prometheus per test session (every test using it lives in this
folder, one pytest-xdist unit), and kassa running as an operator runs it: ``kassa stream``,
``kassa daily schedule`` and ``kassa serve`` as child processes on a fresh topic and a Redis
server of their own, scraped by that Prometheus."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import Producer

from services.redis import RedisServer
from storage.kafka.config import client_config
from storage.kafka.topics import ensure_topics
from tests.conftest import Services, fresh_settings
from tests.helpers import KASSA, free_port, settings_env, wait_until
from tests.jobs.stream.helpers import publish_checkouts, valid_checkouts
from tests.operating.prometheus import PrometheusServer

INVALID_MESSAGES = 5
"""Messages that are not JSON, published so the dead-letter series exist."""


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """Debian's prometheus for the session, with kassa's jobs and alert rules."""
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Operated:
    """kassa's three processes, their Redis server and the Prometheus scraping them."""

    prometheus: PrometheusServer
    redis: RedisServer
    ports: dict[str, int]
    """Job name -> the port Prometheus scrapes."""
    logs: Path


def _start(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [*KASSA, *command.split()], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _answers(port: int, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def operated(
    prometheus: PrometheusServer,
    services: Services,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Operated]:
    """kassa running with checkouts (and a few invalid messages) counted, scraped by
    ``prometheus`` as the jobs of ``deploy/prometheus/prometheus.yml``."""
    home = tmp_path_factory.mktemp("operated")
    redis_server = RedisServer("127.0.0.1", free_port(), home / "redis")
    redis_server.start()
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    settings = fresh_settings(request, home, services.kafka.bootstrap, url)
    ensure_topics(settings)
    ports = {"kassa-stream": free_port(), "kassa-scheduler": free_port(), "kassa-api": free_port()}
    env = {
        **settings_env(settings),
        "KASSA_METRICS_PORT": str(ports["kassa-stream"]),
        "KASSA_DAILY_METRICS_PORT": str(ports["kassa-scheduler"]),
        "KASSA_API_PORT": str(ports["kassa-api"]),
        "KASSA_DAILY_CATCHUP_DAYS": "0",
    }
    children = [
        _start("stream", env, home / "stream.log"),
        _start("daily schedule", env, home / "scheduler.log"),
        _start("serve", env, home / "api.log"),
    ]
    try:
        for job, path in (
            ("kassa-stream", "/healthz"),
            ("kassa-scheduler", "/metrics"),
            ("kassa-api", "/health"),
        ):
            wait_until(lambda p=ports[job], q=path: _answers(p, q), 60, f"{job} to answer {path}")
        now = datetime.now(UTC)
        checkouts = [
            msgspec.structs.replace(checkout, occurred_at=now)
            for checkout in valid_checkouts(300, 11)
        ]
        publish_checkouts(settings, checkouts)
        producer = Producer(client_config(settings))
        for index in range(INVALID_MESSAGES):
            producer.produce(settings.topic, b"not json", key=f"bad-{index}".encode())
        assert producer.flush(30) == 0
        for job, port in ports.items():
            prometheus.set_targets(job, [f"127.0.0.1:{port}"])
        yield Operated(prometheus, redis_server, ports, home)
    finally:
        for job in ports:
            prometheus.set_targets(job, [])
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(10)
        redis_server.stop()


def log_tails(operated: Operated) -> str:
    """The last lines of each process's log (for an assertion's message)."""
    return json.dumps(
        {
            log.name: log.read_text(errors="replace")[-2000:]
            for log in sorted(operated.logs.glob("*.log"))
        },
        indent=1,
    )
