"""The trainer's job consumer in-process (`build_server` on port 0) against the test stack's
real Kafka, with in-process metadata and storage services on the real PostgreSQL and MinIO.

Each test consumes a topic and group of its own, so the stack's trainer never takes its jobs.
Faults are injected into the real clients (a delay, an error at a chosen call); nothing stands
in for Kafka, PostgreSQL or MinIO.
"""
from __future__ import annotations

import io
import threading
import time
import uuid

import grpc
import numpy as np
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from internal_clients import ByRole
from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import metadata_pb2_grpc
from loupe.v1 import storage_pb2 as spb
from loupe.v1 import training_pb2 as tpb
from loupe_common import config as cfg
from loupe_common import kafka as lk
from loupe_metadata import access as metadata_access
from loupe_training.config import TrainingConfig
from loupe_training.core import MAX_ATTEMPTS
from loupe_training.server import SERVICE_NAME, build_server, connect

pytestmark = pytest.mark.service


@pytest.fixture(scope="module")
def metadata(metadata_addr, credentials):
    """The test's own metadata calls (set-up as the gateway would, attempts as a trainer)."""
    client = ByRole(metadata_addr, metadata_pb2_grpc.MetadataServiceStub, credentials, metadata_access.ALLOW)
    yield client
    client.close()


@pytest.fixture(scope="module")
def account(metadata) -> str:
    return metadata.CreateAccount(mpb.CreateAccountRequest(name="worker-tests")).account.id


@pytest.fixture(scope="module")
def config(infra, metadata_addr, storage_addr) -> TrainingConfig:
    return cfg.load(TrainingConfig, dict(
        infra.service_env(), LOUPE_TRAINING_ADDR="127.0.0.1:0", LOUPE_TRAINER_ID="worker-tests",
        LOUPE_METADATA_TARGET=metadata_addr, LOUPE_STORAGE_TARGET=storage_addr))


class Trainer:
    """A trainer built by `build_server` on a topic of its own, started, and stopped after."""

    def __init__(self, config: TrainingConfig, wrap_metadata=None, wrap_storage=None,
                 keep_consumer: bool = False, share: "Trainer | None" = None, **consumer_options):
        # `share`: another trainer whose topic and group this one joins.
        self.topic = share.topic if share else f"test-jobs-{uuid.uuid4().hex[:8]}"
        self.group = share.group if share else f"test-trainers-{uuid.uuid4().hex[:8]}"
        #: With keep_consumer, the real KafkaConsumer the trainer polls (as `lk.consumer`
        #: makes it for JobConsumer), kept here so a test can break it.
        self.kafka_consumers = []
        if keep_consumer:
            def keep():
                self.kafka_consumers.append(lk.consumer(
                    config.kafka_bootstrap, self.topic, self.group,
                    session_timeout_ms=10000, heartbeat_interval_ms=2000))
                return self.kafka_consumers[-1]
            consumer_options["connect"] = keep
        lk.ensure_topics(config.kafka_bootstrap, {self.topic: 1})
        self.deps = connect(config)
        if wrap_metadata:
            self.deps.metadata = wrap_metadata(self.deps.metadata)
        if wrap_storage:
            self.deps.storage = wrap_storage(self.deps.storage)
        self.deps.consumer_options = dict(topic=self.topic, group=self.group, **consumer_options)
        self.built = build_server(config, self.deps)
        self.built.start()
        self.bootstrap = config.kafka_bootstrap
        self.closed = False

    def send(self, project_id: str, iteration_id: str) -> None:
        job = tpb.TrainingJob(iteration_id=iteration_id, project_id=project_id, training_type="Regular")
        producer = lk.producer(self.bootstrap)
        producer.send(self.topic, key=project_id.encode(), value=job.SerializeToString()).get(timeout=10)
        producer.close()

    def health(self, service: str = "") -> int:
        with grpc.insecure_channel(f"127.0.0.1:{self.built.port}") as channel:
            return health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=5).status

    def committed(self) -> int | None:
        """The group's committed offset of the topic's one partition."""
        from kafka import KafkaConsumer
        from kafka.structs import TopicPartition

        # A consumer of the group that never subscribes only reads the group's offsets.
        reader = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False)
        try:
            return reader.committed(TopicPartition(self.topic, 0))
        finally:
            reader.close(autocommit=False)

    def close(self) -> None:
        if not self.closed:
            self.built.stop(None)
            self.deps.close()
            self.closed = True


