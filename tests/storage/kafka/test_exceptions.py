"""Errors of reading Kafka: kassa's shared ones, with their exit statuses, and pickled whole."""

from __future__ import annotations

import pickle

from common.errors import KafkaUnavailableError
from storage.kafka.exceptions import KafkaReadError, ReadError, TopicIdentityError


def test_kafka_down_is_a_read_error() -> None:
    error = KafkaReadError("127.0.0.1:1", "timed out")

    copy = pickle.loads(pickle.dumps(error))

    assert str(copy) == str(KafkaUnavailableError("127.0.0.1:1", "timed out"))
    assert isinstance(copy, ReadError)
    assert copy.exit_code == 4


def test_an_undescribed_topic_names_the_topic_and_the_broker() -> None:
    error = TopicIdentityError("sales", "timed out")

    copy = pickle.loads(pickle.dumps(error))

    assert str(copy) == str(error)
    assert str(error) == (
        "cannot describe topic 'sales' and its cluster (timed out); is the broker up?"
    )
    assert copy.exit_code == 3
