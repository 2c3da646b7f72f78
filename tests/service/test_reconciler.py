"""Issue 14: the training hand-off cannot strand an iteration, and a stale export blocks nothing.

The gateway's reconciler (loupe_gateway.reconciler) runs here in-process with the gateway's real
backends (`clients.Backends`) against in-process metadata, storage and training services on the
test stack's real PostgreSQL, MinIO and Kafka. A gateway that dies between the iteration's commit
and the Kafka send is what CreateIteration with `job_topic` and no send leaves behind: nothing
stands in for Kafka or the database. Each trainer consumes a topic and group of its own.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import threading
import time
import uuid
from contextlib import closing

import numpy as np
import psycopg
import pytest
from PIL import Image
from prometheus_client import REGISTRY

from internal_clients import ByRole
from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import metadata_pb2_grpc
from loupe.v1 import storage_pb2 as spb
from loupe.v1 import training_pb2 as tpb
from loupe.v1 import training_pb2_grpc
from loupe_common import config as cfg
from loupe_common import exports, storage_keys
from loupe_common import kafka as lk
from loupe_common.clients import ServiceClient
from loupe_common.timeutil import iso
from loupe_gateway import domains, reconciler
from loupe_gateway.app import create_app
from loupe_gateway.clients import Backends
from loupe_gateway.config import GatewayConfig
from loupe_metadata import access as metadata_access
from loupe_model.backbone import get_backbone
from loupe_model.head import train_head
from loupe_training.config import TrainingConfig
from loupe_training.server import build_server, connect

pytestmark = pytest.mark.service


@pytest.fixture(scope="module")
def metadata(metadata_addr, credentials):
    client = ByRole(metadata_addr, metadata_pb2_grpc.MetadataServiceStub, credentials,
                    metadata_access.ALLOW)
    yield client
    client.close()


@pytest.fixture(scope="module")
def account(metadata) -> mpb.Account:
    return metadata.CreateAccount(mpb.CreateAccountRequest(name="reconciler-tests")).account


@pytest.fixture(scope="module")
def training_config(infra, metadata_addr, storage_addr) -> TrainingConfig:
    return cfg.load(TrainingConfig, dict(
        infra.service_env(), LOUPE_TRAINING_ADDR="127.0.0.1:0", LOUPE_TRAINER_ID="reconciler-tests",
        LOUPE_METADATA_TARGET=metadata_addr, LOUPE_STORAGE_TARGET=storage_addr))


class Trainer:
    """A trainer built by `build_server` consuming a topic and group of its own."""

    def __init__(self, config: TrainingConfig, topic: str, consume: bool = True):
        self.topic = topic
        self.deps = connect(config)
        self.deps.consume_jobs = consume
        self.deps.consumer_options = dict(topic=topic, group=f"test-trainers-{uuid.uuid4().hex[:8]}")
        self.built = build_server(config, self.deps)
        self.built.start()
        self.address = f"127.0.0.1:{self.built.port}"

    def close(self) -> None:
        self.built.stop(None)
        self.deps.close()


@pytest.fixture
def trainers(training_config):
    made: list[Trainer] = []

    def make(topic: str, consume: bool = True) -> Trainer:
        made.append(Trainer(training_config, topic, consume))
        return made[-1]

    yield make
    for trainer in made:
        trainer.close()


def _gateway_config(infra, metadata_addr, storage_addr, training_addr="127.0.0.1:1",
                    **env) -> GatewayConfig:
    return cfg.load(GatewayConfig, dict(
        infra.service_env(), LOUPE_METADATA_TARGET=metadata_addr,
        LOUPE_STORAGE_TARGET=storage_addr, LOUPE_TRAINING_TARGET=training_addr, **env))


@pytest.fixture
def backends(infra, metadata_addr, storage_addr):
    """The gateway's real backends, as its reconciler uses them."""
    made = Backends(_gateway_config(infra, metadata_addr, storage_addr))
    yield made
    made.close()


