"""Poison input and currencies: every message counts or is refused with its reason, by the
stream job (dead-lettered, never stopping) and the daily job (counted invalid) alike."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
import redis
from confluent_kafka import Consumer, Producer
from hypothesis import given, settings
from hypothesis import strategies as st

from common.columns import decode_batch
from common.errors import InvalidCheckout
from common.schema import (
    Checkout,
    Limits,
    Line,
    WireDecoder,
    encode_checkout,
    message_key,
    record_timestamp_ms,
    to_money_units,
)
from common.settings import Settings
from jobs.daily.job import run_day
from jobs.stream import dead_letters
from jobs.stream.aggregate import Aggregator
from producers.synthetic import generate
from storage import keys, parquet
from storage.figures import REVENUE
from storage.kafka.config import client_config
from storage.live import PartitionDelta
from tests.common.helpers import MUTATIONS, NOW, messages, mutate
from tests.helpers import truth, wait_until
from tests.jobs.daily.helpers import expected_of, parquet_figures
from tests.jobs.stream.helpers import caught_up, days_of, live_figures, start_stream

BERLIN = ZoneInfo("Europe/Berlin")
DAY = date(2026, 11, 21)
START = datetime(2026, 11, 21, 9, tzinfo=BERLIN)
BIG_RECORD_BYTES = 1_040_021
"""Larger than the producer's limit for a dead letter, smaller than the broker's."""

Record = tuple[bytes | None, bytes, int]
"""A record as produced: key, value, timestamp (ms)."""


def _template(**changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "schema_version": 1,
        "transaction_id": "poison",
        "store_id": "s001",
        "register_id": "r01",
        "occurred_at": "2026-11-21T12:00:00+01:00",
        "kind": "sale",
        "currency": "GBP",
        "lines": [{"sku": "4011", "name": "Bananas", "quantity": 3, "unit_price": "0.25"}],
    }
    message.update(changes)
    return message


def _poison(now: datetime) -> list[tuple[bytes, str]]:
    """Each poison input of issue 15 with the reason it is refused for."""
    big = _template(lines=[{"sku": "big", "name": "", "quantity": 1, "unit_price": "1"}])
    padding = BIG_RECORD_BYTES - len(json.dumps(big).encode())
    big["lines"][0]["name"] = "x" * padding
    cases: list[tuple[dict[str, Any], str]] = [
        (_template(occurred_at="9999-12-31T12:00:00Z"), "event_time"),
        (_template(occurred_at="0001-01-01T00:30:00Z"), "event_time"),
        (_template(occurred_at="0001-01-01T00:30:00+01:00"), "event_time"),
        (_template(occurred_at="1999-12-31T23:59:59Z"), "event_time"),
        (_template(occurred_at=(now + timedelta(days=2)).isoformat()), "event_time"),
        (_template(schema_version=None), "invalid_field"),
        (_template(currency="EUR"), "currency"),
        (_template(currency=None), "invalid_field"),
        (big, "too_large"),
    ]
    poison = [(json.dumps(message).encode(), reason) for message, reason in cases]
    assert len(poison[-1][0]) == BIG_RECORD_BYTES
    return poison


def _huge_line() -> Checkout:
    """The largest line the default limits allow: 10^16 money units, past 2^53."""
    return Checkout(
        transaction_id="huge",
        store_id="s002",
        register_id="r01",
        occurred_at=datetime(2026, 11, 21, 12, 30, tzinfo=UTC),
        kind="sale",
        currency="GBP",
        lines=(Line("huge", 100_000, Decimal("10000000"), "Huge"),),
    )


def _seals() -> list[Checkout]:
    """A checkout two days later on every store (so every partition has one): DAY is complete."""
    return [
        Checkout(
            transaction_id=f"seal-{store}",
            store_id=store,
            register_id="r01",
            occurred_at=datetime(2026, 11, 23, 12, tzinfo=UTC),
            kind="sale",
            currency="GBP",
            lines=(Line("seal", 1, Decimal("1"), "Seal"),),
        )
        for store in (f"s{n:03d}" for n in range(1, 21))
    ]


def _records(counted: list[Checkout], refused: list[bytes], every: int) -> list[Record]:
    """``counted`` as records (timestamp = occurred_at), ``refused`` spread among them with
    the timestamp of their neighbour (a till's clock, not the garbage in the message)."""
    records: list[Record] = [
        (message_key(c), encode_checkout(c), record_timestamp_ms(c)) for c in counted
    ]
    for index, value in enumerate(refused):
        position = min(len(records) - 1, (index + 1) * every)
        records.insert(position, (b"s001", value, records[position][2]))
    return records


def _produce(settings: Settings, records: list[Record]) -> None:
    producer = Producer(client_config(settings, {"message.max.bytes": 2_000_000}))
    for key, value, timestamp in records:
        producer.produce(settings.topic, key=key, value=value, timestamp=timestamp)
    assert producer.flush(30) == 0


def _run_stream_until_caught_up(settings: Settings, client: redis.Redis, tmp_path: Path) -> None:
    """``kassa stream`` as a service: it must catch up, still run, and stop cleanly."""
    log = tmp_path / "stream.log"
    child = start_stream(settings.model_copy(update={"metrics_port": 0}), log)
    try:
        wait_until(caught_up(client, settings), 120, "the stream job to catch up")
        time.sleep(1.0)
        assert child.poll() is None, log.read_text()[-3000:]
    finally:
        child.send_signal(signal.SIGTERM)
        assert child.wait(30) == 0, log.read_text()[-3000:]


def _dead_letter_counts(client: redis.Redis, settings: Settings) -> dict[str, int]:
    raw = client.hgetall(keys.dead_letters_key(settings.key_space))
    return {reason.decode(): int(count) for reason, count in raw.items()}


def _read_dead_letters(settings: Settings, expected: int) -> list[Any]:
    consumer = Consumer(
        client_config(
            settings,
            {
                "group.id": "dlq-reader",
                "auto.offset.reset": "earliest",
            },
        )
    )
    consumer.subscribe([settings.dead_letter_topic])
    found = []
    deadline = time.monotonic() + 60
    while len(found) < expected and time.monotonic() < deadline:
        message = consumer.poll(1.0)
        if message is not None and not message.error():
            found.append(message)
    consumer.close()
    return found


def test_poison_is_dead_lettered_with_its_reason_and_the_counts_around_it_are_exact(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"timezone": "Europe/Berlin"})
    good = [*generate(41, START, 1500), _huge_line()]
    poison = _poison(datetime.now(UTC))
    _produce(settings, _records(good, [value for value, _ in poison], every=150))
    _produce(settings, _records(_seals(), [], every=1))

    _run_stream_until_caught_up(settings, redis_client, tmp_path)

    expected = truth([*good, *_seals()], BERLIN)
    assert live_figures(redis_client, days_of(expected), settings.key_space) == expected
    assert _dead_letter_counts(redis_client, settings) == Counter(r for _, r in poison)
    letters = _read_dead_letters(settings, len(poison))
    assert len(letters) == len(poison)
    whole, cut = [], []
    for letter in letters:
        headers = dict(letter.headers())
        assert int(headers[dead_letters.SIZE_HEADER]) >= len(letter.value())
        if dead_letters.TRUNCATED_HEADER in headers:
            cut.append((letter.value(), headers))
        else:
            whole.append((letter.value(), headers[dead_letters.REASON_HEADER].decode()))
    small = [(value, reason) for value, reason in poison if len(value) < BIG_RECORD_BYTES]
    assert sorted(whole) == sorted(small)
    [(start, headers)] = cut
    assert headers[dead_letters.REASON_HEADER] == b"too_large"
    assert headers[dead_letters.TRUNCATED_HEADER] == b"value"
    assert headers[dead_letters.SIZE_HEADER] == str(BIG_RECORD_BYTES).encode()
    assert len(start) < dead_letters.MAX_RECORD_BYTES
    assert poison[-1][0].startswith(start)

    # The daily job reads the same records: it counts the same, refuses the same.
    result = run_day(settings, DAY)
    assert result.manifest.counts.invalid == Counter(r for _, r in poison)
    daily = parquet_figures(parquet.table_path(settings.data_dir, "daily_item_sales", DAY))
    assert daily == expected_of(good, DAY, BERLIN)
    assert daily["huge"][3] == Decimal(10**12)
    assert result.reconciliation.drifts == ()


