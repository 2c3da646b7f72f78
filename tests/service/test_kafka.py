"""loupe_common.kafka against the test stack's real broker."""
from __future__ import annotations

import time
import uuid

import pytest

from loupe_common import kafka as lk

pytestmark = pytest.mark.service


def test_a_new_consumer_knows_its_partitions_and_a_lone_member_gets_them_all(kafka_bootstrap):
    # A lone member of a fresh group leads it and assigns: with the topic's partitions already
    # in its metadata it takes every one (before, a leader could assign nothing and stay idle).
    lk.ensure_topics(kafka_bootstrap)
    wanted = lk.TOPICS[lk.TRAINING_JOBS]
    for _ in range(3):
        consumer = lk.consumer(kafka_bootstrap, lk.TRAINING_JOBS, f"test-{uuid.uuid4()}")
        try:
            assert len(consumer.partitions_for_topic(lk.TRAINING_JOBS)) == wanted
            deadline = time.monotonic() + 30
            while len(consumer.assignment()) < wanted:
                assert time.monotonic() < deadline, f"assigned {consumer.assignment()}"
                consumer.poll(timeout_ms=200)
        finally:
            consumer.close(autocommit=False)


def _topic_config(bootstrap: str, topic: str, key: str) -> str | None:
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = lk.admin(bootstrap)
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs={key: None})], config_filter="all")
    finally:
        admin.close()
    for by_name in described.values():
        if topic in by_name:
            return lk.config_value(by_name[topic].get(key))
    return None


def test_topics_accept_records_as_large_as_loupe_writes_also_when_made_elsewhere(kafka_bootstrap):
    # A topic made without the setting (by an older Loupe, or by hand on a broker whose default
    # is 1 MB) is aligned; a new one is created with it; a 5 MB record then goes through.
    made_elsewhere, new = f"test-old-{uuid.uuid4()}", f"test-new-{uuid.uuid4()}"
    from kafka.admin import NewTopic

    admin = lk.admin(kafka_bootstrap)
    try:
        # Kafka's own default (1 MB), which the test broker raises: set on the topic itself.
        admin.create_topics([NewTopic(made_elsewhere, 1, 1, topic_configs={"max.message.bytes": "1048588"})],
                            wait_for_metadata=True)
    finally:
        admin.close()
    assert _topic_config(kafka_bootstrap, made_elsewhere, "max.message.bytes") == "1048588"
    lk.ensure_topics(kafka_bootstrap, topics={made_elsewhere: 1, new: 1})
    for topic in (made_elsewhere, new):
        assert _topic_config(kafka_bootstrap, topic, "max.message.bytes") == str(lk.MAX_MESSAGE_BYTES)
    producer = lk.producer(kafka_bootstrap)
    try:
        producer.send(new, value=b"x" * (5 * 1024 * 1024)).get(timeout=30)
    finally:
        producer.close()
