"""What ships for deployment: docker-compose.yml (checked by Debian's docker-compose, no
Docker engine), the systemd units, and the stream job run as an unprivileged user with the
compose file's settings."""

from __future__ import annotations

import configparser
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from common.errors import SettingsError
from common.settings import ENV_PREFIX, Settings
from common.settings.secrets import FILE_SUFFIX, secret_fields
from jobs.stream.exceptions import InstanceFencedError
from producers.publish import publish
from producers.synthetic import generate
from tests.helpers import KASSA, free_port, repo_root, truth
from tests.jobs.stream.helpers import days_of, live_figures

KASSA_SERVICES = ("topics", "stream", "scheduler", "api")
SETTINGS = {ENV_PREFIX + name.upper() for name in Settings.model_fields}


def _compose(
    *args: str, env: dict[str, str] | None = None, files: tuple[str, ...] = ("docker-compose.yml",)
) -> subprocess.CompletedProcess[str]:
    named = [option for file in files for option in ("-f", str(repo_root() / file))]
    return subprocess.run(
        ["docker-compose", *named, *args],
        cwd=repo_root(),
        env={"PATH": os.environ["PATH"], **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _config(
    env: dict[str, str] | None = None, files: tuple[str, ...] = ("docker-compose.yml",)
) -> dict[str, Any]:
    result = _compose("config", env=env, files=files)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def _services(env: dict[str, str] | None = None) -> dict[str, Any]:
    services: dict[str, Any] = _config(env)["services"]
    return services


def test_the_compose_file_is_valid() -> None:
    result = _compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_every_setting_reaches_every_kassa_service_through_one_env_file(tmp_path: Path) -> None:
    services = _services()
    for name in KASSA_SERVICES:
        environment = services[name]["environment"]
        assert set(environment) >= SETTINGS, (name, SETTINGS - set(environment))
    own = tmp_path / "kassa.env"
    own.write_text("KASSA_TIMEZONE=Europe/Berlin\nKASSA_STREAM_WRITERS=1\n")
    chosen = _services({"KASSA_ENV_FILE": str(own)})
    for name in KASSA_SERVICES:
        assert chosen[name]["environment"]["KASSA_TIMEZONE"] == "Europe/Berlin"
    assert str(chosen["stream"]["environment"]["KASSA_STREAM_WRITERS"]) == "1"


def test_the_secrets_file_hands_every_secret_setting_to_every_kassa_service_as_a_file() -> None:
    config = _config(files=("docker-compose.yml", "docker-compose.secrets.yml"))
    for name in secret_fields(Settings):
        assert config["secrets"][name]["file"] == str(repo_root() / "secrets" / name)
        variable = ENV_PREFIX + name.upper() + FILE_SUFFIX
        for service in KASSA_SERVICES:
            mounted = {secret["source"] for secret in config["services"][service]["secrets"]}
            assert name in mounted, (service, name)
            assert config["services"][service]["environment"][variable] == f"/run/secrets/{name}"


def test_services_have_health_checks_and_ports_only_on_the_loopback() -> None:
    services = _services()
    probes = {"stream": ":9108/healthz", "scheduler": ":9109/healthz", "api": ":8000/health"}
    for name, endpoint in probes.items():
        assert endpoint in " ".join(services[name]["healthcheck"]["test"]), name
    for name, service in services.items():
        for port in service.get("ports", []):
            published = port if isinstance(port, str) else f"{port['host_ip']}:{port['published']}"
            assert published.startswith("127.0.0.1:"), (name, port)
    kafka = services["kafka"]
    assert any(v.endswith(f":{kafka['environment']['KAFKA_LOG_DIRS']}") for v in _volumes(kafka))
    state = services["stream"]["environment"]["KASSA_STATE_DIR"]
    assert any(v.endswith(f":{state}") for v in _volumes(services["stream"]))


def _volumes(service: dict[str, Any]) -> list[str]:
    """``source:target`` of each of ``service``'s volumes (without ``:rw``/``:ro``)."""
    return [
        v.removesuffix(":rw").removesuffix(":ro")
        if isinstance(v, str)
        else f"{v['source']}:{v['target']}"
        for v in service.get("volumes", [])
    ]


def test_the_image_gives_the_state_folder_to_the_user_it_runs_as() -> None:
    dockerfile = (repo_root() / "Dockerfile").read_text()
    assert "KASSA_STATE_DIR=/var/lib/kassa" in dockerfile
    assert "chown kassa /data /var/lib/kassa" in dockerfile
    assert "USER kassa" in dockerfile


@pytest.mark.parametrize("unit", ["kassa-stream.service", "kassa-scheduler.service"])
def test_the_systemd_units_restart_on_failure_except_for_configuration_errors(unit: str) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(repo_root() / "deploy" / "systemd" / unit)
    service = parser["Service"]
    assert service["Restart"] == "on-failure"
    assert service["RestartPreventExitStatus"] == str(SettingsError.exit_code)
    assert service["KillSignal"] == "SIGTERM"
    assert service["User"] == "kassa"
    assert "EnvironmentFile" in service
    assert service["WorkingDirectory"] == "/var/lib/kassa"
    assert service["StateDirectory"] == "kassa"
    if unit == "kassa-stream.service":
        documented = (repo_root() / "docs" / "stream.md").read_text()
        assert f"| {InstanceFencedError.exit_code} |" in documented


def test_the_credentials_drop_in_hands_each_kafka_and_redis_secret_to_kassa_as_a_file() -> None:
    """Each credential of the systemd drop-in, the commented ones too, is a Kafka or Redis
    secret setting, loaded from /etc/kassa/credentials and named by its KASSA_<NAME>_FILE."""
    drop_in = repo_root() / "deploy" / "systemd" / "kassa-credentials.conf"
    lines = [line.removeprefix("#") for line in drop_in.read_text().splitlines()]
    loaded = dict(
        line.removeprefix("LoadCredential=").split(":", 1)
        for line in lines
        if line.startswith("LoadCredential=")
    )
    named = dict(
        line.removeprefix("Environment=").split("=", 1)
        for line in lines
        if line.startswith("Environment=")
    )
    assert set(loaded) == {
        name for name in secret_fields(Settings) if name.startswith(("kafka_", "redis_"))
    }
    assert loaded == {name: f"/etc/kassa/credentials/{name}" for name in loaded}
    assert named == {ENV_PREFIX + name.upper() + FILE_SUFFIX: f"%d/{name}" for name in loaded}
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(drop_in)
    assert (
        parser["Service"]["Environment"] == "KASSA_KAFKA_SASL_PASSWORD_FILE=%d/kafka_sasl_password"
    )


@pytest.fixture
def nobody_folder() -> Iterator[Path]:
    """A folder outside pytest's (root-only) temporary folders, readable by everyone."""
    folder = Path(tempfile.mkdtemp(prefix="kassa-unprivileged-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def _as_nobody(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``kassa *args`` as user nobody. It may read everything (CAP_DAC_READ_SEARCH: the
    virtual environment's Python may live in a folder only root can enter) and writes only
    where nobody may write."""
    return subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
         *KASSA, *args],
        cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=180,
    )  # fmt: skip


def test_the_stream_job_runs_as_an_unprivileged_user_with_the_compose_settings(
    settings: Settings, redis_client: redis.Redis, nobody_folder: Path
) -> None:
    compose = _services()["stream"]["environment"]
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}
    env |= {k: str(v) for k, v in compose.items() if k.startswith(ENV_PREFIX)}
    # The test's services instead of the compose file's, and a metrics port of its own.
    env |= {
        "KASSA_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "KASSA_REDIS_URL": settings.redis_url,
        "KASSA_TOPIC": settings.topic,
        "KASSA_CONSUMER_GROUP": settings.consumer_group,
        "KASSA_METRICS_PORT": str(free_port()),
    }
    app = nobody_folder / "app"  # root's, like the image's /app
    app.mkdir()
    checkouts = list(generate(5, datetime(2026, 11, 21, 9, tzinfo=UTC), 300))
    assert publish(settings, checkouts).delivered == len(checkouts)

    # Without the image's state folder the job's folder resolves to the unwritable /app.
    refused = _as_nobody({**env, "KASSA_STATE_DIR": ".kassa"}, app, "stream", "--idle-timeout", "3")
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.splitlines()[-1] == (
        "kassa: error: KASSA_STATE_DIR='.kassa' is not a folder this user can write "
        "(Permission denied); create it for this user or point KASSA_STATE_DIR at one"
    )
    assert "Traceback" not in refused.stderr

    nobody = pwd.getpwnam("nobody")
    for name in ("KASSA_STATE_DIR", "KASSA_DATA_DIR"):  # as the Dockerfile makes them
        folder = nobody_folder / env[name].lstrip("/")
        folder.mkdir(parents=True)
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        env[name] = str(folder)
    result = _as_nobody(env, app, "stream", "--idle-timeout", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    expected = truth(checkouts, settings.zone)
    assert live_figures(redis_client, days_of(expected), settings.key_space) == expected
    assert (nobody_folder / "var/lib/kassa/instances").is_dir()
