"""A real S3 server for the tests of this folder: S3Proxy (transient backend) started by the
code behind ``kassa services up --s3`` (:mod:`services.s3proxy`) on a free port.

It starts once per test session (this folder is one pytest-xdist unit, see
``tests/conftest.py``); its client settings (credentials, region, endpoint and S3Proxy's two
checksum workarounds) are in this process's environment for the session, so pyarrow here and
every ``kassa`` child read them as a deployment would. Each test gets its own prefix of the
bucket as ``KASSA_DATA_DIR``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from common.settings import Settings
from common.settings.location import DataUrl
from services.s3proxy import S3ProxyServer, ensure_s3proxy
from tests.helpers import free_port


@pytest.fixture(scope="session")
def s3proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3ProxyServer]:
    """S3Proxy with the bucket ``kassa``, its client settings in the environment."""
    defaults = Settings()
    server = S3ProxyServer(
        "127.0.0.1",
        free_port(),
        tmp_path_factory.mktemp("s3proxy"),
        ensure_s3proxy(defaults.cache_dir, defaults.s3proxy_version),
    )
    server.start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in server.client_environment().items():
                if name.startswith("AWS_"):
                    patch.setenv(name, value)
            yield server
    finally:
        server.stop()


@pytest.fixture
def s3_settings(
    settings: Settings, s3proxy: S3ProxyServer, request: pytest.FixtureRequest
) -> Settings:
    """The test's ``settings`` with ``KASSA_DATA_DIR`` a fresh prefix of the S3 bucket."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:60].strip("-")
    prefix = f"pytest-{name}-{uuid.uuid4().hex[:8]}"
    return settings.model_copy(update={"data_dir": DataUrl(s3proxy.data_url(prefix))})
