"""The Lua scripts of the live store (:mod:`storage.live`) and the codes they read.

Each script runs atomically in Redis. The watermark hash's field names come from
:mod:`storage.keys` and the op codes from :class:`Op`: the script texts are templates filled
from them, so no name is spelled twice.

:data:`APPLY` adds one partition batch. ``KEYS[1]`` is the watermark hash, ``KEYS[2..]`` the
keys the batch writes; ``ARGV`` is the partition, the batch's last offset, the expected
watermark (``''``: no check), the ops, the topic id, the cluster id and the expected epoch.
The ops are a JSON list with one ``[op, expire_at, args]`` per key of ``KEYS[2..]``, in
order: an :class:`Op`, the key's ``EXPIREAT`` (0: none) and its flat arguments
(``field, value, ...`` or members). It returns ``{status, watermark}``, the status being an
:class:`~storage.live.ApplyStatus` value. Every figure an op adds to is read first (one
``HMGET``/``ZMSCORE`` per key and 2,000 fields), and nothing is written unless every read
figure is an integer and every net unit stays within +-2^53 (else an error reply starting with
:data:`FIGURE_LIMIT`). Hash figures are added exactly: as Lua doubles when both numbers have at
most 15 characters, else digit by digit, as decimal strings.

:data:`REBUILD` clears live days and moves the watermarks back (``kassa stream rebuild``).
``KEYS`` is the watermark hash, the dead-letter counts and the day keys to clear, found by the
caller's ``SCAN``; ``ARGV`` is the epoch the rebuild was planned on, the first day to clear
(``''``: every day), the live source's key prefix, its ``SCAN`` pattern,
``{partition: first offset to recount}`` as JSON, the topic id and the cluster id. The script
touches no key it is not given: it lists the pattern's keys again (``SCAN`` reads names, not
keys) and, if one to clear is missing from ``KEYS`` (written since the caller's ``SCAN``),
returns ``{-1, that key}`` having changed nothing, for the caller to try again. Else it
returns ``{new epoch, keys deleted}``. Every key of a key space shares one hash slot
(:mod:`storage.keys`), so on a Redis Cluster the node that runs the script holds them all.
"""

from __future__ import annotations

import enum
from string import Template
from typing import Final

from storage import keys


class Op(enum.StrEnum):
    """What :data:`APPLY` does with one key of a batch (one character: a batch has thousands)."""

    ADD_SCORES = "z"
    """A sorted set: ``ZMSCORE``, add each score (refused past +-2^53), ``ZADD``."""
    ADD_FIELDS = "h"
    """A hash: ``HMGET``, add each value exactly, ``HSET``."""
    ADD_MEMBERS = "s"
    """A set: ``SADD`` the members."""
    SET_FIELDS = "n"
    """A hash: ``HSET`` the values over the old ones (the script's default: no read)."""


FIGURE_LIMIT: Final = "KASSA_FIGURE_LIMIT"
"""The first word of :data:`APPLY`'s error when net units would pass 2^53; the rest is
``<sku> in <key>``."""

_NAMES: Final = {
    "TOPIC_ID": keys.TOPIC_ID_FIELD,
    "CLUSTER_ID": keys.CLUSTER_ID_FIELD,
    "EPOCH": keys.EPOCH_FIELD,
    "FLOOR_DAY": keys.FLOOR_DAY_FIELD,
    "FLOOR": keys.FLOOR_FIELD_PREFIX,
    "FIGURE_LIMIT": FIGURE_LIMIT,
    **{op.name: op.value for op in Op},
}

