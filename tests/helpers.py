"""Plain helpers shared by tests (fixtures live in ``conftest.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from common.environment import settings_variables
from common.schema import Checkout, Line
from common.settings import ENV_PREFIX, Settings
from producers.replay import DEFAULT_DATASET
from services.process import free_port  # noqa: F401 (the tests import it from here)
from services.redis import RedisServer
from storage.figures import CHECKOUTS, DISCOUNT, RETURNED, REVENUE, SOLD, UNITS, WIDTH

Figures = dict[tuple[date, str | None, str], tuple[int, int, int, Decimal, int, Decimal]]
"""(day, store or None for the chain, sku) -> the item's figures in the layout of
:mod:`storage.figures`, money as Decimals."""


KASSA: Final = (sys.executable, "-m", "cli.main")
"""The ``kassa`` command for a child process (``subprocess.Popen([*KASSA, ...])``): the
interpreter that runs the tests, so no test depends on where a virtual environment lives."""


def run_kassa(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``kassa *args`` in a child process to its end: stdout and stderr captured as text,
    the exit status left to the caller to check."""
    return subprocess.run(
        [*KASSA, *args], env=env, capture_output=True, text=True, check=False, timeout=timeout
    )


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 0.1 s; fail the test naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout:.0f} s waiting for {what}"
            raise AssertionError(msg)
        time.sleep(0.1)


def settings_env(settings: Settings) -> dict[str, str]:
    """``os.environ`` plus the ``KASSA_*`` variables that reproduce ``settings`` in a child:
    secrets in clear, a setting that is ``None`` left out (so the child has it unset too)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(ENV_PREFIX)}
    return env | settings_variables(settings)


def login_url(server: RedisServer, password: str | None = None) -> str:
    """The URL of database 0 of ``server`` (e.g. ``locked_redis``) with its password, or with
    ``password`` instead."""
    secret = password or (server.password.get_secret_value() if server.password else "")
    return f"redis://:{secret}@{server.address}/0"


def repo_root() -> Path:
    """The repository's top folder."""
    return Path(__file__).resolve().parent.parent


DATASET = Path(os.environ.get("KASSA_REPLAY_DATASET") or DEFAULT_DATASET)
"""The UCI Online Retail dataset: KASSA_REPLAY_DATASET, else the copy shipped with kassa."""


def truth(checkouts: Iterable[Checkout], zone: ZoneInfo) -> Figures:
    """Every live figure, computed the plain way with Decimal money."""
    sums: dict[tuple[date, str | None, str], list[object]] = defaultdict(_no_figures)
    for checkout in checkouts:
        day = checkout.occurred_at.astimezone(zone).date()
        for store in (checkout.store_id, None):
            for sku in {line.sku for line in checkout.lines}:
                sums[(day, store, sku)][CHECKOUTS] += 1  # type: ignore[operator]
            for line in checkout.lines:
                row = sums[(day, store, line.sku)]
                row[UNITS] += line.quantity  # type: ignore[operator]
                if checkout.kind == "sale":
                    row[SOLD] += line.quantity  # type: ignore[operator]
                if checkout.kind == "return":
                    row[RETURNED] -= line.quantity  # type: ignore[operator]
                # a discount is taken off the line's amount, whatever its sign
                gross = line.quantity * line.unit_price
                discount = line.discount if gross >= 0 else -line.discount
                row[REVENUE] += gross - discount  # type: ignore[operator]
                row[DISCOUNT] += discount  # type: ignore[operator]
    return {key: tuple(row) for key, row in sums.items()}  # type: ignore[misc]


def _no_figures() -> list[object]:
    row: list[object] = [0] * WIDTH
    row[REVENUE] = row[DISCOUNT] = Decimal(0)
    return row


def noon_zone(now: datetime) -> str:
    """A fixed-offset zone in which ``now`` is between 11:30 and 12:30 local time: a test
    that runs its business days in it is hours from a day's end at any hour it starts."""
    offset = 12 - round(now.astimezone(UTC).hour + now.minute / 60)
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"  # the Etc zones' sign is inverted


GBP: Final = st.just("GBP")
VERSION_1: Final = st.just(1)


@st.composite
def checkouts(
    draw: st.DrawFn,
    *,
    ids: st.SearchStrategy[str],
    instants: st.SearchStrategy[datetime],
    quantities: st.SearchStrategy[int],
    prices: st.SearchStrategy[Decimal],
    names: st.SearchStrategy[str | None],
    skus: st.SearchStrategy[str] | None = None,
    stores: st.SearchStrategy[str] | None = None,
    currencies: st.SearchStrategy[str] = GBP,
    max_lines: int = 4,
    negative_prices: bool = True,
    versions: st.SearchStrategy[int] = VERSION_1,
) -> Checkout:
    """A checkout of any kind whose quantities' signs fit its kind (a return's are negative,
    an adjustment's either; an adjustment's prices may be negative too unless
    ``negative_prices`` is off), drawn from the parts given (``skus`` and ``stores`` default to
    ``ids``), in a message version of ``versions`` (a version 2 line may carry a discount up
    to its whole amount)."""
    skus = ids if skus is None else skus
    stores = ids if stores is None else stores
    kind = draw(st.sampled_from(["sale", "return", "adjustment"]))
    version = draw(versions)
    lines = []
    for _ in range(draw(st.integers(1, max_lines))):
        quantity = draw(quantities)
        if kind == "return" or (kind == "adjustment" and draw(st.booleans())):
            quantity = -quantity
        price = draw(prices)
        if negative_prices and kind == "adjustment" and draw(st.booleans()):
            price = -price
        line = Line(draw(skus), quantity, price, draw(names))
        if version >= 2 and draw(st.booleans()):
            line = Line(line.sku, quantity, price, line.name, draw(discounts(quantity, price)))
        lines.append(line)
    return Checkout(
        transaction_id=draw(ids),
        store_id=draw(stores),
        register_id=draw(ids),
        occurred_at=draw(instants),
        kind=kind,  # type: ignore[arg-type]
        currency=draw(currencies),
        lines=tuple(lines),
        schema_version=version,
    )


def discounts(quantity: int, price: Decimal) -> st.SearchStrategy[Decimal]:
    """A valid discount of a line: 0 to ``|quantity * price|``, 4 decimal places at most."""
    whole = abs(quantity * price)
    return st.one_of(
        st.just(whole),
        st.just(Decimal(0)),
        st.decimals(0, whole, places=4, allow_nan=False, allow_infinity=False),
    )


def one_error_line(stderr: str) -> str:
    """The one ``kassa: error:`` line of a command's ``stderr`` (asserting it is one line and
    no traceback came with it)."""
    errors = [line for line in stderr.splitlines() if line.startswith("kassa: error:")]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr
    return errors[0]
