"""No secret kassa is given ever becomes text: not in a log line, stderr or stdout, an error,
an API body, a metric, a manifest or a Parquet file.

The pipeline runs through the real CLI with distinctive secrets (a Redis password required by
a real redis-server, an API token, a KASSA_KAFKA_CONFIG value, and whatever the Kafka access
fixture adds): produce, stream, daily, top, serve, services status, then the ways each fails
(a wrong Redis password, an evicting Redis, Kafka unreachable, Redis stopped) and settings
errors. Every byte each produced is searched for every secret.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from common.environment import settings_variables
from common.settings import Settings
from services.cluster import KafkaCluster
from services.redis import RedisServer
from storage.connections import open_redis
from tests.conftest import Services
from tests.helpers import KASSA, free_port, login_url, run_kassa, wait_until
from tests.security.conftest import as_kassa

ALL_RUNS = 120.0
"""Seconds any one command may take."""


def _secret(kind: str) -> str:
    """A distinctive secret: it cannot appear anywhere by chance."""
    return f"{kind}-{uuid.uuid4().hex}"


def _rows(status: str) -> list[list[str]]:
    """The name, address and state of each row ``kassa services status`` printed."""
    return [line.split()[:3] for line in status.splitlines() if line.strip()]


@dataclass(frozen=True)
class KafkaAccess:
    """How kassa reaches the test's Kafka cluster: the ``KASSA_KAFKA_*`` variables (and the
    test's topic and group), the secrets among their values, and variables with a wrong
    login when the cluster checks one."""

    variables: dict[str, str]
    secrets: tuple[str, ...]
    refused: dict[str, str] | None = None


@pytest.fixture(params=["plaintext", "sasl_ssl"])
def kafka_access(request: pytest.FixtureRequest, services: Services) -> KafkaAccess:
    """``plaintext``: the session's broker, no login, but a secret KASSA_KAFKA_CONFIG value
    (``sasl.oauthbearer.config``, unused without SASL). ``sasl_ssl``: the secured broker as
    the ``kassa`` user, its SCRAM password and that config value the secrets, and a wrong
    password to be refused."""
    name = f"pytest_secrets_{request.param}_{uuid.uuid4().hex[:8]}"
    config_secret = _secret("kafka-config-secret")
    config = {"sasl.oauthbearer.config": f"principal={config_secret}"}
    names = {"KASSA_TOPIC": name, "KASSA_CONSUMER_GROUP": name}
    if request.param == "plaintext":
        variables = {"KASSA_KAFKA_BOOTSTRAP": services.kafka.bootstrap, **names}
        return KafkaAccess(
            {**variables, "KASSA_KAFKA_CONFIG": json.dumps(config)}, (config_secret,)
        )
    cluster: KafkaCluster = request.getfixturevalue("secure_kafka")
    settings = as_kassa(
        cluster, Settings(kafka_bootstrap=cluster.bootstrap, topic=name, consumer_group=name)
    )
    assert settings.kafka_sasl_password is not None
    password = settings.kafka_sasl_password.get_secret_value()
    variables = (
        {
            key: value
            for key, value in settings_variables(settings).items()
            if key.startswith("KASSA_KAFKA_") and key != "KASSA_KAFKA_HEAP"
        }
        | names
        | {"KASSA_KAFKA_CONFIG": json.dumps(config)}
    )
    wrong = _secret("wrong-kafka-password")
    return KafkaAccess(
        variables,
        (password, config_secret, wrong),
        {**variables, "KASSA_KAFKA_SASL_PASSWORD": wrong},
    )


@dataclass
class Exposure:
    """Everything kassa turned into text or files during a test, by where it appeared."""

    places: dict[str, bytes] = field(default_factory=dict)

    def add(self, where: str, content: str | bytes) -> None:
        """Record ``content`` as seen at ``where``."""
        data = content.encode() if isinstance(content, str) else content
        self.places[where] = self.places.get(where, b"") + data

    def run(
        self, where: str, *args: str, env: Mapping[str, str], status: int
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kassa --log-json *args``, record its stdout and stderr, and check that it
        ended with ``status`` (so that the path meant is the path taken)."""
        result = run_kassa("--log-json", *args, env=env, timeout=ALL_RUNS)
        self.add(f"{where}: stdout", result.stdout)
        self.add(f"{where}: stderr", result.stderr)
        assert result.returncode == status, f"{where}: exit {result.returncode}\n{result.stderr}"
        return result

    def get(self, where: str, url: str, token: str | None) -> tuple[int, str]:
        """GET ``url`` (with ``token`` as a bearer token), record the status line, headers and
        body; return the status and body."""
        request = urllib.request.Request(url)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, headers, body = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, headers, body = error.code, error.headers, error.read()
        self.add(where, f"{status}\n{headers}\n".encode() + body)
        return status, body.decode()

    def text(self, where: str) -> str:
        """What was seen at ``where``, as text."""
        return self.places.get(where, b"").decode(errors="replace")

    def add_files(self, folder: Path) -> int:
        """Record the bytes of every file under ``folder``; return how many there are."""
        files = [path for path in sorted(folder.rglob("*")) if path.is_file()]
        for path in files:
            self.add(f"file {path.relative_to(folder)}", path.read_bytes())
        return len(files)

    def leaks(self, secrets: tuple[str, ...]) -> list[str]:
        """Each place where a secret appears: the secret's kind and the text around it."""
        found = []
        for where, content in self.places.items():
            for secret in secrets:
                at = content.find(secret.encode())
                if at >= 0:
                    around = content[max(0, at - 300) : at + len(secret) + 100]
                    kind = secret.rpartition("-")[0]
                    found.append(f"{where}: {kind} in ...{around.decode(errors='replace')}...")
        return found


