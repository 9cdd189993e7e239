"""The live Redis store: per-partition batches applied exactly once.

The stream job aggregates each partition batch into a :class:`PartitionDelta` and hands it to
:meth:`LiveStore.apply`, which sends the whole delta in ONE call of a Lua script. The script
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
back in one call of a second script; it leaves a :class:`ReplayFloor` so that the recount
skips records of older, kept days.

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

from common.errors import FigureLimitError
from storage import keys
from storage.figures import (
    CHECKOUT_COUNT,
    CHECKOUTS,
    COLUMNS,
    LINE_COUNT,
    LINES,
    NAMES,
    RANKED,
    RETURNED,
    REVENUE,
    SOLD,
    UNITS,
)

_FIGURE_LIMIT: Final = "KASSA_FIGURE_LIMIT"
"""The first word of the script's error when net units would pass 2^53."""
_APPLY_SCRIPT: Final = """
local held = redis.call('HMGET', KEYS[1], ARGV[1], 'topic_id', 'cluster_id', 'epoch')
local stored = tonumber(held[1] or '-1')
local last = tonumber(ARGV[2])
if held[2] and (held[2] ~= ARGV[5] or held[3] ~= ARGV[6]) then return {-2, stored} end
if ARGV[3] ~= '' then
  if (held[4] or '0') ~= ARGV[7] then return {-3, stored} end
  if stored >= last then return {0, stored} end
  local expected = tonumber(ARGV[3])
  if stored < expected then return {-3, stored} end
  if stored > expected then return {-1, stored} end
end
local ops = cjson.decode(ARGV[4])
local CHUNK = 2000
local EXACT = 9007199254740992
local function strip(d)
  d = string.gsub(d, '^0+', '')
  if d == '' then return '0' end
  return d
end
local function magnitude_less(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local function chunk(d, i)
  if i <= 0 then return 0 end
  return tonumber(string.sub(d, math.max(1, i - 6), i))
end
local function magnitude_add(a, b)
  local out, carry, i, j = {}, 0, #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local s = chunk(a, i) + chunk(b, j) + carry
    carry = s >= 1e7 and 1 or 0
    table.insert(out, 1, string.format('%07d', s - carry * 1e7))
    i, j = i - 7, j - 7
  end
  return strip(table.concat(out))
end
local function magnitude_sub(a, b)
  local out, borrow, i, j = {}, 0, #a, #b
  while i > 0 do
    local s = chunk(a, i) - chunk(b, j) - borrow
    borrow = s < 0 and 1 or 0
    table.insert(out, 1, string.format('%07d', s + borrow * 1e7))
    i, j = i - 7, j - 7
  end
  return strip(table.concat(out))
end
local function exact_add(a, b)
  if #a <= 15 and #b <= 15 then return string.format('%d', tonumber(a) + tonumber(b)) end
  local minus_a, minus_b = string.sub(a, 1, 1) == '-', string.sub(b, 1, 1) == '-'
  local x = strip(minus_a and string.sub(a, 2) or a)
  local y = strip(minus_b and string.sub(b, 2) or b)
  if minus_a == minus_b then
    local sum = magnitude_add(x, y)
    if minus_a and sum ~= '0' then return '-' .. sum end
    return sum
  end
  if x == y then return '0' end
  if magnitude_less(x, y) then x, y, minus_a = y, x, minus_b end
  local difference = magnitude_sub(x, y)
  if minus_a then return '-' .. difference end
  return difference
end
local writes = {}
for k = 2, #KEYS do
  local key = KEYS[k]
  local op = ops[k - 1]
  local kind = op[1]
  local args = op[3]
  if kind == 'z' or kind == 'h' then
    local read = kind == 'z' and 'ZMSCORE' or 'HMGET'
    local sums = {}
    for first = 1, #args, 2 * CHUNK do
      local fields = {}
      for j = first, math.min(first + 2 * CHUNK - 1, #args), 2 do fields[#fields + 1] = args[j] end
      local current = redis.call(read, key, unpack(fields))
      for i = 1, #fields do
        local sum = args[first + 2 * i - 1]
        local now = current[i]
        if kind == 'z' then
          sum = tonumber(sum)
          if now then
            if tonumber(now) == nil then
              return redis.error_reply(key .. ' ' .. fields[i] .. ' holds ' .. now ..
                ', not a number: nothing was written')
            end
            sum = sum + tonumber(now)
          end
          if sum >= EXACT or sum <= -EXACT then
            return redis.error_reply('KASSA_FIGURE_LIMIT ' .. fields[i] .. ' in ' .. key)
          end
          sum = string.format('%d', sum)
        elseif now then
          if not string.find(now, '^-?%d+$') then
            return redis.error_reply(key .. ' ' .. fields[i] .. ' holds ' .. now ..
              ', not a number: nothing was written')
          end
          sum = exact_add(sum, now)
        end
        if kind == 'z' then
          sums[#sums + 1] = sum
          sums[#sums + 1] = fields[i]
        else
          sums[#sums + 1] = fields[i]
          sums[#sums + 1] = sum
        end
      end
    end
    args = sums
  end
  writes[k - 1] = args
end
for k = 2, #KEYS do
  local key = KEYS[k]
  local kind = ops[k - 1][1]
  local args = writes[k - 1]
  local write, step = 'HSET', 2 * CHUNK
  if kind == 'z' then write = 'ZADD' elseif kind == 's' then write, step = 'SADD', CHUNK end
  for first = 1, #args, step do
    redis.call(write, key, unpack(args, first, math.min(first + step - 1, #args)))
  end
  if ops[k - 1][2] ~= 0 then redis.call('EXPIREAT', key, ops[k - 1][2]) end
end
if last > stored then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], 'topic_id', ARGV[5], 'cluster_id', ARGV[6])
end
return {1, last}
"""


