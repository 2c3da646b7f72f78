"""The trainer's poll loop and job handling, with a stand-in consumer and trainer (no I/O):
jobs run off the poll loop with partitions paused, offsets are committed after the job,
any error fails the iteration, a job that crashed its trainer 3 times is failed, and a dead
poll loop makes the service fail (NOT_SERVING, exit status 1)."""
from __future__ import annotations

import threading
import time
from collections import namedtuple

import pytest
from kafka.errors import CommitFailedError, KafkaConnectionError
from kafka.structs import TopicPartition

from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import training_pb2 as tpb
from loupe_common import grpcserver
from loupe_common.errors import Unavailable
from loupe_training import worker
from loupe_training.core import MAX_ATTEMPTS, JobOutcome, Trainer, crashed_message, name_bad_image
from loupe_training.worker import JobConsumer

pytestmark = pytest.mark.unit

Record = namedtuple("Record", "offset value")
P0, P1 = TopicPartition("jobs", 0), TopicPartition("jobs", 1)


def _job(iid: str = "it-1") -> bytes:
    return tpb.TrainingJob(iteration_id=iid, project_id="p").SerializeToString()


class FakeConsumer:
    """What the poll loop uses of KafkaConsumer, over in-memory partitions."""

    def __init__(self, partitions: dict[TopicPartition, list[bytes]], assigned=(P0,)):
        self.logs = partitions
        self.assigned = set(assigned)
        self.position = {tp: 0 for tp in partitions}
        self.paused_set: set[TopicPartition] = set()
        self.commits: list[tuple[TopicPartition, int]] = []
        self.polls = 0
        self.polls_while_paused = 0
        self.commit_error: Exception | None = None  # raised by the next commit
        self.poll_error: Exception | None = None
        #: The next poll fetches from this partition even if paused (as a poll that joins a
        #: rebalance fetches from a new partition before the loop can pause it).
        self.fetch_anyway: TopicPartition | None = None
        self.closed = False

    def assignment(self):
        return set(self.assigned)

    def pause(self, *tps):
        self.paused_set |= set(tps)

    def resume(self, *tps):
        self.paused_set -= set(tps)

    def paused(self):
        return set(self.paused_set)

    def seek(self, tp, offset):
        self.position[tp] = offset

    def poll(self, timeout_ms=0, max_records=1):
        if self.poll_error is not None:
            raise self.poll_error
        self.polls += 1
        if self.paused_set and self.paused_set >= self.assigned:
            self.polls_while_paused += 1
        time.sleep(0.005)
        fetchable = sorted(self.assigned - self.paused_set)
        if self.fetch_anyway is not None:
            fetchable, self.fetch_anyway = [self.fetch_anyway], None
        for tp in fetchable:
            if self.position[tp] < len(self.logs[tp]):
                offset = self.position[tp]
                self.position[tp] += 1
                return {tp: [Record(offset, self.logs[tp][offset])]}
        return {}

    def commit(self, offsets):
        if self.commit_error is not None:
            error, self.commit_error = self.commit_error, None
            raise error
        self.commits += [(tp, meta.offset) for tp, meta in offsets.items()]

    def close(self, autocommit=False):
        self.closed = True


class BlockingTrainer:
    """Runs each job until `release` is set; records what ran, and whether two overlapped."""

    def __init__(self):
        self.release = threading.Event()
        self.started: list[str] = []
        self.running = 0
        self.overlapped = False

    def run_job(self, job):
        self.running += 1
        self.overlapped |= self.running > 1
        self.started.append(job.iteration_id)
        self.release.wait(10)
        self.running -= 1
        return JobOutcome("Completed")


def _start(consumer, trainer, **kw):
    stop = threading.Event()
    jc = JobConsumer("unused:9092", trainer, stop, connect=lambda: consumer, **kw)
    thread = threading.Thread(target=jc.run, daemon=True)
    thread.start()
    return jc, stop, thread