def _topic(kafka_bootstrap: str) -> str:
    topic = f"test-jobs-{uuid.uuid4().hex[:8]}"
    lk.ensure_topics(kafka_bootstrap, {topic: 1})
    return topic


def _png(rgb) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 24), rgb).save(buf, format="PNG")
    return buf.getvalue()


def _project(metadata, storage, account_id: str, domain_id: str = "") -> tuple[str, list[str]]:
    """A project with two colour tags of six images each; returns (project id, tag ids)."""
    pid = metadata.CreateProject(mpb.CreateProjectRequest(
        account_id=account_id, name=f"r-{uuid.uuid4().hex[:6]}", classification_type="Multiclass",
        domain_id=domain_id)).project.id
    rng = np.random.default_rng(1)
    new, tags = [], []
    for base in ((200, 30, 30), (30, 30, 200)):
        tags.append(metadata.CreateTag(mpb.CreateTagRequest(
            account_id=account_id, project_id=pid, name=str(base))).tag.id)
        for _ in range(6):
            data = _png(tuple(int(np.clip(c + rng.integers(-40, 40), 0, 255)) for c in base))
            sha = storage.PutImage(spb.PutImageRequest(project_id=pid, data=data)).sha256
            new.append(mpb.NewImage(sha256=sha, width=24, height=24, content_type="image/png",
                                    size_bytes=len(data), tag_ids=[tags[-1]]))
    metadata.AddImages(mpb.AddImagesRequest(account_id=account_id, project_id=pid, images=new))
    return pid, tags


def _create_iteration(metadata, account_id: str, pid: str, job_topic: str = "") -> str:
    """What the gateway commits before its Kafka send: the iteration and, with `job_topic`, its
    job's outbox row. Nothing is sent: the gateway "died" right after the commit."""
    return metadata.CreateIteration(mpb.CreateIterationRequest(
        account_id=account_id, project_id=pid, training_type="Regular", force_train=True,
        job_topic=job_topic)).iteration.id


def _get(metadata, account_id: str, pid: str, iid: str) -> mpb.Iteration:
    return metadata.GetIteration(mpb.GetIterationRequest(
        account_id=account_id, project_id=pid, iteration_id=iid)).iteration


def _wait_finished(metadata, account_id, pid, iid, timeout: float = 180.0) -> mpb.Iteration:
    deadline = time.monotonic() + timeout
    while True:
        it = _get(metadata, account_id, pid, iid)
        if it.status != "Training":
            return it
        assert time.monotonic() < deadline, f"still Training at {it.progress_stage}"
        time.sleep(0.3)


def _outbox(postgres_dsn: str, iid: str) -> tuple | None:
    """(sent, resends) of the iteration's outbox row; None when it has none."""
    with psycopg.connect(postgres_dsn) as conn:
        return conn.execute("SELECT sent, resends FROM training_job_outbox WHERE iteration_id = %s",
                            (iid,)).fetchone()


def _attempts(postgres_dsn: str, iid: str) -> int:
    with psycopg.connect(postgres_dsn) as conn:
        return conn.execute("SELECT training_attempts FROM iterations WHERE id = %s",
                            (iid,)).fetchone()[0]


def _committed(kafka_bootstrap: str, topic: str, group: str) -> int | None:
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    reader = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return reader.committed(TopicPartition(topic, 0))
    finally:
        reader.close(autocommit=False)


def _jobs_completed(trainer: Trainer, credentials) -> int:
    with closing(ServiceClient(trainer.address, training_pb2_grpc.TrainingServiceStub,
                               credential=credentials["gateway"])) as client:
        return client.DescribeTrainer(tpb.DescribeTrainerRequest()).jobs_completed


