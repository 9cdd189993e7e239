"""``python -m bench.idset N``: the daily job's checkout-id set alone, over N checkouts.

:class:`jobs.daily.aggregate.Deduplicator` sees N distinct checkouts (ids shaped like the
simulator's, 20 stores) in chunks of the daily job's size, and prints its own estimate of
its bytes (``nbytes``) as JSON. Run by :func:`bench.processes.run_child` at N and at 0, the
difference of the two peak RSS is what the set costs the process per checkout, allocator
and merge copies included: the part of the daily job's peak memory that grows with the day.
"""

from __future__ import annotations

import json
import sys

import polars as pl

from jobs.daily.aggregate import Deduplicator
from jobs.daily.job import CHUNK_MESSAGES

PREFIX = "syn7-20261128T000000-"


def main(argv: list[str]) -> int:
    (count,) = (int(arg) for arg in argv)
    dedup = Deduplicator()
    for start in range(0, count, CHUNK_MESSAGES):
        numbers = range(start, min(count, start + CHUNK_MESSAGES))
        chunk = pl.DataFrame(
            {
                "message": range(len(numbers)),
                "store_id": [f"store-{n % 20 + 1:03d}" for n in numbers],
                "transaction_id": [f"{PREFIX}{n}" for n in numbers],
            }
        )
        dedup.first_occurrences(chunk)
    print(json.dumps({"ids": dedup.ids(), "estimated_bytes": dedup.nbytes()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