@dataclass
class Background:
    """A long-running ``kassa`` command whose stderr is kept for the exposure."""

    where: str
    child: subprocess.Popen[str]

    @classmethod
    def start(cls, where: str, *args: str, env: Mapping[str, str]) -> Background:
        child = subprocess.Popen(
            [*KASSA, "--log-json", *args],
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return cls(where, child)

    def finish(self, exposure: Exposure, sig: signal.Signals | None = None) -> int:
        """Stop it with ``sig`` (or wait for its own end); record its output; its status."""
        if sig is not None and self.child.poll() is None:
            self.child.send_signal(sig)
        try:
            stdout, stderr = self.child.communicate(timeout=ALL_RUNS)
        finally:
            if self.child.poll() is None:
                self.child.kill()
                self.child.communicate()
        exposure.add(f"{self.where}: stdout", stdout)
        exposure.add(f"{self.where}: stderr", stderr)
        return self.child.returncode


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _passed(scheduler: str) -> bool:
    """Whether the scheduler at ``scheduler`` finished its first pass."""
    try:
        with urllib.request.urlopen(f"{scheduler}/healthz", timeout=2) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        body = error.read()
    except OSError:
        return False
    return bool(json.loads(body)["state"] != "starting")


def _scrape(exposure: Exposure, where: str, base: str, child: Background) -> None:
    """Record ``/metrics`` and ``/healthz`` of a running job at ``base``."""
    wait_until(lambda: _answers(f"{base}/metrics") or child.child.poll() is not None, 60, where)
    assert child.child.poll() is None, f"{where} ended before its metrics could be read"
    status, metrics = exposure.get(f"{where} /metrics", f"{base}/metrics", None)
    assert status == 200
    assert metrics.strip()
    exposure.get(f"{where} /healthz", f"{base}/healthz", None)


@dataclass
class Scenario:
    """The commands of the test, in order, all recording into one :class:`Exposure`."""

    env: dict[str, str]
    redis: RedisServer
    token: str
    wrong_password: str
    day: str
    exposure: Exposure = field(default_factory=Exposure)

    @property
    def no_kafka(self) -> dict[str, str]:
        """``env`` with a Kafka address nothing answers at."""
        return {**self.env, "KASSA_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}

    def run(self, where: str, *args: str, status: int, env: Mapping[str, str] | None = None) -> str:
        """Run ``kassa *args`` (in ``env``, by default the scenario's); its stdout."""
        return self.exposure.run(where, *args, env=env or self.env, status=status).stdout

    def pipeline(self) -> None:
        """Produce, stream (its metrics read while it runs), finalize the day, read it."""
        day = self.day
        self.run("produce", "produce", "synthetic", "--count", "200", "--max", "--quiet",
                 "--start", f"{day}T09:00:00+00:00", status=0)  # fmt: skip
        port = free_port()
        stream = Background.start(
            "stream", "stream", "--idle-timeout", "4",
            env={**self.env, "KASSA_METRICS_PORT": str(port)},
        )  # fmt: skip
        _scrape(self.exposure, "stream", f"http://127.0.0.1:{port}", stream)
        assert stream.finish(self.exposure) == 0, self.exposure.text("stream: stderr")
        self.run("daily run", "daily", "run", "--day", day, "--force", "--json", "--quiet",
                 status=0)  # fmt: skip
        self.run("daily status", "daily", "status", "--to", day, status=0)
        assert self.run("top", "top", "--day", day, status=0).strip()
        self.run("top daily", "top", "--source", "daily", "--day", day, status=0)
        # Redis's row: a Kafka nothing answers at spares the status Kafka's tools (seconds)
        status = self.run("services status", "services", "status", env=self.no_kafka, status=1)
        assert ["redis", self.redis.address, "reused"] in _rows(status)

    def ask(self, api: str) -> None:
        """Requests to the API, the error paths among them."""
        get, token = self.exposure.get, self.token
        wait_until(lambda: _answers(f"{api}/health"), 60, "kassa serve")
        assert get("GET /health", f"{api}/health", token)[0] == 200
        ranking = f"{api}/api/rankings?source=daily&day={self.day}"
        assert get("GET /api/rankings", ranking, token)[0] == 200
        assert get("GET /api/manifests", f"{api}/api/manifests/{self.day}", token)[0] == 200
        assert get("GET /api/days", f"{api}/api/days", token)[0] == 200
        assert get("GET a bad day", f"{api}/api/rankings?day=not-a-day", token)[0] == 422
        assert get("GET no manifest", f"{api}/api/manifests/2001-01-01", token)[0] == 404
        get("GET without the token", f"{api}/api/rankings", None)
        get("GET with a wrong token", f"{api}/api/rankings", self.wrong_password)

    def redis_refuses(self) -> None:
        """Redis refuses the password given; Redis may evict kassa's keys."""
        refused = {**self.no_kafka, "KASSA_REDIS_URL": login_url(self.redis, self.wrong_password)}
        self.run("top, wrong password", "top", env=refused, status=9)
        status = self.run("status, wrong password", "services", "status", env=refused, status=1)
        assert ["redis", self.redis.address, "refused"] in _rows(status)
        admin = open_redis(login_url(self.redis))
        admin.config_set("maxmemory-policy", "allkeys-lru")
        try:
            evicting = self.exposure.run("stream, evicting Redis", "stream", env=self.env,
                                         status=3)  # fmt: skip
        finally:
            admin.config_set("maxmemory-policy", "noeviction")
            admin.close()
        assert "maxmemory-policy 'allkeys-lru'" in evicting.stderr

    def redis_down(self, api: str) -> None:
        """Every reader and writer of Redis with Redis stopped, the scheduler's metrics too."""
        self.redis.stop()
        self.run("top, Redis down", "top", status=3)
        self.run("stream, Redis down", "stream", status=3)
        self.run("daily run, Redis down", "daily", "run", "--day", self.day, "--force",
                 "--quiet", status=5)  # fmt: skip
        self.run("daily status, Redis down", "daily", "status", "--to", self.day, status=0)
        get, token = self.exposure.get, self.token
        assert get("GET /health, Redis down", f"{api}/health", token)[0] == 503
        ranking = f"{api}/api/rankings?source=daily&day={self.day}"
        assert get("GET /api/rankings, Redis down", ranking, token)[0] == 503
        port = free_port()
        scheduler = Background.start(
            "daily schedule, Redis down", "daily", "schedule",
            env={**self.env, "KASSA_DAILY_METRICS_PORT": str(port),
                 "KASSA_DAILY_CATCHUP_DAYS": "3"},
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _passed(url), 60, "the scheduler's first pass")
        _scrape(self.exposure, "daily schedule", url, scheduler)
        assert scheduler.finish(self.exposure, signal.SIGINT) == 130


def test_no_secret_reaches_any_output_of_the_pipeline_or_its_failures(
    services: Services, kafka_access: KafkaAccess, locked_redis: RedisServer, tmp_path: Path
) -> None:
    assert locked_redis.password is not None
    token, wrong_password = _secret("api-token"), _secret("wrong-redis-password")
    secrets = (locked_redis.password.get_secret_value(), token, wrong_password)
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("KASSA_")},
        **kafka_access.variables,
        "KASSA_REDIS_URL": login_url(locked_redis),
        "KASSA_API_TOKEN": token,
        "KASSA_DATA_DIR": str(tmp_path / "data"),
        "KASSA_STATE_DIR": str(tmp_path / "state"),
        "KASSA_TIMEZONE": "UTC",
        "KASSA_METRICS_PORT": "0",
        "KASSA_DAILY_METRICS_PORT": "0",
    }
    day = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    scenario = Scenario(env, locked_redis, token, wrong_password, day)

    scenario.pipeline()
    api_port = free_port()
    serve = Background.start("serve", "serve", env={**env, "KASSA_API_PORT": str(api_port)})
    try:
        api = f"http://127.0.0.1:{api_port}"
        scenario.ask(api)
        scenario.redis_refuses()
        scenario.run("stream, no Kafka", "stream", env=scenario.no_kafka, status=4)
        if kafka_access.refused is not None:
            refused = {**env, **kafka_access.refused}
            scenario.run("daily run, wrong Kafka password", "daily", "run", "--day", day,
                         env=refused, status=9)  # fmt: skip
        scenario.redis_down(api)
    finally:
        serve.finish(scenario.exposure, signal.SIGINT)

    assert scenario.exposure.add_files(tmp_path / "data") >= 3  # manifests, Parquet tables
    assert scenario.exposure.leaks((*secrets, *kafka_access.secrets)) == []
    hidden = f"redis://:***@{locked_redis.address}/0"  # the URL is named, its password hidden
    assert hidden in scenario.exposure.text("top, Redis down: stderr")


