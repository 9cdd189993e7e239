"""Reading kassa's figures in the Redis shapes chains run: on a Redis Cluster of three masters
and on the master three Sentinels name, the API (``kassa serve``), ``kassa top``, ``kassa daily
status``, ``kassa stream rebuild`` and the scheduler's republish answer with the exact figures
of two days that ``kassa stream`` counted and ``kassa daily run`` / ``backfill`` finalized;
and the API, left running, follows a Sentinel failover.

Each shape's two days are produced once for this module (:func:`counted`); a test that
changes Redis puts it back exactly, and says so.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from common.schema import Checkout
from common.settings import Settings
from common.settings.location import DataUrl
from jobs.daily.lock import DayLocks
from jobs.daily.republish import MISSING
from jobs.daily.scheduler import catch_up
from services.redis import RedisServer
from storage import keys, parquet
from storage.connections import Client, open_redis
from storage.figures import RANKED_BY
from storage.kafka.topics import ensure_topics
from tests.api.helpers import QUANTUM, as_rows, call, expected_ranking, get, serving_child
from tests.conftest import Services, fresh_settings
from tests.helpers import Figures, free_port, run_kassa, settings_env, truth, wait_until
from tests.jobs.daily.helpers import daily_keys, expected_of, parquet_figures, seal
from tests.jobs.stream.helpers import assert_exact, publish_checkouts, run_once, valid_checkouts
from tests.redis_shapes.conftest import Sentinels, on_sentinels, started_sentinels

SHAPES = ("cluster", "sentinel")
PER_DAY = 150
"""Checkouts of each of the two days."""
TOP = 10


@dataclass(frozen=True)
class Counted:
    """Two days of checkouts counted live by ``kassa stream`` and finalized by the daily job,
    in one Redis shape."""

    shape: str
    settings: Settings
    checkouts: list[Checkout]
    days: tuple[date, date]

    @property
    def figures(self) -> Figures:
        """The ground truth of every figure."""
        return truth(self.checkouts, self.settings.zone)

    @property
    def busiest_store(self) -> str:
        """The store with the most checkouts on the first day (ties: the smallest id)."""
        first = [c.store_id for c in self.checkouts if c.occurred_at.date() == self.days[0]]
        return min(set(first), key=lambda store: (-first.count(store), store))

    def checkouts_of(self, day: date) -> int:
        """How many checkouts ``day`` has."""
        return sum(1 for c in self.checkouts if c.occurred_at.date() == day)

    def names(self) -> dict[str, str | None]:
        """sku -> the display name its lines carry."""
        return {line.sku: line.name for c in self.checkouts for line in c.lines}


@pytest.fixture(scope="module")
def module_sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sentinels]:
    """Sentinels for this module's reads (:func:`started_sentinels`); no failover."""
    with started_sentinels(tmp_path_factory.mktemp("sentinels")) as shape:
        yield shape


def _shaped(
    shape: str, request: pytest.FixtureRequest, services: Services, folder: Path
) -> Settings:
    """Fresh settings (topic, group, key space) on the Redis of ``shape``, whose URL names a
    node that a process ignoring the shape fails on: a cluster node that does not hold the
    key space's hash slot (it answers MOVED), or no server at all for the Sentinels (with
    them, the URL gives only the database and the login)."""
    if shape == "cluster":
        nodes: list[RedisServer] = request.getfixturevalue("redis_cluster")
        settings = fresh_settings(
            request, folder, services.kafka.bootstrap, f"redis://{nodes[0].address}/0"
        )
        settings = settings.model_copy(update={"redis_cluster": True, "metrics_port": 0})
        client = open_redis(settings)
        try:
            holder = client.get_node_from_key(keys.names_key(settings.key_space))
        finally:
            client.close()
        other = next(node for node in nodes if node.port != holder.port)
        url = f"redis://{other.address}/0"
    else:
        sentinels: Sentinels = request.getfixturevalue("module_sentinels")
        settings = on_sentinels(
            fresh_settings(
                request, folder, services.kafka.bootstrap, f"redis://{sentinels.master.address}/0"
            ),
            sentinels,
        )
        url = f"redis://127.0.0.1:{free_port()}/0"
    settings = settings.model_copy(update={"redis_url": url})
    ensure_topics(settings)
    return settings


