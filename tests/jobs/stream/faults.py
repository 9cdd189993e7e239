"""Real faults for the stream job's tests: Redis rolled back to an older copy of its data
folder, a topic deleted and recreated under the same name."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from common.settings import Settings
from services.redis import RedisServer
from storage.kafka.topics import TopicError, admin_client, ensure_topics


def redis_url_of(server: RedisServer, db: int = 0) -> str:
    """The URL of database ``db`` of ``server``."""
    return f"redis://{server.host}:{server.port}/{db}"


def copy_redis_data(server: RedisServer, copy: Path) -> None:
    """Stop ``server`` (it fsyncs its AOF on the way out), copy its data folder, start it."""
    server.stop()
    shutil.copytree(server.data_dir, copy)
    server.start()


def restore_redis_data(server: RedisServer, copy: Path) -> None:
    """Stop ``server``, put the older ``copy`` of its data folder back, start it: a rollback."""
    server.stop()
    shutil.rmtree(server.data_dir)
    shutil.copytree(copy, server.data_dir)
    server.start()


def recreate_topic(settings: Settings, timeout: float = 60.0) -> None:
    """Delete the sales topic and create it again under the same name (a new topic id)."""
    admin = admin_client(settings)
    for future in admin.delete_topics([settings.topic], operation_timeout=30).values():
        future.result(30)
    deadline = time.monotonic() + timeout
    while settings.topic in admin.list_topics(timeout=10).topics:
        if time.monotonic() > deadline:
            msg = f"topic {settings.topic} still exists {timeout:.0f} s after its deletion"
            raise AssertionError(msg)
        time.sleep(0.2)
    while True:
        try:
            ensure_topics(settings)
        except TopicError:  # still marked for deletion
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
        else:
            return
