"""``kassa services up --sentinel``: a master, its replica and three Sentinels on this machine,
each requiring its password; kassa counts exactly through them; after the master is killed and
a replica promoted, ``up`` brings the old master back as a replica of the new one, never as a
second master with older data."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr

from common.schema import Checkout
from common.settings import Settings
from services.exceptions import ServiceError
from services.manager.redis_nodes import redis_sentinels
from services.process import is_alive, port_in_use
from services.redis import RedisServer
from storage.connections import open_redis
from tests.conftest import Services, database_url, fresh_settings
from tests.helpers import free_port, settings_env, wait_until
from tests.jobs.stream.helpers import assert_exact, publish_checkouts, run_once, valid_checkouts
from tests.pipeline import DAY
from tests.redis_shapes.conftest import Sentinels
from tests.services.helpers import kassa, pids_in

MASTER_NAME = "kassa-local"
NODES = ("redis-1", "redis-2")
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")


def _free_ports() -> tuple[int, list[int]]:
    """A free port whose next port is free too (the master's and the replica's), and three
    other free ports (the Sentinels'), all different."""
    while True:
        port = free_port()
        if port < 65_535 and not port_in_use("127.0.0.1", port + 1):
            break
    sentinels: set[int] = set()
    while len(sentinels) < len(SENTINELS):
        sentinels.add(free_port())
        sentinels -= {port, port + 1}
    return port, sorted(sentinels)


def _rows(output: str) -> dict[str, list[str]]:
    """``{name: words}`` of the service rows ``kassa services`` printed."""
    return {line.split()[0]: line.split() for line in output.splitlines() if line.strip()}


def _role(output: str, name: str) -> str:
    """The state and role of row ``name``, e.g. ``running master``."""
    words = _rows(output)[name]
    return f"{words[2]} {words[3]}"


def _replication(server_info: dict[str, object] | None) -> tuple[object, object]:
    info = server_info or {}
    return info.get("role"), info.get("master_port")


@pytest.fixture
def sentinel_env(
    services: Services, request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[Settings, dict[str, str]]:
    """Settings (and their environment) for a Redis on free ports that requires a password,
    three Sentinels on free ports that require another, the session's Kafka (which ``up``
    reuses) and a state folder of their own."""
    password = f"redis-pw-{uuid.uuid4().hex}"
    port, sentinel_ports = _free_ports()
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    settings = fresh_settings(
        request, tmp_path, services.kafka.bootstrap, database_url(services.redis)
    )  # its topic and group; its Redis database is left alone
    settings = settings.model_copy(
        update={
            "redis_url": url,
            "redis_sentinels": ",".join(f"127.0.0.1:{port}" for port in sentinel_ports),
            "redis_sentinel_master": MASTER_NAME,
            "redis_sentinel_password": SecretStr(f"sentinel-pw-{uuid.uuid4().hex}"),
            "state_dir": tmp_path / "state",
            "metrics_port": 0,
        }
    )
    return settings, settings_env(settings)


class Cli:
    """``kassa services`` in the environment of the settings, keeping every output."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.outputs: list[str] = []

    def __call__(self, *args: str, **changed: str) -> subprocess.CompletedProcess[str]:
        result = kassa("services", *args, env=self.env | changed)
        self.outputs.extend((result.stdout, result.stderr))
        return result


def test_services_up_sentinel_fails_over_and_brings_the_old_master_back_as_a_replica(
    sentinel_env: tuple[Settings, dict[str, str]],
) -> None:
    settings, env = sentinel_env
    run = Cli(env)
    up = run("up", "--sentinel")
    assert up.returncode == 0, up.stderr
    try:
        nodes, pids = _started_and_counting(run, up, settings)
        before = valid_checkouts(200, seed=71, day=DAY)
        _count_exactly(settings, before, before)

        os.kill(pids["redis-1"], signal.SIGKILL)
        shape = redis_sentinels(settings)
        assert shape is not None
        with pytest.raises(ServiceError, match="a failover is under way"):
            shape.start()  # within the 5 s the Sentinels wait, they still name node 1
        promoted = (nodes.replica.host, nodes.replica.port)
        wait_until(lambda: nodes.master_address() == promoted, 60, "the replica's promotion")
        failed_over = run("status")
        assert failed_over.returncode == 1
        assert _rows(failed_over.stdout)["redis-1"][2] == "down"
        assert _role(failed_over.stdout, "redis-2") == "running master"

        running = _old_master_back_as_replica(run, nodes, pids)
        after = valid_checkouts(200, seed=72, day=DAY)
        _count_exactly(settings, after, before + after)
        master = open_redis(settings)  # through the Sentinels: node 2
        try:
            assert master.wait(1, 10_000) == 1  # node 1 holds every write before it is read
        finally:
            master.close()
        old_master = open_redis(settings.redis_url)  # node 1 itself, now a replica
        try:
            assert_exact(old_master, settings, before + after)
        finally:
            old_master.close()
        _assert_status(run, master=nodes.replica, replica=nodes.master)
        # the Sentinels made Redis rewrite node 2's file at its promotion (the umask's case)
        assert "# Generated by CONFIG REWRITE" in nodes.replica.config_file.read_text()

        refused = run("status", KASSA_REDIS_SENTINEL_PASSWORD=f"wrong-{uuid.uuid4().hex}")
        assert refused.returncode == 1
        assert all(_rows(refused.stdout)[name][2] == "refused" for name in SENTINELS)
        assert "KASSA_REDIS_SENTINEL_USERNAME/_PASSWORD" in refused.stdout
        _assert_secrets_private(settings, nodes, run)
    finally:
        down = run("down")
    assert down.returncode == 0, down.stderr
    assert all(_rows(down.stdout)[name][2] == "stopped" for name in (*NODES, *SENTINELS))
    assert not any(is_alive(pid) for pid in running.values())
    assert run("status").returncode == 1
    _all_started_again_with_the_promoted_master(run, nodes)
    _assert_secrets_private(settings, nodes, run)


def _started_and_counting(
    run: Cli, up: subprocess.CompletedProcess[str], settings: Settings
) -> tuple[Sentinels, dict[str, int]]:
    """What the first ``up --sentinel`` started (and says it did): node 1 the master, node 2
    its replica, three Sentinels that know both and each other; ``status`` shows the roles."""
    shape = redis_sentinels(settings)
    assert shape is not None
    nodes = Sentinels.of(shape)
    pids = pids_in(up.stdout)
    assert set(pids) == {*NODES, *SENTINELS}
    assert _role(up.stdout, "redis-1") == "started master"
    assert _role(up.stdout, "redis-2") == "started replica"
    assert f"started as a replica of {nodes.master.address}" in up.stdout
    assert all(_role(up.stdout, name) == "started sentinel" for name in SENTINELS)
    assert "clients:" not in up.stdout  # the settings already name these Sentinels
    assert nodes.ready()  # up returned once a failover could happen
    _assert_status(run, master=nodes.master, replica=nodes.replica)
    return nodes, pids


def _old_master_back_as_replica(run: Cli, nodes: Sentinels, pids: dict[str, int]) -> dict[str, int]:
    """``up --sentinel`` after the failover starts only the killed node 1, as a replica of the
    promoted node 2; returns the pids it shows."""
    first, second = nodes.master, nodes.replica
    again = run("up", "--sentinel")
    assert again.returncode == 0, again.stderr
    # at once, and no Sentinel had to turn it into a replica (it would after a few seconds)
    assert _replication(first.info()) == ("slave", second.port)
    for sentinel in nodes.sentinels:
        assert "+convert-to-slave" not in (sentinel.home / "sentinel.log").read_text()
    assert _role(again.stdout, "redis-1") == "started replica"
    assert f"started as a replica of {second.address}" in again.stdout
    assert _rows(again.stdout)["redis-2"][2] == "running"
    running = pids_in(again.stdout)
    assert {running[name] for name in SENTINELS} == {pids[name] for name in SENTINELS}
    return running


def _all_started_again_with_the_promoted_master(run: Cli, nodes: Sentinels) -> None:
    """``up --sentinel`` with nothing running (as after a reboot) starts node 2 as the master
    again, as the Sentinels last wrote in their files, and node 1 as its replica."""
    up = run("up", "--sentinel")
    try:
        assert up.returncode == 0, up.stderr
        assert _role(up.stdout, "redis-2") == "started master"
        assert _role(up.stdout, "redis-1") == "started replica"
        assert _replication(nodes.master.info()) == ("slave", nodes.replica.port)
    finally:
        assert run("down").returncode == 0


def _assert_secrets_private(settings: Settings, nodes: Sentinels, run: Cli) -> None:
    """Neither password is on a command line or in an output; every file under
    ``KASSA_STATE_DIR`` holding one (Redis rewrote some after the failover) is private."""
    assert settings.redis_sentinel_password is not None
    secrets = [
        (urlsplit(settings.redis_url).password or "").encode(),
        settings.redis_sentinel_password.get_secret_value().encode(),
    ]
    command_lines = subprocess.run(
        ["ps", "-eo", "args"], capture_output=True, text=True, check=True
    ).stdout.encode()
    # a configuration file holds the passwords (kassa writes them escaped, Redis as it likes)
    holding = [
        path
        for path in settings.state_dir.rglob("*")
        if path.is_file()
        and (path.suffix == ".conf" or any(secret in path.read_bytes() for secret in secrets))
    ]
    assert {path.name for path in holding} >= {"redis.conf", "sentinel.conf"}
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in holding), holding
    for secret in secrets:
        assert secret
        assert secret not in command_lines
        assert not any(secret.decode() in output for output in run.outputs)


def _assert_status(run: Cli, master: RedisServer, replica: RedisServer) -> None:
    """``status`` shows each node's role and each Sentinel naming ``master``."""
    status = run("status")
    assert status.returncode == 0, status.stdout
    names = {master.address: "", replica.address: ""}
    for name in NODES:
        names[_rows(status.stdout)[name][1]] = _role(status.stdout, name)
    assert names == {master.address: "running master", replica.address: "running replica"}
    for name in SENTINELS:
        line = " ".join(_rows(status.stdout)[name])
        assert f"names {master.address} the master '{MASTER_NAME}'" in line
        assert "password (KASSA_REDIS_SENTINEL_PASSWORD)" in line


def _count_exactly(settings: Settings, new: list[Checkout], counted: list[Checkout]) -> None:
    """Publish ``new``, run the stream job through the Sentinels (both passwords): the live
    figures are those of ``counted``."""
    publish_checkouts(settings, new)
    run_once(settings)
    client = open_redis(settings)
    try:
        assert_exact(client, settings, counted)
    finally:
        client.close()


def test_up_refuses_sentinel_with_secure_in_one_line_and_starts_nothing(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path / "state", redis_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    result = kassa("services", "up", "--sentinel", "--secure", env=settings_env(settings))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert re.search(r"--sentinel.*--secure.*do not go together.*run your own", result.stderr)
    assert not list((tmp_path / "state").rglob("*.pid"))