@pytest.fixture
def trainers(config):
    made: list[Trainer] = []

    def make(**kw) -> Trainer:
        made.append(Trainer(config, **kw))
        return made[-1]

    yield make
    for trainer in made:
        trainer.close()


def _png(rgb) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 24), rgb).save(buf, format="PNG")
    return buf.getvalue()


def _iteration(metadata, storage, account: str, n_per_tag: int = 6) -> tuple[str, str]:
    """A project with two colour tags and an iteration in Training (its job not yet sent)."""
    pid = metadata.CreateProject(mpb.CreateProjectRequest(
        account_id=account, name=f"w-{uuid.uuid4().hex[:6]}", classification_type="Multiclass")).project.id
    rng = np.random.default_rng(1)
    new = []
    for base in ((200, 30, 30), (30, 30, 200)):
        tag = metadata.CreateTag(mpb.CreateTagRequest(account_id=account, project_id=pid, name=str(base))).tag.id
        for _ in range(n_per_tag):
            data = _png(tuple(int(np.clip(c + rng.integers(-40, 40), 0, 255)) for c in base))
            sha = storage.PutImage(spb.PutImageRequest(project_id=pid, data=data)).sha256
            new.append(mpb.NewImage(sha256=sha, width=24, height=24, content_type="image/png",
                                    size_bytes=len(data), tag_ids=[tag]))
    metadata.AddImages(mpb.AddImagesRequest(account_id=account, project_id=pid, images=new))
    iid = metadata.CreateIteration(mpb.CreateIterationRequest(
        account_id=account, project_id=pid, training_type="Regular", force_train=True)).iteration.id
    return pid, iid


def _wait_finished(metadata, account, pid, iid, timeout: float = 120.0) -> mpb.Iteration:
    deadline = time.monotonic() + timeout
    while True:
        it = metadata.GetIteration(mpb.GetIterationRequest(account_id=account, project_id=pid, iteration_id=iid)).iteration
        if it.status != "Training":
            return it
        assert time.monotonic() < deadline, f"still Training at {it.progress_stage} {it.progress_percent}"
        time.sleep(0.2)


def _attempts(postgres_dsn: str, iid: str) -> int:
    with psycopg.connect(postgres_dsn) as conn:
        return conn.execute("SELECT training_attempts FROM iterations WHERE id = %s", (iid,)).fetchone()[0]


class Inject:
    """A real client that runs `before(method_name)` ahead of each call of the named methods."""

    def __init__(self, client, methods: set[str], before):
        self._client, self._methods, self._before = client, methods, before
        self.calls: dict[str, int] = {}

    def __getattr__(self, name):
        real = getattr(self._client, name)
        if name not in self._methods:
            return real

        def call(*args, **kwargs):
            self.calls[name] = self.calls.get(name, 0) + 1
            self._before(name)
            return real(*args, **kwargs)

        return call


def test_a_job_longer_than_max_poll_interval_keeps_its_trainer_in_the_group(
        trainers, metadata, storage_client, account, postgres_dsn):
    # Every progress report takes 3 s: the job (6 reports) runs about 18 s, three times the
    # 6 s max.poll.interval.ms this trainer's consumer is given.
    injected = {}

    def slow(metadata_client):
        injected["m"] = Inject(metadata_client, {"ReportProgress", "GetTrainingSet"},
                               lambda name: time.sleep(3) if name == "ReportProgress" else None)
        return injected["m"]

    trainer = trainers(wrap_metadata=slow, max_poll_interval_ms=6000)
    pid, iid = _iteration(metadata, storage_client, account)
    trainer.send(pid, iid)
    started = time.monotonic()
    it = _wait_finished(metadata, account, pid, iid)
    took = time.monotonic() - started
    assert it.status == "Completed", it.error_message
    assert took > 12, f"the job took {took:.1f} s: not longer than max.poll.interval.ms"
    time.sleep(3)  # a redelivery (had the group dropped the trainer mid-job) would arrive here
    assert injected["m"].calls["GetTrainingSet"] == 1
    assert _attempts(postgres_dsn, iid) == 1
    assert trainer.committed() == 1
    assert trainer.built.failure == ""