def test_a_topic_with_two_currencies_counts_only_the_configured_one(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # a fifth of the records in another currency is over the invalid share the daily job
    # finalizes by default (tests/jobs/daily/test_guard.py); here the counts are the point
    settings = settings.model_copy(
        update={"timezone": "Europe/Berlin", "daily_max_invalid_share": 1.0}
    )
    pounds = list(generate(5, START, 800))
    euros = list(generate(6, START, 200, currency="EUR"))
    mixed = sorted(pounds + euros, key=lambda c: c.occurred_at)
    records = [(message_key(c), encode_checkout(c), record_timestamp_ms(c)) for c in mixed]
    _produce(settings, records)
    _produce(settings, _records(_seals(), [], every=1))

    _run_stream_until_caught_up(settings, redis_client, tmp_path)

    expected = truth([*pounds, *_seals()], BERLIN)
    assert live_figures(redis_client, days_of(expected), settings.key_space) == expected
    assert _dead_letter_counts(redis_client, settings) == {"currency": len(euros)}
    totals = redis_client.hgetall(keys.day_key(settings.key_space, "live", DAY, "totals"))
    revenue = sum(line.quantity * line.unit_price for c in pounds for line in c.lines)
    assert int(totals[b"revenue"]) == to_money_units(revenue)

    result = run_day(settings, DAY)
    assert result.manifest.counts.invalid == {"currency": len(euros)}
    assert Decimal(result.manifest.totals.revenue) == revenue
    assert result.reconciliation.drifts == ()


LIMITS = Limits(max_lines=6, max_message_bytes=4000)
"""Default quantity limit and currency: the largest lines are valid here."""
EXTREMES = [
    (("lines",), [{"sku": "huge", "quantity": 100_000, "unit_price": "10000000"}]),
    (("lines",), [{"sku": "huge", "quantity": -100_000, "unit_price": "999999999999.9999"}]),
]


def _mutated(value: bytes, mutation: int | None, form: int) -> bytes:
    """``value`` with one of :data:`MUTATIONS`, the whole-value forms or :data:`EXTREMES`."""
    if mutation is None or mutation <= len(MUTATIONS):
        return mutate(value, mutation, form)
    path, replacement = EXTREMES[mutation - len(MUTATIONS) - 1]
    document = msgspec.json.decode(value)
    document[path[0]] = replacement
    return json.dumps(document).encode()


def _stream_path(values: list[bytes]) -> tuple[list[int], Counter[str], int]:
    """What the stream job's writer does with ``values``: accepted indices, refusals by
    reason, revenue; anything but a refusal raised here would stop the job."""
    decoder = WireDecoder(LIMITS)
    aggregator = Aggregator(BERLIN)
    delta = PartitionDelta(0, 0, len(values) - 1)
    accepted, refused = [], Counter[str]()
    for index, value in enumerate(values):
        try:
            wire = decoder.decode(value, NOW)
        except InvalidCheckout as exc:
            refused[exc.reason.value] += 1
            continue
        aggregator.add(delta, wire)
        accepted.append(index)
    revenue = sum(f[REVENUE] for items in delta.items.values() for f in items.values())
    return accepted, refused, revenue


def _daily_path(values: list[bytes]) -> tuple[list[int], Counter[str], int]:
    """What the daily job's decoder does with ``values``, in :func:`_stream_path`'s terms."""
    decoded = decode_batch(list(values), LIMITS, NOW)
    accepted = decoded.lines.get_column("message").unique(maintain_order=True).to_list()
    rows = decoded.lines.select("quantity", "unit_price", "discount").iter_rows()
    revenue = sum(
        (q * p - (d if q * p >= 0 else -d) for q, p, d in rows),  # net of discounts
        Decimal(0),
    )
    return accepted, decoded.invalid, to_money_units(revenue)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            messages,
            st.none() | st.integers(0, len(MUTATIONS) + len(EXTREMES)),
            st.integers(0, 100),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_the_stream_and_the_daily_job_accept_and_refuse_the_same_messages(
    cases: list[tuple[Checkout, int | None, int]],
) -> None:
    values = [_mutated(encode_checkout(item), mutation, form) for item, mutation, form in cases]

    assert _daily_path(values) == _stream_path(values)


PLAIN = Checkout(
    transaction_id="t1",
    store_id="s1",
    register_id="r1",
    occurred_at=datetime(2026, 11, 20, 10, tzinfo=UTC),
    kind="sale",
    currency="GBP",
    lines=(Line("a", 2, Decimal("1.25"), "A"), Line("b", 1, Decimal("3"), None)),
)


@pytest.mark.parametrize("form", [0, 1], ids=["deleted", "replaced"])
@pytest.mark.parametrize("mutation", range(len(MUTATIONS) + 1 + len(EXTREMES)))
def test_each_case_is_decided_alike_by_both_paths(mutation: int, form: int) -> None:
    # Every mutation on its own, deterministically (hypothesis mixes them at random).
    value = _mutated(encode_checkout(PLAIN), mutation, form)
    batch = [value, encode_checkout(PLAIN), value]

    assert _daily_path(batch) == _stream_path(batch), value
