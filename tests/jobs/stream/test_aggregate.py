"""The per-message fold equals a plain reference computation (pure logic, no services)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from common.schema import Checkout, Line, WireDecoder, encode_checkout, from_money_units
from jobs.stream.aggregate import STAMP, Aggregator, DayCutter, roll_up
from storage.figures import CHECKOUTS, DISCOUNT, RETURNED, REVENUE, SOLD, UNITS, WIDTH
from storage.live import PartitionDelta
from tests.helpers import checkouts, truth

LONDON = ZoneInfo("Europe/London")
# Around the 2026 DST changes in London, so 23- and 25-hour days are crossed.
INSTANTS = st.one_of(
    st.datetimes(datetime(2026, 3, 28), datetime(2026, 3, 30), timezones=st.just(UTC)),
    st.datetimes(datetime(2026, 10, 24), datetime(2026, 10, 26), timezones=st.just(UTC)),
)
PRICES = st.decimals(Decimal("0"), Decimal("500"), places=4)


BATCHES = st.lists(
    checkouts(
        ids=st.just("t"),
        stores=st.sampled_from(["s1", "s2"]),
        skus=st.sampled_from(["a", "b", "c", "d"]),
        instants=st.tuples(INSTANTS, st.sampled_from([UTC, LONDON])).map(
            lambda pair: pair[0].astimezone(pair[1])
        ),
        quantities=st.integers(1, 50),
        prices=PRICES,
        names=st.sampled_from([None, "A", "B"]),
        max_lines=6,
        negative_prices=False,
        versions=st.sampled_from([1, 2]),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(BATCHES)
def test_fold_equals_reference(batch: list[Checkout]) -> None:
    delta = PartitionDelta(0)
    aggregator = Aggregator(LONDON)
    for checkout in batch:
        aggregator.add(delta, WireDecoder().decode(encode_checkout(checkout)))
    roll_up(delta)
    chain_scopes = [((day, None), c.items) for day, c in delta.chain.items()]
    scopes = [*delta.items.items(), *chain_scopes]
    folded = {
        (day, store, sku): (
            f[UNITS],
            f[SOLD],
            f[RETURNED],
            from_money_units(f[REVENUE]),
            f[CHECKOUTS],
            from_money_units(f[DISCOUNT]),
        )
        for (day, store), items in scopes
        for sku, f in items.items()
    }
    assert folded == truth(batch, LONDON)
    assert delta.checkouts == len(batch)
    assert delta.lines == sum(len(c.lines) for c in batch)
    store_days = set(delta.items)
    assert {(day, s) for day, c in delta.chain.items() for s in c.stores} == store_days
    for day, chain in delta.chain.items():
        on_day = [c for c in batch if c.occurred_at.astimezone(LONDON).date() == day]
        assert chain.counts == [len(on_day), sum(len(c.lines) for c in on_day)]


@given(INSTANTS)
def test_day_cutter_agrees_with_local_date(instant: datetime) -> None:
    cutter = DayCutter(LONDON)
    for probe in (instant, instant - timedelta(hours=23), instant + timedelta(hours=25), instant):
        assert cutter.day_of(probe) == probe.astimezone(LONDON).date()


def test_items_are_lists_in_the_figures_layout_then_the_stamp() -> None:
    sale = Checkout(
        transaction_id="t",
        store_id="s1",
        register_id="r1",
        occurred_at=datetime(2026, 3, 28, 12, tzinfo=UTC),
        kind="sale",
        currency="GBP",
        lines=(
            Line("a", 3, Decimal("0.25"), None, Decimal("0.10")),
            Line("a", 1, Decimal("0.25"), None),
        ),
        schema_version=2,
    )
    refund = msgspec.structs.replace(
        sale, kind="return", lines=(Line("b", -2, Decimal("1.5"), None, Decimal("0.5")),)
    )
    delta = PartitionDelta(0)
    aggregator = Aggregator(LONDON)
    for checkout in (sale, refund):
        aggregator.add(delta, WireDecoder().decode(encode_checkout(checkout)))
    items = delta.items[(date(2026, 3, 28), "s1")]

    assert STAMP == WIDTH
    expected_a = [0] * (WIDTH + 1)
    expected_a[UNITS], expected_a[SOLD], expected_a[REVENUE] = 4, 4, 9_000
    expected_a[CHECKOUTS], expected_a[DISCOUNT], expected_a[STAMP] = 1, 1_000, 0
    expected_b = [0] * (WIDTH + 1)
    # a return gives its discount back: gross -3.0, discount -0.5, net -2.5
    expected_b[UNITS], expected_b[RETURNED], expected_b[REVENUE] = -2, 2, -25_000
    expected_b[CHECKOUTS], expected_b[DISCOUNT], expected_b[STAMP] = 1, -5_000, 1
    assert items == {"a": expected_a, "b": expected_b}