def _kassa(settings: Settings, *args: str) -> str:
    """``kassa *args`` in a child process with ``settings``: its output (exit status 0)."""
    done = run_kassa(*args, env=settings_env(settings))
    assert done.returncode == 0, (args, done.stderr[-3000:])
    return done.stdout


@pytest.fixture(scope="module", params=SHAPES)
def counted(
    request: pytest.FixtureRequest,
    services: Services,
    tmp_path_factory: pytest.TempPathFactory,
) -> Counted:
    """Two days (three and two days ago, UTC) published, counted by ``kassa stream
    --idle-timeout``, finalized by ``kassa daily run`` and ``kassa daily backfill``; the live
    figures and both daily snapshots checked exact against the ground truth."""
    shape = request.param
    settings = _shaped(shape, request, services, tmp_path_factory.mktemp(f"reading-{shape}"))
    today = datetime.now(UTC).date()
    days = (today - timedelta(days=3), today - timedelta(days=2))
    checkouts = [
        *valid_checkouts(PER_DAY, seed=61, day=days[0]),
        *valid_checkouts(PER_DAY, seed=62, day=days[1]),
    ]
    publish_checkouts(settings, checkouts)
    seal(settings, datetime.combine(days[1] + timedelta(days=1), time(6), UTC))
    _kassa(settings, "stream", "--idle-timeout", "3")
    manifest = json.loads(
        _kassa(settings, "daily", "run", "--day", str(days[0]), "--json", "--quiet")
    )
    assert manifest["totals"]["checkouts"] == PER_DAY
    _kassa(settings, "daily", "backfill", "--from", str(days[1]), "--to", str(days[1]), "--quiet")

    client = open_redis(settings)
    try:
        assert_exact(client, settings, checkouts)
    finally:
        client.close()
    for day in days:
        path = parquet.table_path(settings.data_dir, "daily_item_sales", day)
        assert parquet_figures(path) == expected_of(checkouts, day, settings.zone)
    return Counted(shape, settings, checkouts, days)


def _request_counts(metrics: str) -> dict[tuple[str, str], float]:
    """``(route, status) -> kassa_api_requests_total`` of the GETs in a /metrics text."""
    pattern = r'^kassa_api_requests_total\{method="GET",route="([^"]+)",status="(\d+)"\} (\S+)$'
    return {
        (route, status): float(value)
        for route, status, value in re.findall(pattern, metrics, flags=re.MULTILINE)
    }


def _money(value: Decimal) -> str:
    """``value`` as the API and ``kassa top`` print money."""
    return str(value.quantize(QUANTUM))


def test_the_api_answers_with_the_exact_figures(counted: Counted, tmp_path: Path) -> None:
    settings, figures, (first, second) = counted.settings, counted.figures, counted.days
    store = counted.busiest_store
    cases = [
        ("live", first, first, None, "units"),
        ("live", second, second, store, "revenue"),
        ("daily", second, second, None, "revenue"),
        ("daily", first, second, None, "units"),
        ("daily", first, second, store, "units"),
    ]
    with serving_child(settings, tmp_path) as base:
        for source, start, end, scope, by in cases:
            query = f"source={source}&from={start}&to={end}&by={by}&n={TOP}"
            query += f"&store={scope}" if scope else ""
            status, body = get(f"{base}/api/rankings?{query}")
            assert status == 200, body
            span = [start] if start == end else [start, end]
            assert as_rows(body["items"]) == expected_ranking(figures, span, scope, by, TOP)

        sku = as_rows(body["items"])[0][1]
        zero = (0, 0, 0, Decimal(0), 0, Decimal(0))
        rows = [figures.get((day, None, sku), zero) for day in (first, second)]
        for source in ("live", "daily"):
            status, item = get(f"{base}/api/items/{sku}?source={source}&from={first}&to={second}")
            assert status == 200, item
            assert item["name"] == counted.names()[sku]
            assert [
                (d["units"], d["units_sold"], d["units_returned"], d["revenue"], d["checkouts"],
                 d["discount"])
                for d in item["days"]
            ] == [(u, s, r, _money(m), c, _money(x)) for u, s, r, m, c, x in rows]  # fmt: skip

        status, stores = get(f"{base}/api/stores?source=daily&from={first}&to={second}")
        assert (status, stores["stores"]) == (200, sorted({c.store_id for c in counted.checkouts}))

        status, health = get(f"{base}/health")
        assert status == 200, health
        assert (health["status"], health["redis"]) == ("ok", {"reachable": True, "reason": None})
        daily = health["daily"]
        assert (daily["day"], daily["state"], daily["checkouts"]) == (
            str(second),
            "complete",
            counted.checkouts_of(second),
        )

        counts = _request_counts(call(f"{base}/metrics").text)
    assert counts[("/api/rankings", "200")] == len(cases)
    assert counts[("/api/items/{sku}", "200")] == 2
    assert counts[("/api/stores", "200")] == 1


