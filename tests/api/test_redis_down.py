"""A stopped Redis makes the API answer 503 with one line of reason, and it recovers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from common.settings import Settings
from services.redis import RedisServer
from storage.connections import open_redis
from tests.api.helpers import fill_live_day, get, serving
from tests.helpers import free_port, run_kassa, settings_env


def test_redis_stopped_gives_503_and_the_api_recovers_when_it_is_back(
    settings: Settings, tmp_path: Path
) -> None:
    server = RedisServer("127.0.0.1", free_port(), tmp_path / "redis", appendfsync="always")
    server.start()
    settings = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{server.port}/0"})
    today = datetime.now(UTC).date()
    client = open_redis(settings)
    fill_live_day(client, settings.key_space, today)
    client.close()
    try:
        with serving(settings, probe_kafka=False) as base:
            status, before = get(f"{base}/api/rankings")
            assert status == 200
            assert get(f"{base}/health")[0] == 200

            server.stop()
            status, health = get(f"{base}/health")
            assert status == 503
            assert health["status"] == "unavailable"
            assert health["reason"].startswith("cannot reach Redis at KASSA_REDIS_URL=")
            assert "\n" not in health["reason"]
            assert health["redis"]["reachable"] is False
            for path in ("/api/rankings", "/api/totals", "/api/items/a", "/api/stores"):
                status, body = get(base + path)
                assert status == 503, path
                assert body["error"] == "redis_unavailable"
                assert "KASSA_REDIS_URL" in body["detail"]
                assert "\n" not in body["detail"]
                assert "Traceback" not in body["detail"]
            shown = run_kassa("top", env=settings_env(settings))
            assert shown.returncode == 3
            assert "KASSA_REDIS_URL" in shown.stderr

            server.start()
            assert get(f"{base}/health")[0] == 200
            assert get(f"{base}/api/rankings") == (200, before)
    finally:
        server.stop()
