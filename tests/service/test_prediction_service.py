"""The prediction service in-process (`build_server` on port 0, its collaborators made from its
configuration) against the test stack's real TorchServe, with in-process storage and metadata
services on the real MinIO and PostgreSQL."""
from __future__ import annotations

import io
import uuid
from contextlib import closing

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from loupe.v1 import prediction_pb2 as pb
from loupe.v1 import prediction_pb2_grpc
from loupe.v1 import storage_pb2 as spb
from loupe_common import config as cfg
from loupe_common.clients import ServiceClient
from loupe_common.errors import BadRequest, NotFound
from loupe_model.archive import model_name
from loupe_model.backbone import get_backbone
from loupe_model.head import train_head
from loupe_prediction.config import PredictionConfig
from loupe_prediction.server import SERVICE_NAME, build_server
from loupe_prediction.torchserve import TorchServeClient

pytestmark = pytest.mark.service

COLOURS = {"red": (200, 30, 30), "blue": (30, 30, 200)}


@pytest.fixture(scope="module")
def config(infra, metadata_addr, storage_addr) -> PredictionConfig:
    # The recorder stays off: it would join the stack's recorder group on the shared Kafka.
    return cfg.load(PredictionConfig, dict(
        infra.service_env(), LOUPE_PREDICTION_ADDR="127.0.0.1:0", LOUPE_RECORD_PREDICTIONS="false",
        LOUPE_METADATA_TARGET=metadata_addr, LOUPE_STORAGE_TARGET=storage_addr))


@pytest.fixture(scope="module")
def server(config):
    built = build_server(config)  # registers the backbone in TorchServe unless it is there
    built.start()
    yield built
    built.stop(None)


@pytest.fixture(scope="module")
def prediction(server, credentials):
    with closing(ServiceClient(f"127.0.0.1:{server.port}", prediction_pb2_grpc.PredictionServiceStub,
                               timeout=60, credential=credentials["gateway"])) as client:
        yield client


def _png(rgb, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(rgb) + rng.integers(-30, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def iteration(config, server, trainer_storage):
    """A head trained on TorchServe's own embeddings of red and blue images, stored as an
    iteration's artifact: (project id, iteration id, artifact key, tag id by colour)."""
    torchserve = TorchServeClient(config.inference_url, config.management_url,
                                  model_name(get_backbone(config.backbone)))
    names = list(COLOURS)
    features, labels = [], []
    for t, name in enumerate(names):
        for seed in range(4):
            features.append(torchserve.embed(_png(COLOURS[name], seed)))
            labels.append(t)
    tag_ids = [str(uuid.uuid4()) for _ in names]
    head = train_head(np.stack(features), np.eye(len(names), dtype=np.float32)[labels], False, 0,
                      tag_ids, names, config.backbone)
    pid, iid = str(uuid.uuid4()), str(uuid.uuid4())
    key = f"artifacts/{pid}/{iid}/head.npz"
    trainer_storage.PutObject(spb.PutObjectRequest(key=key, data=head.to_bytes()))
    return pid, iid, key, dict(zip(names, tag_ids))


def test_health_reports_the_prediction_service_serving(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_a_loaded_iteration_classifies_through_torchserve(prediction, iteration):
    pid, iid, key, tag_of = iteration
    loaded = prediction.LoadIteration(pb.LoadIterationRequest(project_id=pid, iteration_id=iid, artifact_key=key))
    assert loaded.backbone == "lite0"
    for name, rgb in COLOURS.items():
        got = prediction.Classify(pb.ClassifyRequest(project_id=pid, iteration_id=iid, artifact_key=key,
                                                     image=_png(rgb, seed=99)))
        assert (got.project_id, got.iteration_id) == (pid, iid) and uuid.UUID(got.prediction_id)
        probabilities = [p.probability for p in got.predictions]
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
        assert (got.predictions[0].tag_id, got.predictions[0].tag_name) == (tag_of[name], name)


def test_unloading_makes_the_next_call_read_the_artifact_again(prediction, trainer_storage, iteration):
    pid, iid, key, tag_of = iteration
    request = pb.ClassifyRequest(project_id=pid, iteration_id=iid, artifact_key=key,
                                 image=_png(COLOURS["red"], seed=98))
    assert prediction.Classify(request).predictions[0].tag_name == "red"
    original = trainer_storage.GetObject(spb.GetObjectRequest(key=key)).data
    trainer_storage.DeleteObjects(spb.DeleteObjectsRequest(keys=[key]))
    assert prediction.Classify(request).predictions[0].tag_name == "red"  # the cached head
    prediction.UnloadIteration(pb.UnloadIterationRequest(iteration_id=iid))
    with pytest.raises(NotFound):
        prediction.Classify(request)
    trainer_storage.PutObject(spb.PutObjectRequest(key=key, data=original))


def test_bad_requests_carry_custom_vision_codes(prediction, iteration):
    pid, iid, key, _ = iteration
    with pytest.raises(BadRequest) as err:
        prediction.LoadIteration(pb.LoadIterationRequest(project_id=pid, iteration_id=iid))
    assert err.value.code == "BadRequestIterationIsNotTrained"
    for image in (b"", b"these bytes are no image"):
        with pytest.raises(BadRequest) as err:
            prediction.Classify(pb.ClassifyRequest(project_id=pid, iteration_id=iid, artifact_key=key,
                                                   image=image))
        assert err.value.code == "BadRequestImageFormat"