def test_no_secret_reaches_a_settings_error(tmp_path: Path) -> None:
    password, token, config_secret = (
        _secret("redis-password"),
        _secret("api-token"),
        _secret("kafka-config-secret"),
    )
    token_file = tmp_path / "token"
    token_file.write_text(token)
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("KASSA_")},
        "KASSA_REDIS_URL": f"redis://:{password}@127.0.0.1:6379/0",
        "KASSA_API_TOKEN": token,
        "KASSA_KAFKA_CONFIG": json.dumps({"sasl.oauthbearer.config": config_secret}),
        "KASSA_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "KASSA_STATE_DIR": str(tmp_path / "state"),
        "KASSA_DATA_DIR": str(tmp_path / "data"),
    }
    url = "KASSA_REDIS_URL='redis:"
    cases = [
        ("another setting", {"KASSA_TIMEZONE": "Nowhere/Town"}, "KASSA_TIMEZONE='Nowhere/Town'"),
        ("port", {"KASSA_REDIS_URL": f"redis://:{password}@127.0.0.1:63x9/0"}, url),
        ("host", {"KASSA_REDIS_URL": f"redis://:{password}@/0"}, url),
        ("database", {"KASSA_REDIS_URL": f"redis://:{password}@h/zero"}, url),
        ("a / unescaped", {"KASSA_REDIS_URL": f"redis://:{password}/x@h/0"}, url),
        ("redis:/", {"KASSA_REDIS_URL": f"redis:/:{password}@h/0"}, url),
        ("not a URL", {"KASSA_REDIS_URL": f"redis://:{password}@[::1/0"}, url),
        ("not JSON", {"KASSA_KAFKA_CONFIG": f'{{"x": "{config_secret}"'}, "KASSA_KAFKA_CONFIG"),
        ("token twice", {"KASSA_API_TOKEN_FILE": str(token_file)}, "KASSA_API_TOKEN_FILE"),
        ("SASL password, no SASL", {"KASSA_KAFKA_SASL_PASSWORD": password}, "PASSWORD are set"),
    ]
    exposure = Exposure()
    for where, variables, named in cases:
        result = exposure.run(where, "top", env={**env, **variables}, status=2)
        assert named in result.stderr, result.stderr
    # a value librdkafka refuses is found by the first command that needs Kafka
    refused = {"KASSA_KAFKA_CONFIG": json.dumps({"debug": config_secret})}
    result = exposure.run("librdkafka refuses", "topics", "describe", env={**env, **refused},
                          status=2)  # fmt: skip
    assert 'configuration property "debug"' in result.stderr, result.stderr

    assert exposure.leaks((password, token, config_secret)) == []
