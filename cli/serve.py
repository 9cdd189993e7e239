"""``kassa serve``: the HTTP API and the live dashboard (FastAPI on uvicorn)."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from api.app import create_app
from common.settings import Settings

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve``."""
    parser = subparsers.add_parser(
        "serve",
        help="serve the HTTP API and the live dashboard",
        description="Serve the rankings in Redis over HTTP: the dashboard at /, the API under "
        "/api, /health, and the OpenAPI documentation at /docs. Binds KASSA_API_HOST:"
        "KASSA_API_PORT (127.0.0.1:8000 by default). With KASSA_API_TOKEN set, every route but "
        "/health needs it: 'Authorization: Bearer <token>', or HTTP Basic with the token as "
        "the password (a browser asks for it).",
    )
    parser.add_argument("--host", help="bind address (default KASSA_API_HOST)")
    parser.add_argument("--port", type=int, help="port (default KASSA_API_PORT)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until interrupted."""
    host = args.host or settings.api_host
    port = settings.api_port if args.port is None else args.port
    logger.info("dashboard and API at http://%s:%d/ (OpenAPI at /docs)", host, port)
    if settings.api_token is None:
        logger.info("no KASSA_API_TOKEN: open to every client that reaches it")
    else:
        logger.info("every route but /health needs KASSA_API_TOKEN (Bearer, or Basic password)")
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, access_log=False)
    return 0
