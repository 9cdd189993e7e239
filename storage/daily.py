"""The ``daily`` Redis source: a day's rankings replaced atomically, and reconciliation.

:func:`replace_day` builds every key of a day under temporary names (:func:`keys.temporary_key`)
and then, in one ``MULTI``/``EXEC`` transaction, renames them over the real keys and deletes
the real keys the new result no longer has (:func:`stage_day` and :meth:`StagedDay.swap` are
the two steps, for a caller with other work to finish in between). A reader sees the old
day or the new day, never a mix; a crash before the transaction leaves the old day untouched
(the temporary keys expire within an hour). The layout is the one of :mod:`storage.keys`, so
the same function repairs the ``live`` source from the daily result.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Final, Protocol

import polars as pl
from redis.client import Pipeline

from common.schema import MONEY_DECIMALS, to_money_units
from storage import keys
from storage.connections import Client
from storage.figures import (
    COLUMNS,
    HASHED,
    MONEY_COLUMNS,
    MONEY_FIGURES,
    NAMES,
    RANKED,
    TOTALS,
    WIDTH,
    Drift,
    Figures,
    drifts,
    figures_of,
)
from storage.summaries import ManifestSummary

TEMPORARY_TTL_SECONDS: Final = 3600


def item_figures(frame: pl.DataFrame) -> dict[str, Figures]:
    """``sku -> Figures`` of a frame with ``sku`` and the figures' columns (money figures made
    integer), e.g. ``daily_item_sales``."""
    money = [frame.schema[COLUMNS[figure]] for figure in MONEY_FIGURES]
    if all(isinstance(kind, pl.Decimal) and kind.scale == MONEY_DECIMALS for kind in money):
        # The stored integer of a decimal with the money scale is the count of units.
        columns = [pl.col(c).to_physical() if c in MONEY_COLUMNS else pl.col(c) for c in COLUMNS]
        rows = frame.select("sku", *columns)
        return {sku: figures_of(values) for sku, *values in rows.iter_rows()}
    result: dict[str, Figures] = {}
    for sku, *values in frame.select("sku", *COLUMNS).iter_rows():
        for figure in MONEY_FIGURES:
            values[figure] = to_money_units(values[figure])
        result[sku] = figures_of(values)
    return result


def totals_of(row: Mapping[str, object]) -> dict[str, int]:
    """The ``totals`` hash of a scope from a row with the fields :data:`~storage.figures.TOTALS`."""
    totals: dict[str, int] = {}
    for name in TOTALS:
        value = row[name]
        if isinstance(value, Decimal):
            totals[name] = to_money_units(value)
        else:
            assert isinstance(value, int)
            totals[name] = value
    return totals


@dataclass
class DaySnapshot:
    """Everything one source holds for one day."""

    items: dict[str, Figures]
    totals: dict[str, int]
    store_items: dict[str, dict[str, Figures]] = field(default_factory=dict)
    store_totals: dict[str, dict[str, int]] = field(default_factory=dict)


def snapshot_of(
    items: pl.DataFrame, store_items: pl.DataFrame, store_totals: pl.DataFrame
) -> DaySnapshot:
    """The day of the ``daily_item_sales`` and ``daily_store_item_sales`` frames, with
    ``store_totals`` (one row per ``store_id``, with the totals' fields)."""
    by_store: dict[str, dict[str, Figures]] = {}
    for key, frame in store_items.partition_by("store_id", as_dict=True).items():
        by_store[str(key[0])] = item_figures(frame)
    totals_by_store = {
        row["store_id"]: totals_of(row) for row in store_totals.iter_rows(named=True)
    }
    chain: dict[str, int] = {}
    for totals in totals_by_store.values():
        for name, value in totals.items():
            chain[name] = chain.get(name, 0) + value
    return DaySnapshot(item_figures(items), chain, by_store, totals_by_store)


def _encoded(values: Mapping[str, int | str]) -> dict[bytes, bytes]:
    """``values`` with keys and values encoded as redis-py would encode them.

    A day has tens of thousands of fields; redis-py passes bytes through, while its own
    encoding of each str and int argument is most of the cost of building the day.
    """
    return {
        key.encode(): b"%d" % value if isinstance(value, int) else value.encode()
        for key, value in values.items()
    }


class _Build:
    """Keys written under temporary names, to be renamed or deleted in one transaction."""

    def __init__(self, client: Client, space: str, source: keys.Source, day: date) -> None:
        self.space = space
        self.source = source
        self.day = day
        self.token = uuid.uuid4().hex
        self.pipe = client.pipeline(transaction=False)
        self.renames: list[tuple[str, str]] = []
        self.deletes: list[str] = []

    def _temporary(self, final: str) -> str:
        temporary = keys.temporary_key(final, self.token)
        self.renames.append((temporary, final))
        return temporary

    def zset(self, final: str, values: Mapping[str, int]) -> None:
        if not values:
            self.deletes.append(final)
            return
        temporary = self._temporary(final)
        self.pipe.zadd(temporary, _encoded(values))
        self.pipe.expire(temporary, TEMPORARY_TTL_SECONDS)

    def hash(self, final: str, values: Mapping[str, int | str]) -> None:
        if not values:
            self.deletes.append(final)
            return
        temporary = self._temporary(final)
        self.pipe.hset(temporary, mapping=_encoded(values))  # type: ignore[arg-type]
        self.pipe.expire(temporary, TEMPORARY_TTL_SECONDS)

    def set(self, final: str, members: list[str]) -> None:
        if not members:
            self.deletes.append(final)
            return
        temporary = self._temporary(final)
        self.pipe.sadd(temporary, *members)
        self.pipe.expire(temporary, TEMPORARY_TTL_SECONDS)


def _build_scope(
    build: _Build,
    source: keys.Source,
    day: date,
    scope: tuple[str | None, Mapping[str, Figures], Mapping[str, int]],
) -> None:
    store_id, items, totals = scope
    for figure, name in enumerate(NAMES):
        final = keys.day_key(build.space, source, day, name, store_id)
        if figure == RANKED:
            build.zset(final, {sku: figures[figure] for sku, figures in items.items()})
        else:
            values = {sku: figures[figure] for sku, figures in items.items() if figures[figure]}
            build.hash(final, values)
    build.hash(keys.day_key(build.space, source, day, "totals", store_id), totals)


class SwapGuard(Protocol):
    """A condition a swap must hold under ``WATCH`` of :attr:`key`."""

    @property
    def key(self) -> str:
        """The key whose change between the check and the swap retries both."""
        ...

    def allows(self, pipe: Pipeline) -> bool:
        """Whether to swap, read through ``pipe`` (watching, immediate mode)."""
        ...


class StagedDay:
    """A day's keys written under temporary names (:func:`stage_day`), not yet visible.

    :meth:`swap` puts them in place in one transaction; :meth:`discard` (or a failed swap)
    deletes them. Until then readers keep seeing the previous day.
    """

    def __init__(self, client: Client, build: _Build, stores: str, store_ids: set[str]):
        self._client = client
        self._build = build
        self._stores = stores
        self._store_ids = store_ids

    def swap(self, expire_at: int, guard: SwapGuard | None = None) -> bool:
        """Put the staged keys in place and delete the real keys the new day no longer has.

        One transaction; every key expires at ``expire_at`` (epoch seconds). With a
        ``guard``, the transaction ``WATCH``es ``guard.key`` and swaps only while
        ``guard.allows(pipe)`` (reading in immediate mode) is true; a write to the key in
        between retries the check. Returns whether the keys were swapped (a refused swap
        discards them).
        """
        client = self._client
        refused = False

        def attempt(swap: Pipeline) -> None:
            nonlocal refused
            refused = guard is not None and not guard.allows(swap)
            if not refused:
                reader = swap if guard is not None else client  # watching: immediate mode
                self._swap(swap, reader, expire_at)

        watched = [guard.key] if guard is not None else []
        try:
            client.transaction(attempt, *watched)  # retried from the top on a WatchError
        except BaseException:
            self.discard()
            raise
        if refused:
            self.discard()
            return False
        self._build.renames = []
        return True

    def _swap(self, swap: Pipeline, reader: Client | Pipeline, expire_at: int) -> None:
        build = self._build
        old_stores: set[bytes] = reader.smembers(self._stores)  # type: ignore[assignment]
        deletes = list(build.deletes)
        for raw in sorted(old_stores - {store.encode() for store in self._store_ids}):
            store_id = raw.decode()
            deletes.extend(
                keys.day_key(build.space, build.source, build.day, m, store_id)
                for m in keys.MEASURES
            )
        swap.multi()
        for temporary, final in build.renames:
            # By name: redis-py's cluster pipeline refuses its rename method, as a rename
            # across slots fails; a temporary key shares its final key's slot (storage.keys).
            swap.execute_command("RENAME", temporary, final)  # type: ignore[no-untyped-call]
            swap.expireat(final, expire_at)
        if deletes:
            swap.delete(*deletes)
        swap.execute()

    def discard(self) -> None:
        """Delete the staged keys (they would expire within an hour anyway)."""
        if self._build.renames:
            self._client.delete(*(temporary for temporary, _ in self._build.renames))
            self._build.renames = []


def stage_day(
    client: Client,
    space: str,
    source: keys.Source,
    day: date,
    snapshot: DaySnapshot,
    *,
    summary: ManifestSummary | None = None,
) -> StagedDay:
    """Write every key of ``day`` in ``source`` under a temporary name (:class:`StagedDay`).

    ``summary`` (daily source only) is staged as the day's manifest hash
    (:mod:`storage.summaries`).
    """
    build = _Build(client, space, source, day)
    _build_scope(build, source, day, (None, snapshot.items, snapshot.totals))
    for store_id in sorted(snapshot.store_items):
        totals = snapshot.store_totals.get(store_id, {})
        _build_scope(build, source, day, (store_id, snapshot.store_items[store_id], totals))
    stores = keys.stores_key(space, source, day)
    build.set(stores, sorted(snapshot.store_items))
    if summary is not None:
        build.hash(keys.manifest_key(space, day), summary.to_redis())
    staged = StagedDay(client, build, stores, set(snapshot.store_items))
    try:
        build.pipe.execute()
    except BaseException:
        staged.discard()
        raise
    return staged


def replace_day(
    client: Client,
    space: str,
    source: keys.Source,
    day: date,
    snapshot: DaySnapshot,
    *,
    expire_at: int,
    summary: ManifestSummary | None = None,
) -> None:
    """Replace every key of ``day`` in ``source`` with ``snapshot`` atomically.

    ``expire_at`` (epoch seconds) becomes every key's expiry; ``summary`` (daily source
    only) is stored as the day's manifest hash.
    """
    stage_day(client, space, source, day, snapshot, summary=summary).swap(expire_at)


@dataclass
class LiveCaughtUp:
    """A :class:`SwapGuard`: every partition's live watermark reached its ``ends`` - 1.

    After a refused check :attr:`behind` maps each partition behind to ``(watermark, end)``.
    """

    key: str
    ends: Mapping[int, int]
    behind: dict[int, tuple[int, int]] = field(default_factory=dict)

    def allows(self, pipe: Pipeline) -> bool:
        partitions = sorted(self.ends)
        raw = pipe.hmget(self.key, [str(p) for p in partitions])
        marks = [-1 if value is None else int(value) for value in raw]
        self.behind = {
            p: (mark, self.ends[p])
            for p, mark in zip(partitions, marks, strict=True)
            if mark < self.ends[p] - 1
        }
        return not self.behind


def repair_live(
    client: Client,
    space: str,
    day: date,
    snapshot: DaySnapshot,
    *,
    ends: Mapping[int, int],
    expire_at: int,
) -> dict[int, tuple[int, int]]:
    """Replace the live figures of ``day`` with ``snapshot`` if the stream job is past it.

    ``ends`` maps each partition to the end of the day's offset range (exclusive; only
    partitions with records in the range). The swap happens only while every such
    partition's live watermark is at least ``end - 1`` (checked under ``WATCH`` of the
    watermark hash, so a batch applied in between retries the check): the stream job then
    adds only records after the range, and the repaired figures plus what it applies later
    are exact. Returns the partitions behind, ``{partition: (watermark, end)}``; empty when
    repaired.
    """
    guard = LiveCaughtUp(keys.applied_offsets_key(space), ends)
    staged = stage_day(client, space, "live", day, snapshot)
    if staged.swap(expire_at, guard):
        return {}
    return guard.behind


def read_day(
    client: Client,
    space: str,
    source: keys.Source,
    day: date,
    store_id: str | None = None,
) -> dict[str, Figures]:
    """``sku -> Figures`` as ``source`` holds them for ``day`` (missing values are 0)."""
    pipe = client.pipeline(transaction=True)
    pipe.zrange(keys.day_key(space, source, day, NAMES[RANKED], store_id), 0, -1, withscores=True)
    for figure in HASHED:
        pipe.hgetall(keys.day_key(space, source, day, NAMES[figure], store_id))
    ranking, *hashes = pipe.execute()
    by_figure: list[dict[str, int]] = [{} for _ in range(WIDTH)]
    by_figure[RANKED] = {member.decode(): int(score) for member, score in ranking}
    for figure, mapping in zip(HASHED, hashes, strict=True):
        by_figure[figure] = {k.decode(): int(v) for k, v in mapping.items()}
    skus = set().union(*by_figure)
    return {sku: figures_of([values.get(sku, 0) for values in by_figure]) for sku in skus}


@dataclass(frozen=True)
class Reconciliation:
    """Live versus daily for one day."""

    day: date
    live_items: int
    daily_items: int
    drifts: tuple[Drift, ...]


def reconcile(
    client: Client, space: str, day: date, daily: Mapping[str, Figures]
) -> Reconciliation:
    """Compare the live figures of ``day`` with the daily result, item by item.

    A day the live source holds nothing for (no stream job ran) has no drifts.
    """
    live = read_day(client, space, "live", day)
    if not live:
        return Reconciliation(day, 0, len(daily), ())
    return Reconciliation(day, len(live), len(daily), tuple(drifts(live, daily)))


def set_missing_names(client: Client, space: str, names: Iterable[tuple[str, str | None]]) -> None:
    """Record a display name for each item that has none yet in :func:`keys.names_key`."""
    pipe = client.pipeline(transaction=False)
    for sku, name in names:
        if name is not None:
            pipe.hsetnx(keys.names_key(space), sku, name)
    pipe.execute()