def _until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_a_running_job_pauses_its_partitions_the_loop_keeps_polling_and_commits_after():
    consumer = FakeConsumer({P0: [_job("a"), _job("b")]})
    trainer = BlockingTrainer()
    jc, stop, thread = _start(consumer, trainer)
    try:
        _until(lambda: trainer.started == ["a"])
        polls = consumer.polls_while_paused
        _until(lambda: consumer.polls_while_paused > polls + 5)  # heartbeats go on meanwhile
        assert consumer.paused() == {P0} and consumer.commits == []
        trainer.release.set()
        _until(lambda: consumer.commits == [(P0, 1), (P0, 2)])
        assert trainer.started == ["a", "b"] and not trainer.overlapped
        assert consumer.paused() == set()
    finally:
        stop.set()
        thread.join(5)
    assert consumer.closed and jc.failure == ""


def test_a_record_of_a_partition_assigned_mid_job_waits_for_the_job():
    consumer = FakeConsumer({P0: [_job("a")], P1: [_job("b")]}, assigned=(P0,))
    trainer = BlockingTrainer()
    _jc, stop, thread = _start(consumer, trainer)
    try:
        _until(lambda: trainer.started == ["a"])
        # A rebalance hands this trainer P1, and that poll fetches from it at once.
        consumer.assigned.add(P1)
        consumer.fetch_anyway = P1
        _until(lambda: consumer.fetch_anyway is None)
        time.sleep(0.05)
        assert consumer.position[P1] == 0 and P1 in consumer.paused()  # handed back, paused
        assert trainer.started == ["a"]
        trainer.release.set()
        _until(lambda: sorted(consumer.commits) == [(P0, 1), (P1, 1)])
        assert trainer.started == ["a", "b"] and not trainer.overlapped
    finally:
        stop.set()
        thread.join(5)


def test_a_failed_commit_is_survived_and_the_loop_goes_on():
    consumer = FakeConsumer({P0: [_job("a"), _job("b")]})
    consumer.commit_error = CommitFailedError()
    trainer = BlockingTrainer()
    trainer.release.set()
    jc, stop, thread = _start(consumer, trainer)
    try:
        _until(lambda: consumer.commits == [(P0, 2)])  # the first commit failed
        assert trainer.started == ["a", "b"]
        assert thread.is_alive() and jc.failure == ""
    finally:
        stop.set()
        thread.join(5)


def test_a_dying_poll_loop_reports_why():
    consumer = FakeConsumer({P0: []})
    consumer.poll_error = KafkaConnectionError("broker gone")
    died: list[str] = []
    jc, _stop, thread = _start(consumer, BlockingTrainer(), on_death=died.append)
    thread.join(5)
    assert not thread.is_alive() and consumer.closed
    assert died == [jc.failure] and "KafkaConnectionError" in jc.failure and "broker gone" in jc.failure


def test_stopping_mid_job_leaves_the_offset_uncommitted(monkeypatch):
    monkeypatch.setattr(worker, "STOP_WAIT_SECONDS", 0.05)
    consumer = FakeConsumer({P0: [_job("a")]})
    trainer = BlockingTrainer()
    _jc, stop, thread = _start(consumer, trainer)
    _until(lambda: trainer.started == ["a"])
    stop.set()
    thread.join(5)
    trainer.release.set()
    assert consumer.commits == [] and consumer.closed


def test_errors_escaping_the_trainer_are_retried_then_the_job_is_dropped(monkeypatch):
    monkeypatch.setattr(worker, "RETRY_SECONDS", 0.0)

    class Broken:
        calls = 0

        def run_job(self, job):
            self.calls += 1
            if self.calls == 1:
                raise Unavailable("metadata down")
            raise RuntimeError("cannot even record the failure")

    consumer = FakeConsumer({P0: [_job("a")]})
    trainer = Broken()
    jc, stop, thread = _start(consumer, trainer)
    try:
        _until(lambda: consumer.commits == [(P0, 1)])
        assert trainer.calls == 1 + worker.JOB_TRIES and jc.failure == ""
    finally:
        stop.set()
        thread.join(5)


# --- Trainer.run_job: any error fails the iteration; the crash counter -----------------------


