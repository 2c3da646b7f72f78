"""The prediction recorder's handling of one record: what is retried, dropped or stored."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from loupe.v1 import prediction_pb2 as pb
from loupe_common.errors import NotFound, Unavailable
from loupe_prediction import recorder as rec

pytestmark = pytest.mark.unit


class Recorder(rec.PredictionRecorder):
    """The recorder with its two stores replaced by a list of outcomes (no clients)."""

    def __init__(self, outcomes):
        super().__init__("unused", None, None, threading.Event())
        self.outcomes = list(outcomes)
        self.calls = 0

    def store(self, record):
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome


def _msg(value: bytes):
    return SimpleNamespace(key=b"k", offset=7, value=value)


GOOD = pb.PredictionRecord(prediction_id="p", project_id="x").SerializeToString()


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(threading.Event, "wait", lambda self, timeout=None: False)


def test_an_unreadable_record_is_dropped_and_the_recorder_goes_on():
    r = Recorder([])
    assert r._handle(_msg(b"\xff\xff\xff not protobuf")) is True
    assert r.calls == 0


def test_unavailable_stores_are_retried_until_they_answer():
    r = Recorder([Unavailable("down"), Unavailable("down"), None])
    assert r._handle(_msg(GOOD)) is True
    assert r.calls == 3


def test_a_domain_error_drops_the_record_at_once():
    r = Recorder([NotFound("project deleted")])
    assert r._handle(_msg(GOOD)) is True
    assert r.calls == 1


def test_an_unexpected_error_is_tried_a_bounded_number_of_times():
    r = Recorder([RuntimeError("bug")] * 10)
    assert r._handle(_msg(GOOD)) is True
    assert r.calls == rec.UNEXPECTED_TRIES


def test_a_stopped_recorder_leaves_the_record_uncommitted():
    r = Recorder([Unavailable("down")] * 3)
    r.stop.set()
    assert r._handle(_msg(GOOD)) is False


class _Consumer:
    """A consumer whose polls follow a script: a dict of records, or an exception to raise."""

    def __init__(self, script, stop: threading.Event):
        self.script = list(script)
        self.stop = stop
        self.closed = False
        self.commits = 0

    def poll(self, timeout_ms, max_records):
        if not self.script:
            self.stop.set()
            return {}
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    def assignment(self):
        return {"p0"}

    def commit(self):
        self.commits += 1

    def close(self, autocommit):
        self.closed = True


def test_a_failed_consumer_is_replaced_and_the_next_one_goes_on_storing():
    from kafka.errors import KafkaConnectionError

    stop = threading.Event()
    consumers = [_Consumer([{"tp": [_msg(GOOD)]}, KafkaConnectionError("broker gone")], stop),
                 _Consumer([{"tp": [_msg(GOOD), _msg(GOOD)]}], stop)]
    made = iter(consumers)
    held = []
    r = Recorder([None, None, None])
    r.stop = stop
    r.on_assignment = held.append
    r.consumer_factory = lambda: next(made)
    r.run()
    assert r.calls == 3, "records after the failure were not stored"
    assert [c.commits for c in consumers] == [1, 2]
    assert all(c.closed for c in consumers)
    # health follows: held, lost when the first consumer failed, held again, lost on stop
    assert held == [True, False, True, False]


def test_a_consumer_that_cannot_even_be_made_is_tried_again():
    from kafka.errors import KafkaTimeoutError

    stop = threading.Event()
    attempts = []

    def factory():
        attempts.append(1)
        if len(attempts) < 3:
            raise KafkaTimeoutError("no broker")
        return _Consumer([{"tp": [_msg(GOOD)]}], stop)

    r = Recorder([None])
    r.stop = stop
    r.consumer_factory = factory
    r.run()
    assert len(attempts) == 3 and r.calls == 1
