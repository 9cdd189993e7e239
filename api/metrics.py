"""The API's own Prometheus metrics, served at ``/metrics``: requests by route and status,
and their durations (plain ``prometheus_client``, in a registry of the application's own).

:class:`RequestMetrics` is an ASGI middleware outside every other one, so it also counts the
401s of the token check and the 500s of an error. A request is labelled with the template
of the route that answered it (``/api/items/{sku}``, not the SKU itself: the number of
series stays bounded), or ``unmatched``.
"""

from __future__ import annotations

import time
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED: Final = "unmatched"
"""The route label of a request no route answered (unknown path, or refused before routing)."""
SECONDS_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    """The API's metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kassa_api_requests",
            "HTTP requests answered, by method, route template and status code",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "kassa_api_request_seconds",
            "time from a request's arrival to the end of its answer, by method and route",
            ["method", "route"],
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )


class RequestMetrics:
    """ASGI middleware counting and timing each HTTP request into ``metrics``."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, noting the status it is answered with and when it ends."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the application fails before answering

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"]
            self._metrics.requests.labels(method, route, str(status)).inc()
            self._metrics.seconds.labels(method, route).observe(time.perf_counter() - started)