def _top_json(ranking: list[tuple[int, str, int, str]], names: dict[str, str | None]) -> Any:
    """What ``kassa top --json`` prints for ``(rank, sku, units, revenue)`` rows."""
    return [
        {"rank": rank, "sku": sku, "name": names[sku], "units": units, "revenue": revenue}
        for rank, sku, units, revenue in ranking
    ]


def test_kassa_top_and_daily_status_print_the_exact_figures(counted: Counted) -> None:
    settings, figures, (first, second) = counted.settings, counted.figures, counted.days
    store, names = counted.busiest_store, counted.names()

    live = _kassa(settings, "top", "--day", str(first), "-n", str(TOP), "--json")
    assert json.loads(live) == _top_json(
        expected_ranking(figures, [first], None, "units", TOP), names
    )
    for by in RANKED_BY:
        daily = _kassa(settings, "top", "--source", "daily", "--from", str(first), "--to",
                       str(second), "--store", store, "--by", by, "-n", "5", "--json")  # fmt: skip
        expected = expected_ranking(figures, [first, second], store, by, 5)
        assert json.loads(daily) == _top_json(expected, names)

    table = _kassa(settings, "top", "--day", str(second), "-n", "3").splitlines()
    assert table[0] == f"live ranking by units for {second} (all stores)"
    assert [(*row.split()[:2], *row.split()[-2:]) for row in table[2:]] == [
        (str(rank), sku, str(units), revenue)
        for rank, sku, units, revenue in expected_ranking(figures, [second], None, "units", 3)
    ]

    stores = _kassa(settings, "top", "--stores", "--source", "daily", "--day", str(first))
    assert stores.splitlines() == sorted(
        {c.store_id for c in counted.checkouts if c.occurred_at.date() == first}
    )

    status = json.loads(_kassa(settings, "daily", "status", "--to", str(second), "--days", "2",
                               "--json"))  # fmt: skip
    assert [(s["day"], s["state"], s["revision"], s["checkouts"], s["redis"]) for s in status] == [
        (str(day), "complete", 1, counted.checkouts_of(day), "current") for day in (second, first)
    ]


def test_kassa_stream_rebuild_clears_the_live_days_and_the_stream_job_recounts_them_exactly(
    counted: Counted,
) -> None:
    settings, (first, _) = counted.settings, counted.days
    plan = _kassa(settings, "stream", "rebuild")
    assert plan.splitlines()[-1] == "nothing changed: run again with --yes to rebuild"
    assert "rebuilt:" in _kassa(settings, "stream", "rebuild", "--yes")
    client = open_redis(settings)
    try:
        assert client.exists(keys.day_key(settings.key_space, "live", first, "units")) == 0
        # a child again: it takes over the static group membership of the first one at once
        _kassa(settings, "stream", "--idle-timeout", "3")
        assert_exact(client, settings, counted.checkouts)
    finally:
        client.close()


