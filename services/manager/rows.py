"""A row of ``kassa services``: what one service (or node) is doing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

State = Literal["started", "running", "reused", "stopped", "down", "degraded", "refused"]


@dataclass(frozen=True)
class ServiceStatus:
    """What one service (or Kafka node) is doing, for ``status`` and as the result of
    ``up``/``down``."""

    name: str
    address: str
    state: State
    version: str = ""
    pid: int | None = None
    data_dir: Path | None = None
    detail: str = ""
    role: str = ""
    security: str = ""
    """How clients reach it: ``plaintext``, or the protocol, login and client files."""
