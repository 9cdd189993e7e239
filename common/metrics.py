"""The HTTP endpoint of a job's metrics: ``/metrics`` (Prometheus text) and ``/healthz`` (JSON).

The stream job (:mod:`jobs.stream.metrics`) and the daily scheduler
(:mod:`jobs.daily.metrics`) each keep their metrics in a registry of their own and serve it
with a :class:`MetricsServer`.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

logger = logging.getLogger(__name__)

HOST: Final = "127.0.0.1"


class Metrics(Protocol):
    """What a :class:`MetricsServer` serves."""

    registry: CollectorRegistry

    def health(self) -> tuple[int, dict[str, Any]]:
        """HTTP status and body of ``/healthz``."""
        ...


class MetricsServer:
    """Serves ``/metrics`` and ``/healthz`` of ``metrics`` from a daemon thread named ``name``."""

    def __init__(
        self, metrics: Metrics, port: int, host: str = HOST, *, name: str = "kassa-metrics"
    ) -> None:
        self._server = ThreadingHTTPServer((host, port), _handler_for(metrics))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def port(self) -> int:
        """The port actually bound (useful when 0 was asked for)."""
        port: int = self._server.server_address[1]
        return port

    def start(self) -> None:
        """Start serving."""
        self._thread.start()
        host, port = self._server.server_address[:2]
        logger.info("%s: metrics on http://%s:%d/metrics", self._thread.name, host, port)

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()


def _handler_for(metrics: Metrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                status, body, kind = 200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST
            elif self.path == "/healthz":
                status, payload = metrics.health()
                body, kind = json.dumps(payload).encode(), "application/json"
            else:
                status, body, kind = 404, b"try /metrics or /healthz\n", "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("metrics request: " + format, *args)

    return Handler
