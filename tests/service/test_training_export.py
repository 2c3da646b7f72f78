"""The training service's ExportIteration RPC in-process (`build_server` on port 0) with the
test stack's real Kafka, and in-process storage and metadata services on its real MinIO and
PostgreSQL. The job consumer is left off: the stack's own trainer keeps the job queue."""
from __future__ import annotations

import io
import json
import uuid
import zipfile
from contextlib import closing

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loupe.v1 import storage_pb2 as spb
from loupe.v1 import training_pb2 as pb
from loupe.v1 import training_pb2_grpc
from loupe_common import config as cfg
from loupe_common import exports, storage_keys
from loupe_common.clients import ServiceClient
from loupe_common.errors import BadRequest, Internal, NotFound
from loupe_model.backbone import get_backbone
from loupe_model.head import train_head
from loupe_training.config import TrainingConfig
from loupe_training.server import SERVICE_NAME, build_server, connect

pytestmark = pytest.mark.service

TAGS = ["cat", "dog"]


@pytest.fixture(scope="module")
def server(infra, metadata_addr, storage_addr):
    config = cfg.load(TrainingConfig, dict(
        infra.service_env(), LOUPE_TRAINING_ADDR="127.0.0.1:0", LOUPE_TRAINER_ID="export-tests",
        LOUPE_METADATA_TARGET=metadata_addr, LOUPE_STORAGE_TARGET=storage_addr))
    deps = connect(config)
    deps.consume_jobs = False
    built = build_server(config, deps)  # deps given: the caller closes them
    built.start()
    yield built
    built.stop(None)
    deps.close()


@pytest.fixture(scope="module")
def training(server, credentials):
    with closing(ServiceClient(f"127.0.0.1:{server.port}", training_pb2_grpc.TrainingServiceStub,
                               timeout=300, credential=credentials["gateway"])) as client:
        yield client


@pytest.fixture
def trained(trainer_storage):
    """(project id, iteration id, artifact key) of a stored head of the lite0 backbone."""
    dim = get_backbone("lite0").feature_dim
    rng = np.random.default_rng(5)
    features = np.concatenate([rng.normal(size=(3, dim)) + 2, rng.normal(size=(3, dim)) - 2]).astype(np.float32)
    labels = np.eye(2, dtype=np.float32)[[0, 0, 0, 1, 1, 1]]
    head = train_head(features, labels, False, 0, [str(uuid.uuid4()) for _ in TAGS], TAGS, "lite0")
    pid, iid = str(uuid.uuid4()), str(uuid.uuid4())
    key = f"artifacts/{pid}/{iid}/head.npz"
    trainer_storage.PutObject(spb.PutObjectRequest(key=key, data=head.to_bytes()))
    return pid, iid, key


def _record(storage_client, pid, iid) -> dict:
    data = storage_client.GetObject(spb.GetObjectRequest(key=storage_keys.export_record_key(pid, iid, "ONNX"))).data
    return exports.parse_record(data)


def test_health_and_describe(server, training):
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING
    described = training.DescribeTrainer(pb.DescribeTrainerRequest())
    assert (described.trainer_id, described.assigned_partitions) == ("export-tests", 0)


def test_export_stores_the_zip_and_then_a_done_record(training, storage_client, trained):
    pid, iid, key = trained
    got = training.ExportIteration(pb.ExportIterationRequest(
        project_id=pid, iteration_id=iid, artifact_key=key, platform="ONNX", flavor="ONNX12"))
    assert got.export_key == storage_keys.export_zip_key(pid, iid, "ONNX")
    blob = storage_client.GetObject(spb.GetObjectRequest(key=got.export_key)).data
    assert len(blob) == got.size_bytes > 10_000_000  # the backbone's weights are inside
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert {"model.onnx", "labels.txt", "metadata_properties.json"} <= set(zf.namelist())
        assert zf.read("labels.txt").decode().split() == TAGS
        assert json.loads(zf.read("metadata_properties.json"))["backbone"] == "lite0"
    record = _record(storage_client, pid, iid)
    assert (record["status"], record["sizeBytes"], record["flavor"]) == (exports.DONE, got.size_bytes, "ONNX12")


@pytest.mark.parametrize("flavor", ["", "Linux", "arm"])
def test_docker_export_stores_a_container_zip(training, storage_client, trained, flavor):
    pid, iid, key = trained
    got = training.ExportIteration(pb.ExportIterationRequest(
        project_id=pid, iteration_id=iid, artifact_key=key, platform="DockerFile", flavor=flavor))
    assert got.export_key == storage_keys.export_zip_key(pid, iid, "DockerFile")
    blob = storage_client.GetObject(spb.GetObjectRequest(key=got.export_key)).data
    with zipfile.ZipFile(io.BytesIO(blob)) as zf:
        assert {"Dockerfile", "app/app.py", "app/model.onnx", "app/labels.txt"} <= set(zf.namelist())
        assert zf.read("app/labels.txt").decode().split() == TAGS
        props = json.loads(zf.read("app/metadata_properties.json"))
        dockerfile = zf.read("Dockerfile").decode()
    assert (props["project_id"], props["iteration_id"]) == (pid, iid)
    canonical = "ARM" if flavor == "arm" else "Linux"
    assert ("--platform=linux/arm64" in dockerfile) == (canonical == "ARM")
    record = exports.parse_record(storage_client.GetObject(spb.GetObjectRequest(
        key=storage_keys.export_record_key(pid, iid, "DockerFile"))).data)
    assert (record["status"], record["flavor"]) == (exports.DONE, canonical)


@pytest.mark.parametrize(("platform", "flavor", "artifact", "code"), [
    ("CoreML", "", True, "BadRequestProjectUnsupportedExportPlatform"),
    ("ONNX", "TensorFlowLite", True, "BadRequestProjectUnsupportedExportPlatform"),
    ("DockerFile", "Windows", True, "BadRequestProjectUnsupportedExportPlatform"),
    ("DockerFile", "ONNX12", True, "BadRequestProjectUnsupportedExportPlatform"),
    ("ONNX", "", False, "BadRequestIterationIsNotTrained"),
])
def test_what_cannot_be_exported_is_refused_before_anything_is_stored(
        training, storage_client, trained, platform, flavor, artifact, code):
    pid, iid, key = trained
    with pytest.raises(BadRequest) as err:
        training.ExportIteration(pb.ExportIterationRequest(
            project_id=pid, iteration_id=iid, artifact_key=key if artifact else "", platform=platform,
            flavor=flavor))
    assert err.value.code == code
    for stored in (storage_keys.export_zip_key(pid, iid, platform), storage_keys.export_record_key(pid, iid, platform)):
        with pytest.raises(NotFound):
            storage_client.GetObject(spb.GetObjectRequest(key=stored))


def test_an_unreadable_head_fails_the_export_with_a_failed_record(training, storage_client, trainer_storage,
                                                                  trained):
    pid, iid, key = trained
    trainer_storage.PutObject(spb.PutObjectRequest(key=key, data=b"not a head"))
    with pytest.raises(Internal) as err:
        training.ExportIteration(pb.ExportIterationRequest(
            project_id=pid, iteration_id=iid, artifact_key=key, platform="ONNX"))
    assert err.value.code == "ErrorExporterInvalidClassifier"
    assert _record(storage_client, pid, iid)["status"] == exports.FAILED
