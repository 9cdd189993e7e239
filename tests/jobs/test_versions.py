"""Message versions on a real topic: a topic that mixes version 1 and version 2 checkouts (a
fleet upgrade half done) counts exactly, net of discounts, live and daily; a version neither
job reads is refused ``unsupported_version`` by both alike; fields a version does not define
are ignored."""

from __future__ import annotations

import json
import signal
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import redis

from common.schema import Checkout, encode_checkout
from common.settings import Settings
from jobs.daily.job import run_day
from producers.synthetic import generate
from storage import keys, parquet
from tests.helpers import truth, wait_until
from tests.jobs.daily.helpers import expected_of, parquet_figures, produce, produce_raw, seal
from tests.jobs.stream.helpers import caught_up, live_figures, start_stream

BERLIN = ZoneInfo("Europe/Berlin")
DAY = date(2026, 11, 21)
START = datetime(2026, 11, 21, 9, tzinfo=BERLIN)


def with_extra_fields(checkout: Checkout) -> bytes:
    """``checkout`` as sent by a newer producer: fields no version defines, at both levels."""
    message: dict[str, Any] = json.loads(encode_checkout(checkout))
    message["loyalty_card"] = {"id": "L-7", "points": [1, 2]}
    for line in message["lines"]:
        line["tax_rate"] = "0.20"
    return json.dumps(message).encode()


def version_3(checkout: Checkout) -> bytes:
    """``checkout`` as an unknown message version 3 (whose lines this kassa cannot know)."""
    message: dict[str, Any] = json.loads(encode_checkout(checkout))
    message["schema_version"] = 3
    message["lines"] = [{"item": line["sku"], "qty": line["quantity"]} for line in message["lines"]]
    return json.dumps(message).encode()


def run_stream_until_caught_up(settings: Settings, client: redis.Redis, log: Path) -> None:
    """``kassa stream`` as a service: it must catch up, and stop cleanly."""
    child = start_stream(settings.model_copy(update={"metrics_port": 0}), log)
    try:
        wait_until(caught_up(client, settings), 120, "the stream job to catch up")
        time.sleep(0.5)
        assert child.poll() is None, log.read_text()[-3000:]
    finally:
        child.send_signal(signal.SIGTERM)
        assert child.wait(30) == 0, log.read_text()[-3000:]


def dead_letter_counts(client: redis.Redis, settings: Settings) -> dict[str, int]:
    """The live dead-letter counts by reason."""
    raw = client.hgetall(keys.dead_letters_key(settings.key_space))
    return {reason.decode(): int(count) for reason, count in raw.items()}


def test_a_topic_mixing_versions_counts_exactly_net_of_discounts_live_and_daily(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"timezone": "Europe/Berlin"})
    mixed = list(generate(7, START, 1500, versions="mix"))
    assert {checkout.schema_version for checkout in mixed} == {1, 2}
    assert any(line.discount for checkout in mixed for line in checkout.lines)
    extra = list(generate(8, START + timedelta(hours=1), 20, versions="mix"))
    unknown = list(generate(9, START + timedelta(hours=2), 15, versions="2"))
    produce(settings, mixed)
    produce_raw(settings, [with_extra_fields(c) for c in extra], START + timedelta(hours=1))
    produce_raw(settings, [version_3(c) for c in unknown], START + timedelta(hours=2))
    seal(settings, START + timedelta(days=2))

    run_stream_until_caught_up(settings, redis_client, tmp_path / "stream.log")

    counted = [*mixed, *extra]
    expected = truth(counted, BERLIN)
    live = live_figures(redis_client, [DAY], settings.key_space)
    assert live == {key: figures for key, figures in expected.items() if key[0] == DAY}
    assert dead_letter_counts(redis_client, settings) == {"unsupported_version": len(unknown)}
    totals = redis_client.hgetall(keys.day_key(settings.key_space, "live", DAY, "totals"))
    amounts = [line.quantity * line.unit_price for c in counted for line in c.lines]
    discounts = [line.discount for c in counted for line in c.lines]
    gross = sum(amounts, Decimal(0))
    # a discount takes the sign of its line's amount (a return gives it back)
    discount = sum(
        (d if a >= 0 else -d for a, d in zip(amounts, discounts, strict=True)), Decimal(0)
    )
    assert Decimal(int(totals[b"revenue"])).scaleb(-4) == gross - discount
    assert Decimal(int(totals[b"discount"])).scaleb(-4) == discount > 0

    result = run_day(settings, DAY)

    assert result.manifest.counts.invalid == {"unsupported_version": len(unknown)}
    assert result.manifest.schema_versions == [1, 2]
    daily = parquet_figures(parquet.table_path(settings.data_dir, "daily_item_sales", DAY))
    assert daily == expected_of(counted, DAY, BERLIN)
    assert result.manifest.totals.revenue == gross - discount
    assert result.manifest.totals.discount == discount
    assert result.reconciliation.drifts == ()
    lines = parquet.table_path(settings.data_dir, "sales_lines", DAY)
    assert sum(pl.read_parquet(lines).get_column("discount").to_list()) == sum(discounts)


def test_version_2_is_refused_alike_by_both_jobs_until_it_is_accepted(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = settings.model_copy(
        update={"timezone": "Europe/Berlin", "schema_versions": "1", "daily_max_invalid_share": 1}
    )
    mixed = list(generate(11, START, 400, versions="mix"))
    produce(settings, mixed)
    seal(settings, START + timedelta(days=2))
    upgraded = sum(1 for checkout in mixed if checkout.schema_version == 2)

    run_stream_until_caught_up(settings, redis_client, tmp_path / "stream.log")
    result = run_day(settings, DAY)

    assert dead_letter_counts(redis_client, settings) == {"unsupported_version": upgraded}
    assert result.manifest.counts.invalid == {"unsupported_version": upgraded}
    v1 = [checkout for checkout in mixed if checkout.schema_version == 1]
    daily = parquet_figures(parquet.table_path(settings.data_dir, "daily_item_sales", DAY))
    assert daily == expected_of(v1, DAY, BERLIN)
    assert result.reconciliation.drifts == ()
