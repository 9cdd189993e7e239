"""The live Redis store: per-partition batches applied exactly once.

The stream job aggregates each partition batch into a :class:`PartitionDelta` and hands it to
:meth:`LiveStore.apply`, which sends the whole delta in ONE call of a Lua script. The script
adds the delta to the ``live`` keys of :mod:`storage.keys` and records the batch's last
offset as the partition's *watermark* in the same atomic step, but only if the watermark is
the one the writer expects (compare-and-set). It reads every figure it adds to first (one
``HMGET``/``ZMSCORE`` per key, not one ``HINCRBY``/``ZINCRBY`` per figure: about a quarter
less Redis CPU) and writes nothing if a stored figure is not an integer. A replay after a
crash, a stale replica or a batch that follows a refused one therefore changes nothing.

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
from datetime import date
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
local stored = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
local last = tonumber(ARGV[2])
if ARGV[3] ~= '' then
  if stored >= last then return {0, stored} end
  if stored ~= tonumber(ARGV[3]) then return {-1, stored} end
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
if last > stored then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return {1, last}
"""


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
    """Part of the batch was applied before (by another writer): nothing written."""


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """The outcome of one batch and the partition's watermark afterwards."""

    status: ApplyStatus
    watermark: int


class LiveStore:
    """The ``live`` namespace of one sales topic in one Redis database."""

    def __init__(
        self, client: redis.Redis, topic: str, zone: ZoneInfo, retention_days: int
    ) -> None:
        self._client = client
        self._topic = topic
        self._zone = zone
        self._retention_days = retention_days
        self._applied_key = keys.applied_offsets_key(topic)
        self._dead_letters_key = keys.dead_letters_key(topic)
        self._script = client.register_script(_APPLY_SCRIPT)
        self._expiry: dict[date, int] = {}

    def watermarks(self, partitions: Iterable[int]) -> dict[int, int]:
        """The last applied offset of each partition; -1 where none was applied."""
        wanted = list(partitions)
        if not wanted:
            return {}
        values = self._client.hmget(self._applied_key, [str(p) for p in wanted])
        return {p: -1 if v is None else int(v) for p, v in zip(wanted, values, strict=True)}

    def dead_letter_counts(self) -> dict[str, int]:
        """Messages dead-lettered so far, by reason."""
        raw: dict[Any, Any] = self._client.hgetall(self._dead_letters_key)
        return {reason.decode(): int(count) for reason, count in raw.items()}

    def apply(self, delta: PartitionDelta, expected: int | None) -> ApplyResult:
        """Add ``delta`` and move the watermark to its last offset, in one Lua call.

        ``expected`` is the watermark the caller believes Redis holds (-1: none). The batch is
        written only if Redis holds exactly that: a watermark at or past the batch's last
        offset gives :attr:`ApplyStatus.DUPLICATE`, any other difference
        :attr:`ApplyStatus.CONFLICT` (another writer was there). ``None`` writes
        unconditionally (at-least-once).
        """
        if delta.empty:
            msg = f"partition {delta.partition}: an empty batch has no offsets to apply"
            raise ValueError(msg)
        script_keys = [self._applied_key]
        ops: list[tuple[str, int, list[str]]] = []
        if delta.dead_letters:
            script_keys.append(self._dead_letters_key)
            ops.append(("h", 0, _flat((r, str(n)) for r, n in delta.dead_letters.items())))
        if delta.names:
            script_keys.append(keys.NAMES)
            ops.append(("n", 0, _flat(delta.names.items())))
        self._add_figures(delta, script_keys, ops)
        expected_arg = "" if expected is None else str(expected)
        args: list[str | bytes] = [
            str(delta.partition),
            str(delta.last_offset),
            expected_arg,
            _encode(ops),
        ]
        try:
            status, watermark = self._script(keys=script_keys, args=args)
        except redis.ResponseError as exc:
            text = str(exc)
            if text.startswith(_FIGURE_LIMIT):
                raise FigureLimitError(text.removeprefix(_FIGURE_LIMIT).strip()) from None
            raise
        return ApplyResult(ApplyStatus(int(status)), int(watermark))

    def _expire_at(self, day: date) -> int:
        expire_at = self._expiry.get(day)
        if expire_at is None:
            expire_at = self._expiry[day] = keys.expire_at(day, self._zone, self._retention_days)
        return expire_at

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
            script_keys.append(keys.stores_key("live", day))
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
                script_keys.append(keys.day_key("live", day, name, scope))
                ops.append(("z", expire_at, pairs[figure]))
            elif pairs[figure]:
                script_keys.append(keys.day_key("live", day, name, scope))
                ops.append(("h", expire_at, pairs[figure]))
        totals = {
            COLUMNS[UNITS]: total_units,
            COLUMNS[SOLD]: total_sold,
            COLUMNS[RETURNED]: total_returned,
            COLUMNS[REVENUE]: total_revenue,
            COLUMNS[CHECKOUTS]: counts[CHECKOUT_COUNT],
            LINES: counts[LINE_COUNT],
        }
        script_keys.append(keys.day_key("live", day, "totals", scope))
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
