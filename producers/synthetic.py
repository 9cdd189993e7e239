"""A supermarket chain simulator: stores, registers, a priced catalogue, realistic baskets.

Everything random is drawn from one :class:`random.Random` seeded with ``seed``, so the same
seed and start give the same checkouts, transaction ids included. The catalogue itself is
fixed (built from seed 0) so that SKUs, names and prices are the same whatever the seed.

The simulated clock runs in the time zone of ``start``. Stores open 07:00-22:00 Monday to
Saturday and 09:00-18:00 on Sunday; within each local hour checkouts arrive as a Poisson
process whose rate follows a daily curve (morning ramp, lunch peak, evening peak) times a
weekday factor, so the clock advances by exponential gaps and jumps over closed hours.
Item popularity is Zipf-like, basket sizes are log-normal (median about 5 lines), about 1 in
100 checkouts is a return of one or two items and about 1 in 2,000 a stock adjustment.

**Message versions and promotions.** ``versions`` picks the message version of each store's
registers: ``"1"`` (the default), ``"2"`` or ``"mix"`` (every other store upgraded to version 2,
as in a fleet upgrade rolled out store by store). Version 2 checkouts carry promotions: about
one product in eight (fixed by its SKU) is 10, 20 or 25 % off, the discount rounded to the
cent, on sales and on returns of it; adjustments have none. The random draws do not depend on
``versions``, so a version 2 stream is the version 1 stream with discounts added.

For speed, distributions are sampled once into lookup tables and every possible line
(SKU x quantity) is built once. The lines of a sale are a window, at a random offset, of a
pre-drawn stream of 131,072 independent line draws, so a checkout costs a handful of table
look-ups and one tuple slice.
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Final, Literal

from common.schema import CURRENCY, Checkout, Kind, Line

SECONDS_PER_CHECKOUT_AT_PEAK: Final = 75.0
RETURN_RATE: Final = 0.01
ADJUSTMENT_RATE: Final = 0.0005
QUANTITIES: Final = (1, 2, 3, 4, 6, 12)
_QUANTITY_WEIGHTS: Final = (80.0, 12.0, 4.0, 2.0, 1.5, 0.5)
MAX_BASKET: Final = 60
_TABLE_BITS: Final = 16
_STREAM_BITS: Final = 17
_HOUR_MS: Final = 3_600_000

# opening hours per weekday (Monday = 0): (open hour, close hour), local time
OPENING_HOURS: Final = ((7, 22),) * 6 + ((9, 18),)
# relative checkout intensity per local hour of the day while open
HOURLY_CURVE: Final = (
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.35, 0.5, 0.6, 0.7, 0.85,
    1.0, 0.9, 0.7, 0.65, 0.8, 1.0, 1.0, 0.85, 0.6, 0.4, 0.0, 0.0,
)  # fmt: skip
WEEKDAY_FACTOR: Final = (0.9, 0.85, 0.9, 0.95, 1.2, 1.3, 0.7)

# (product, variants, price range in cents) per aisle; names are "<brand> <product> <variant>"
_PRODUCTS: Final = (
    ("Bananas", ("per piece",), (19, 35)),
    ("Apples", ("Gala 1 kg", "Elstar 1 kg", "Braeburn 1 kg"), (179, 329)),
    ("Oranges", ("1.5 kg net",), (229, 349)),
    ("Tomatoes", ("500 g", "cherry 250 g", "vine 500 g"), (119, 299)),
    ("Cucumber", ("each",), (49, 99)),
    ("Potatoes", ("2.5 kg", "baby 1 kg"), (179, 349)),
    ("Onions", ("1 kg",), (89, 149)),
    ("Whole Milk", ("1 l", "2 l"), (99, 229)),
    ("Semi-skimmed Milk", ("1 l", "2 l"), (95, 219)),
    ("Butter", ("250 g",), (189, 329)),
    ("Natural Yoghurt", ("500 g", "150 g"), (49, 199)),
    ("Cheddar", ("mature 400 g", "mild 200 g"), (229, 499)),
    ("Gouda", ("young 400 g", "aged 300 g"), (249, 549)),
    ("Free-range Eggs", ("6 pack", "10 pack"), (179, 349)),
    ("White Bread", ("800 g",), (89, 199)),
    ("Wholemeal Bread", ("800 g",), (109, 229)),
    ("Croissants", ("4 pack",), (149, 279)),
    ("Pasta", ("spaghetti 500 g", "penne 500 g", "fusilli 500 g"), (69, 199)),
    ("Basmati Rice", ("1 kg", "500 g"), (149, 349)),
    ("Tomato Sauce", ("400 g", "basil 400 g"), (79, 219)),
    ("Chopped Tomatoes", ("400 g",), (45, 99)),
    ("Baked Beans", ("415 g",), (55, 129)),
    ("Tuna", ("in brine 145 g", "in oil 145 g"), (99, 219)),
    ("Olive Oil", ("extra virgin 500 ml", "1 l"), (399, 1099)),
    ("Breakfast Cereal", ("cornflakes 500 g", "muesli 750 g", "granola 500 g"), (179, 449)),
    ("Ground Coffee", ("250 g", "500 g"), (279, 799)),
    ("Tea Bags", ("80 pack", "40 pack"), (149, 399)),
    ("Orange Juice", ("1 l", "smooth 1.75 l"), (129, 349)),
    ("Sparkling Water", ("1.5 l", "6 x 500 ml"), (39, 299)),
    ("Cola", ("1.5 l", "6 x 330 ml"), (119, 499)),
    ("Lager", ("4 x 440 ml", "12 x 330 ml"), (399, 1299)),
    ("Red Wine", ("75 cl",), (499, 1499)),
    ("White Wine", ("75 cl",), (449, 1399)),
    ("Chicken Breast", ("500 g", "1 kg"), (349, 899)),
    ("Beef Mince", ("500 g 5% fat", "500 g 15% fat"), (299, 599)),
    ("Salmon Fillets", ("2 pack 240 g",), (399, 699)),
    ("Sliced Ham", ("120 g",), (149, 299)),
    ("Frozen Peas", ("1 kg",), (119, 229)),
    ("Frozen Pizza", ("margherita", "pepperoni", "four cheese"), (199, 449)),
    ("Ice Cream", ("vanilla 1 l", "chocolate 1 l"), (249, 549)),
    ("Milk Chocolate", ("100 g", "200 g"), (89, 299)),
    ("Crisps", ("sea salt 150 g", "paprika 150 g"), (119, 249)),
    ("Biscuits", ("digestive 400 g", "chocolate chip 300 g"), (99, 249)),
    ("Toilet Tissue", ("9 rolls", "4 rolls"), (249, 699)),
    ("Kitchen Roll", ("2 rolls",), (149, 299)),
    ("Washing-up Liquid", ("500 ml",), (99, 229)),
    ("Laundry Detergent", ("1.5 l", "capsules 24 pack"), (499, 1199)),
    ("Shampoo", ("250 ml", "400 ml"), (199, 549)),
    ("Toothpaste", ("75 ml",), (99, 349)),
    ("Dog Food", ("400 g tin", "2 kg dry"), (89, 999)),
    ("Cat Food", ("12 x 100 g",), (399, 699)),
    ("Batteries", ("AA 4 pack", "AAA 4 pack"), (299, 699)),
    ("Carrier Bag", ("reusable",), (10, 15)),
)
_BRANDS: Final = ("Kassa Basics", "Valley Farms", "Nordhaven", "Golden Mill", "Bellamy's")
PROMOTED_ONE_IN: Final = 8
"""About one product in this many is on promotion in version 2 checkouts."""
PROMOTIONS: Final = (Decimal("0.10"), Decimal("0.20"), Decimal("0.25"))
"""The share off a promoted product (picked by its SKU)."""
_CENT: Final = Decimal("0.01")
Versions = Literal["1", "2", "mix"]
"""The message versions :func:`generate` writes (see the module docstring)."""
VERSION_CHOICES: Final[tuple[Versions, ...]] = ("1", "2", "mix")


def promotion(sku: str) -> Decimal:
    """The share off ``sku`` in version 2 checkouts (0: not on promotion)."""
    code = zlib.crc32(sku.encode())
    if code % PROMOTED_ONE_IN:
        return Decimal(0)
    return PROMOTIONS[code // PROMOTED_ONE_IN % len(PROMOTIONS)]


def promoted(line: Line) -> Line:
    """``line`` with its promotion's discount (as a version 2 line), or itself."""
    share = promotion(line.sku)
    if not share:
        return line
    gross = abs(line.quantity * line.unit_price)
    discount = min(gross, (gross * share).quantize(_CENT, ROUND_HALF_UP))
    return Line(line.sku, line.quantity, line.unit_price, line.name, discount)


