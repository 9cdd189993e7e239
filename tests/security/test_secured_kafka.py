"""kassa on a secured Kafka: SASL_SSL with SCRAM-SHA-512, the brokers' own CA, and ACLs that
give the ``kassa`` user only what docs/security.md lists.

The pipeline is exact as the ``kassa`` user on one node and on three, and needs no ACL
beyond the list (the brokers log no denial); each bad credential is one line naming the
fix and exit status 9; ``kassa services up --secure`` makes all of it and says how.
"""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
from confluent_kafka.admin import AclBindingFilter, AdminClient
from pydantic import SecretStr

from common.settings import Settings
from services.cluster import KafkaCluster
from services.security import KASSA_USER, Grant, kassa_grants, make_ca
from tests.api.helpers import basic, call, serving_child
from tests.helpers import free_port, one_error_line, repo_root, run_kassa, settings_env, wait_until
from tests.jobs.stream.helpers import publish_checkouts, run_once, valid_checkouts
from tests.pipeline import assert_pipeline_exact

DAY = date(2026, 11, 21)
ACCESS_REFUSED = 9


def _denials(cluster: KafkaCluster, since: dict[Path, int]) -> list[str]:
    """The authorizer's denials of the ``kassa`` user logged by any node after ``since``."""
    lines = []
    for node in cluster.nodes:
        with node.log_file.open("rb") as log:
            log.seek(since.get(node.log_file, 0))
            text = log.read().decode(errors="replace")
        lines += [line for line in text.splitlines() if f"User:{KASSA_USER} is Denied" in line]
    return lines


def _log_ends(cluster: KafkaCluster) -> dict[Path, int]:
    return {node.log_file: node.log_file.stat().st_size for node in cluster.nodes}


def test_the_pipeline_is_exact_as_the_kassa_user_over_sasl_ssl_and_needs_no_other_acl(
    secure_kafka: KafkaCluster, secure_settings: Settings
) -> None:
    since = _log_ends(secure_kafka)
    assert_pipeline_exact(secure_settings)
    assert _denials(secure_kafka, since) == []


def test_the_api_on_a_secured_cluster_asks_for_its_token_and_health_stays_open(
    secure_settings: Settings, tmp_path: Path
) -> None:
    publish_checkouts(secure_settings, valid_checkouts(50, seed=9, day=DAY))
    run_once(secure_settings)
    token = "api-token-for-the-secured-test-44"
    with serving_child(secure_settings, tmp_path, KASSA_API_TOKEN=token) as base:

        def probed() -> bool:
            return json.loads(call(f"{base}/health").text)["kafka"]["lag"] is not None

        wait_until(probed, 60, "the API's lag probe of the secured cluster")
        health = call(f"{base}/health")
        ranking = f"{base}/api/rankings?source=live&day={DAY}&n=3"
        refused = call(ranking)
        by_bearer = call(ranking, f"Bearer {token}")
        by_basic = call(ranking, basic("anyone", token))
    assert health.status == 200, health.text
    assert json.loads(health.text)["kafka"]["lag"] == 0  # the probe logged in, read the group
    assert refused.status == 401
    assert by_bearer.status == by_basic.status == 200
    assert json.loads(by_bearer.text) == json.loads(by_basic.text)
    assert json.loads(by_bearer.text)["items"]
    log = (tmp_path / "serve.log").read_text()
    password = secure_settings.kafka_sasl_password
    assert password is not None
    for shown in (health.text, refused.text, log):
        assert token not in shown
        assert password.get_secret_value() not in shown


def test_an_oauthbearer_token_from_a_callback_logs_kassa_in(
    secure_kafka: KafkaCluster, secure_settings: Settings
) -> None:
    # what Amazon MSK IAM needs: librdkafka asks a Python function for each token
    by_token = secure_settings.model_copy(
        update={
            "kafka_sasl_mechanism": "OAUTHBEARER",
            "kafka_sasl_username": "",
            "kafka_sasl_password": None,
            "kafka_oauth_callback": "tests.security.oauth_token:unsecured_token",
            "kafka_config": SecretStr(json.dumps({"sasl.oauthbearer.config": "sub=kassa"})),
        }
    )
    since = _log_ends(secure_kafka)
    assert_pipeline_exact(by_token)
    assert _denials(secure_kafka, since) == []
    stranger = settings_env(by_token) | {
        "KASSA_KAFKA_CONFIG": json.dumps({"sasl.oauthbearer.config": "sub=stranger"})
    }
    result = run_kassa("produce", "synthetic", "--count", "5", "--quiet", env=stranger)
    assert result.returncode == ACCESS_REFUSED, result.stderr
    # a principal without ACLs: it cannot see the topic, so kassa would create it
    assert f"CREATE on topic {by_token.topic!r}" in one_error_line(result.stderr)


