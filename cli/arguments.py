"""Argument types shared by the subcommands: each refuses a bad value naming it and the fix."""

from __future__ import annotations

import argparse
from datetime import date

from common.days import parse_day
from common.errors import InvalidDay


def day(text: str) -> date:
    """A ``YYYY-MM-DD`` business day."""
    try:
        return parse_day(text)
    except InvalidDay as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(text: str) -> int:
    """A whole number > 0."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        msg = f"{text!r} is not a positive whole number"
        raise argparse.ArgumentTypeError(msg)
    return value


def positive_float(text: str) -> float:
    """A number > 0."""
    value = _float(text)
    if not value > 0:
        msg = f"{text!r} is not a positive number"
        raise argparse.ArgumentTypeError(msg)
    return value


def non_negative_float(text: str) -> float:
    """A number >= 0."""
    value = _float(text)
    if not value >= 0:
        msg = f"{text!r} is not a number >= 0"
        raise argparse.ArgumentTypeError(msg)
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")