def _daily_keys(client: Client, space: str, days: tuple[date, ...]) -> dict[str, object]:
    """Every daily key of ``days`` with its value (:func:`daily_keys`, the names left out)."""
    return {
        key: value
        for day in days
        for key, value in daily_keys(client, space, day).items()
        if key != "names"
    }


def test_the_scheduler_republishes_deleted_daily_keys_exactly(counted: Counted) -> None:
    settings, figures, days = counted.settings, counted.figures, counted.days
    space = settings.key_space
    client = open_redis(settings)
    try:
        written = _daily_keys(client, space, days)
        for day in days:
            ranking = dict(written[keys.day_key(space, "daily", day, "units")])
            assert ranking == {
                sku.encode(): float(row[0])
                for (when, store, sku), row in figures.items()
                if when == day and store is None
            }
        assert keys.manifest_key(space, days[0]) in written
        assert client.delete(*written) == len(written)

        status = json.loads(_kassa(settings, "daily", "status", "--to", str(days[1]), "--days",
                                   "2", "--json"))  # fmt: skip
        assert [entry["redis"] for entry in status] == [MISSING, MISSING]

        window = settings.model_copy(update={"daily_catchup_days": 1})
        assert catch_up(window, datetime.combine(days[1] + timedelta(days=1), time(3), UTC)) == []
        assert _daily_keys(client, space, days) == written
    finally:
        client.close()
    status = json.loads(_kassa(settings, "daily", "status", "--to", str(days[1]), "--days", "2",
                               "--json"))  # fmt: skip
    assert [entry["redis"] for entry in status] == ["current", "current"]


def test_the_day_lock_of_an_object_store_data_location_is_held_in_the_shapes_redis(
    counted: Counted,
) -> None:
    settings = counted.settings.model_copy(update={"data_dir": DataUrl("s3://kassa/locks")})
    day, locks = counted.days[0], DayLocks.of(settings)
    client = open_redis(settings)
    try:
        with locks.hold(day) as held:
            held.check()
            assert locks.held(day)
            assert client.exists(keys.day_lock_key(settings.key_space, day)) == 1
        assert not locks.held(day)
    finally:
        client.close()


def test_the_api_follows_a_sentinel_failover_without_a_restart(
    sentinels: Sentinels, sentinel_settings: Settings, tmp_path: Path
) -> None:
    settings = sentinel_settings
    day = datetime.now(UTC).date() - timedelta(days=1)
    checkouts = valid_checkouts(PER_DAY, seed=63, day=day)
    publish_checkouts(settings, checkouts)
    run_once(settings)
    master = Redis(host=sentinels.master.host, port=sentinels.master.port)
    try:
        assert master.wait(1, 10_000) == 1  # the replica holds every write: none is lost
    finally:
        master.close()
    expected = expected_ranking(truth(checkouts, settings.zone), [day], None, "units", TOP)
    ranking = f"/api/rankings?source=live&day={day}&n={TOP}"

    with serving_child(settings, tmp_path) as base:
        status, body = get(base + ranking)
        assert status == 200, body
        assert as_rows(body["items"]) == expected
        master_pid = sentinels.master.pid
        assert master_pid is not None
        os.kill(master_pid, signal.SIGKILL)
        promoted = (sentinels.replica.host, sentinels.replica.port)
        wait_until(lambda: sentinels.master_address() == promoted, 60, "the replica's promotion")

        # While the Sentinels still tell each other of the switch, one may name no master
        # yet (a 503 naming the Sentinels); the same process then answers from the new one.
        answers: list[tuple[int, Any]] = []
        wait_until(
            lambda: answers.append(get(base + ranking)) or answers[-1][0] == 200,
            30,
            "kassa serve to answer from the promoted replica",
        )
        status, body = answers[-1]
        assert {code for code, _ in answers} <= {200, 503}, answers
        assert as_rows(body["items"]) == expected
        status, health = get(f"{base}/health")
        assert (status, health["redis"]) == (200, {"reachable": True, "reason": None})