def test_the_delivery_after_three_crashes_fails_the_iteration_and_is_committed(
        trainers, metadata, storage_client, account):
    pid, iid = _iteration(metadata, storage_client, account)
    # Three trainers started this job and died in it (each start is counted when it begins,
    # in the database, before any work): the fourth delivery is the one sent here.
    for n in range(1, MAX_ATTEMPTS + 1):
        assert metadata.StartTrainingAttempt(mpb.StartTrainingAttemptRequest(iteration_id=iid)).attempts == n
    trainer = trainers()
    trainer.send(pid, iid)
    it = _wait_finished(metadata, account, pid, iid, timeout=60)
    assert it.status == "Failed"
    assert "training crashed its worker 3 times" in it.error_message
    deadline = time.monotonic() + 10
    while trainer.committed() != 1:
        assert time.monotonic() < deadline, "the job's offset was not committed"
        time.sleep(0.2)


def test_an_unexpected_exception_fails_the_iteration_and_the_trainer_goes_on(
        trainers, metadata, storage_client, account):
    bad_pid, bad_iid = _iteration(metadata, storage_client, account)

    def explode(name):
        if explode.project == "bad":
            raise RuntimeError("disk on fire")
    explode.project = "bad"

    trainer = trainers(wrap_storage=lambda s: Inject(s, {"GetImage"}, explode))
    trainer.send(bad_pid, bad_iid)
    it = _wait_finished(metadata, account, bad_pid, bad_iid, timeout=60)
    assert (it.status, it.error_message) == ("Failed", "RuntimeError: disk on fire")
    # The same trainer takes the next job and completes it; it served all along.
    explode.project = "good"
    good_pid, good_iid = _iteration(metadata, storage_client, account)
    trainer.send(good_pid, good_iid)
    assert _wait_finished(metadata, account, good_pid, good_iid).status == "Completed"
    assert trainer.health() == health_pb2.HealthCheckResponse.SERVING
    assert trainer.built.failure == ""


def test_a_dead_job_consumer_turns_health_not_serving_and_stops_the_service(trainers):
    trainer = trainers(keep_consumer=True)
    assert trainer.health() == health_pb2.HealthCheckResponse.SERVING
    kafka = trainer.kafka_consumers[0]
    deadline = time.monotonic() + 30
    while not kafka.assignment():
        assert time.monotonic() < deadline, "the consumer never joined its group"
        time.sleep(0.1)
    # Break the real client under the poll loop, as a fatal client error would: its next
    # poll raises. (A failed commit or an unreachable broker no longer ends the loop.)
    kafka.close(autocommit=False)
    assert trainer.built.stopping.wait(10), "the service was not told to stop"
    assert "job consumer died: IllegalStateError" in trainer.built.failure
    for service in ("", SERVICE_NAME):
        assert trainer.health(service) == health_pb2.HealthCheckResponse.NOT_SERVING


def test_a_stopping_trainer_takes_no_new_job_while_its_calls_drain(
        trainers, metadata, storage_client, account, postgres_dsn):
    # A stopping trainer (SIGTERM: a scale-down, a rolling update) gives its calls in flight
    # their grace; a job sent meanwhile must wait for a trainer that goes on, not be started
    # by one about to end.
    old = trainers()
    channel = grpc.insecure_channel(f"127.0.0.1:{old.built.port}")
    # A health Watch is a call in flight that lasts until the server stops: it holds the grace.
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    stopping = threading.Thread(target=old.built.stop, args=(6.0,))
    stopping.start()
    try:
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        pid, iid = _iteration(metadata, storage_client, account)
        old.send(pid, iid)
        time.sleep(4)  # within the grace: the old trainer's consumer must not take it
        it = metadata.GetIteration(mpb.GetIterationRequest(account_id=account, project_id=pid, iteration_id=iid))
        assert it.iteration.status == "Training", it.iteration
        assert _attempts(postgres_dsn, iid) == 0, "a stopping trainer started the job"
        assert stopping.is_alive(), "the grace ended early: the test proves nothing"
    finally:
        stopping.join()
        channel.close()
    old.deps.close()
    old.closed = True
    assert old.committed() is None
    # The trainer that goes on, in the same group, takes the job and completes it.
    new = trainers(share=old)
    assert _wait_finished(metadata, account, pid, iid).status == "Completed"
    assert _attempts(postgres_dsn, iid) == 1
    deadline = time.monotonic() + 10
    while new.committed() != 1:
        assert time.monotonic() < deadline, "the job's offset was not committed"
        time.sleep(0.2)
