"""The live Redis store: per-partition batches applied exactly once.

The stream job aggregates each partition batch into a :class:`PartitionDelta` (its stores'
figures and, rolled up from them, the chain's) and hands it to :meth:`LiveStore.apply`, which
sends the whole delta in ONE call of a Lua script (:data:`storage.scripts.APPLY`). The script
adds the delta to the ``live`` keys of :mod:`storage.keys` and records the batch's last
offset as the partition's *watermark* in the same atomic step, but only if the watermark is
the one the writer expects (compare-and-set), and only if the watermark hash counts the
writer's topic (the Kafka topic id and cluster id, :class:`Identity`) and epoch. The outcome
tells "Redis is behind the writer" (it lost writes, or was rebuilt: resume from Redis's
watermark) apart from "Redis is ahead" (another replica applied part of the batch). It
reads every figure it adds to first (one ``HMGET``/``ZMSCORE`` per key, not one
``HINCRBY``/``ZINCRBY`` per figure: about a quarter less Redis CPU) and writes nothing if a
stored figure is not an integer. A replay after a crash, a stale replica or a batch that
follows a refused one therefore changes nothing.

:meth:`LiveStore.rebuild` (``kassa stream rebuild``) clears days and moves the watermarks
back in one call of a second script (:data:`storage.scripts.REBUILD`), given every key it
clears; it leaves a :class:`ReplayFloor` so that the recount skips records of older, kept
days.

Sums are exact. A hash field (every figure but net units, and every day total) holds any
integer: the script adds two numbers of at most 15 characters as Lua doubles (exact below
2^53) and any larger ones digit by digit, as decimal strings. Net units live in the ranking,
a sorted set whose scores are doubles: they are exact within +-2^53, which
``KASSA_MAX_QUANTITY`` (at most :data:`~common.schema.MAX_QUANTITY_CAP`) keeps out of reach
(more than 9 * 10^9 lines of one item in one day); a batch that would pass it anyway is
refused whole with :class:`~common.errors.FigureLimitError`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

import msgspec
import redis
from redis.cluster import RedisCluster

from common.errors import FigureLimitError
from storage import keys, scripts
from storage.connections import Client
from storage.figures import (
    CHECKOUT_COUNT,
    CHECKOUTS,
    COLUMNS,
    DISCOUNT,
    LINE_COUNT,
    LINES,
    NAMES,
    RANKED,
    RETURNED,
    REVENUE,
    SOLD,
    UNITS,
)
from storage.scripts import Op

REBUILD_ATTEMPTS: Final = 5
"""How often :meth:`LiveStore.rebuild` looks for the keys again when one was written since."""
Scope = tuple[date, str]
"""``(day, store_id)``: a store's business day."""
_Ops = list[tuple[Op, int, list[str]]]
"""The :data:`storage.scripts.APPLY` ops of a batch: ``(op, expire_at, args)`` per key."""


@dataclass(frozen=True, slots=True)
class Identity:
    """What the watermarks count: one Kafka topic (its id, not its name) of one cluster."""

    topic_id: str
    cluster_id: str

    def __str__(self) -> str:
        return f"topic id {self.topic_id} of cluster {self.cluster_id}"


@dataclass(frozen=True, slots=True)
class ReplayFloor:
    """Left by ``kassa stream rebuild --from DAY``: records of days before ``day`` at offsets up
    to ``offsets[p]`` were counted before the rebuild (their days were kept) and are skipped."""

    day: date
    offsets: dict[int, int]

    def of(self, partition: int) -> tuple[date, int] | None:
        """``(day, offset)`` of ``partition``'s floor, if it has one."""
        offset = self.offsets.get(partition)
        return None if offset is None else (self.day, offset)


@dataclass(frozen=True, slots=True)
class LiveState:
    """What the watermark hash holds, read in one call."""

    watermarks: dict[int, int]
    """Partition -> last applied offset; -1 where none was applied."""
    identity: Identity | None
    epoch: int
    floor: ReplayFloor | None
    exists: bool
    """Whether the watermark hash exists at all (for any partition)."""


@dataclass(slots=True)
class ChainDay:
    """A business day of the whole chain in one batch: its stores' figures summed."""

    items: dict[str, list[int]]
    """sku -> figures, lists in the layout of :mod:`storage.figures`."""
    counts: list[int]
    """``[checkouts, lines]`` of the day's checkouts in the batch."""
    stores: list[str]
    """The stores with checkouts on the day in the batch, each once."""


