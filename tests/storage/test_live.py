"""The live store applies a partition batch once, atomically, with the keys' expiry."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from decimal import Decimal

import msgspec
import pytest
import redis

from common.errors import FigureLimitError
from common.schema import Checkout, Line, WireDecoder, encode_checkout
from common.settings import Settings
from jobs.stream.aggregate import Aggregator, roll_up
from storage import keys, scripts
from storage.live import ApplyStatus, Expectation, Identity, LiveStore, PartitionDelta
from tests.helpers import truth
from tests.jobs.stream.helpers import live_figures

DAY = date(2026, 11, 21)
SPACE = "pytest"


def _checkout(store: str, *lines: tuple[str, int, str], kind: str = "sale") -> Checkout:
    return Checkout(
        transaction_id="t",
        store_id=store,
        register_id="r",
        occurred_at=datetime(2026, 11, 21, 10, tzinfo=UTC),
        kind=kind,  # type: ignore[arg-type]
        currency="GBP",
        lines=tuple(Line(sku, q, Decimal(p), f"name {sku}") for sku, q, p in lines),
    )


BASKETS = [
    _checkout("s1", ("apple", 3, "0.25"), ("pear", 1, "1.1999"), ("apple", 1, "0.25")),
    _checkout("s2", ("apple", 2, "0.30")),
    _checkout("s2", ("pear", -1, "1.1999"), kind="return"),
]


def _delta(first: int, last: int, baskets: list[Checkout] = BASKETS) -> PartitionDelta:
    delta = PartitionDelta(0, first_offset=first, last_offset=last)
    aggregator = Aggregator(UTC)  # type: ignore[arg-type]
    for checkout in baskets:
        aggregator.add(delta, WireDecoder().decode(encode_checkout(checkout)))
    roll_up(delta)
    return delta


IDENTITY = Identity("topic-id", "cluster-id")


def _expect(watermark: int | None, identity: Identity = IDENTITY, epoch: int = 0) -> Expectation:
    return Expectation(identity, epoch, watermark)


@pytest.fixture
def store(settings: Settings, redis_client: redis.Redis) -> LiveStore:
    return LiveStore(redis_client, SPACE, settings.zone, settings.retention_days)


def test_a_batch_adds_every_figure_and_moves_the_watermark(
    store: LiveStore, redis_client: redis.Redis, settings: Settings
) -> None:
    result = store.apply(_delta(0, 2), expected=_expect(-1))
    assert result.status is ApplyStatus.APPLIED
    assert store.watermarks([0, 1]) == {0: 2, 1: -1}
    assert live_figures(redis_client, [DAY], SPACE) == truth(BASKETS, settings.zone)
    totals = redis_client.hgetall(keys.day_key(SPACE, "live", DAY, "totals"))
    assert totals == {
        b"units": b"6",
        b"units_sold": b"7",
        b"units_returned": b"1",
        b"revenue": b"16000",  # 4 * 0.25 + 1.1999 + 2 * 0.30 - 1.1999
        b"checkouts": b"3",
        b"discount": b"0",
        b"lines": b"5",
    }
    assert redis_client.smembers(keys.stores_key(SPACE, "live", DAY)) == {b"s1", b"s2"}
    assert redis_client.hget(keys.names_key(SPACE), "pear") == b"name pear"


def test_a_replayed_batch_changes_nothing(store: LiveStore, redis_client: redis.Redis) -> None:
    store.apply(_delta(10, 12), expected=_expect(-1))
    before = live_figures(redis_client, [DAY], SPACE)
    assert store.apply(_delta(10, 12), expected=_expect(-1)).status is ApplyStatus.DUPLICATE
    assert store.apply(_delta(5, 9), expected=_expect(4)).status is ApplyStatus.DUPLICATE
    assert live_figures(redis_client, [DAY], SPACE) == before
    assert store.watermarks([0]) == {0: 12}


def test_a_batch_expecting_another_watermark_is_refused_whole(
    store: LiveStore, redis_client: redis.Redis
) -> None:
    store.apply(_delta(10, 12), expected=_expect(-1))
    before = live_figures(redis_client, [DAY], SPACE)
    for first, expected in ((11, 10), (13, 9)):  # Redis is ahead: another writer was there
        result = store.apply(_delta(first, first + 9), expected=_expect(expected))
        assert (result.status, result.watermark) == (ApplyStatus.CONFLICT, 12)
    # Redis is behind what the writer applied (it lost writes): told apart from "ahead".
    result = store.apply(_delta(21, 30), expected=_expect(20))
    assert (result.status, result.watermark) == (ApplyStatus.BEHIND, 12)
    assert live_figures(redis_client, [DAY], SPACE) == before
    assert store.apply(_delta(13, 20), expected=_expect(12)).status is ApplyStatus.APPLIED


def test_unguarded_batches_count_again(store: LiveStore, redis_client: redis.Redis) -> None:
    store.apply(_delta(0, 2), expected=_expect(None))
    store.apply(_delta(0, 2), expected=_expect(None))
    assert redis_client.zscore(keys.day_key(SPACE, "live", DAY, "units"), "apple") == 12
    assert store.watermarks([0]) == {0: 2}


def test_keys_with_more_figures_than_one_read_of_the_script_sum_exactly(
    store: LiveStore, redis_client: redis.Redis, settings: Settings
) -> None:
    skus = [f"sku{n}" for n in range(4500)]  # the script reads and writes 2,000 at a time
    baskets = [
        _checkout("s1", *((sku, n % 7 + 1, "0.0001") for n, sku in enumerate(skus[i : i + 1500])))
        for i in range(0, len(skus), 1500)
    ]
    store.apply(_delta(0, 2, baskets), expected=_expect(-1))
    store.apply(_delta(3, 5, baskets), expected=_expect(2))  # adds to every stored figure
    assert live_figures(redis_client, [DAY], SPACE) == truth(baskets + baskets, settings.zone)


def test_a_batch_over_a_figure_that_is_not_an_integer_writes_nothing(
    store: LiveStore, redis_client: redis.Redis
) -> None:
    store.apply(_delta(0, 2), expected=_expect(-1))
    before = live_figures(redis_client, [DAY], SPACE)
    revenue = keys.day_key(SPACE, "live", DAY, "revenue", "s2")
    stored = redis_client.hget(revenue, "apple")
    assert stored is not None
    redis_client.hset(revenue, "apple", "a lot")
    with pytest.raises(redis.ResponseError, match="not a number: nothing was written"):
        store.apply(_delta(3, 5), expected=_expect(2))
    redis_client.hset(revenue, "apple", stored)
    assert live_figures(redis_client, [DAY], SPACE) == before
    assert store.watermarks([0]) == {0: 2}


def test_per_day_keys_expire_retention_after_the_day(
    store: LiveStore, redis_client: redis.Redis, settings: Settings
) -> None:
    store.apply(_delta(0, 2), expected=_expect(-1))
    now = datetime.now(UTC)
    expected = keys.expire_at(DAY, settings.zone, settings.retention_days, now)
    assert abs(redis_client.expiretime(keys.day_key(SPACE, "live", DAY, "units")) - expected) <= 5
    expected = redis_client.expiretime(keys.day_key(SPACE, "live", DAY, "units"))
    for measure in keys.MEASURES:
        if measure == "discount":  # no basket has one: a hash of zeros is not written
            assert not redis_client.exists(keys.day_key(SPACE, "live", DAY, measure))
            continue
        assert redis_client.expiretime(keys.day_key(SPACE, "live", DAY, measure)) == expected
    assert redis_client.expiretime(keys.day_key(SPACE, "live", DAY, "units", "s1")) == expected
    assert redis_client.expiretime(keys.stores_key(SPACE, "live", DAY)) == expected
    assert redis_client.ttl(keys.applied_offsets_key(SPACE)) == -1


def test_dead_letter_counts_are_part_of_the_batch(store: LiveStore) -> None:
    delta = _delta(0, 4)
    delta.dead_letters = {"malformed_json": 2}
    store.apply(delta, expected=_expect(-1))
    store.apply(delta, expected=_expect(-1))  # replay
    assert store.dead_letter_counts() == {"malformed_json": 2}


def test_an_empty_batch_is_a_caller_error(store: LiveStore) -> None:
    with pytest.raises(ValueError, match="empty batch"):
        store.apply(PartitionDelta(3), expected=_expect(-1))


def test_an_old_day_lives_retention_days_after_its_last_write(
    store: LiveStore, redis_client: redis.Redis, settings: Settings
) -> None:
    old = date(2011, 3, 27)
    at = datetime(2011, 3, 27, 12, tzinfo=UTC)
    baskets = [msgspec.structs.replace(_checkout("s1", ("apple", 2, "0.5")), occurred_at=at)]
    store.apply(_delta(0, 0, baskets), expected=_expect(-1))
    expires = redis_client.expiretime(keys.day_key(SPACE, "live", old, "units"))
    lifetime = expires - datetime.now(UTC).timestamp()
    assert settings.retention_days * 86400 - 10 < lifetime <= settings.retention_days * 86400
    assert live_figures(redis_client, [old], SPACE) == truth(baskets, settings.zone)


def test_a_watermark_hash_of_another_topic_refuses_every_batch(
    store: LiveStore, redis_client: redis.Redis
) -> None:
    store.apply(_delta(0, 2), expected=_expect(-1))
    before = live_figures(redis_client, [DAY], SPACE)
    recreated = Identity("another-topic-id", "cluster-id")
    for expected in (_expect(2, recreated), _expect(None, recreated)):
        result = store.apply(_delta(3, 5), expected=expected)
        assert (result.status, result.watermark) == (ApplyStatus.FOREIGN, 2)
    assert live_figures(redis_client, [DAY], SPACE) == before


def test_a_batch_of_an_older_epoch_finds_redis_behind(
    store: LiveStore, redis_client: redis.Redis
) -> None:
    store.apply(_delta(0, 2), expected=_expect(-1))
    redis_client.hset(keys.applied_offsets_key(SPACE), keys.EPOCH_FIELD, 1)  # a rebuild
    before = live_figures(redis_client, [DAY], SPACE)
    result = store.apply(_delta(3, 5), expected=_expect(2, epoch=0))
    assert result.status is ApplyStatus.BEHIND
    assert live_figures(redis_client, [DAY], SPACE) == before
    assert store.apply(_delta(3, 5), expected=_expect(2, epoch=1)).status is ApplyStatus.APPLIED


def _revenue_delta(first: int, revenue: int, units: int = 1) -> PartitionDelta:
    """A one-offset batch adding ``units`` and ``revenue`` to item ``x`` of store ``s1``."""
    delta = PartitionDelta(0, first_offset=first, last_offset=first)
    delta.items[(DAY, "s1")] = {"x": [units, units, 0, revenue, 1, 0]}
    delta.stores[(DAY, "s1")] = [1, 1]
    roll_up(delta)
    return delta


EDGES = [
    (0, 10**16),
    (999_999_999_999_999, 1),  # 15 characters each: summed as doubles
    (2**53 - 1, 1),
    (2**53, 2**53),
    (-(10**15), -(10**15)),
    (10**30, -(10**30)),  # to zero
    (-(10**20) - 1, 10**20),  # to -1
    (10**20, -(10**20) - 7),
    (123_456_789_012_345_678_901, 9_876_543_210_987_654_321_099),  # carries through chunks
    (-(10**22) + 3, 10**7),
    (10**7, -(10**22)),
]


@pytest.mark.parametrize(("stored", "added"), EDGES)
def test_hash_figures_sum_exactly_beyond_2_to_the_53(
    store: LiveStore, redis_client: redis.Redis, stored: int, added: int
) -> None:
    store.apply(_revenue_delta(0, stored), expected=_expect(-1))
    store.apply(_revenue_delta(1, added), expected=_expect(0))

    for scope in ("s1", None):
        revenue = redis_client.hget(keys.day_key(SPACE, "live", DAY, "revenue", scope), "x")
        total = redis_client.hget(keys.day_key(SPACE, "live", DAY, "totals", scope), "revenue")
        assert revenue == total == str(stored + added).encode()


def test_the_largest_lines_the_schema_allows_sum_exactly(
    store: LiveStore, redis_client: redis.Redis, settings: Settings
) -> None:
    # quantity 100,000 at "10000000" is 10^16 money units a line, past 2^53 in one line
    rng = random.Random(15)
    baskets: list[Checkout] = []
    for offset in range(0, 60, 3):
        batch = [
            _checkout(
                rng.choice(["s1", "s2"]),
                *(
                    (rng.choice(["big", "huge"]), rng.randint(1, 100_000), price)
                    for price in rng.sample(["10000000", "999999999999.9999", "0.0001", "1"], 2)
                ),
                kind="sale",
            ),
            _checkout("s1", ("big", -rng.randint(1, 100_000), "999999999999.9999"), kind="return"),
            _checkout("s2", ("huge", 7, "-999999999999.9999"), kind="adjustment"),
        ]
        baskets += batch
        store.apply(_delta(offset, offset + 2, batch), expected=_expect(offset - 1))

    assert live_figures(redis_client, [DAY], SPACE) == truth(baskets, settings.zone)
    totals = redis_client.hgetall(keys.day_key(SPACE, "live", DAY, "totals"))
    expected = sum(
        line.quantity * line.unit_price for checkout in baskets for line in checkout.lines
    )
    assert Decimal(totals[b"revenue"].decode()).scaleb(-4) == expected


def test_net_units_past_2_to_the_53_refuse_the_batch_with_a_clear_error(
    store: LiveStore, redis_client: redis.Redis
) -> None:
    store.apply(_revenue_delta(0, 5, units=2**53 - 10), expected=_expect(-1))
    before = live_figures(redis_client, [DAY], SPACE)

    with pytest.raises(
        FigureLimitError, match=r"net units of x in kassa:\S+:units would pass 2\^53"
    ):
        store.apply(_revenue_delta(1, 5, units=10), expected=_expect(0))

    assert live_figures(redis_client, [DAY], SPACE) == before
    assert store.watermarks([0]) == {0: 0}


def test_random_integers_of_any_length_sum_exactly(
    store: LiveStore, redis_client: redis.Redis
) -> None:
    rng = random.Random(53)

    def number() -> int:
        return rng.choice([-1, 1]) * rng.randrange(10 ** rng.randint(1, 40))

    pairs = {f"sku{n}": (number(), number()) for n in range(500)}
    for offset, side in enumerate((0, 1)):
        delta = PartitionDelta(0, first_offset=offset, last_offset=offset)
        delta.items[(DAY, "s1")] = {sku: [1, 0, 0, pair[side], 0, 0] for sku, pair in pairs.items()}
        roll_up(delta)
        store.apply(delta, expected=_expect(offset - 1))

    stored = redis_client.hgetall(keys.day_key(SPACE, "live", DAY, "revenue", "s1"))
    assert {sku.decode(): int(value) for sku, value in stored.items()} == {
        sku: a + b for sku, (a, b) in pairs.items() if a or b
    }


def test_a_batch_not_rolled_up_is_a_caller_error(store: LiveStore) -> None:
    delta = PartitionDelta(0, first_offset=0, last_offset=0)
    delta.items[(DAY, "s1")] = {"x": [1, 1, 0, 5, 1, 0]}
    with pytest.raises(ValueError, match="not rolled up"):
        store.apply(delta, expected=_expect(-1))
    assert store.watermarks([0]) == {0: -1}


def test_a_rebuild_script_not_given_every_key_to_clear_changes_nothing(
    store: LiveStore, redis_client: redis.Redis
) -> None:
    """The script touches only keys it is given (a Redis Cluster's rule): a key written
    since the caller's SCAN is not cleared behind its back, the caller is told to look again."""
    store.apply(_delta(0, 2), expected=_expect(-1))
    pattern = keys.day_pattern(SPACE, "live")
    written = sorted(redis_client.scan_iter(match=pattern))
    before = live_figures(redis_client, [DAY], SPACE)
    script = redis_client.register_script(scripts.REBUILD)
    args = [
        "0",
        "",
        keys.source_prefix(SPACE, "live"),
        pattern,
        '{"0": 0}',
        "topic-id",
        "cluster-id",
    ]
    applied, dead = keys.applied_offsets_key(SPACE), keys.dead_letters_key(SPACE)
    status, missing = script(keys=[applied, dead, *written[1:]], args=args)
    assert (status, missing) == (-1, written[0])
    assert live_figures(redis_client, [DAY], SPACE) == before
    assert store.state([0]).epoch == 0
    epoch, cleared = store.rebuild(IDENTITY, 0, {0: 0}, None)
    assert (epoch, cleared) == (1, len(written))
    assert list(redis_client.scan_iter(match=pattern)) == []
    assert store.watermarks([0]) == {0: -1}
