"""Redis memory of the live figures, measured with ``MEMORY USAGE`` on the keys the job wrote.

A day of seeded checkouts at a chain's density (stores x checkouts per store) goes through
the real stream job; then every key of its key space is sized and sorted into the layout of
:mod:`storage.keys`: the per-store figure keys (bytes per store-item pair), the chain's
figure keys (bytes per item), the names hash (bytes per item), and the fixed keys of a day
(totals, the store set) and of a store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

from bench.session import Bench
from bench.stream import stream_run
from bench.workload import day_of_checkouts, drop_topic, fresh_topic, produce
from common.settings import Settings
from storage import keys
from storage.connections import Client
from storage.figures import NAMES

SEED: Final = 9
DAY: Final = date(2001, 6, 1)


@dataclass
class Footprint:
    """Bytes by kind of key, and what they hold."""

    stores: int = 0
    checkouts: int = 0
    pairs: int = 0
    items: int = 0
    pair_bytes: int = 0
    item_bytes: int = 0
    name_bytes: int = 0
    store_fixed_bytes: int = 0
    day_fixed_bytes: int = 0

    @property
    def per_pair(self) -> float:
        """Bytes per store-item pair of a day."""
        return self.pair_bytes / self.pairs

    @property
    def per_item(self) -> float:
        """Bytes per item of a day (the chain's figures) plus its name (once, not per day)."""
        return self.item_bytes / self.items

    @property
    def pairs_per_store(self) -> float:
        """Distinct items a store sold in the day."""
        return self.pairs / self.stores


def _size(client: Client, key: bytes) -> int:
    return int(client.memory_usage(key, samples=0) or 0)


def _classify(client: Client, settings: Settings, found: Footprint) -> None:
    """Size every key of the key space into ``found``."""
    day = keys.day_scope(settings.key_space, "live", DAY).encode()
    figures = tuple(f":{name}".encode() for name in NAMES)
    units = b":" + NAMES[0].encode()
    for key in client.scan_iter(keys.space_pattern(settings.key_space), count=1000):
        size = _size(client, key)
        in_store = key.startswith(day + b":store:")
        if key == keys.names_key(settings.key_space).encode():
            found.name_bytes += size
        elif key.startswith(day) and key.endswith(figures):
            found.pair_bytes += size if in_store else 0
            found.item_bytes += 0 if in_store else size
            if key.endswith(units):
                count = int(client.zcard(key))
                found.pairs += count if in_store else 0
                found.items += 0 if in_store else count
        elif in_store:
            found.store_fixed_bytes += size
        else:
            found.day_fixed_bytes += size


def measure(bench: Bench) -> Footprint:
    """Run the job on one day at the scale's density; the bytes of each kind of key."""
    stores, per_store = bench.scale.footprint_stores, bench.scale.footprint_checkouts_per_store
    found = Footprint(stores=stores, checkouts=stores * per_store)
    source = fresh_topic(bench.settings, "footprint")
    try:
        produce(source, day_of_checkouts(SEED, DAY, found.checkouts, stores=stores))
        stream_run(bench, source, inspect=lambda client, s: _classify(client, s, found))
    finally:
        drop_topic(source)
    if not found.pairs or not found.items:
        msg = f"the footprint run wrote no figures for {DAY} (key space {source.key_space})"
        raise RuntimeError(msg)
    return found
