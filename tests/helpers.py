"""Plain helpers shared by tests (fixtures live in ``conftest.py``)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from common.settings import ENV_PREFIX, Settings


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def settings_env(settings: Settings) -> dict[str, str]:
    """``os.environ`` plus the ``KASSA_*`` variables that reproduce ``settings`` in a child."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
    for name, value in settings.model_dump(mode="json").items():
        env[ENV_PREFIX + name.upper()] = str(value)
    return env


def repo_root() -> Path:
    """The repository's top folder."""
    return Path(__file__).resolve().parent.parent
