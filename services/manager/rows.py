"""A row of ``kassa services``: what one service (or node) is doing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

State = Literal["started", "running", "reused", "stopped", "down", "degraded", "refused"]
"""What a service is doing; ``refused``: it answers but refuses kassa's login; ``degraded``:
it runs but does not do its part (a cluster with a node down, a replica not in sync with its
master, a Sentinel that knows no master)."""


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
