"""kassa on a Redis Cluster of three masters: every key of a key space in one hash slot, so
each Lua script and transaction stays on one node, and no script touches a key it was not
given; the stream and daily jobs exact, ``kassa stream rebuild`` and ``kassa top`` working."""

from __future__ import annotations

from redis import Redis

from common.settings import Settings
from services.redis import RedisServer
from storage import keys
from storage.connections import open_redis
from storage.live import LiveStore
from tests.helpers import run_kassa, settings_env
from tests.jobs.stream.helpers import assert_exact, run_once, topic_checkouts
from tests.pipeline import DAY, assert_pipeline_exact
from tests.redis_shapes.conftest import cluster_client


def test_the_stream_and_daily_jobs_are_exact_on_a_three_master_redis_cluster(
    redis_cluster: list[RedisServer], redis_cluster_settings: Settings
) -> None:
    settings = redis_cluster_settings
    assert_pipeline_exact(settings)
    client = cluster_client(redis_cluster)
    try:
        written = list(client.scan_iter(match=keys.space_pattern(settings.key_space)))
        assert len(written) > 10
        assert {client.keyslot(key) for key in written} == {
            client.keyslot(keys.names_key(settings.key_space))
        }
    finally:
        client.close()


def test_rebuild_and_top_work_on_a_redis_cluster(redis_cluster_settings: Settings) -> None:
    settings = redis_cluster_settings
    assert_pipeline_exact(settings, count=120, seed=5)
    env = settings_env(settings)
    rebuilt = run_kassa("stream", "rebuild", "--yes", env=env)
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    client = open_redis(settings)
    try:
        assert client.exists(keys.day_key(settings.key_space, "live", DAY, "units")) == 0
        run_once(settings)
        assert_exact(client, settings, topic_checkouts(settings))
    finally:
        client.close()
    top = run_kassa("top", "--day", DAY.isoformat(), "-n", "3", env=env)
    assert top.returncode == 0, top.stderr
    assert f"live ranking by units for {DAY}" in top.stdout
    both = run_kassa("top", "--from", "2026-11-20", "--to", DAY.isoformat(), "--by", "revenue",
                     env=env)  # fmt: skip
    assert both.returncode == 0, both.stderr


def test_the_eviction_check_asks_the_node_that_holds_the_key_space(
    redis_cluster: list[RedisServer], redis_cluster_settings: Settings
) -> None:
    settings = redis_cluster_settings
    client = open_redis(settings)
    store = LiveStore(client, settings.key_space, settings.zone, settings.retention_days)
    holder = client.get_node_from_key(store.applied_key)
    node = Redis(host=holder.host, port=holder.port)
    node.config_set("maxmemory-policy", "allkeys-lru")
    try:
        assert store.eviction_policy() == "allkeys-lru"
    finally:
        node.config_set("maxmemory-policy", "noeviction")
        node.close()
        client.close()
    assert store.eviction_policy() == "noeviction"
