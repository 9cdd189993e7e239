"""What an operator sees when KASSA_DATA_DIR names no place kassa can write, or an object store
that refuses kassa's credentials: one line, a documented exit status, no secret."""

from __future__ import annotations

import os
import re
from pathlib import Path

from common.settings import Settings
from services.s3proxy import S3ProxyServer
from tests.helpers import run_kassa, settings_env

WRONG_SECRET = "wrong-secret-4f1c9e2a7b"


def test_an_unknown_scheme_is_refused_at_start_naming_the_value_and_the_accepted_forms() -> None:
    env = {**os.environ, "KASSA_DATA_DIR": "ftp://files.example/kassa"}

    for command in (("daily", "status"), ("daily", "run", "--day", "2026-11-20")):
        result = run_kassa(*command, env=env, timeout=60)

        assert result.returncode == 2, result.stderr
        (line,) = [line for line in result.stderr.splitlines() if "KASSA_DATA_DIR" in line]
        assert "KASSA_DATA_DIR='ftp://files.example/kassa'" in line
        assert "the scheme 'ftp' is not one kassa writes to" in line
        for form in ("a local folder", "s3://BUCKET/PREFIX", "gs://", "abfs://"):
            assert form in line
        assert not Path("ftp:").exists(), "no local folder 'ftp:' was made"


def test_wrong_credentials_are_one_line_with_exit_status_8_and_no_secret(
    s3_settings: Settings, s3proxy: S3ProxyServer
) -> None:
    env = {**settings_env(s3_settings), "AWS_SECRET_ACCESS_KEY": WRONG_SECRET}

    for command in (("daily", "run", "--day", "2026-11-20"), ("daily", "status")):
        result = run_kassa(*command, env=env, timeout=120)

        assert result.returncode == 8, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert re.match(r"kassa: error: cannot (read|list) s3://kassa/pytest-", line), line
        assert "in KASSA_DATA_DIR='s3://kassa/pytest-" in line
        assert "check the store's credentials" in line
        assert WRONG_SECRET not in result.stdout + result.stderr
        assert s3proxy.secret_key() not in result.stdout + result.stderr
