"""Every Redis key kassa reads or writes, built in this one module.

All keys of one sales topic live in a *key space* (``KASSA_REDIS_KEY_SPACE``, by default the
topic's name), so two topics or two chains can share one Redis database without adding into
each other's figures. Every key of a key space holds it in braces, ``{sp}`` below standing for
``{sales}`` braces included: a Redis Cluster hashes only that part of the key (its *hash
tag*), so all keys of a key space share one hash slot, and a Lua script or transaction may
use any of them together. Within a key space, per-day figures live in a *source*: ``live``
(kept up to date by the stream job) or ``daily`` (replaced by the daily job). For key space
``sp``, source ``src`` and business day ``D`` (``YYYY-MM-DD``); a store scope inserts
``:store:{S}`` after the day (store ``S``) in a per-day key and before ``:{by}`` in a combined
ranking. Each row names the function that builds the key (``tests/storage/test_keys.py``
checks the table against them, and against ``docs/stream.md``):

============================================  ==========  ====  ====================================
key                                           type        TTL   meaning
============================================  ==========  ====  ====================================
kassa:{sp}:{src}:{D}:units                    sorted set  day   ``day_key``: sku -> net units, the
                                                                ranking (``ZREVRANGE``: top-N)
kassa:{sp}:{src}:{D}:sold                     hash        day   ``day_key``: sku -> units sold
kassa:{sp}:{src}:{D}:returned                 hash        day   ``day_key``: sku -> units returned
                                                                (positive)
kassa:{sp}:{src}:{D}:revenue                  hash        day   ``day_key``: sku -> revenue, integer
                                                                1/10,000 currency units
kassa:{sp}:{src}:{D}:checkouts                hash        day   ``day_key``: sku -> checkouts with
                                                                the sku
kassa:{sp}:{src}:{D}:discount                 hash        day   ``day_key``: sku -> discount,
                                                                integer 1/10,000 currency units
kassa:{sp}:{src}:{D}:totals                   hash        day   ``day_key``: the scope's day totals
                                                                (:data:`storage.figures.TOTALS`)
kassa:{sp}:{src}:{D}:stores                   set         day   ``stores_key``: store ids with
                                                                checkouts on D
kassa:{sp}:daily:{D}:manifest                 hash        day   ``manifest_key``: the summary of
                                                                the daily job's manifest of D
kassa:{sp}:names                              hash        none  ``names_key``: sku -> latest
                                                                display name
kassa:{sp}:live:applied                       hash        none  ``applied_offsets_key``: partition
                                                                -> last Kafka offset applied (the
                                                                watermark); topic_id, cluster_id,
                                                                epoch, floor_day, floor:{partition}
kassa:{sp}:live:dead_letters                  hash        none  ``dead_letters_key``: reason ->
                                                                messages dead-lettered
kassa:{sp}:lock:daily:{D}                     string      lock  ``day_lock_key``: the token of the
                                                                daily run holding D (an
                                                                object-store KASSA_DATA_DIR)
kassa:tmp:{token}:{key}                       any         1 h   ``temporary_key``: {key} being
                                                                built by one run, renamed over
                                                                {key} when done
kassa:tmp:ranking:{sp}:{src}:{D1}..{D2}:{by}  sorted set  10 s  ``combined_ranking_key``: sku ->
                                                                units or revenue summed over
                                                                D1..D2, built for one query
kassa:demo:database                           string      none  ``DEMO_DATABASE``: run id: ``make
                                                                demo`` created this database and
                                                                may empty it (never any other)
============================================  ==========  ====  ====================================

TTL *lock*: ``KASSA_DAILY_LOCK_SECONDS``, renewed by the run that holds it.
TTL *day*: per-day keys expire ``KASSA_RETENTION_DAYS`` after the later of their day's end and
their last write (:func:`expire_at`), so a replayed old day lives as long as a fresh one. The
six per-item keys are named by their figure (:data:`storage.figures.NAMES`). The watermark
hash's fields besides the partitions are :data:`IDENTITY_FIELDS`, :data:`FLOOR_DAY_FIELD` and
the replay floors (:func:`floor_field`).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Final, Literal
from zoneinfo import ZoneInfo

from common.days import day_bounds
from storage import figures

PREFIX: Final = "kassa"
Source = Literal["live", "daily"]
Measure = figures.Name | Literal["totals"]
MEASURES: Final[tuple[Measure, ...]] = (*figures.NAMES, "totals")

TOPIC_ID_FIELD: Final = "topic_id"
CLUSTER_ID_FIELD: Final = "cluster_id"
EPOCH_FIELD: Final = "epoch"
FLOOR_DAY_FIELD: Final = "floor_day"
FLOOR_FIELD_PREFIX: Final = "floor:"
IDENTITY_FIELDS: Final = (TOPIC_ID_FIELD, CLUSTER_ID_FIELD, EPOCH_FIELD)
"""Fields of the watermark hash besides the partitions: the Kafka topic id and cluster id the
watermarks count, and the epoch that ``kassa stream rebuild`` moves on."""

COMBINED_RANKING_TTL_SECONDS: Final = 10
DEMO_DATABASE: Final = f"{PREFIX}:demo:database"


def tagged(space: str) -> str:
    """``space`` as every key holds it: in braces, the hash tag of a Redis Cluster."""
    return f"{{{space}}}"


def space_pattern(space: str) -> str:
    """A ``SCAN MATCH`` pattern of every key of key space ``space`` (not its temporary keys)."""
    return f"{PREFIX}:{tagged(space)}:*"


def source_prefix(space: str, source: Source) -> str:
    """What every per-day key of ``source`` starts with; the day follows."""
    return f"{PREFIX}:{tagged(space)}:{source}:"


def day_scope(space: str, source: Source, day: date, store_id: str | None = None) -> str:
    """The common prefix of one day's keys, for the whole chain or one store."""
    scope = f"{source_prefix(space, source)}{day.isoformat()}"
    return scope if store_id is None else f"{scope}:store:{store_id}"


