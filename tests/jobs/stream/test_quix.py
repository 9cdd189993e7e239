"""The pinned Quix Streams still has every private hook the stream job's adapter relies on.

The adapter (:mod:`jobs.stream.quix`) overrides private names of Quix; an upgrade that
renames one, changes how it is called or stops calling it would silently turn the override
off (partitions resumed from the group's commit instead of Redis's watermarks). These tests
need no service.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, TopicPartition
from quixstreams import Application
from quixstreams.checkpointing import checkpoint
from quixstreams.internal_consumer import InternalConsumer

from jobs.stream.failures import ErrorLog
from jobs.stream.metrics import StreamMetrics
from jobs.stream.quix import PRIVATE_HOOKS, PrivateHook, StreamApplication

METHODS = [hook for hook in PRIVATE_HOOKS if not hook.attribute]
ATTRIBUTES = [hook for hook in PRIVATE_HOOKS if hook.attribute]


class _Recorder:
    """A :class:`~jobs.stream.quix.Listener` that keeps what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[TopicPartition]]] = []

    def assigning(self, consumer: object, topic_partitions: list[TopicPartition]) -> None:
        self.calls.append(("assigning", topic_partitions))

    def assigned(self, topic_partitions: list[TopicPartition]) -> None:
        self.calls.append(("assigned", topic_partitions))

    def revoked(self, topic_partitions: list[TopicPartition]) -> None:
        self.calls.append(("revoked", topic_partitions))


def _application(tmp_path: Path, listener: _Recorder | None = None) -> StreamApplication:
    """The adapter around a Quix application that never reaches a broker in these tests."""
    return StreamApplication(
        listener or _Recorder(),
        StreamMetrics(),
        broker_address="127.0.0.1:9",
        consumer_group="test-quix",
        auto_create_topics=False,
        loglevel=None,
        state_dir=tmp_path / "quix",
    )


def test_every_private_method_the_adapter_overrides_is_a_private_hook_it_lists() -> None:
    listed = {hook.name for hook in PRIVATE_HOOKS}
    overridden = {
        name
        for name in vars(StreamApplication)
        if name.startswith("_") and not name.startswith("__") and hasattr(Application, name)
    }
    assert overridden <= listed, f"list {sorted(overridden - listed)} in PRIVATE_HOOKS"
    assert {hook.name for hook in METHODS} == overridden  # no stale entry either
    assert [hook.name for hook in ATTRIBUTES] == ["_user_error_cb"]


@pytest.mark.parametrize("hook", METHODS, ids=lambda hook: hook.name)
def test_quix_has_each_private_method_and_calls_it_as_the_adapter_does(hook: PrivateHook) -> None:
    quix = getattr(hook.owner, hook.name, None)
    assert callable(quix), f"{hook.owner.__qualname__}.{hook.name} is gone ({hook.why})"
    arguments = [object() for _ in hook.arguments]
    # Quix's own method takes what the adapter passes on to it ...
    inspect.signature(quix).bind(object(), *arguments)
    # ... and the override takes what Quix passes to it ...
    inspect.signature(getattr(StreamApplication, hook.name)).bind(object(), *arguments)
    # ... which Quix still does itself: the override is not dead code.
    assert f"self.{hook.name}" in inspect.getsource(hook.owner), (
        f"{hook.owner.__qualname__} no longer calls self.{hook.name} ({hook.why})"
    )


@pytest.mark.parametrize("hook", ATTRIBUTES, ids=lambda hook: hook.name)
def test_quix_consumers_have_each_private_attribute_and_call_it_as_listed(
    hook: PrivateHook, tmp_path: Path
) -> None:
    # Quix's own consumer, before the adapter replaced anything on it
    consumer = Application._get_internal_consumer(_application(tmp_path))
    assert isinstance(consumer, hook.owner)
    assert hasattr(consumer, hook.name), f"{hook.owner.__qualname__} has no {hook.name}"
    inspect.signature(getattr(consumer, hook.name)).bind(*[object() for _ in hook.arguments])
    assert f"self.{hook.name}(" in inspect.getsource(hook.owner)


def test_the_adapters_consumer_logs_librdkafkas_errors_through_the_error_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    consumer = _application(tmp_path)._get_internal_consumer()
    assert isinstance(consumer._user_error_cb, ErrorLog)
    with caplog.at_level(logging.DEBUG, logger="jobs.stream.failures"):
        for _ in range(2):
            consumer._error_cb(KafkaError(KafkaError._TRANSPORT, "broker went away"))
    warnings = [r for r in caplog.records if r.name == "jobs.stream.failures"]
    assert [r.levelno for r in warnings] == [logging.WARNING, logging.DEBUG]
    assert "broker went away" in warnings[0].getMessage()


def test_quix_commits_synchronously_as_retrying_commit_expects() -> None:
    # retrying_commit retries only the commits that pass asynchronous=False by keyword
    assert "asynchronous" in inspect.signature(InternalConsumer.commit).parameters
    assert "commit(offsets=offsets, asynchronous=False)" in inspect.getsource(checkpoint)


def test_lost_and_empty_assignments_reach_the_listener_through_quix(tmp_path: Path) -> None:
    listener = _Recorder()
    app = _application(tmp_path, listener)
    lost = [TopicPartition("sales", 1)]
    app._on_assign(None, [])  # Quix ignores an empty assignment; the listener hears of it
    app._on_lost(None, lost)
    assert listener.calls == [("assigning", []), ("assigned", []), ("revoked", lost)]
