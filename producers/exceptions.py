"""Errors of the producers; each message names the value and the fix."""

from __future__ import annotations

from pathlib import Path

from common.errors import KassaError


class ProducerError(KassaError):
    """Base class of the producers' errors."""


class DeliveryError(ProducerError):
    """Some checkouts accepted by the producer never reached the broker."""

    exit_code = 1

    def __init__(self, summary: str) -> None:
        super().__init__(summary)


class DatasetNotFoundError(ProducerError):
    """The replay dataset is not where it was looked for."""

    exit_code = 2

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"dataset {str(path)!r} not found; pass the Online Retail Parquet file with "
            "--dataset PATH"
        )
        self.path = path


class DatasetError(ProducerError):
    """The replay dataset is readable but not shaped like the Online Retail file."""

    exit_code = 2
