"""What the decoder tests of ``tests/common`` share: their limits and clock, the checkouts
they draw and the ways they spoil a message."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from common.schema import Limits
from tests.helpers import checkouts

LIMITS = Limits(max_lines=6, max_quantity=1000, max_message_bytes=4000)
NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
"""The judging clock: every generated checkout lies in its event-time window."""

identifiers = st.text(st.characters(codec="utf-8", exclude_characters="\n"), min_size=1, max_size=8)
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=1)), timezone(timedelta(hours=-5, minutes=-30))]
)


messages = checkouts(
    ids=identifiers,
    instants=st.builds(
        lambda seconds, micros, zone: (
            datetime(2026, 11, 20, 12, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=micros)
        ).astimezone(zone),
        st.integers(-86_400, 86_400),
        st.just(0) | st.integers(0, 10**6 - 1),
        zones,
    ),
    quantities=st.integers(1, 1000),
    prices=st.integers(0, 4).flatmap(lambda places: st.decimals(0, 5000, places=places)),
    names=st.none() | identifiers,
    currencies=st.sampled_from(["GBP", "GBP", "EUR"]),
    versions=st.sampled_from([1, 2]),
)
"""Checkouts valid at :data:`NOW` under :data:`LIMITS` (unless in a second currency)."""


MUTATIONS: list[tuple[tuple[str | int, ...], Any]] = [
    (("transaction_id",), None),
    (("transaction_id",), ""),
    (("store_id",), 7),
    (("occurred_at",), "2026-11-20T10:00:00"),
    (("occurred_at",), "2026-11-20 10:00:00+00:00"),
    (("occurred_at",), "2026-02-30T10:00:00Z"),
    (("occurred_at",), "2026-11-20T10:00:00.123456789+01:00"),
    (("occurred_at",), "2026-11-20T23:59:60Z"),
    (("occurred_at",), "0000-01-01T00:00:00Z"),
    (("occurred_at",), "2026-11-20T10:00:00+23:59"),
    (("occurred_at",), "\u0662\u0660\u0662\u0666-11-20T10:00:00Z"),
    (("lines", 0, "unit_price"), "\u0663.5"),
    (("currency",), "EUR\n"),
    (("kind",), "refund"),
    (("currency",), "eur"),
    (("schema_version",), 3),
    (("schema_version",), 1),
    (("schema_version",), 2),
    (("lines", 0, "discount"), "0.5"),
    (("lines", 0, "discount"), "-0.5"),
    (("lines", 0, "discount"), "1.23456"),
    (("lines", 0, "discount"), "999999"),
    (("lines", 0, "discount"), 0.5),
    (("lines", 0, "discount"), None),
    (("lines", 0, "discount"), "abc"),
    (("lines",), []),
    (("lines",), None),
    (("lines", 0, "quantity"), 0),
    (("lines", 0, "quantity"), 10**6),
    (("lines", 0, "quantity"), -1),
    (("lines", 0, "quantity"), 1.0),
    (("lines", 0, "quantity"), "3"),
    (("lines", 0, "unit_price"), "1.23456"),
    (("lines", 0, "unit_price"), "1.50000"),
    (("lines", 0, "unit_price"), "1e2"),
    (("lines", 0, "unit_price"), 2.5),
    (("lines", 0, "unit_price"), "-1"),
    (("lines", 0, "unit_price"), "NaN"),
    (("lines", 0, "sku"), ""),
    (("lines", 0, "sku"), "x" * 65),
    (("lines", 0, "extra"), {"nested": [1]}),
    (("extra",), "ignored"),
    # JSON nulls, which pyarrow reads like missing fields
    (("schema_version",), None),
    (("store_id",), None),
    (("register_id",), None),
    (("occurred_at",), None),
    (("kind",), None),
    (("currency",), None),
    (("lines", 0), None),
    (("lines", 0, "sku"), None),
    (("lines", 0, "quantity"), None),
    (("lines", 0, "unit_price"), None),
    (("lines", 0, "name"), None),
    # poison: implausible event times, another currency, the largest amounts
    (("occurred_at",), "9999-12-31T12:00:00Z"),
    (("occurred_at",), "9999-12-31T23:30:00-05:00"),
    (("occurred_at",), "0001-01-01T00:30:00+01:00"),
    (("occurred_at",), "0001-01-01T00:30:00Z"),
    (("occurred_at",), "1999-12-31T23:59:59.999999Z"),
    (("occurred_at",), "2000-01-01T01:00:00+01:00"),
    (("occurred_at",), "2026-11-22T12:00:00Z"),
    (("occurred_at",), "2026-11-22T13:00:00+01:00"),
    (("occurred_at",), "2026-11-22T12:00:00.000001Z"),
    (("currency",), "EUR"),
    (("currency",), "XXX"),
    (("lines",), [{"sku": "big", "quantity": 1000, "unit_price": "999999999999.9999"}]),
    (("lines",), [{"sku": "big", "quantity": -1000, "unit_price": "999999999999.9999"}]),
]


def mutate(value: bytes, mutation: int | None, form: int) -> bytes:
    if mutation is None:
        return value
    if mutation >= len(MUTATIONS):
        forms = [
            value[: len(value) // 2],
            b"[1, 2]",
            b"",
            value + b"\n" + value,
            b" \n" + value,
            b"x" * 4001,
            value.replace(b'"currency":"', b'"currency":"\xff', 1),
            b"\xef\xbb\xbf" + value,
            b"null",
            value.replace(b'"kind":', b'"kind":"sale","kind":', 1),
        ]
        return forms[form % len(forms)]
    path, replacement = MUTATIONS[mutation]
    document = json.loads(value)
    target = document
    for part in path[:-1]:
        target = target[part]
    if form % 5 == 0 and path[-1] in target:
        del target[path[-1]]
    else:
        target[path[-1]] = replacement
    return json.dumps(document).encode()