_APPLY: Final = """
local held = redis.call('HMGET', KEYS[1], ARGV[1], '$TOPIC_ID', '$CLUSTER_ID', '$EPOCH')
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
  if kind == '$ADD_SCORES' or kind == '$ADD_FIELDS' then
    local read = kind == '$ADD_SCORES' and 'ZMSCORE' or 'HMGET'
    local sums = {}
    for first = 1, #args, 2 * CHUNK do
      local fields = {}
      for j = first, math.min(first + 2 * CHUNK - 1, #args), 2 do fields[#fields + 1] = args[j] end
      local current = redis.call(read, key, unpack(fields))
      for i = 1, #fields do
        local sum = args[first + 2 * i - 1]
        local now = current[i]
        if kind == '$ADD_SCORES' then
          sum = tonumber(sum)
          if now then
            if tonumber(now) == nil then
              return redis.error_reply(key .. ' ' .. fields[i] .. ' holds ' .. now ..
                ', not a number: nothing was written')
            end
            sum = sum + tonumber(now)
          end
          if sum >= EXACT or sum <= -EXACT then
            return redis.error_reply('$FIGURE_LIMIT ' .. fields[i] .. ' in ' .. key)
          end
          sum = string.format('%d', sum)
        elseif now then
          if not string.find(now, '^-?%d+$$') then
            return redis.error_reply(key .. ' ' .. fields[i] .. ' holds ' .. now ..
              ', not a number: nothing was written')
          end
          sum = exact_add(sum, now)
        end
        if kind == '$ADD_SCORES' then
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
  if kind == '$ADD_SCORES' then
    write = 'ZADD'
  elseif kind == '$ADD_MEMBERS' then
    write, step = 'SADD', CHUNK
  end
  for first = 1, #args, step do
    redis.call(write, key, unpack(args, first, math.min(first + step - 1, #args)))
  end
  if ops[k - 1][2] ~= 0 then redis.call('EXPIREAT', key, ops[k - 1][2]) end
end
if last > stored then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], '$TOPIC_ID', ARGV[5], '$CLUSTER_ID', ARGV[6])
end
return {1, last}
"""

_REBUILD: Final = """
local held = redis.call('HMGET', KEYS[1], '$EPOCH', '$FLOOR_DAY')
if (held[1] or '0') ~= ARGV[1] then
  return redis.error_reply('the live figures were rebuilt meanwhile (epoch ' ..
    (held[1] or '0') .. ', planned on ' .. ARGV[1] .. '): plan the rebuild again')
end
local day = ARGV[2]
local firsts = cjson.decode(ARGV[5])
local marks = {}
for partition, first in pairs(firsts) do
  local stored = tonumber(redis.call('HGET', KEYS[1], partition) or '-1')
  local floor = tonumber(redis.call('HGET', KEYS[1], '$FLOOR' .. partition) or '-1')
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
local given = {}
for k = 3, #KEYS do given[KEYS[k]] = true end
local cursor = '0'
repeat
  local page = redis.call('SCAN', cursor, 'MATCH', ARGV[4], 'COUNT', 1000)
  cursor = page[1]
  for _, key in ipairs(page[2]) do
    if not given[key] and (day == '' or string.sub(key, #prefix + 1, #prefix + 10) >= day) then
      return {-1, key}
    end
  end
until cursor == '0'
local cleared = 0
for k = 3, #KEYS do cleared = cleared + redis.call('UNLINK', KEYS[k]) end
if day == '' then redis.call('DEL', KEYS[2]) end
local epoch = tonumber(held[1] or '0') + 1
redis.call('HSET', KEYS[1], '$EPOCH', epoch, '$TOPIC_ID', ARGV[6], '$CLUSTER_ID', ARGV[7])
local floors = false
for partition, mark in pairs(marks) do
  redis.call('HSET', KEYS[1], partition, string.format('%d', mark[1]))
  if mark[2] > mark[1] then
    redis.call('HSET', KEYS[1], '$FLOOR' .. partition, string.format('%d', mark[2]))
    floors = true
  else
    redis.call('HDEL', KEYS[1], '$FLOOR' .. partition)
  end
end
if floors then
  redis.call('HSET', KEYS[1], '$FLOOR_DAY', day)
else
  redis.call('HDEL', KEYS[1], '$FLOOR_DAY')
end
return {epoch, cleared}
"""


def _filled(template: str) -> str:
    return Template(template).substitute(_NAMES)


APPLY: Final = _filled(_APPLY)
"""Adds one batch and moves its partition's watermark (see the module docstring)."""
REBUILD: Final = _filled(_REBUILD)
"""Clears live days and moves the watermarks back (see the module docstring)."""