class FakeMetadata:
    def __init__(self, attempts_before: int = 0):
        self.attempts = attempts_before
        self.finished: list[mpb.FinishIterationRequest] = []
        self.unavailable_once = False

    def GetTrainingSet(self, request):
        return mpb.GetTrainingSetResponse(
            iteration=mpb.Iteration(id=request.iteration_id, status="Training", classification_type="Multiclass"),
            tags=[mpb.Tag(id="a", name="a"), mpb.Tag(id="b", name="b")],
            images=[mpb.TrainingImage(image_id=f"i{i}", sha256=f"{i:064d}", tag_ids=["ab"[i % 2]])
                    for i in range(4)])

    def StartTrainingAttempt(self, request):
        self.attempts += 1
        return mpb.StartTrainingAttemptResponse(attempts=self.attempts)

    def ReportProgress(self, request):
        if self.unavailable_once:
            self.unavailable_once = False
            raise Unavailable("metadata restarting")
        return mpb.ReportProgressResponse()

    def FinishIteration(self, request):
        self.finished.append(request)
        return mpb.FinishIterationResponse()


class ExplodingStorage:
    """Storage whose every call raises an error the trainer does not know."""

    def __getattr__(self, name):
        def call(request):
            raise MemoryError("cannot allocate")
        return call


class Embedder:
    feature_dim = 4
    image_size = 8


def _trainer(metadata) -> Trainer:
    return Trainer(metadata, ExplodingStorage(), Embedder(), "t")


def test_any_exception_in_a_job_fails_its_iteration_with_the_message():
    metadata = FakeMetadata()
    outcome = _trainer(metadata).run_job(tpb.TrainingJob(iteration_id="it", project_id="p"))
    assert outcome.status == "Failed"
    assert [(f.status, f.error_message) for f in metadata.finished] == [("Failed", "MemoryError: cannot allocate")]


def test_the_start_after_three_crashes_fails_the_iteration_without_training():
    metadata = FakeMetadata(attempts_before=MAX_ATTEMPTS)  # three starts that never finished
    outcome = _trainer(metadata).run_job(tpb.TrainingJob(iteration_id="it", project_id="p"))
    assert outcome.status == "Failed"
    assert [f.error_message for f in metadata.finished] == [crashed_message(3)]
    assert "training crashed its worker 3 times" in crashed_message(3)


def test_a_retry_in_the_same_process_is_not_counted_again():
    metadata = FakeMetadata(attempts_before=MAX_ATTEMPTS - 1)
    metadata.unavailable_once = True
    trainer = _trainer(metadata)
    job = tpb.TrainingJob(iteration_id="it", project_id="p")
    with pytest.raises(Unavailable):
        trainer.run_job(job)  # the third start: metadata went away mid-job
    assert trainer.run_job(job).status == "Failed"  # retried here: still the third start
    assert metadata.attempts == MAX_ATTEMPTS
    assert metadata.finished[0].error_message.startswith("MemoryError")


def test_a_bad_image_is_named_by_its_id():
    assert name_bad_image("image 1: truncated", ["x", "y"]) == "image y: truncated"
    assert name_bad_image("something else", ["x"]) == "something else"


# --- grpcserver.run: a failed service exits with status 1 -------------------------------------


class _Health:
    def __init__(self):
        self.shut = False

    def enter_graceful_shutdown(self):
        self.shut = True


class _Server:
    def start(self):
        pass

    def stop(self, grace):
        return _Done()


class _Done:
    def wait(self):
        return True


def test_run_exits_1_when_the_service_fails():
    holder = {}

    def build(config):
        built = grpcserver.BuiltServer(_Server(), 0, _Health(), "t")
        built.before_start = lambda: threading.Timer(0.05, built.fail, ["consumer died"]).start()
        holder["built"] = built
        return built

    class Config:
        addr, metrics_port, log_level = "127.0.0.1:0", 0, "WARNING"

    old = {s: grpcserver.signal.getsignal(s) for s in (grpcserver.signal.SIGTERM, grpcserver.signal.SIGINT)}
    try:
        assert grpcserver.run(build, Config()) == 1
    finally:
        for s, h in old.items():
            grpcserver.signal.signal(s, h)
    assert holder["built"].health.shut and holder["built"].failure == "consumer died"
