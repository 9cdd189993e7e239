"""Every bad parameter and every reason for having no ranking gives a clear API error."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from common.settings import Settings
from tests.api.helpers import fill_live_day, get, serving

TODAY = datetime.now(UTC).date()
EXPIRED = TODAY - timedelta(days=40)


@pytest.fixture
def base(settings: Settings, redis_client: redis.Redis) -> Iterator[str]:
    fill_live_day(redis_client, settings.key_space, TODAY)
    with serving(settings, probe_kafka=False) as url:
        yield url


BAD_PARAMETERS = [
    ("/api/rankings?day=21-11-2026", "day", "YYYY-MM-DD"),
    ("/api/rankings?day=2026-02-30", "day", "YYYY-MM-DD"),
    ("/api/rankings?from=2026-11-01", "to", "from and to go together"),
    ("/api/rankings?to=2026-11-01", "from", "from and to go together"),
    ("/api/rankings?from=yesterday&to=2026-11-01", "from", "YYYY-MM-DD"),
    ("/api/rankings?from=2026-11-01&to=someday", "to", "YYYY-MM-DD"),
    ("/api/rankings?day=2026-11-01&from=2026-11-01&to=2026-11-02", "day", "either day or"),
    ("/api/rankings?from=2026-11-02&to=2026-11-01", "from", "is after"),
    ("/api/rankings?from=2024-01-01&to=2026-11-01", "to", "at most 366 days"),
    ("/api/rankings?n=0", "n", "1 to 1000"),
    ("/api/rankings?n=1001", "n", "1 to 1000"),
    ("/api/rankings?n=ten", "n", "1 to 1000"),
    ("/api/rankings?by=profit", "by", "'units' or 'revenue'"),
    ("/api/rankings?source=weekly", "source", "'live' or 'daily'"),
    ("/api/rankings?store=", "store", "store id"),
    ("/api/totals?day=tomorrow", "day", "YYYY-MM-DD"),
    ("/api/totals?source=hourly", "source", "'live' or 'daily'"),
    ("/api/items/a?from=2026-11-05&to=2026-11-01", "from", "is after"),
    (f"/api/items/{'x' * 65}", "sku", "1 to 64 characters"),
    ("/api/stores?day=2026-1-1", "day", "YYYY-MM-DD"),
    ("/api/days?from=2026-11-01", "to", "from and to go together"),
    ("/api/manifests/last-tuesday", "day", "YYYY-MM-DD"),
    # days Python's dates hold, but not their bounds or their keys' expiry
    ("/api/rankings?day=9999-12-31", "day", "outside the days kassa serves"),
    ("/api/rankings?from=9999-12-01&to=9999-12-31", "from", "outside the days kassa serves"),
    ("/api/days?from=9999-12-30&to=9999-12-31", "from", "outside the days kassa serves"),
]


@pytest.mark.parametrize(("path", "parameter", "accepted"), BAD_PARAMETERS)
def test_a_bad_parameter_is_named_with_its_accepted_form(
    base: str, path: str, parameter: str, accepted: str
) -> None:
    status, body = get(base + path)
    assert status == 422, body
    assert body["error"] == "invalid_parameter"
    assert body["parameter"] == parameter
    assert accepted in body["detail"]
    assert "\n" not in body["detail"]


def test_each_reason_for_no_ranking_has_its_own_status_and_advice(base: str) -> None:
    empty = TODAY - timedelta(days=1)
    status, body = get(f"{base}/api/rankings?day={empty}")
    assert (status, body["error"]) == (404, "no_data")
    assert str(empty) in body["detail"]
    assert "kassa stream" in body["detail"]

    status, body = get(f"{base}/api/rankings?day={TODAY}&store=west")
    assert (status, body["error"]) == (404, "unknown_store")
    assert "'west'" in body["detail"]
    assert "known stores: north, south" in body["detail"]
    assert f"/api/stores?day={TODAY}" in body["detail"]

    status, body = get(f"{base}/api/rankings?source=daily&day={TODAY}")
    assert (status, body["error"]) == (404, "daily_not_computed")
    assert f"kassa daily run --day {TODAY}" in body["detail"]

    first = TODAY - timedelta(days=2)
    status, body = get(f"{base}/api/rankings?source=daily&from={first}&to={TODAY}")
    assert (status, body["error"]) == (404, "daily_not_computed")
    assert f"kassa daily backfill --from {first} --to {TODAY}" in body["detail"]

    status, body = get(f"{base}/api/rankings?day={EXPIRED}")
    assert (status, body["error"]) == (410, "day_expired")
    assert f"daily_item_sales/date={EXPIRED}/part-0.parquet" in body["detail"]
    assert "KASSA_RETENTION_DAYS" in body["detail"]

    status, body = get(f"{base}/api/rankings?day={EXPIRED}&store=north")
    assert f"daily_store_item_sales/date={EXPIRED}/part-0.parquet" in body["detail"]

    status, body = get(f"{base}/api/manifests/{TODAY}")
    assert (status, body["error"]) == (404, "daily_not_computed")
    assert f"kassa daily run --day {TODAY}" in body["detail"]


def test_error_bodies_name_no_server_path_and_quote_values_cut_short(
    base: str, settings: Settings
) -> None:
    for path in (f"/api/rankings?day={EXPIRED}", f"/api/manifests/{TODAY}"):
        status, body = get(base + path)
        assert status in (404, 410), body
        assert str(settings.data_dir) not in body["detail"]
        assert "$KASSA_DATA_DIR/" in body["detail"]

    status, body = get(f"{base}/api/rankings?store={'s' * 100_000}")
    assert (status, body["parameter"]) == (422, "store")
    assert len(body["detail"]) < 400
    assert "(100000 characters)" in body["detail"]


def test_the_store_switch_and_revenue_ranking_of_a_filled_day(base: str) -> None:
    status, body = get(f"{base}/api/rankings?day={TODAY}&store=south")
    assert status == 200
    assert [(i["sku"], i["units"], i["revenue"]) for i in body["items"]] == [("b", 1, "1.0000")]
    status, body = get(f"{base}/api/rankings?by=revenue")
    assert [i["sku"] for i in body["items"]] == ["a", "b"]


def test_openapi_documents_every_endpoint_with_examples(base: str) -> None:
    status, spec = get(f"{base}/openapi.json")
    assert status == 200
    paths = set(spec["paths"])
    assert {
        "/api/rankings",
        "/api/items/{sku}",
        "/api/totals",
        "/api/stores",
        "/api/days",
        "/api/manifests/{day}",
        "/health",
    } <= paths
    schemas = spec["components"]["schemas"]
    assert schemas["Ranking"]["examples"][0]["items"][0]["rank"] == 1
    assert "examples" in schemas["Problem"]
    ranking = spec["paths"]["/api/rankings"]["get"]
    assert {"422", "404", "410", "503"} <= set(ranking["responses"])
