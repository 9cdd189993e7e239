"""A real S3 server on 127.0.0.1 for an object-store ``KASSA_DATA_DIR``: S3Proxy.

S3Proxy (``org.gaul:s3proxy``, its self-contained ``jar-with-dependencies`` resolved from Maven
Central into ``<cache_dir>/s3proxy-<version>``) runs on the machine's Java 17 with its
``transient`` backend: the objects live in the server's memory and go when it stops. Its
``filesystem`` backend is not used: it lists each folder as a 4 KB object, which breaks a
hive-partitioned read (pyarrow, Polars and DuckDB take it for a Parquet file).

The server requires AWS signatures from one access key, whose secret is made at the first start
and kept in ``<home>/client.env`` (mode 0600) with everything an S3 client needs
(:meth:`S3ProxyServer.client_environment`); the server's own properties file (also 0600) holds
the same pair, never the command line.

Two workarounds are for S3Proxy only (real S3 and most S3-compatible stores need neither):
``AWS_REQUEST_CHECKSUM_CALCULATION=WHEN_REQUIRED`` and ``AWS_RESPONSE_CHECKSUM_VALIDATION=
WHEN_REQUIRED`` in the client environment. pyarrow's AWS SDK otherwise sends the flexible
checksums of recent SDKs, and S3Proxy answers multipart uploads with
``XAmzContentSHA256Mismatch`` and breaks the downloads the SDK then validates.
"""

from __future__ import annotations

import logging
import os
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pyarrow.fs as pafs

from services.exceptions import ServiceError
from services.kafka import fetch_with_maven, java_tools
from services.process import RecordedServer, await_ready, spawn

logger = logging.getLogger(__name__)

ACCESS_KEY: Final = "kassa"
BUCKET: Final = "kassa"
PREFIX: Final = "snapshots"
REGION: Final = "us-east-1"
S3PROXY_ONLY: Final = {
    "AWS_REQUEST_CHECKSUM_CALCULATION": "WHEN_REQUIRED",
    "AWS_RESPONSE_CHECKSUM_VALIDATION": "WHEN_REQUIRED",
}
"""What pyarrow's AWS SDK needs to talk to S3Proxy (see the module docstring); real S3 does
not."""


def s3proxy_home(cache_dir: Path, version: str) -> Path:
    """Where the S3Proxy ``version`` jar is kept."""
    return cache_dir / f"s3proxy-{version}"


def ensure_s3proxy(cache_dir: Path, version: str) -> Path:
    """Fetch the S3Proxy ``version`` jar with Maven unless cached; return its path."""
    home = s3proxy_home(cache_dir, version)
    jar = home / "libs" / f"s3proxy-{version}-jar-with-dependencies.jar"
    if jar.exists():
        return jar
    logger.info("fetching S3Proxy %s from Maven Central into %s", version, jar.parent)
    failure = (
        f"Maven could not fetch S3Proxy {version} (KASSA_S3PROXY_VERSION, org.gaul:s3proxy "
        "jar-with-dependencies); is Maven Central reachable and the version published?"
    )
    fetch_with_maven(home, "s3proxy-pom.xml", {"@S3PROXY_VERSION@": version}, failure)
    if not jar.exists():
        msg = f"Maven finished but {jar} is missing; delete {home} and retry"
        raise ServiceError(msg)
    return jar


@dataclass(frozen=True)
class S3ProxyServer(RecordedServer):
    """One local S3Proxy (transient backend) with its bucket :data:`BUCKET`."""

    PID_NAME = "s3proxy.pid"

    host: str
    port: int
    home: Path
    jar: Path
    heap: str = "256m"

    @property
    def endpoint(self) -> str:
        """``host:port``, as ``endpoint_override`` takes it."""
        return f"{self.host}:{self.port}"

    @property
    def client_env(self) -> Path:
        """The file of client settings (mode 0600): ``set -a; . FILE; set +a``."""
        return self.home / "client.env"

    def data_url(self, prefix: str = PREFIX) -> str:
        """The ``KASSA_DATA_DIR`` of ``prefix`` in the bucket on this server."""
        query = f"endpoint_override={self.endpoint}&scheme=http&region={REGION}"
        return f"s3://{BUCKET}/{prefix}?{query}"

    def secret_key(self) -> str:
        """The access key's secret, made at the first start."""
        path = self.home / "secret-key"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            _write_private(path, secrets.token_urlsafe(24))
        return path.read_text().strip()

    def client_environment(self) -> dict[str, str]:
        """The variables an S3 client (kassa, pyarrow, Polars, DuckDB's httpfs via its
        credential chain) needs for this server, S3Proxy's workarounds included."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": self.secret_key(),
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": f"http://{self.endpoint}",
            "AWS_EC2_METADATA_DISABLED": "true",
            **S3PROXY_ONLY,
            "KASSA_DATA_DIR": self.data_url(),
        }

    def answers(self, timeout: float = 1.0) -> bool:
        """Whether an HTTP server answers at the endpoint (S3Proxy refuses an unsigned GET)."""
        try:
            with urllib.request.urlopen(f"http://{self.endpoint}/", timeout=timeout):
                return True
        except urllib.error.HTTPError:
            return True
        except (TimeoutError, urllib.error.URLError, OSError):
            return False

    def start(self, timeout: float = 60.0) -> int:
        """Start S3Proxy, wait until it answers, create the bucket; return its pid."""
        java, _ = java_tools()
        self.home.mkdir(parents=True, exist_ok=True)
        properties = self.home / "s3proxy.conf"
        _write_private(
            properties,
            "\n".join(
                [
                    f"s3proxy.endpoint=http://{self.endpoint}",
                    "s3proxy.authorization=aws-v2-or-v4",
                    f"s3proxy.identity={ACCESS_KEY}",
                    f"s3proxy.credential={self.secret_key()}",
                    "jclouds.provider=transient",
                    "jclouds.identity=unused",
                    "jclouds.credential=unused",
                ]
            )
            + "\n",
        )
        _write_private(
            self.client_env,
            "".join(f"{name}={value}\n" for name, value in self.client_environment().items()),
        )
        command = [java, f"-Xmx{self.heap}", "-jar", str(self.jar), "--properties", str(properties)]
        log_file = self.home / "s3proxy.log"
        pid = spawn(command, log_file, self.pid_file)
        await_ready(pid, self.answers, f"S3Proxy at {self.endpoint}", log_file, timeout)
        self.create_bucket()
        logger.info("S3Proxy answers at %s (pid %d), bucket %r", self.endpoint, pid, BUCKET)
        return pid

    def create_bucket(self) -> None:
        """Create :data:`BUCKET` (kept if it exists)."""
        store = pafs.S3FileSystem(
            access_key=ACCESS_KEY,
            secret_key=self.secret_key(),
            endpoint_override=self.endpoint,
            scheme="http",
            region=REGION,
            allow_bucket_creation=True,
        )
        store.create_dir(BUCKET)


def _write_private(path: Path, content: str) -> None:
    """Write ``path`` readable by this user only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content)
