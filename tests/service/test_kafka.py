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
