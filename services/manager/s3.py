"""The local S3 server (S3Proxy) of ``kassa services up --s3``, and its row."""

from __future__ import annotations

from common.settings import Settings
from services.manager.rows import ServiceStatus, State
from services.s3proxy import S3ProxyServer, ensure_s3proxy


def s3proxy_server(settings: Settings) -> S3ProxyServer:
    """The local S3Proxy on ``KASSA_S3PROXY_PORT``, kept under ``KASSA_STATE_DIR``."""
    return S3ProxyServer(
        "127.0.0.1",
        settings.s3proxy_port,
        settings.state_dir / "s3proxy",
        ensure_s3proxy(settings.cache_dir, settings.s3proxy_version),
    )


def up_s3(server: S3ProxyServer) -> ServiceStatus:
    """Start S3Proxy unless it runs; its status names the client settings file to load."""
    state: State = "running"
    if server.pid is None:
        server.start()
        state = "started"
    return s3_status(server, state)


def s3_status(server: S3ProxyServer, state: State) -> ServiceStatus:
    """The row of S3Proxy ``server`` in ``state``: the client settings file to load."""
    return ServiceStatus(
        "s3proxy",
        server.endpoint,
        state,
        "S3Proxy (transient: objects in memory)" if state != "down" else "",
        server.pid,
        detail=f"clients: set -a; . {server.client_env}; set +a" if state != "down" else "",
        security="AWS signature v4 (access key 'kassa')",
    )
