"""``kassa daily``: not built yet (see the open issues)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``daily`` subcommand (to be built)."""
