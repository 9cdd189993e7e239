"""Reading rankings and figures back from Redis: the one reader of ``kassa top`` and the API.

A ranking covers one business day or a range of days, the whole chain or one store, and
ranks items by net units or by revenue (best first, ties by sku). The days of a range are
combined in Redis by one Lua script (:data:`_COMBINE_SCRIPT`): ``ZUNIONSTORE`` of the days'
``units`` sorted sets, or the sum of their ``revenue`` hashes, into the short-lived key
:func:`storage.keys.combined_ranking_key`; the same script reads the top of it and the other
measure of those items, so a ranking is one atomic read.

:func:`top` explains an empty answer instead of returning it: a day with no data, an unknown
store, a daily ranking not computed yet or a day past the Redis retention each raise their
own :class:`storage.exceptions.RankingError` naming the value and what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

from common.days import day_bounds
from common.schema import from_money_units
from common.settings.location import DataLocation
from storage import figures, keys, parquet
from storage.connections import Client
from storage.exceptions import (
    DailyNotComputedError,
    DayExpiredError,
    InvalidQueryError,
    NoDataError,
    Snapshot,
    UnknownStoreError,
)
from storage.figures import BY_REVENUE, BY_UNITS, COLUMNS, TOTALS
from storage.location import open_store

MAX_RANGE_DAYS: Final = 366
MAX_LIMIT: Final = 1000
STORES_IN_MESSAGE: Final = 20

_COMBINE_SCRIPT: Final = """
-- KEYS[1]: destination; then per day its units sorted set and its revenue hash.
-- ARGV: 1 (rank by units) | 0 (by revenue), limit, ttl seconds.
-- Returns {sku, ranked score, other} * n.
local dest = KEYS[1]
local by_units = ARGV[1] == '1'
local limit = tonumber(ARGV[2])
local days = (#KEYS - 1) / 2
local units, revenue = {}, {}
for d = 1, days do
  units[d] = KEYS[2 * d]
  revenue[d] = KEYS[2 * d + 1]
end
local source = dest
if by_units and days == 1 then
  source = units[1]
elseif by_units then
  redis.call('ZUNIONSTORE', dest, days, unpack(units))
else
  local union = {dest, days}
  for d = 1, days do union[#union + 1] = units[d] end
  union[#union + 1] = 'WEIGHTS'
  for d = 1, days do union[#union + 1] = 0 end
  redis.call('ZUNIONSTORE', unpack(union))
  local sums = {}
  for d = 1, days do
    local flat = redis.call('HGETALL', revenue[d])
    for i = 1, #flat, 2 do
      sums[flat[i]] = (sums[flat[i]] or 0) + tonumber(flat[i + 1])
    end
  end
  local args = {}
  for sku, sum in pairs(sums) do
    args[#args + 1] = string.format('%.0f', sum)
    args[#args + 1] = sku
    if #args >= 2000 then
      redis.call('ZADD', dest, unpack(args))
      args = {}
    end
  end
  if #args > 0 then redis.call('ZADD', dest, unpack(args)) end
end
if source == dest then redis.call('EXPIRE', dest, ARGV[3]) end
local top = redis.call('ZREVRANGE', source, 0, limit - 1, 'WITHSCORES')
if #top == 0 then return {} end
local lowest = top[#top]
local tied = redis.call('ZRANGEBYSCORE', source, lowest, lowest, 'WITHSCORES')
local members, scores, seen = {}, {}, {}
for _, flat in ipairs({top, tied}) do
  for i = 1, #flat, 2 do
    if not seen[flat[i]] then
      seen[flat[i]] = true
      members[#members + 1] = flat[i]
      scores[#members] = flat[i + 1]
    end
  end
end
local other = {}
for i = 1, #members do other[i] = 0 end
for first = 1, #members, 1000 do
  local chunk = {}
  for i = first, math.min(first + 999, #members) do chunk[#chunk + 1] = members[i] end
  for d = 1, days do
    local values
    if by_units then
      values = redis.call('HMGET', revenue[d], unpack(chunk))
    else
      values = redis.call('ZMSCORE', units[d], unpack(chunk))
    end
    for j = 1, #chunk do
      if values[j] then other[first + j - 1] = other[first + j - 1] + tonumber(values[j]) end
    end
  end
end
local result = {}
for i = 1, #members do
  result[#result + 1] = members[i]
  result[#result + 1] = string.format('%.0f', tonumber(scores[i]))
  result[#result + 1] = string.format('%.0f', other[i])
end
return result
"""


@dataclass(frozen=True, slots=True)
class RankedItem:
    """One row of a ranking: net units decide the rank; revenue is exact."""

    rank: int
    sku: str
    name: str | None
    units: int
    revenue: Decimal

    def as_json(self) -> dict[str, Any]:
        """The JSON object ``kassa top --json`` prints (revenue as a decimal string)."""
        return {
            "rank": self.rank,
            "sku": self.sku,
            "name": self.name,
            BY_UNITS: self.units,
            BY_REVENUE: str(self.revenue),
        }


def day_range(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last`` inclusive, or :class:`InvalidQueryError`."""
    if first > last:
        msg = f"from {first} is after to {last}; pass the first day first (YYYY-MM-DD)"
        raise InvalidQueryError("from", msg)
    count = (last - first).days + 1
    if count > MAX_RANGE_DAYS:
        msg = f"{first}..{last} spans {count} days; ask for at most {MAX_RANGE_DAYS} days"
        raise InvalidQueryError("to", msg)
    return [first + timedelta(days=offset) for offset in range(count)]


@dataclass(frozen=True, slots=True)
class RankingQuery:
    """Which ranking: key space, source, days ``first..last``, scope, measure, length."""

    space: str
    source: keys.Source
    first: date
    last: date
    limit: int = 10
    by: figures.RankedBy = BY_UNITS
    store_id: str | None = None

    def __post_init__(self) -> None:
        if self.source not in ("live", "daily"):
            msg = f"source {self.source!r} is unknown; use 'live' or 'daily'"
            raise InvalidQueryError("source", msg)
        if self.by not in figures.RANKED_BY:
            msg = f"by {self.by!r} is unknown; rank by {figures.RANKED_BY_CHOICES}"
            raise InvalidQueryError("by", msg)
        if not 1 <= self.limit <= MAX_LIMIT:
            msg = f"n {self.limit} is out of range; ask for 1 to {MAX_LIMIT} items"
            raise InvalidQueryError("n", msg)
        if self.store_id is not None and not 1 <= len(self.store_id) <= 128:
            msg = f"store {self.store_id!r} is not a store id; give 1 to 128 characters"
            raise InvalidQueryError("store", msg)
        day_range(self.first, self.last)

    @property
    def days(self) -> list[date]:
        """The days of the query, in order."""
        return day_range(self.first, self.last)

    def describe(self) -> str:
        """``live ranking by units for 2026-11-21 (all stores)``, for messages and titles."""
        span = str(self.first) if self.first == self.last else f"{self.first}..{self.last}"
        scope = f"store {self.store_id}" if self.store_id else "all stores"
        return f"{self.source} ranking by {self.by} for {span} ({scope})"


@dataclass(frozen=True, slots=True)
class Retention:
    """How long Redis keeps a day's keys, and where its Parquet snapshot stays after that."""

    zone: ZoneInfo
    days: int
    data_dir: DataLocation

    def expired(self, day: date, now: datetime) -> bool:
        """Whether the keys of ``day`` may have expired at ``now``: ``now`` is past the end of
        the day + retention (they live that long after their last write, see
        :func:`storage.keys.expire_at`, so a day replayed late may still be there)."""
        return now >= day_bounds(day, self.zone)[1] + timedelta(days=self.days)

    def snapshot(self, day: date, store_id: str | None) -> Snapshot:
        """The Parquet file that keeps ``day``'s item figures (per store if ``store_id``)."""
        table: parquet.Table = "daily_item_sales" if store_id is None else "daily_store_item_sales"
        store = open_store(self.data_dir)
        relative = parquet.table_file(table, day)
        return Snapshot(store.shown(relative), store.exists(relative))


def combined_ranking(client: Client, query: RankingQuery) -> list[RankedItem]:
    """The top ``query.limit`` items, days combined in Redis; an empty list if none.

    One script call: for a range it builds :func:`keys.combined_ranking_key` (expiring
    after :data:`keys.COMBINED_RANKING_TTL_SECONDS`) and reads the top of it.
    """
    script_keys = [
        keys.combined_ranking_key(
            query.space, query.source, query.first, query.last, query.by, query.store_id
        )
    ]
    for day in query.days:
        script_keys.append(keys.day_key(query.space, query.source, day, BY_UNITS, query.store_id))
        script_keys.append(keys.day_key(query.space, query.source, day, BY_REVENUE, query.store_id))
    by_units = int(query.by == BY_UNITS)
    args = [by_units, query.limit, keys.COMBINED_RANKING_TTL_SECONDS]
    raw: list[bytes] = client.register_script(_COMBINE_SCRIPT)(keys=script_keys, args=args)
    rows = [
        (raw[index], int(raw[index + 1]), int(raw[index + 2])) for index in range(0, len(raw), 3)
    ]
    rows.sort(key=lambda row: (-row[1], row[0]))
    rows = rows[: query.limit]
    if not rows:
        return []
    names: list[Any] = client.hmget(keys.names_key(query.space), [sku for sku, _, _ in rows])
    ranking = []
    for index, ((sku, ranked, other), name) in enumerate(zip(rows, names, strict=True)):
        units, revenue = (ranked, other) if by_units else (other, ranked)
        ranking.append(
            RankedItem(
                rank=index + 1,
                sku=sku.decode(),
                name=None if name is None else name.decode(),
                units=units,
                revenue=from_money_units(revenue),
            )
        )
    return ranking


def read_ranking(  # noqa: PLR0917 - the key space, then the ranking's coordinates
    client: Client,
    space: str,
    source: keys.Source,
    day: date,
    limit: int = 10,
    store_id: str | None = None,
) -> list[RankedItem]:
    """The top ``limit`` items of ``day`` by net units, best first (ties: by sku).

    An unknown day gives an empty list (:func:`top` explains it instead).
    """
    if limit < 1:
        msg = f"limit {limit} is not positive; ask for at least 1 item"
        raise ValueError(msg)
    query = RankingQuery(space, source, day, day, limit, BY_UNITS, store_id)
    return combined_ranking(client, query)


def top(
    client: Client, query: RankingQuery, retention: Retention, now: datetime
) -> list[RankedItem]:
    """The ranking of ``query``; a reason to have none is raised as a :class:`RankingError`.

    In this order: days past the retention without data (:class:`DayExpiredError`), daily
    days not computed (:class:`DailyNotComputedError`), no data on any day
    (:class:`NoDataError`), a store unseen on every day (:class:`UnknownStoreError`).
    """
    check_available(client, query, retention, now)
    return combined_ranking(client, query)


def check_available(
    client: Client, query: RankingQuery, retention: Retention, now: datetime
) -> None:
    """Raise the :class:`RankingError` that explains why ``query`` has no data, if any."""
    days = query.days
    pipe = client.pipeline(transaction=False)
    for day in days:
        pipe.exists(keys.day_key(query.space, query.source, day, "totals"))
        pipe.exists(keys.manifest_key(query.space, day))
    answers = pipe.execute()
    present = [day for day, found in zip(days, answers[0::2], strict=True) if found]
    computed = {day for day, found in zip(days, answers[1::2], strict=True) if found}
    absent = [day for day in days if day not in present]
    expired = [day for day in absent if retention.expired(day, now)]
    if expired:
        snapshot = retention.snapshot(expired[0], query.store_id)
        raise DayExpiredError(expired, retention.days, query.source, snapshot)
    if query.source == "daily":
        missing = [day for day in days if day not in computed]
        if missing:
            raise DailyNotComputedError(missing)
    if not present:
        raise NoDataError(_no_data_message(query))
    if query.store_id is not None:
        known = stores_of(client, query.space, query.source, days)
        if query.store_id not in known:
            raise UnknownStoreError(_unknown_store_message(query, known))


def _span(days: Sequence[date]) -> str:
    return str(days[0]) if len(days) == 1 else f"{days[0]}..{days[-1]}"


def _no_data_message(query: RankingQuery) -> str:
    span = _span(query.days)
    if query.source == "daily":
        return f"the daily result of {span} has no sales (the daily job found no checkouts)"
    return (
        f"no live figures for {span} in Redis: nothing was counted for it yet; is "
        "`kassa stream` running on KASSA_TOPIC, and were checkouts produced for that day?"
    )


def _unknown_store_message(query: RankingQuery, known: list[str]) -> str:
    span = _span(query.days)
    if len(known) <= STORES_IN_MESSAGE:
        listed = ", ".join(known)
    else:
        listed = ", ".join(known[:STORES_IN_MESSAGE]) + f" and {len(known) - STORES_IN_MESSAGE}"
        listed += " more"
    return (
        f"store {query.store_id!r} is unknown: no checkouts in the {query.source} figures "
        f"of {span}; known stores: {listed} (list them with `kassa top --stores --day "
        f"{query.first}` or GET /api/stores?day={query.first})"
    )


def stores_of(client: Client, space: str, source: keys.Source, days: Sequence[date]) -> list[str]:
    """The store ids with checkouts on any of ``days``, sorted."""
    if not days:
        return []
    members: set[bytes] = client.sunion([keys.stores_key(space, source, day) for day in days])  # type: ignore[assignment]
    return sorted(member.decode() for member in members)


@dataclass(frozen=True, slots=True)
class DayFigures:
    """One day's figures of an item or of a scope's totals, from Redis.

    ``values`` holds them by column (:data:`figures.COLUMNS` for an item, its
    :data:`figures.TOTALS` for a scope), revenue in money units; zeros and
    ``present=False`` when Redis has none.
    """

    day: date
    present: bool
    values: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        """JSON-ready (revenue as a decimal string)."""
        return {
            "day": self.day.isoformat(),
            "present": self.present,
            **figures.columns_json(self.values),
        }


def total_json(days: Sequence[DayFigures]) -> dict[str, int | str]:
    """The sum of each figure over ``days``, JSON-ready (revenue as a decimal string)."""
    total: dict[str, int] = {}
    for entry in days:
        for column, value in entry.values.items():
            total[column] = total.get(column, 0) + value
    return figures.columns_json(total)


def day_totals(
    client: Client,
    space: str,
    source: keys.Source,
    days: Sequence[date],
    store_id: str | None = None,
) -> list[DayFigures]:
    """The ``totals`` hash of each of ``days``, in order (its :data:`figures.TOTALS`)."""
    pipe = client.pipeline(transaction=False)
    for day in days:
        pipe.hmget(keys.day_key(space, source, day, "totals", store_id), list(TOTALS))
    result = []
    for day, values in zip(days, pipe.execute(), strict=True):
        present = any(value is not None for value in values)
        numbers = {field: int(value or 0) for field, value in zip(TOTALS, values, strict=True)}
        result.append(DayFigures(day, present, numbers))
    return result


def item_history(  # noqa: PLR0917 - the key space, then the item's coordinates
    client: Client,
    space: str,
    source: keys.Source,
    sku: str,
    days: Sequence[date],
    store_id: str | None = None,
) -> tuple[str | None, list[DayFigures]]:
    """The display name of ``sku`` and its figures on each of ``days``, in order."""
    pipe = client.pipeline(transaction=False)
    pipe.hget(keys.names_key(space), sku)
    for day in days:
        for index, measure in enumerate(figures.NAMES):
            key = keys.day_key(space, source, day, measure, store_id)
            if index == figures.RANKED:
                pipe.zscore(key, sku)
            else:
                pipe.hget(key, sku)
    name, *answers = pipe.execute()
    history = []
    for index, day in enumerate(days):
        values = answers[figures.WIDTH * index : figures.WIDTH * (index + 1)]
        numbers = {column: int(value or 0) for column, value in zip(COLUMNS, values, strict=True)}
        history.append(DayFigures(day, values[figures.RANKED] is not None, numbers))
    return (None if name is None else name.decode()), history