def test_a_job_the_gateway_never_sent_is_produced_by_the_reconciler_and_trained(
        trainers, metadata, storage_client, account, backends, kafka_bootstrap, postgres_dsn):
    trainer = trainers(_topic(kafka_bootstrap))
    pid, _ = _project(metadata, storage_client, account.id)
    iid = _create_iteration(metadata, account.id, pid, job_topic=trainer.topic)
    assert _outbox(postgres_dsn, iid) == (None, 0)  # written with the iteration, never sent
    time.sleep(3)
    assert _get(metadata, account.id, pid, iid).status == "Training"  # nothing else sends it
    assert _attempts(postgres_dsn, iid) == 0

    resent_before = REGISTRY.get_sample_value("loupe_training_jobs_resent_total") or 0.0
    stop = threading.Event()
    loop = reconciler.Reconciler(backends, stop, interval_s=0.5, resend_after_s=1.0,
                                 start_timeout_s=0)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        it = _wait_finished(metadata, account.id, pid, iid)
    finally:
        stop.set()
        thread.join(15)
    assert not thread.is_alive()
    assert it.status == "Completed", it.error_message
    assert _attempts(postgres_dsn, iid) == 1
    assert _outbox(postgres_dsn, iid) is None  # a finished iteration's row is gone
    assert REGISTRY.get_sample_value("loupe_training_jobs_resent_total") >= resent_before + 1


def test_a_job_relayed_twice_trains_once(trainers, metadata, storage_client, account, backends,
                                         kafka_bootstrap, postgres_dsn, credentials):
    topic = _topic(kafka_bootstrap)
    pid, _ = _project(metadata, storage_client, account.id)
    iid = _create_iteration(metadata, account.id, pid, job_topic=topic)
    # A relay that dies after Kafka took the job, before it marked it sent...
    (taken,) = [j for j in backends.claim_training_jobs(0, 1000) if j.iteration_id == iid]
    backends.send_training_job(reconciler.training_job(taken), taken.topic)
    # ...so the next pass takes the job again and produces a second copy.
    done = reconciler.Reconciler(backends, threading.Event(), interval_s=1, resend_after_s=0,
                                 start_timeout_s=0).run_once()
    assert done.resent >= 1
    sent, resends = _outbox(postgres_dsn, iid)
    assert sent is not None and resends == 2

    trainer = trainers(topic)  # both copies wait in the topic
    it = _wait_finished(metadata, account.id, pid, iid)
    assert it.status == "Completed", it.error_message
    group = trainer.deps.consumer_options["group"]
    deadline = time.monotonic() + 60
    while _committed(kafka_bootstrap, topic, group) != 2:  # the second copy was consumed too
        assert time.monotonic() < deadline, _committed(kafka_bootstrap, topic, group)
        time.sleep(0.3)
    assert _attempts(postgres_dsn, iid) == 1
    assert _jobs_completed(trainer, credentials) == 1
    assert _get(metadata, account.id, pid, iid).trained_at == it.trained_at


def test_an_iteration_no_trainer_starts_is_failed_after_the_threshold(
        metadata, storage_client, account, backends, kafka_bootstrap, postgres_dsn):
    unconsumed = _topic(kafka_bootstrap)  # no trainer reads it: the job is lost
    # One whose job a trainer has started is the trainer's (Kafka redelivers it if it dies).
    started_pid, _ = _project(metadata, storage_client, account.id)
    started_iid = _create_iteration(metadata, account.id, started_pid)
    assert metadata.StartTrainingAttempt(
        mpb.StartTrainingAttemptRequest(iteration_id=started_iid)).attempts == 1
    pid, _ = _project(metadata, storage_client, account.id)
    old_pid, _ = _project(metadata, storage_client, account.id)
    iid = _create_iteration(metadata, account.id, pid, job_topic=unconsumed)
    # An iteration made without an outbox row (before the outbox existed) waits from its creation.
    old_iid = _create_iteration(metadata, account.id, old_pid)

    loop = reconciler.Reconciler(backends, threading.Event(), interval_s=1, resend_after_s=0,
                                 start_timeout_s=5.0)
    loop.run_once()  # produces the job and marks it sent; nothing is old enough to fail yet
    assert _outbox(postgres_dsn, iid)[0] is not None
    for i, p in ((iid, pid), (old_iid, old_pid), (started_iid, started_pid)):
        assert _get(metadata, account.id, p, i).status == "Training"

    time.sleep(5.5)
    stale_before = REGISTRY.get_sample_value("loupe_iterations_failed_unstarted_total") or 0.0
    failed = loop.run_once().failed
    assert failed >= 2
    for i, p in ((iid, pid), (old_iid, old_pid)):
        it = _get(metadata, account.id, p, i)
        assert it.status == "Failed"
        assert it.error_message.startswith("no trainer started this training within 5 s"), it.error_message
    assert _outbox(postgres_dsn, iid) is None
    assert _get(metadata, account.id, started_pid, started_iid).status == "Training"
    assert REGISTRY.get_sample_value("loupe_iterations_failed_unstarted_total") >= stale_before + 2
    # The project is no longer blocked: it can be trained again.
    again = _create_iteration(metadata, account.id, pid)
    assert _get(metadata, account.id, pid, again).status == "Training"
    for i in (again, started_iid):
        metadata.as_role("training").FinishIteration(mpb.FinishIterationRequest(
            iteration_id=i, status="Failed", error_message="test over"))


