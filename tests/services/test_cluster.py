"""``kassa services up --brokers 3``: a real three-node KRaft cluster, started and stopped."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from common.settings import Settings
from services.process import is_alive, port_in_use
from tests.helpers import free_port, settings_env
from tests.services.helpers import kassa, pids_in

NODES = ("kafka-1", "kafka-2", "kafka-3")


def _free_run(count: int) -> int:
    """The first of ``count`` consecutive ports on 127.0.0.1 that nothing listens on."""
    for _ in range(100):
        base = free_port()
        if base + count < 65536 and not any(
            port_in_use("127.0.0.1", base + n) for n in range(count)
        ):
            return base
    msg = f"no {count} consecutive free ports found"
    raise RuntimeError(msg)


@pytest.fixture
def cluster_env(tmp_path: Path) -> dict[str, str]:
    """Settings for a not yet started three-node cluster (ports base .. base + 5) and Redis."""
    base = _free_run(6)
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{base}",
        kafka_controller_port=base + 1,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        state_dir=tmp_path / "state",
        kafka_heap="256m",
    )
    return settings_env(settings)


def test_up_brokers_3_status_names_every_node_and_the_controller_and_down_stops_all(
    cluster_env: dict[str, str],
) -> None:
    first = kassa("services", "up", "--brokers", "3", env=cluster_env)
    assert first.returncode == 0, first.stderr
    started = pids_in(first.stdout)
    assert set(started) == {*NODES, "redis"}
    assert first.stdout.count(" started ") == 4
    base = int(cluster_env["KASSA_KAFKA_BOOTSTRAP"].rsplit(":", 1)[1])
    bootstrap = ",".join(f"127.0.0.1:{base + 2 * n}" for n in range(3))
    assert f"export KASSA_KAFKA_BOOTSTRAP={bootstrap}" in first.stdout
    try:
        again = kassa("services", "up", env=cluster_env)
        assert again.returncode == 0, again.stderr
        assert " started " not in again.stdout
        assert pids_in(again.stdout) == started

        status = kassa(
            "services", "status", env={**cluster_env, "KASSA_KAFKA_BOOTSTRAP": bootstrap}
        )
        assert status.returncode == 0, status.stderr
        state = Path(cluster_env["KASSA_STATE_DIR"])
        for number, name in enumerate(NODES, start=1):
            line = next(line for line in status.stdout.splitlines() if line.startswith(name))
            assert f"127.0.0.1:{base + 2 * (number - 1)} " in line
            assert " running " in line
            assert " broker,controller " in line
            assert f"pid {started[name]}" in line
            assert f"data {state / 'kafka' / f'node-{number}' / 'data'}" in line
        controller = re.search(r"active controller: node (\d) \(voters 1,2,3\)", status.stdout)
        assert controller is not None, status.stdout
        assert "Apache Kafka 4." in status.stdout

        resized = kassa("services", "up", "--brokers", "2", env=cluster_env)
        assert resized.returncode == 2
        assert "has 3 node(s), not 2" in resized.stderr
    finally:
        down = kassa("services", "down", env=cluster_env)
    assert down.returncode == 0, down.stderr
    assert down.stdout.count(" stopped") == 4
    for pid in started.values():
        assert not is_alive(pid)
    assert kassa("services", "status", env=cluster_env).returncode == 1


def test_a_port_in_use_is_named_before_anything_starts(cluster_env: dict[str, str]) -> None:
    base = int(cluster_env["KASSA_KAFKA_BOOTSTRAP"].rsplit(":", 1)[1])
    taken = base + 3  # node 2's controller port
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", taken))
        blocker.listen()
        result = kassa("services", "up", "--brokers", "3", env=cluster_env)
    assert result.returncode == 2
    assert f"port {taken} (controller port of Kafka node 2) is in use" in result.stderr
    state = Path(cluster_env["KASSA_STATE_DIR"])
    assert not list(state.rglob("*.pid")), "something was started"
