"""The POS simulator: deterministic, valid, and shaped like a supermarket chain."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.schema import decode_checkout, encode_checkout
from producers.synthetic import OPENING_HOURS, catalogue, ean13, generate, stores

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
START = datetime(2026, 10, 23, 6, 30, tzinfo=AMSTERDAM)  # Friday before the DST change


def _encoded(seed: int, start: datetime, count: int) -> list[bytes]:
    return [encode_checkout(checkout) for checkout in generate(seed, start, count)]


def test_the_same_seed_and_start_give_the_same_messages() -> None:
    assert _encoded(7, START, 3000) == _encoded(7, START, 3000)


def test_another_seed_or_start_gives_other_messages() -> None:
    reference = _encoded(7, START, 200)

    assert _encoded(8, START, 200) != reference
    assert _encoded(7, START + timedelta(hours=1), 200) != reference


def test_count_is_exact_and_no_count_means_no_end() -> None:
    assert len(list(generate(1, START, 123))) == 123
    assert list(generate(1, START, 0)) == []
    assert len(list(itertools.islice(generate(1, START), 5000))) == 5000


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        next(generate(1, datetime(2026, 1, 1)))


def test_every_message_is_a_valid_checkout_with_a_unique_transaction_id() -> None:
    checkouts = list(generate(3, START, 20_000))

    for checkout in checkouts:
        assert decode_checkout(encode_checkout(checkout)) == checkout
    assert len({checkout.transaction_id for checkout in checkouts}) == len(checkouts)


def test_checkouts_happen_in_opening_hours_in_time_order_across_a_dst_change() -> None:
    # Friday 06:30 to past Sunday 25 October 2026, when Amsterdam moves from +02:00 to +01:00
    checkouts = list(generate(5, START, 40_000, store_count=3))
    times = [checkout.occurred_at for checkout in checkouts]

    assert times == sorted(times)
    assert times[0] >= START
    assert times[-1] > datetime(2026, 10, 26, tzinfo=AMSTERDAM)
    for instant in times:
        local = instant.astimezone(AMSTERDAM)
        opens, closes = OPENING_HOURS[local.weekday()]
        assert opens <= local.hour < closes, local
        assert instant.utcoffset() == local.utcoffset()
    offsets = {t.utcoffset() for t in times}
    assert offsets == {timedelta(hours=2), timedelta(hours=1)}


def test_the_traffic_follows_the_daily_curve() -> None:
    checkouts = generate(11, datetime(2026, 11, 2, tzinfo=UTC), 40_000, store_count=5)  # Monday
    hours = Counter(c.occurred_at.hour for c in checkouts if c.occurred_at.day == 2)

    assert hours[12] > 2 * hours[7]
    assert hours[17] > hours[15]
    assert hours[22] == hours[6] == 0


def test_baskets_kinds_and_popularity_look_like_a_supermarket() -> None:
    checkouts = list(generate(2, START, 50_000))
    kinds = Counter(checkout.kind for checkout in checkouts)
    sales = [c for c in checkouts if c.kind == "sale"]
    sizes = sorted(len(c.lines) for c in sales)
    units = Counter(line.sku for c in sales for line in c.lines)
    ranked = [count for _, count in units.most_common()]

    assert 0.005 < kinds["return"] / len(checkouts) < 0.02
    assert kinds["adjustment"] > 0
    assert 3 <= sizes[len(sizes) // 2] <= 8
    assert sizes[-1] >= 20
    assert ranked[0] > 10 * ranked[len(ranked) // 2]  # a long tail: Zipf-like popularity
    assert all(line.quantity < 0 for c in checkouts if c.kind == "return" for line in c.lines)
    assert len({c.store_id for c in checkouts}) == len(stores())


def test_the_catalogue_is_fixed_priced_exactly_and_has_valid_eans() -> None:
    products = catalogue()

    assert products == catalogue()
    assert len({p.sku for p in products}) == len(products) >= 400
    for product in products:
        assert product.sku == ean13(product.sku[:12])
        assert product.price > 0
        assert product.price.as_tuple().exponent == -2


@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=0, max_value=10**6))
@settings(max_examples=25, deadline=None)
def test_any_seed_and_start_give_valid_checkouts(seed: int, minutes: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    for checkout in generate(seed, start, 50):
        assert checkout.occurred_at >= start
        decode_checkout(encode_checkout(checkout), now=start)  # the clock of those days