@dataclass(slots=True)
class PartitionDelta:
    """What one batch of one partition adds to the live figures.

    ``items`` maps each :data:`Scope` to ``{sku: figures}``, a list in the layout of
    :mod:`storage.figures`; ``stores`` maps it to the scope's ``[checkouts, lines]`` (``[0, 0]``
    where missing). ``chain`` holds each day's figures of the whole chain, rolled up from the
    store scopes once the batch is folded (:func:`jobs.stream.aggregate.roll_up`); the store
    writes both as they are. Offsets span the batch, including dead-lettered messages;
    ``first_offset`` is -1 while the batch is empty.
    """

    partition: int
    first_offset: int = -1
    last_offset: int = -1
    items: dict[Scope, dict[str, list[int]]] = field(default_factory=dict)
    stores: dict[Scope, list[int]] = field(default_factory=dict)
    chain: dict[date, ChainDay] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """True when the batch holds no offset at all."""
        return self.first_offset < 0

    @property
    def checkouts(self) -> int:
        """Valid checkouts in the batch."""
        return sum(counts[CHECKOUT_COUNT] for counts in self.stores.values())

    @property
    def lines(self) -> int:
        """Lines of the valid checkouts in the batch."""
        return sum(counts[LINE_COUNT] for counts in self.stores.values())

    def counts_of(self, scope: Scope) -> list[int]:
        """``[checkouts, lines]`` of ``scope`` in the batch."""
        return self.stores.get(scope) or [0, 0]