def test_a_stale_exporting_record_expires_so_a_new_export_starts(
        trainers, infra, metadata, metadata_addr, storage_addr, storage_client, trainer_storage,
        account, kafka_bootstrap):
    exporter = trainers(_topic(kafka_bootstrap), consume=False)  # serves ExportIteration only
    pid, tags = _project(metadata, storage_client, account.id, domain_id=domains.GENERAL_COMPACT)
    iid = _create_iteration(metadata, account.id, pid)
    dim = get_backbone("lite0").feature_dim
    rng = np.random.default_rng(5)
    features = np.concatenate([rng.normal(size=(3, dim)) + 2,
                               rng.normal(size=(3, dim)) - 2]).astype(np.float32)
    labels = np.eye(2, dtype=np.float32)[[0, 0, 0, 1, 1, 1]]
    head = train_head(features, labels, False, 0, tags, ["red", "blue"], "lite0")
    artifact = f"artifacts/{pid}/{iid}/head.npz"
    trainer_storage.PutObject(spb.PutObjectRequest(key=artifact, data=head.to_bytes()))
    metadata.as_role("training").FinishIteration(mpb.FinishIterationRequest(
        iteration_id=iid, status="Completed", artifact_key=artifact))

    # A gateway died mid-export an hour ago: its record says Exporting, and nothing will end it.
    record_key = storage_keys.export_record_key(pid, iid, "ONNX")
    stale = json.loads(exports.record("ONNX", "", exports.EXPORTING))
    stale["updated"] = iso(dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    storage_client.PutObject(spb.PutObjectRequest(key=record_key, data=json.dumps(stale).encode(),
                                                  content_type="application/json"))

    config = _gateway_config(infra, metadata_addr, storage_addr, exporter.address,
                             LOUPE_EXPORT_TIMEOUT_S="600")
    app = create_app(config)
    client = app.test_client()
    headers = {"Training-Key": account.training_key}
    url = f"/customvision/v3.3/training/projects/{pid}/iterations/{iid}/export"
    try:
        listed = client.get(url, headers=headers)
        assert listed.status_code == 200, listed.get_json()
        assert [e["status"] for e in listed.get_json()] == ["Failed"]  # expired, read as Failed
        started = client.post(url + "?platform=ONNX", headers=headers)
        assert started.status_code == 200, started.get_json()
        assert started.get_json()["status"] == "Done"
        assert [e["status"] for e in client.get(url, headers=headers).get_json()] == ["Done"]

        # A record Exporting for less than the timeout still refuses a second export.
        fresh = exports.record("ONNX", "", exports.EXPORTING)
        storage_client.PutObject(spb.PutObjectRequest(key=record_key, data=fresh,
                                                      content_type="application/json"))
        refused = client.post(url + "?platform=ONNX&flavor=ONNX12", headers=headers)
        assert refused.status_code == 400  # Custom Vision answers 400 here
        assert refused.get_json()["code"] == "BadRequestExportAlreadyInProgress"
    finally:
        app.extensions["loupe"].backends.close()
