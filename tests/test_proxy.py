"""The TCP proxy the network-fault tests put between kassa and its servers does what each
fault says, against a real redis-server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from services.redis import RedisServer
from storage.connections import open_redis
from tests.proxy import TcpProxy


@pytest.fixture
def proxy(redis_service: RedisServer) -> Iterator[TcpProxy]:
    proxy = TcpProxy(redis_service.host, redis_service.port).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def _client(proxy: TcpProxy, timeout: float = 5.0) -> redis.Redis:
    return open_redis(f"redis://{proxy.address}/0", timeout=timeout)


def test_traffic_passes_both_ways(proxy: TcpProxy) -> None:
    client = _client(proxy)
    client.set("proxy:test", "x" * 200_000)
    assert client.get("proxy:test") == b"x" * 200_000
    client.delete("proxy:test")


def test_a_black_hole_holds_the_traffic_until_healed(proxy: TcpProxy) -> None:
    client = _client(proxy, timeout=0.5)
    assert client.ping()
    proxy.hold()
    with pytest.raises(redis.TimeoutError):
        client.ping()
    proxy.heal()
    assert _client(proxy).ping()


def test_latency_delays_each_answer(proxy: TcpProxy) -> None:
    client = _client(proxy)
    client.ping()
    proxy.delay(0.3)
    started = time.monotonic()
    client.ping()
    assert time.monotonic() - started >= 0.6  # 0.3 s each way
    proxy.heal()


def test_a_reset_breaks_open_connections_and_accepts_new_ones(proxy: TcpProxy) -> None:
    client = _client(proxy)
    connection = client.connection_pool.get_connection()
    connection.send_command("PING")
    assert connection.read_response() == b"PONG"
    proxy.reset()
    with pytest.raises(redis.ConnectionError):
        connection.send_command("PING")
        connection.read_response()
    assert _client(proxy).ping()
