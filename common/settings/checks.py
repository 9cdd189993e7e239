"""Checks several settings share: a list of ``host:port``, a PEM file, an empty value."""

from __future__ import annotations

from pathlib import Path


def host_port_list(value: str, example: str) -> str:
    """``value`` if each comma-separated part is ``host:port``; else a ValueError naming the
    part and ``example``."""
    for server in filter(None, (part.strip() for part in value.split(","))):
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            msg = f"{server!r} is not host:port; write e.g. {example!r}"
            raise ValueError(msg)
    return value


def pem_file(value: Path | None) -> Path | None:
    """``value`` (``~`` expanded) if it is a file; else a ValueError asking for the PEM file."""
    if value is None:
        return None
    path = value.expanduser()
    if not path.is_file():
        msg = f"{str(path)!r} is not a file; point it at the PEM file"
        raise ValueError(msg)
    return path


def unset_if_empty(value: object) -> object:
    """``None`` for an empty value (an env file's ``NAME=`` line), else ``value``."""
    return None if value == "" else value
