"""Reading one day's item ranking back from Redis (``kassa top``), for either namespace."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import redis

from common.schema import from_money_units
from storage import keys


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
            "units": self.units,
            "revenue": str(self.revenue),
        }


def read_ranking(  # noqa: PLR0917 - the key space, then the ranking's coordinates
    client: redis.Redis,
    space: str,
    namespace: keys.Namespace,
    day: date,
    limit: int = 10,
    store_id: str | None = None,
) -> list[RankedItem]:
    """The top ``limit`` items of ``day`` by net units, best first (ties: by sku).

    Reads the ``units`` sorted set, the ``revenue`` hash and the names of
    :mod:`storage.keys` in one pipeline; an unknown day gives an empty list.
    """
    if limit < 1:
        msg = f"limit {limit} is not positive; ask for at least 1 item"
        raise ValueError(msg)
    units_key = keys.day_key(space, namespace, day, "units", store_id)
    # Read one more score group than needed so ties at the cut are ordered by sku too.
    raw: list[Any] = client.zrevrange(units_key, 0, limit - 1, withscores=True)
    if not raw:
        return []
    lowest = raw[-1][1]
    tied: list[Any] = client.zrangebyscore(units_key, lowest, lowest, withscores=True)
    members: dict[bytes, float] = dict(raw)
    members.update(tied)
    ordered = sorted(members.items(), key=lambda item: (-item[1], item[0]))[:limit]
    skus = [sku for sku, _ in ordered]
    pipe = client.pipeline(transaction=False)
    pipe.hmget(keys.day_key(space, namespace, day, "revenue", store_id), skus)
    pipe.hmget(keys.names_key(space), skus)
    revenues, names = pipe.execute()
    return [
        RankedItem(
            rank=index + 1,
            sku=sku.decode(),
            name=None if name is None else name.decode(),
            units=int(score),
            revenue=from_money_units(int(revenue or 0)),
        )
        for index, ((sku, score), revenue, name) in enumerate(
            zip(ordered, revenues, names, strict=True)
        )
    ]