def day_key(
    space: str, source: Source, day: date, measure: Measure, store_id: str | None = None
) -> str:
    """The key of one measure of one day (see the module table)."""
    return f"{day_scope(space, source, day, store_id)}:{measure}"


def day_pattern(space: str, source: Source) -> str:
    """A ``SCAN MATCH`` pattern of every per-day key of ``source`` (day at a fixed place)."""
    return f"{source_prefix(space, source)}[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]:*"


def stores_key(space: str, source: Source, day: date) -> str:
    """The set of store ids with checkouts on ``day``."""
    return f"{day_scope(space, source, day)}:stores"


def names_key(space: str) -> str:
    """sku -> latest display name."""
    return f"{PREFIX}:{tagged(space)}:names"


def applied_offsets_key(space: str) -> str:
    """The stream job's watermarks: partition -> last offset applied to Redis (and identity)."""
    return f"{PREFIX}:{tagged(space)}:live:applied"


def floor_field(partition: int) -> str:
    """The field of the watermark hash holding ``partition``'s replay floor (see rebuild)."""
    return f"{FLOOR_FIELD_PREFIX}{partition}"


def dead_letters_key(space: str) -> str:
    """Counts of messages the stream job dead-lettered, by reason."""
    return f"{PREFIX}:{tagged(space)}:live:dead_letters"


def day_lock_key(space: str, day: date) -> str:
    """The lock serializing daily runs of ``day`` when the data is on an object store."""
    return f"{PREFIX}:{tagged(space)}:lock:daily:{day.isoformat()}"


def manifest_key(space: str, day: date) -> str:
    """The summary of the daily job's manifest of ``day`` (a hash), next to its rankings."""
    return f"{day_scope(space, 'daily', day)}:manifest"


def temporary_key(key: str, token: str) -> str:
    """Where ``key`` is built before it is renamed into place (one ``token`` per run); the
    hash tag of ``key`` is the first braces in it, so both share a slot."""
    return f"{PREFIX}:tmp:{token}:{key}"


def expire_at(
    day: date, zone: ZoneInfo, retention_days: int, written_at: datetime | None = None
) -> int:
    """When the per-day keys of ``day`` expire, in epoch seconds, live and daily alike.

    ``retention_days`` after the end of the day in ``zone``, or after ``written_at`` if that
    is later (keys written long after their day still live ``retention_days``).
    """
    end = day_bounds(day, zone)[1]
    start = end if written_at is None else max(end, written_at)
    return int((start + timedelta(days=retention_days)).timestamp())


def combined_ranking_key(  # noqa: PLR0917 - the key space, then the ranking's coordinates
    space: str,
    source: Source,
    first: date,
    last: date,
    by: figures.RankedBy,
    store_id: str | None = None,
) -> str:
    """The short-lived sorted set of ``by`` summed over the days ``first..last`` (inclusive).

    Built and read by one server-side script (:mod:`storage.rankings`); it expires after
    :data:`COMBINED_RANKING_TTL_SECONDS`.
    """
    days = f"{first.isoformat()}..{last.isoformat()}"
    scope = f"{PREFIX}:tmp:ranking:{tagged(space)}:{source}:{days}"
    if store_id is not None:
        scope = f"{scope}:store:{store_id}"
    return f"{scope}:{by}"