def test_the_pipeline_is_exact_on_three_secured_brokers(
    secure_cluster: KafkaCluster, secure_cluster_settings: Settings
) -> None:
    since = _log_ends(secure_cluster)
    assert_pipeline_exact(secure_cluster_settings)
    assert _denials(secure_cluster, since) == []


@pytest.fixture
def other_ca(tmp_path: Path) -> Path:
    """A CA that signed none of the brokers' certificates."""
    certificate = tmp_path / "other-ca.pem"
    make_ca(certificate, tmp_path / "other-ca-key.pem")
    return certificate


def test_a_wrong_password_is_one_line_naming_the_user_and_the_setting(
    secure_settings: Settings,
) -> None:
    env = settings_env(secure_settings) | {"KASSA_KAFKA_SASL_PASSWORD": "not-the-password-17"}
    result = run_kassa("topics", "describe", env=env)
    assert result.returncode == ACCESS_REFUSED, result.stderr
    line = one_error_line(result.stderr)
    assert "refused the SCRAM-SHA-512 login of user 'kassa'" in line
    assert "KASSA_KAFKA_SASL_PASSWORD" in line
    assert "not-the-password-17" not in result.stderr + result.stdout


def test_a_broker_certificate_from_an_unknown_ca_is_one_line_naming_the_ca_setting(
    secure_settings: Settings, other_ca: Path
) -> None:
    env = settings_env(secure_settings) | {"KASSA_KAFKA_SSL_CA_LOCATION": str(other_ca)}
    result = run_kassa("daily", "status", env=env)
    assert result.returncode == ACCESS_REFUSED, result.stderr
    line = one_error_line(result.stderr)
    assert "TLS with Kafka" in line
    assert "certificate verify failed" in line
    assert f"KASSA_KAFKA_SSL_CA_LOCATION={str(other_ca)!r}" in line


def test_a_certificate_for_another_host_is_refused_in_one_line(
    secure_settings: Settings,
) -> None:
    port = secure_settings.kafka_bootstrap.rpartition(":")[2]
    env = settings_env(secure_settings) | {"KASSA_KAFKA_BOOTSTRAP": f"localhost:{port}"}
    result = run_kassa("stream", "--idle-timeout", "3", env=env)
    assert result.returncode == ACCESS_REFUSED, result.stderr
    line = one_error_line(result.stderr)
    assert "certificate verify failed" in line
    assert "name the host in KASSA_KAFKA_BOOTSTRAP" in line


@pytest.fixture
def revoke(secure_kafka: KafkaCluster) -> Iterator[Callable[[Grant], None]]:
    """Take one of the ``kassa`` user's ACLs away for the test (it is given back after)."""
    secure = secure_kafka.secure
    assert secure is not None
    admin = AdminClient({**secure.admin_config(), "bootstrap.servers": secure_kafka.bootstrap})
    taken: list[Grant] = []

    def take(grant: Grant) -> None:
        binding = grant.binding(KASSA_USER)
        found = AclBindingFilter(
            binding.restype,
            binding.name,
            binding.resource_pattern_type,
            binding.principal,
            binding.host,
            binding.operation,
            binding.permission_type,
        )
        assert admin.delete_acls([found])[found].result(timeout=30)
        taken.append(grant)

    yield take
    for grant in taken:
        binding = grant.binding(KASSA_USER)
        admin.create_acls([binding])[binding].result(timeout=30)


def _grant(settings: Settings, resource: str, operation: str) -> Grant:
    (grant,) = [
        g
        for g in kassa_grants(settings)
        if g.resource.name == resource
        and g.operation.name == operation
        and g.name in (settings.topic, settings.consumer_group)
    ]
    return grant