class ApplyStatus(enum.Enum):
    """What :meth:`LiveStore.apply` did with a batch."""

    APPLIED = 1
    DUPLICATE = 0
    """Every offset of the batch was applied before: nothing written."""
    CONFLICT = -1
    """Redis is ahead of the writer: part of the batch was applied by another writer."""
    FOREIGN = -2
    """The watermarks count another topic or cluster (:class:`Identity`): nothing written."""
    BEHIND = -3
    """Redis is behind the writer (it lost writes, or ``kassa stream rebuild`` reset it):
    nothing written; the writer must resume from Redis's watermark."""


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """The outcome of one batch and the partition's watermark afterwards."""

    status: ApplyStatus
    watermark: int


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a writer believes the watermark hash holds when it applies a batch."""

    identity: Identity
    epoch: int
    watermark: int | None
    """The partition's watermark (-1: none); ``None`` writes without the check
    (at-least-once)."""


class LiveStore:
    """The ``live`` source of one sales topic in one Redis database (key space ``space``)."""

    def __init__(self, client: Client, space: str, zone: ZoneInfo, retention_days: int) -> None:
        self._client = client
        self._space = space
        self._zone = zone
        self._retention_days = retention_days
        self._applied_key = keys.applied_offsets_key(space)
        self._dead_letters_key = keys.dead_letters_key(space)
        self._names_key = keys.names_key(space)
        self._script = client.register_script(scripts.APPLY)
        self._rebuild_script = client.register_script(scripts.REBUILD)
        self._now = datetime.now(UTC)

    @property
    def space(self) -> str:
        """The key space (``KASSA_REDIS_KEY_SPACE``, by default the topic)."""
        return self._space

    @property
    def applied_key(self) -> str:
        """The watermark hash."""
        return self._applied_key

    def eviction_policy(self) -> str:
        """Redis's ``maxmemory-policy``, from ``INFO memory`` (which an ACL user limited to
        kassa's commands may run), else ``CONFIG GET`` where INFO leaves it out; on a Redis
        Cluster, the policy of the node holding the key space."""
        where: dict[str, Any] = {}
        if isinstance(self._client, RedisCluster):
            node = self._client.get_node_from_key(self._applied_key)  # type: ignore[no-untyped-call]
            where["target_nodes"] = node
        info: dict[str, Any] = self._client.info("memory", **where)
        policy: object = info.get("maxmemory_policy")
        if policy is None:
            config: dict[Any, Any] = self._client.config_get("maxmemory-policy", **where)
            policy = next(iter(config.values()), "noeviction")
        return policy.decode() if isinstance(policy, bytes) else str(policy)

    def watermarks(self, partitions: Iterable[int]) -> dict[int, int]:
        """The last applied offset of each partition; -1 where none was applied."""
        return self.state(partitions).watermarks

    def state(self, partitions: Iterable[int]) -> LiveState:
        """Watermarks of ``partitions``, identity, epoch and replay floor, in one read."""
        wanted = list(partitions)
        fields = [str(p) for p in wanted] + [keys.floor_field(p) for p in wanted]
        fields += [*keys.IDENTITY_FIELDS, keys.FLOOR_DAY_FIELD]
        pipe = self._client.pipeline(transaction=True)
        pipe.hmget(self._applied_key, fields)
        pipe.exists(self._applied_key)
        values, exists = pipe.execute()
        marks, floors = values[: len(wanted)], values[len(wanted) : 2 * len(wanted)]
        topic_id, cluster_id, epoch, floor_day = values[2 * len(wanted) :]
        watermarks = {p: -1 if v is None else int(v) for p, v in zip(wanted, marks, strict=True)}
        identity = None
        if topic_id is not None and cluster_id is not None:
            identity = Identity(topic_id.decode(), cluster_id.decode())
        floor = None
        if floor_day is not None:
            offsets = {p: int(v) for p, v in zip(wanted, floors, strict=True) if v is not None}
            floor = ReplayFloor(date.fromisoformat(floor_day.decode()), offsets)
        return LiveState(watermarks, identity, int(epoch or 0), floor, bool(exists))

    def claim(self, identity: Identity) -> None:
        """Record ``identity`` in a watermark hash that has none yet (written before kassa
        recorded identities); a hash with an identity keeps it."""
        pipe = self._client.pipeline(transaction=True)
        pipe.hsetnx(self._applied_key, keys.TOPIC_ID_FIELD, identity.topic_id)
        pipe.hsetnx(self._applied_key, keys.CLUSTER_ID_FIELD, identity.cluster_id)
        pipe.execute()

    def has_day_keys(self) -> bool:
        """Whether any per-day live key of this key space exists (one ``SCAN`` at most)."""
        pattern = keys.day_pattern(self._space, "live")
        return next(iter(self._client.scan_iter(match=pattern, count=1000)), None) is not None

    def dead_letter_counts(self) -> dict[str, int]:
        """Messages dead-lettered so far, by reason."""
        raw: dict[Any, Any] = self._client.hgetall(self._dead_letters_key)
        return {reason.decode(): int(count) for reason, count in raw.items()}

    def apply(self, delta: PartitionDelta, expected: Expectation) -> ApplyResult:
        """Add ``delta`` and move the watermark to its last offset, in one Lua call.

        The batch is written only if the watermark hash counts ``expected.identity`` (else
        :attr:`ApplyStatus.FOREIGN`) and, unless ``expected.watermark`` is ``None``, holds
        exactly ``expected``'s epoch and watermark: a watermark at or past the batch's last
        offset gives :attr:`ApplyStatus.DUPLICATE`, a higher one :attr:`ApplyStatus.CONFLICT`
        (another writer was there), a lower one or another epoch :attr:`ApplyStatus.BEHIND`.
        """
        if delta.empty:
            msg = f"partition {delta.partition}: an empty batch has no offsets to apply"
            raise ValueError(msg)
        if delta.items and not delta.chain:
            msg = (
                f"partition {delta.partition}: the batch's store figures were not rolled up "
                "into the chain's (PartitionDelta.chain): roll the batch up before applying it"
            )
            raise ValueError(msg)
        self._now = datetime.now(UTC)
        script_keys = [self._applied_key]
        ops: _Ops = []
        if delta.dead_letters:
            script_keys.append(self._dead_letters_key)
            ops.append(
                (Op.ADD_FIELDS, 0, _flat((r, str(n)) for r, n in delta.dead_letters.items()))
            )
        if delta.names:
            script_keys.append(self._names_key)
            ops.append((Op.SET_FIELDS, 0, _flat(delta.names.items())))
        self._add_figures(delta, script_keys, ops)
        watermark = expected.watermark
        args: list[str | bytes] = [
            str(delta.partition),
            str(delta.last_offset),
            "" if watermark is None else str(watermark),
            msgspec.json.encode(ops),
            expected.identity.topic_id,
            expected.identity.cluster_id,
            str(expected.epoch),
        ]
        try:
            status, stored = self._script(keys=script_keys, args=args)
        except redis.ResponseError as exc:
            text = str(exc)
            if text.startswith(scripts.FIGURE_LIMIT):
                raise FigureLimitError(text.removeprefix(scripts.FIGURE_LIMIT).strip()) from None
            raise
        return ApplyResult(ApplyStatus(int(status)), int(stored))

    def rebuild(
        self, identity: Identity, epoch: int, firsts: dict[int, int], day: date | None
    ) -> tuple[int, int]:
        """Clear the live figures of every day >= ``day`` (all days when ``None``) and move
        the watermarks so the stream job recounts them, in one Lua call.

        The keys to clear are found by ``SCAN`` and given to the script, which changes
        nothing if a key was written since; the scan is then repeated (at most
        :data:`REBUILD_ATTEMPTS` times).

        ``firsts`` maps each partition to the first offset to recount (the start of ``day``,
        or the log start). ``epoch`` is the epoch the plan was made on; the new epoch makes a
        running job's next batch :attr:`ApplyStatus.BEHIND`, so it resumes from the new
        watermarks. Returns the new epoch and the number of keys deleted.
        """
        prefix = keys.source_prefix(self._space, "live")
        pattern = keys.day_pattern(self._space, "live")
        first = "" if day is None else day.isoformat()
        args: list[str | bytes] = [
            str(epoch),
            first,
            prefix,
            pattern,
            _encode_firsts(firsts),
            identity.topic_id,
            identity.cluster_id,
        ]
        for _ in range(REBUILD_ATTEMPTS):
            found = {
                key
                for key in self._client.scan_iter(match=pattern, count=1000)
                if key[len(prefix) : len(prefix) + 10].decode() >= first
            }
            script_keys = [self._applied_key, self._dead_letters_key, *sorted(found)]
            new_epoch, outcome = self._rebuild_script(keys=script_keys, args=args)
            if int(new_epoch) >= 0:
                return int(new_epoch), int(outcome)
        msg = (
            f"live keys of key space {self._space!r} kept appearing while the rebuild looked "
            f"for them ({REBUILD_ATTEMPTS} times, last {outcome.decode()!r}): stop the stream "
            "job, then rebuild"
        )
        raise redis.ResponseError(msg)

    def _expire_at(self, day: date) -> int:
        return keys.expire_at(day, self._zone, self._retention_days, self._now)

    def _add_figures(self, delta: PartitionDelta, script_keys: list[str], ops: _Ops) -> None:
        """The ops of every store scope, every chain day and each day's set of stores."""
        for (day, store_id), items in delta.items.items():
            self._add_scope(
                day, store_id, items, delta.counts_of((day, store_id)), script_keys, ops
            )
        for day, chain in delta.chain.items():
            self._add_scope(day, None, chain.items, chain.counts, script_keys, ops)
        for day, chain in delta.chain.items():
            script_keys.append(keys.stores_key(self._space, "live", day))
            ops.append((Op.ADD_MEMBERS, self._expire_at(day), sorted(chain.stores)))

    def _add_scope(  # noqa: PLR0917 - private, called twice
        self,
        day: date,
        scope: str | None,
        items: dict[str, list[int]],
        counts: list[int],
        script_keys: list[str],
        ops: _Ops,
    ) -> None:
        """One pass over a scope's items builds all its operations and its day totals (the
        writer's hot loop)."""
        units, sold, returned, revenue, checkouts = UNITS, SOLD, RETURNED, REVENUE, CHECKOUTS
        discounts = DISCOUNT
        pairs: tuple[list[str], ...] = ([], [], [], [], [], [])
        ranking, sold_pairs, returned_pairs, revenue_pairs, checkout_pairs, discount_pairs = (
            pairs[units],
            pairs[sold],
            pairs[returned],
            pairs[revenue],
            pairs[checkouts],
            pairs[discounts],
        )
        total_units = total_sold = total_returned = total_revenue = total_discount = 0
        for sku, figures in items.items():
            net = figures[units]
            ranking += (sku, str(net))
            total_units += net
            value = figures[sold]
            if value:
                sold_pairs += (sku, str(value))
                total_sold += value
            value = figures[returned]
            if value:
                returned_pairs += (sku, str(value))
                total_returned += value
            value = figures[revenue]
            if value:
                revenue_pairs += (sku, str(value))
                total_revenue += value
            value = figures[checkouts]
            if value:
                checkout_pairs += (sku, str(value))
            value = figures[discounts]
            if value:
                discount_pairs += (sku, str(value))
                total_discount += value
        expire_at = self._expire_at(day)
        for figure, name in enumerate(NAMES):
            if figure == RANKED:
                script_keys.append(keys.day_key(self._space, "live", day, name, scope))
                ops.append((Op.ADD_SCORES, expire_at, pairs[figure]))
            elif pairs[figure]:
                script_keys.append(keys.day_key(self._space, "live", day, name, scope))
                ops.append((Op.ADD_FIELDS, expire_at, pairs[figure]))
        totals = {
            COLUMNS[UNITS]: total_units,
            COLUMNS[SOLD]: total_sold,
            COLUMNS[RETURNED]: total_returned,
            COLUMNS[REVENUE]: total_revenue,
            COLUMNS[CHECKOUTS]: counts[CHECKOUT_COUNT],
            COLUMNS[DISCOUNT]: total_discount,
            LINES: counts[LINE_COUNT],
        }
        script_keys.append(keys.day_key(self._space, "live", day, "totals", scope))
        ops.append((Op.ADD_FIELDS, expire_at, _flat((name, str(n)) for name, n in totals.items())))


def _flat(pairs: Iterable[tuple[str, str]]) -> list[str]:
    return [part for pair in pairs for part in pair]


def _encode_firsts(firsts: dict[int, int]) -> bytes:
    return msgspec.json.encode({str(partition): first for partition, first in firsts.items()})
