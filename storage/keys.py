"""Every Redis key kassa reads or writes, built in this one module.

Per-day figures live in a *namespace*: ``live`` (kept up to date by the stream job) or
``daily`` (replaced by the daily job). For namespace ``ns`` and business day ``D``
(``YYYY-MM-DD``); an optional store scope inserts ``:store:<store_id>`` after the day:

================================  ======  ==================================================
key                               type    meaning
================================  ======  ==================================================
kassa:{ns}:{D}:units              zset    sku -> net units; ``ZREVRANGE .. WITHSCORES`` = top-N
kassa:{ns}:{D}:sold               hash    sku -> units sold (quantities of sales)
kassa:{ns}:{D}:returned           hash    sku -> units returned (negated quantities of returns)
kassa:{ns}:{D}:revenue            hash    sku -> revenue, integer 1/10,000 currency units
kassa:{ns}:{D}:checkouts          hash    sku -> number of checkouts with the sku
kassa:{ns}:{D}:totals             hash    units, units_sold, units_returned, revenue,
                                          checkouts, lines for the whole day (or store)
kassa:{ns}:{D}:stores             set     store ids seen that day
kassa:names                       hash    sku -> latest display name
kassa:daily:{D}:manifest          hash    the daily job's manifest summary of day D
kassa:tmp:{token}:{key}           any     a key being built, renamed over {key} when done
kassa:tmp:ranking:{ns}:{D1}..{D2}:{by}
                                  zset    sku -> units or revenue summed over days D1..D2
                                          (optionally ``:store:<id>`` before ``:{by}``),
                                          built for one query; expires within seconds
kassa:live:applied:{topic}        hash    partition -> last Kafka offset applied to Redis
kassa:live:dead_letters:{topic}   hash    reason -> messages sent to the dead-letter topic
kassa:demo:database               string  run id: ``make demo`` created this database and may
                                          empty it on its next run (never any other)
================================  ======  ==================================================

The five per-item keys are named by their figure (:data:`storage.figures.NAMES`). Per-day
keys expire ``KASSA_RETENTION_DAYS`` after the end of their day (:func:`expire_at`).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo

from common.days import day_bounds
from storage import figures

PREFIX: Final = "kassa"
Namespace = Literal["live", "daily"]
Measure = figures.Name | Literal["totals"]
MEASURES: Final[tuple[Measure, ...]] = (*figures.NAMES, "totals")

NAMES: Final = f"{PREFIX}:names"
RankedBy = Literal["units", "revenue"]
RANKED_BY: Final[tuple[RankedBy, ...]] = ("units", "revenue")
COMBINED_RANKING_TTL_SECONDS: Final = 10
DEMO_DATABASE: Final = f"{PREFIX}:demo:database"


def day_scope(namespace: Namespace, day: date, store_id: str | None = None) -> str:
    """The common prefix of one day's keys, for the whole chain or one store."""
    scope = f"{PREFIX}:{namespace}:{day.isoformat()}"
    return scope if store_id is None else f"{scope}:store:{store_id}"


def day_key(namespace: Namespace, day: date, measure: Measure, store_id: str | None = None) -> str:
    """The key of one measure of one day (see the module table)."""
    return f"{day_scope(namespace, day, store_id)}:{measure}"


def expire_at(
    day: date, zone: ZoneInfo, retention_days: int, written_at: datetime | None = None
) -> int:
    """When the per-day keys of ``day`` expire, in epoch seconds.

    ``retention_days`` after the end of the day in ``zone``, or after ``written_at`` if that
    is later (keys written long after their day still live ``retention_days``).
    """
    end = day_bounds(day, zone)[1]
    start = end if written_at is None else max(end, written_at)
    return int((start + timedelta(days=retention_days)).timestamp())


def stores_key(namespace: Namespace, day: date) -> str:
    """The set of store ids with checkouts on ``day``."""
    return f"{day_scope(namespace, day)}:stores"


def applied_offsets_key(topic: str) -> str:
    """The stream job's watermark: partition -> last offset of ``topic`` applied to Redis."""
    return f"{PREFIX}:live:applied:{topic}"


def dead_letters_key(topic: str) -> str:
    """Counts of messages of ``topic`` the stream job dead-lettered, by reason."""
    return f"{PREFIX}:live:dead_letters:{topic}"


def manifest_key(day: date) -> str:
    """The summary of the daily job's manifest of ``day`` (a hash), next to its rankings."""
    return f"{day_scope('daily', day)}:manifest"


def temporary_key(key: str, token: str) -> str:
    """Where ``key`` is built before it is renamed into place (one ``token`` per run)."""
    return f"{PREFIX}:tmp:{token}:{key}"


def combined_ranking_key(
    namespace: Namespace, first: date, last: date, by: RankedBy, store_id: str | None = None
) -> str:
    """The short-lived sorted set of ``by`` summed over the days ``first..last`` (inclusive).

    Built and read by one server-side script (:mod:`storage.rankings`); it expires after
    :data:`COMBINED_RANKING_TTL_SECONDS`.
    """
    scope = f"{PREFIX}:tmp:ranking:{namespace}:{first.isoformat()}..{last.isoformat()}"
    if store_id is not None:
        scope = f"{scope}:store:{store_id}"
    return f"{scope}:{by}"