@pytest.mark.parametrize(
    ("resource", "operation", "command", "named"),
    [
        ("TOPIC", "WRITE", ("produce", "synthetic", "--count", "20", "--quiet"), "topic"),
        ("GROUP", "READ", ("stream", "--idle-timeout", "3"), "group"),
        ("TOPIC", "DESCRIBE_CONFIGS", ("stream", "--idle-timeout", "3"), "topic"),
        ("TOPIC", "READ", ("daily", "run", "--day", "2026-11-21", "--force"), "topic"),
    ],
)
def test_a_missing_acl_is_one_line_naming_the_operation_and_the_resource(  # noqa: PLR0917
    secure_settings: Settings,
    revoke: Callable[[Grant], None],
    resource: str,
    operation: str,
    command: tuple[str, ...],
    named: str,
) -> None:
    if command[0] != "produce":
        publish_checkouts(secure_settings, valid_checkouts(20, seed=3, day=DAY))
    revoke(_grant(secure_settings, resource, operation))
    result = run_kassa(*command, env=settings_env(secure_settings))
    assert result.returncode == ACCESS_REFUSED, result.stderr
    line = one_error_line(result.stderr)
    name = secure_settings.topic if named == "topic" else secure_settings.consumer_group
    assert f"{operation} on {named} {name!r}" in line
    assert "user 'kassa'" in line or "kassa's Kafka user" in line


def test_services_up_secure_makes_the_cluster_and_redis_and_says_how_to_connect(
    tmp_path: Path,
) -> None:
    port, controller, redis_port = free_port(), free_port(), free_port()
    env = settings_env(
        Settings(
            kafka_bootstrap=f"127.0.0.1:{port}",
            kafka_controller_port=controller,
            kafka_heap="384m",
            redis_url=f"redis://127.0.0.1:{redis_port}/0",
            state_dir=tmp_path / "state",
            data_dir=tmp_path / "data",
        )
    )
    up = run_kassa("services", "up", "--secure", env=env, timeout=240)
    try:
        assert up.returncode == 0, up.stderr
        client_env = tmp_path / "state" / "secure" / "kassa.env"
        assert f"clients: set -a; . {client_env}; set +a" in up.stdout
        status = run_kassa("services", "status", env=env, timeout=120)
        assert status.returncode == 0, status.stderr + status.stdout
        kafka_lines = [line for line in status.stdout.splitlines() if line.startswith("kafka")]
        assert kafka_lines
        secure = tmp_path / "state" / "secure"
        redis_tls = f"TLS (CA {secure / 'ca.pem'}), ACL users 'admin', 'kassa', default user off"
        assert re.search(rf"^redis .* {re.escape(redis_tls)}", status.stdout, re.MULTILINE)
        for line in kafka_lines:
            assert (
                f"SASL_SSL (SCRAM-SHA-512), CA {tmp_path / 'state' / 'secure' / 'ca.pem'}" in line
            )
        secured = env | dict(
            line.split("=", 1) for line in client_env.read_text().splitlines() if line
        )
        produced = run_kassa("produce", "synthetic", "--count", "50", "--quiet", env=secured)
        assert produced.returncode == 0, produced.stderr
        assert "50 delivered, 0 failed" in produced.stderr
        assert secured["KASSA_REDIS_URL"] == f"rediss://127.0.0.1:{redis_port}/0"
        stores = run_kassa("top", "--stores", env=secured)
        assert stores.returncode == 0, stores.stderr
        plaintext = run_kassa("topics", "describe", env=env)
        assert plaintext.returncode != 0
        assert run_kassa("top", "--stores", env=env).returncode != 0
        passwords = [
            (secure / name).read_text().strip()
            for name in ("kassa.password", "redis-kassa.password", "redis-admin.password")
        ]
        redis_config = (tmp_path / "state" / "redis" / "redis.conf").read_text()
        for output in (up.stdout, up.stderr, status.stdout, produced.stderr, redis_config):
            for password in passwords:
                assert password not in output
        mode = stat.filemode((client_env.parent / "kassa.password").stat().st_mode)
        assert mode == "-rw-------"
    finally:
        down = run_kassa("services", "down", env=env, timeout=120)
    assert down.returncode == 0, down.stderr


def test_docs_list_exactly_the_acls_services_up_secure_grants() -> None:
    documented = (repo_root() / "docs" / "security.md").read_text()
    section = documented.split("## The Kafka ACLs kassa needs")[1].split("\n## ")[0]
    rows = {
        line
        for line in section.splitlines()
        if re.match(r"\| (Topic|Group|TransactionalId) \|", line)
    }
    granted = {
        f"| {g.kind} | `{g.name}` | {g.operation.name} | {g.needed_by} |"
        for g in kassa_grants(Settings())
    }
    assert rows == granted
