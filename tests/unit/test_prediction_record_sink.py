"""A stored classification is answered only once Kafka holds its record."""
from __future__ import annotations

import pytest
from kafka.errors import KafkaTimeoutError

from loupe.v1 import prediction_pb2 as pb
from loupe_common import kafka as lk
from loupe_common.errors import Unavailable
from loupe_prediction.server import RecordSink

pytestmark = pytest.mark.unit

RECORD = pb.PredictionRecord(prediction_id="p1", project_id="proj", image=b"img")


class _Future:
    def __init__(self, error=None):
        self.error = error
        self.waited = None

    def get(self, timeout):
        self.waited = timeout
        if self.error:
            raise self.error
        return "metadata"


class _Producer:
    def __init__(self, future=None, send_error=None):
        self.future = future or _Future()
        self.send_error = send_error
        self.sent = []

    def send(self, topic, key, value):
        if self.send_error:
            raise self.send_error
        self.sent.append((topic, key, value))
        return self.future


def test_the_record_is_sent_keyed_by_project_and_its_acknowledgement_awaited():
    producer = _Producer()
    RecordSink(producer, 7.5)(RECORD)
    assert producer.sent == [(lk.PREDICTIONS, b"proj", RECORD.SerializeToString())]
    assert 7.4 < producer.future.waited <= 7.5  # what is left of 7.5 s after the send


def test_an_unacknowledged_record_fails_the_classification():
    sink = RecordSink(_Producer(_Future(KafkaTimeoutError("no ack"))), 1)
    with pytest.raises(Unavailable) as err:
        sink(RECORD)
    assert err.value.http_status == 503
    assert not err.value.retryable, "the gateway's gRPC retries would wait the timeout again"


def test_a_producer_that_cannot_even_send_fails_the_classification():
    sink = RecordSink(_Producer(send_error=KafkaTimeoutError("no metadata")), 1)
    with pytest.raises(Unavailable):
        sink(RECORD)


def test_while_kafka_fails_one_call_tries_and_the_others_fail_at_once():
    import threading

    entered, release = threading.Event(), threading.Event()

    class Hanging(_Future):
        def get(self, timeout):
            entered.set()
            release.wait(5)
            raise KafkaTimeoutError("no ack")

    producer = _Producer(_Future(KafkaTimeoutError("no ack")))
    sink = RecordSink(producer, 1)
    with pytest.raises(Unavailable):
        sink(RECORD)  # the first failure: Kafka is taken to be down
    producer.future = Hanging()
    probe = threading.Thread(target=lambda: pytest.raises(Unavailable, sink, RECORD))
    probe.start()
    assert entered.wait(5)
    sent = len(producer.sent)
    for _ in range(3):  # meanwhile: refused without a send
        with pytest.raises(Unavailable):
            sink(RECORD)
    assert len(producer.sent) == sent
    release.set()
    probe.join(5)
    producer.future = _Future()  # Kafka is back: the next call is the probe, and it succeeds
    sink(RECORD)
    assert not sink.failing
    sink(RECORD)
    assert len(producer.sent) == sent + 2