@dataclass(frozen=True, slots=True)
class Store:
    """A store of the simulated chain and its registers."""

    store_id: str
    registers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Product:
    """A catalogue entry."""

    sku: str
    name: str
    price: Decimal


def ean13(body: str) -> str:
    """``body`` (12 digits) followed by its EAN-13 check digit."""
    total = sum(int(digit) * (3 if index % 2 else 1) for index, digit in enumerate(body))
    return body + str((10 - total % 10) % 10)


def catalogue() -> tuple[Product, ...]:
    """The fixed catalogue: every product in every brand, most popular first."""
    rng = random.Random(0)
    products: list[Product] = []
    for product, variants, (low, high) in _PRODUCTS:
        for variant in variants:
            for brand_index, brand in enumerate(_BRANDS):
                # cheaper house brand, dearer premium brands; prices end in 9
                cents = rng.randint(low, high) * (0.8 + 0.15 * brand_index)
                price = Decimal(max(9, int(cents) // 10 * 10 + 9)).scaleb(-2)
                sku = ean13(f"40{len(products):010d}")
                name = f"{brand} {product} {variant}"
                products.append(Product(sku, name, price))
    rng.shuffle(products)
    return tuple(products)


def stores(count: int = 20) -> tuple[Store, ...]:
    """The chain: ``count`` stores with 4 to 12 registers each (fixed, not seeded)."""
    rng = random.Random(1)
    return tuple(
        Store(f"s{number:03d}", tuple(f"r{reg:02d}" for reg in range(1, rng.randint(4, 12) + 1)))
        for number in range(1, count + 1)
    )


def _table(
    rng: random.Random, population: range, weights: list[float], bits: int = 16
) -> list[int]:
    return rng.choices(population, weights, k=1 << bits)


class _Clock:
    """Simulated time in integer ms since the epoch, one local hour window at a time."""

    def __init__(self, start: datetime, checkouts_per_second_at_peak: float) -> None:
        self.zone = start.tzinfo
        self.peak = checkouts_per_second_at_peak
        self.ms = math.ceil(start.timestamp() * 1000)
        self._enter_window()

    def _enter_window(self) -> None:
        local = datetime.fromtimestamp(self.ms / 1000, self.zone)
        hour_start = local.replace(minute=0, second=0, microsecond=0)
        self.window_start = round(hour_start.timestamp() * 1000)
        self.window_end = self.window_start + _HOUR_MS
        offset = local.utcoffset() or timedelta(0)
        base = datetime.fromtimestamp(self.window_start / 1000, timezone(offset))
        self.window_base = base
        opens, closes = OPENING_HOURS[local.weekday()]
        curve = HOURLY_CURVE[local.hour] if opens <= local.hour < closes else 0.0
        self.rate_per_ms = self.peak * curve * WEEKDAY_FACTOR[local.weekday()] / 1000

    def advance(self, rng: random.Random) -> datetime:
        """Move to the next checkout's time and return it as an aware datetime."""
        while True:
            if self.rate_per_ms > 0:
                gap = rng.expovariate(self.rate_per_ms)
                if self.ms + gap < self.window_end:
                    self.ms += max(1, int(gap))
                    if self.ms < self.window_end:
                        return self.window_base + timedelta(
                            milliseconds=self.ms - self.window_start
                        )
            self.ms = self.window_end
            self._enter_window()


@dataclass(frozen=True)
class _Tables:
    """What :func:`generate` samples with a few random bits a draw (see the module)."""

    returns: list[Line]
    skus: list[int]
    quantities: list[int]
    sizes: list[int]
    stream: tuple[Line, ...]
    """Independent line draws; a basket is a window of it, one slice per basket."""

    @classmethod
    def draw(cls, rng: random.Random, products: tuple[Product, ...]) -> _Tables:
        """The tables for ``products``, drawn from ``rng`` (always in the same order)."""
        n_quantities = len(QUANTITIES)
        sales = [
            Line(product.sku, quantity, product.price, product.name)
            for product in products
            for quantity in QUANTITIES
        ]
        popularity = [1.0 / (rank + 1) ** 1.05 for rank in range(len(products))]
        skus = _table(rng, range(len(products)), popularity)
        quantities = _table(rng, range(n_quantities), list(_QUANTITY_WEIGHTS))
        sizes = [
            min(MAX_BASKET, max(1, round(rng.lognormvariate(1.6, 0.75))))
            for _ in range(1 << _TABLE_BITS)
        ]
        draws = [
            sales[sku * n_quantities + quantity]
            for sku, quantity in zip(
                _table(rng, range(len(products)), popularity, _STREAM_BITS),
                _table(rng, range(n_quantities), list(_QUANTITY_WEIGHTS), _STREAM_BITS),
                strict=True,
            )
        ]
        returns = [Line(line.sku, -line.quantity, line.unit_price, line.name) for line in sales]
        return cls(returns, skus, quantities, sizes, tuple(draws + draws[:MAX_BASKET]))

    def promoted(self) -> _Tables:
        """These tables with the promotions of version 2 (no random draws: the same baskets)."""
        cache: dict[int, Line] = {}

        def discounted(line: Line) -> Line:
            found = cache.get(id(line))
            if found is None:
                found = cache[id(line)] = promoted(line)
            return found

        returns = [discounted(line) for line in self.returns]
        stream = tuple(discounted(line) for line in self.stream)
        return _Tables(returns, self.skus, self.quantities, self.sizes, stream)


def generate(
    seed: int,
    start: datetime,
    count: int | None = None,
    *,
    store_count: int = 20,
    currency: str = CURRENCY,
    versions: Versions = "1",
) -> Iterator[Checkout]:
    """Simulated checkouts from ``start`` on (``count`` of them, or without end).

    ``start`` must be timezone-aware; its zone is the stores' local time. The same ``seed``,
    ``start`` and ``store_count`` always give the same checkouts. Prices are in ``currency``
    (kassa's default currency unless given). ``versions``: the message versions written
    (see the module docstring).
    """
    if start.tzinfo is None or start.utcoffset() is None:
        msg = f"start {start.isoformat()} has no time zone; pass an aware datetime"
        raise ValueError(msg)
    if count is not None and count < 0:
        msg = f"count {count} is negative; pass 0 or more"
        raise ValueError(msg)
    rng = random.Random(seed)
    registers = [
        (store.store_id, register, _version(versions, index))
        for index, store in enumerate(stores(store_count))
        for register in store.registers
    ]
    tables = _Tables.draw(rng, catalogue())
    upgraded = tables.promoted() if versions != "1" else tables
    # the loop below is the generator's hot path: locals instead of attribute look-ups
    n_quantities = len(QUANTITIES)
    by_version = {1: (tables.returns, tables.stream), 2: (upgraded.returns, upgraded.stream)}
    sku_table, quantity_table, size_table = tables.skus, tables.quantities, tables.sizes
    clock = _Clock(start, len(registers) / SECONDS_PER_CHECKOUT_AT_PEAK)
    prefix = f"syn{seed}-{start.astimezone(UTC):%Y%m%dT%H%M%S}-"
    bits = rng.getrandbits
    random_unit = rng.random
    produced = 0
    while count is None or produced < count:
        occurred_at = clock.advance(rng)
        store_id, register_id, version = registers[bits(30) % len(registers)]
        returns, stream = by_version[version]
        roll = random_unit()
        kind: Kind
        if roll < ADJUSTMENT_RATE:
            kind = "adjustment"
            lines: tuple[Line, ...] = (tables.returns[sku_table[bits(16)] * n_quantities],)
        elif roll < ADJUSTMENT_RATE + RETURN_RATE:
            kind = "return"
            lines = tuple(
                returns[sku_table[bits(16)] * n_quantities + quantity_table[bits(16)] % 2]
                for _ in range(1 + bits(2) // 3)
            )
        else:
            kind = "sale"
            offset = bits(_STREAM_BITS)
            lines = stream[offset : offset + size_table[bits(_TABLE_BITS)]]
        yield Checkout(
            transaction_id=f"{prefix}{produced}",
            store_id=store_id,
            register_id=register_id,
            occurred_at=occurred_at,
            kind=kind,
            currency=currency,
            lines=lines,
            schema_version=version,
        )
        produced += 1


def _version(versions: Versions, store_index: int) -> int:
    """The message version of the registers of the store at ``store_index``."""
    if versions == "mix":
        return 2 if store_index % 2 else 1
    return int(versions)
