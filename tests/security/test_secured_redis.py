"""kassa on a secured Redis: TLS only, the server's own CA, and an ACL user holding only the
rules docs/security.md lists (``kassa services up --secure``'s Redis).

The pipeline is exact as that user over TLS (on the secured Kafka too), its password read
from a file, and Redis logs no denial; a wrong password, a server certificate from an
unknown CA and a missing ACL permission are each one line naming the fix and exit status 9.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest

from common.settings import Settings
from services.redis import RedisServer
from services.security import KASSA_USER, kassa_redis_rules, make_ca
from tests.helpers import one_error_line, repo_root, run_kassa, settings_env
from tests.jobs.stream.helpers import publish_checkouts, valid_checkouts
from tests.pipeline import assert_pipeline_exact
from tests.security.conftest import secure_redis_admin

DAY = date(2026, 11, 21)
ACCESS_REFUSED = 9


def _denials(server: RedisServer) -> list[dict[str, object]]:
    """The entries of Redis's ACL log (every command or key refused to a user)."""
    admin = secure_redis_admin(server)
    try:
        entries: list[dict[str, object]] = admin.acl_log()
        return entries
    finally:
        admin.close()


@pytest.fixture
def clean_acl_log(secure_redis: RedisServer) -> RedisServer:
    """The secured Redis with its ACL log emptied."""
    admin = secure_redis_admin(secure_redis)
    admin.acl_log_reset()
    admin.close()
    return secure_redis


def _password_by_file(settings: Settings, tmp_path: Path) -> dict[str, str]:
    """The environment of ``settings`` with the Redis password in a file, not a variable."""
    assert settings.redis_password is not None
    secret = tmp_path / "redis_password"
    secret.write_text(settings.redis_password.get_secret_value() + "\n")
    env = settings_env(settings)
    del env["KASSA_REDIS_PASSWORD"]
    return env | {"KASSA_REDIS_PASSWORD_FILE": str(secret)}


def test_the_pipeline_is_exact_as_the_kassa_redis_user_over_tls_and_needs_no_other_rule(
    clean_acl_log: RedisServer, secure_redis_settings: Settings, tmp_path: Path
) -> None:
    assert_pipeline_exact(secure_redis_settings)
    env = _password_by_file(secure_redis_settings, tmp_path)
    top = run_kassa("top", "--day", DAY.isoformat(), "--json", env=env)
    assert top.returncode == 0, top.stderr
    assert '"sku"' in top.stdout
    daily = run_kassa("top", "--source", "daily", "--day", DAY.isoformat(), env=env)
    assert daily.returncode == 0, daily.stderr
    assert _denials(clean_acl_log) == []


def test_a_wrong_redis_password_is_one_line_naming_the_user_and_the_setting(
    secure_redis_settings: Settings,
) -> None:
    env = settings_env(secure_redis_settings) | {"KASSA_REDIS_PASSWORD": "not-the-password-23"}
    result = run_kassa("top", "--day", DAY.isoformat(), env=env)
    assert result.returncode == ACCESS_REFUSED, result.stderr
    line = one_error_line(result.stderr)
    assert f"refused the login of user {KASSA_USER!r}" in line
    assert "KASSA_REDIS_PASSWORD" in line
    assert "not-the-password-23" not in result.stderr + result.stdout


def test_a_redis_certificate_from_an_unknown_ca_is_one_line_naming_the_ca_setting(
    secure_redis_settings: Settings, tmp_path: Path
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    make_ca(other_ca, tmp_path / "other-ca-key.pem")
    env = settings_env(secure_redis_settings) | {"KASSA_REDIS_SSL_CA_LOCATION": str(other_ca)}
    result = run_kassa("stream", "--idle-timeout", "3", env=env)
    assert result.returncode == ACCESS_REFUSED, result.stderr
    line = one_error_line(result.stderr)
    assert "refused TLS" in line
    assert "certificate verify failed" in line
    assert f"KASSA_REDIS_SSL_CA_LOCATION={str(other_ca)!r}" in line


@pytest.fixture
def revoke_redis(secure_redis: RedisServer) -> Iterator[Callable[[str], None]]:
    """Take one command away from Redis's ``kassa`` user for the test (given back after)."""
    admin = secure_redis_admin(secure_redis)
    taken: list[str] = []

    def take(command: str) -> None:
        admin.execute_command("ACL", "SETUSER", KASSA_USER, f"-{command}")
        taken.append(command)

    yield take
    for command in taken:
        admin.execute_command("ACL", "SETUSER", KASSA_USER, f"+{command}")
    admin.close()


@pytest.mark.parametrize(
    ("command", "run"),
    [
        ("evalsha", ("stream", "--idle-timeout", "3")),
        ("rename", ("daily", "run", "--day", "2026-11-21", "--force")),
        ("exists", ("top", "--day", "2026-11-21")),
    ],
)
def test_a_missing_redis_permission_is_one_line_naming_the_user_and_the_rules(
    secure_redis_settings: Settings,
    revoke_redis: Callable[[str], None],
    command: str,
    run: tuple[str, ...],
) -> None:
    publish_checkouts(secure_redis_settings, valid_checkouts(20, seed=3, day=DAY))
    revoke_redis(command)
    result = run_kassa(*run, env=settings_env(secure_redis_settings))
    assert result.returncode == ACCESS_REFUSED, result.stderr
    line = one_error_line(result.stderr)
    assert f"denied user {KASSA_USER!r}" in line
    assert "docs/security.md" in line


def test_docs_list_exactly_the_redis_acl_rules_services_up_secure_gives() -> None:
    documented = (repo_root() / "docs" / "security.md").read_text()
    section = documented.split("## The Redis ACL rules kassa needs")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if re.match(r"\| `[^`]+` \|", line)]
    assert rows == [f"| `{rule.rule}` | {rule.why} |" for rule in kassa_redis_rules()]
