"""``kassa stream``: not built yet (see the open issues)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``stream`` subcommand (to be built)."""