_REBUILD_SCRIPT: Final = """
local held = redis.call('HMGET', KEYS[1], 'epoch', 'floor_day')
if (held[1] or '0') ~= ARGV[1] then
  return redis.error_reply('the live figures were rebuilt meanwhile (epoch ' ..
    (held[1] or '0') .. ', planned on ' .. ARGV[1] .. '): plan the rebuild again')
end
local day = ARGV[2]
local firsts = cjson.decode(ARGV[5])
local marks = {}
for partition, first in pairs(firsts) do
  local stored = tonumber(redis.call('HGET', KEYS[1], partition) or '-1')
  local floor = tonumber(redis.call('HGET', KEYS[1], 'floor:' .. partition) or '-1')
  if day ~= '' and held[2] and day > held[2] and floor > stored then
    return redis.error_reply('partition ' .. partition .. ' is still recounting the rebuild ' ..
      'from ' .. held[2] .. ' (at offset ' .. stored .. ' of ' .. floor .. '): rebuild --from ' ..
      held[2] .. ' or earlier, or wait until it caught up')
  end
  if day == '' then
    marks[partition] = {first - 1, -1}
  elseif stored >= first then
    marks[partition] = {first - 1, math.max(stored, floor)}
  else
    marks[partition] = {stored, floor}
  end
end
local prefix = ARGV[3]
local cleared = 0
local cursor = '0'
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', ARGV[4], 'COUNT', 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do
    if day == '' or string.sub(key, #prefix + 1, #prefix + 10) >= day then
      redis.call('UNLINK', key)
      cleared = cleared + 1
    end
  end
until cursor == '0'
if day == '' then redis.call('DEL', KEYS[2]) end
local epoch = tonumber(held[1] or '0') + 1
redis.call('HSET', KEYS[1], 'epoch', epoch, 'topic_id', ARGV[6], 'cluster_id', ARGV[7])
local floors = false
for partition, mark in pairs(marks) do
  redis.call('HSET', KEYS[1], partition, string.format('%d', mark[1]))
  if mark[2] > mark[1] then
    redis.call('HSET', KEYS[1], 'floor:' .. partition, string.format('%d', mark[2]))
    floors = true
  else
    redis.call('HDEL', KEYS[1], 'floor:' .. partition)
  end
end
if floors then
  redis.call('HSET', KEYS[1], 'floor_day', day)
else
  redis.call('HDEL', KEYS[1], 'floor_day')
end
return {epoch, cleared}
"""


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
class PartitionDelta:
    """What one batch of one partition adds to the live figures.

    ``items`` maps ``(day, store_id)`` to ``{sku: figures}``, a list in the layout of
    :mod:`storage.figures`; ``stores`` maps ``(day, store_id)`` to the scope's
    ``[checkouts, lines]``. Offsets span the batch, including dead-lettered messages;
    ``first_offset`` is -1 while the batch is empty.
    """

    partition: int
    first_offset: int = -1
    last_offset: int = -1
    items: dict[tuple[date, str], dict[str, list[int]]] = field(default_factory=dict)
    stores: dict[tuple[date, str], list[int]] = field(default_factory=dict)
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
    """The ``live`` namespace of one sales topic in one Redis database (key space ``space``)."""

    def __init__(
        self, client: redis.Redis, space: str, zone: ZoneInfo, retention_days: int
    ) -> None:
        self._client = client
        self._space = space
        self._zone = zone
        self._retention_days = retention_days
        self._applied_key = keys.applied_offsets_key(space)
        self._dead_letters_key = keys.dead_letters_key(space)
        self._names_key = keys.names_key(space)
        self._script = client.register_script(_APPLY_SCRIPT)
        self._rebuild_script = client.register_script(_REBUILD_SCRIPT)
        self._now = datetime.now(UTC)

    @property
    def space(self) -> str:
        """The key space (``KASSA_REDIS_NAMESPACE``, by default the topic)."""
        return self._space

    @property
    def applied_key(self) -> str:
        """The watermark hash."""
        return self._applied_key

    def eviction_policy(self) -> str:
        """Redis's ``maxmemory-policy`` (from ``INFO memory`` where ``CONFIG`` is disabled)."""
        policy: object = None
        try:
            config: dict[Any, Any] = self._client.config_get("maxmemory-policy")
            policy = next(iter(config.values()), None)
        except redis.ResponseError:  # CONFIG renamed or disabled (managed Redis)
            policy = None
        if policy is None:
            info: dict[str, Any] = self._client.info("memory")
            policy = info.get("maxmemory_policy", "noeviction")
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
        self._now = datetime.now(UTC)
        script_keys = [self._applied_key]
        ops: list[tuple[str, int, list[str]]] = []
        if delta.dead_letters:
            script_keys.append(self._dead_letters_key)
            ops.append(("h", 0, _flat((r, str(n)) for r, n in delta.dead_letters.items())))
        if delta.names:
            script_keys.append(self._names_key)
            ops.append(("n", 0, _flat(delta.names.items())))
        self._add_figures(delta, script_keys, ops)
        watermark = expected.watermark
        args: list[str | bytes] = [
            str(delta.partition),
            str(delta.last_offset),
            "" if watermark is None else str(watermark),
            _encode(ops),
            expected.identity.topic_id,
            expected.identity.cluster_id,
            str(expected.epoch),
        ]
        try:
            status, stored = self._script(keys=script_keys, args=args)
        except redis.ResponseError as exc:
            text = str(exc)
            if text.startswith(_FIGURE_LIMIT):
                raise FigureLimitError(text.removeprefix(_FIGURE_LIMIT).strip()) from None
            raise
        return ApplyResult(ApplyStatus(int(status)), int(stored))

    def rebuild(
        self, identity: Identity, epoch: int, firsts: dict[int, int], day: date | None
    ) -> tuple[int, int]:
        """Clear the live figures of every day >= ``day`` (all days when ``None``) and move
        the watermarks so the stream job recounts them, in one Lua call.

        ``firsts`` maps each partition to the first offset to recount (the start of ``day``,
        or the log start). ``epoch`` is the epoch the plan was made on; the new epoch makes a
        running job's next batch :attr:`ApplyStatus.BEHIND`, so it resumes from the new
        watermarks. Returns the new epoch and the number of keys deleted.
        """
        args: list[str | bytes] = [
            str(epoch),
            "" if day is None else day.isoformat(),
            keys.namespace_prefix(self._space, "live"),
            keys.day_pattern(self._space, "live"),
            _encode_firsts(firsts),
            identity.topic_id,
            identity.cluster_id,
        ]
        new_epoch, cleared = self._rebuild_script(
            keys=[self._applied_key, self._dead_letters_key], args=args
        )
        return int(new_epoch), int(cleared)

    def _expire_at(self, day: date) -> int:
        return keys.expire_at(day, self._zone, self._retention_days, self._now)

    def _add_figures(
        self, delta: PartitionDelta, script_keys: list[str], ops: list[tuple[str, int, list[str]]]
    ) -> None:
        day_items: dict[date, dict[str, list[int]]] = {}
        day_counts: dict[date, list[int]] = {}
        day_stores: dict[date, list[str]] = {}
        for (day, store_id), items in delta.items.items():
            counts = delta.stores.get((day, store_id), [0, 0])
            self._add_scope(day, store_id, items, counts, script_keys, ops)
            chain = day_items.get(day)
            if chain is None:
                day_items[day] = {sku: figures.copy() for sku, figures in items.items()}
                day_counts[day] = counts.copy()
                day_stores[day] = [store_id]
            else:
                _add_items(chain, items)
                chain_counts = day_counts[day]
                chain_counts[CHECKOUT_COUNT] += counts[CHECKOUT_COUNT]
                chain_counts[LINE_COUNT] += counts[LINE_COUNT]
                day_stores[day].append(store_id)
        for day, items in day_items.items():
            self._add_scope(day, None, items, day_counts[day], script_keys, ops)
        for day, stores in day_stores.items():
            script_keys.append(keys.stores_key(self._space, "live", day))
            ops.append(("s", self._expire_at(day), sorted(set(stores))))

    def _add_scope(  # noqa: PLR0917 - private, called twice
        self,
        day: date,
        scope: str | None,
        items: dict[str, list[int]],
        counts: list[int],
        script_keys: list[str],
        ops: list[tuple[str, int, list[str]]],
    ) -> None:
        """One pass over a scope's items builds all its operations (the writer's hot loop)."""
        units, sold, returned, revenue, checkouts = UNITS, SOLD, RETURNED, REVENUE, CHECKOUTS
        pairs: tuple[list[str], ...] = ([], [], [], [], [])
        ranking, sold_pairs, returned_pairs, revenue_pairs, checkout_pairs = (
            pairs[units],
            pairs[sold],
            pairs[returned],
            pairs[revenue],
            pairs[checkouts],
        )
        total_units = total_sold = total_returned = total_revenue = 0
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
        expire_at = self._expire_at(day)
        for figure, name in enumerate(NAMES):
            if figure == RANKED:
                script_keys.append(keys.day_key(self._space, "live", day, name, scope))
                ops.append(("z", expire_at, pairs[figure]))
            elif pairs[figure]:
                script_keys.append(keys.day_key(self._space, "live", day, name, scope))
                ops.append(("h", expire_at, pairs[figure]))
        totals = {
            COLUMNS[UNITS]: total_units,
            COLUMNS[SOLD]: total_sold,
            COLUMNS[RETURNED]: total_returned,
            COLUMNS[REVENUE]: total_revenue,
            COLUMNS[CHECKOUTS]: counts[CHECKOUT_COUNT],
            LINES: counts[LINE_COUNT],
        }
        script_keys.append(keys.day_key(self._space, "live", day, "totals", scope))
        ops.append(("h", expire_at, _flat((name, str(n)) for name, n in totals.items())))


def _add_items(chain: dict[str, list[int]], items: dict[str, list[int]]) -> None:
    """Add a store's ``items`` to the chain's (lists of :mod:`storage.figures` layout)."""
    units, sold, returned, revenue, checkouts = UNITS, SOLD, RETURNED, REVENUE, CHECKOUTS
    for sku, figures in items.items():
        total = chain.get(sku)
        if total is None:
            chain[sku] = figures.copy()
        else:
            total[units] += figures[units]
            total[sold] += figures[sold]
            total[returned] += figures[returned]
            total[revenue] += figures[revenue]
            total[checkouts] += figures[checkouts]


def _flat(pairs: Iterable[tuple[str, str]]) -> list[str]:
    return [part for pair in pairs for part in pair]


def _encode(ops: list[tuple[str, int, list[str]]]) -> bytes:
    return msgspec.json.encode(ops)


def _encode_firsts(firsts: dict[int, int]) -> bytes:
    return msgspec.json.encode({str(partition): first for partition, first in firsts.items()})
