"""The invalid-share guard: a day whose records are too often invalid is not finalized.

A cause that hits the whole fleet (a message version the jobs do not accept yet, a till
configured for another currency) makes a large share of a day's records invalid. Finalizing
such a day would publish figures that silently miss those sales, and the scheduler never
runs a finished day again. So a run whose invalid records exceed
``KASSA_DAILY_MAX_INVALID_SHARE`` of the records in the day's range (:func:`check`) writes
nothing but a *refusal* (``_manifests/date=D/refused.json``, :func:`storage.parquet.refusal_file`)
and raises :class:`~jobs.daily.exceptions.InvalidShareExceeded`. ``kassa daily status`` shows
the day as ``invalid-share`` with the refusal's headline; the scheduler runs it again only when
the rules that judged it (:attr:`Refusal.rules`) changed, e.g. after ``KASSA_SCHEMA_VERSIONS``
was widened. ``kassa daily run --force`` finalizes it anyway and the manifest says so
(``invalid_share_forced``). A run that finalizes the day removes its refusal.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Final

import msgspec

from common.schema import Limits
from common.settings import Settings
from common.settings.location import DataLocation
from storage import parquet

TOP_REASONS: Final = 3
"""Reasons a headline names (the most frequent first)."""


class Refusal(msgspec.Struct, frozen=True, kw_only=True):
    """A run that did not finalize its day for too many invalid records."""

    day: date
    records: int
    """Records in the day's range."""
    invalid: dict[str, int]
    """Invalid records by reason."""
    max_share: float
    rules: str
    """The acceptance rules and limit that judged the records (:func:`rules_of`)."""
    run_at: str

    @property
    def share(self) -> float:
        """The invalid records' share of the range."""
        return sum(self.invalid.values()) / self.records if self.records else 0.0

    def headline(self) -> str:
        """One line: the share, the limit and the top reasons."""
        return headline(self.records, self.invalid, self.max_share)


def rules_of(settings: Settings) -> str:
    """The settings that decide which records are invalid and how many may be, as one text
    (a refused day is retried by the scheduler once they change)."""
    limits: Limits = settings.limits
    return (
        f"versions={settings.schema_versions} currency={limits.currency} "
        f"max_lines={limits.max_lines} max_quantity={limits.max_quantity} "
        f"max_message_bytes={limits.max_message_bytes} "
        f"event_time_min={limits.earliest_event.isoformat()} "
        f"event_time_max_ahead={int(limits.max_event_ahead.total_seconds())} "
        f"max_invalid_share={settings.daily_max_invalid_share}"
    )


def headline(records: int, invalid: Mapping[str, int], max_share: float) -> str:
    """``40.0% of 1,000 records invalid (unsupported_version 380, currency 20), over
    KASSA_DAILY_MAX_INVALID_SHARE=5%``."""
    total = sum(invalid.values())
    share = total / records if records else 0.0
    top = sorted(invalid.items(), key=lambda item: (-item[1], item[0]))[:TOP_REASONS]
    reasons = ", ".join(f"{reason} {count:,}" for reason, count in top)
    more = " ..." if len(invalid) > TOP_REASONS else ""
    return (
        f"{share:.1%} of {records:,} records invalid ({reasons}{more}), over "
        f"KASSA_DAILY_MAX_INVALID_SHARE={max_share:.4g} ({max_share:.1%})"
    )


def exceeds(records: int, invalid: Mapping[str, int], max_share: float) -> bool:
    """Whether the invalid records are more than ``max_share`` of ``records``."""
    return sum(invalid.values()) > max_share * records


def write_refusal(location: DataLocation, refusal: Refusal) -> None:
    """Record ``refusal`` as the day's (whole, beside its manifest)."""
    content = msgspec.json.format(msgspec.json.encode(refusal), indent=2) + b"\n"
    parquet.write_refusal_bytes(location, refusal.day, content)


def read_refusal(location: DataLocation, day: date) -> Refusal | None:
    """The refusal of ``day``, if its last run refused it (an unreadable one counts as none:
    the next run writes it again)."""
    content = parquet.read_refusal_bytes(location, day)
    if content is None:
        return None
    try:
        return msgspec.json.decode(content, type=Refusal)
    except msgspec.DecodeError:
        return None


def clear_refusal(location: DataLocation, day: date) -> None:
    """Forget the refusal of ``day`` (it was finalized)."""
    parquet.delete_refusal(location, day)
