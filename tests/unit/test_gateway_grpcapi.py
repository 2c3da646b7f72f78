"""The public gRPC API's pure parts: key rules and status mapping (grpcapi.auth), reading an
UploadImages stream (grpcapi.servicer.read_upload), and the internal-to-public conversions
(grpcapi.convert): no server, no backend."""
from __future__ import annotations

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from gateway_fakes import _png
from loupe.v1 import api_pb2 as api
from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import prediction_pb2 as ppb
from loupe_common.config import load
from loupe_common.errors import BadRequest, NotFound, PermissionDenied, TooManyRequests, Unauthorized
from loupe_gateway.auth import PREDICTION, TRAINING, KeyResolver
from loupe_gateway.config import GatewayConfig
from loupe_gateway.grpcapi import auth, convert
from loupe_gateway.grpcapi.servicer import read_upload
from loupe_gateway.ratelimit import RateLimiter

pytestmark = pytest.mark.unit

ACCOUNTS = {
    "tk": mpb.ResolveKeyResponse(account_id="a1", kind=mpb.KEY_KIND_TRAINING),
    "pk": mpb.ResolveKeyResponse(account_id="a1", kind=mpb.KEY_KIND_PREDICTION),
}
TAG = "00000000-0000-0000-0000-00000000000b"


def _lookup(key: str) -> mpb.ResolveKeyResponse:
    if key not in ACCOUNTS:
        raise NotFound("no such key", "NotFound")
    return ACCOUNTS[key]


@pytest.fixture
def keys() -> KeyResolver:
    return KeyResolver(_lookup)


@pytest.fixture
def config(gateway_env) -> GatewayConfig:
    return load(GatewayConfig, {**gateway_env, "LOUPE_MAX_TRAINING_IMAGE_BYTES": "2000"})


@pytest.mark.parametrize("kind, metadata, principal", [
    (TRAINING, [("training-key", "tk")], "a1"),
    (TRAINING, [("training-key", " tk ")], "a1"),
    (PREDICTION, [("prediction-key", "pk")], "a1"),
    # Both sent: the one of the call's kind decides.
    (TRAINING, [("prediction-key", "pk"), ("training-key", "tk")], "a1"),
])
def test_a_key_of_the_calls_kind_is_the_caller(keys, kind, metadata, principal):
    assert auth.authenticate(keys, None, kind, metadata).account_id == principal


@pytest.mark.parametrize("kind, metadata, error, status", [
    (TRAINING, [], Unauthorized, grpc.StatusCode.UNAUTHENTICATED),
    (TRAINING, None, Unauthorized, grpc.StatusCode.UNAUTHENTICATED),
    (TRAINING, [("training-key", "  ")], Unauthorized, grpc.StatusCode.UNAUTHENTICATED),
    (TRAINING, [("training-key", "nosuch")], Unauthorized, grpc.StatusCode.UNAUTHENTICATED),
    (TRAINING, [("Training-Key", "nosuch")], Unauthorized, grpc.StatusCode.UNAUTHENTICATED),
    (TRAINING, [("prediction-key", "nosuch")], Unauthorized, grpc.StatusCode.UNAUTHENTICATED),
    # A valid key, the wrong kind: known caller, forbidden call.
    (TRAINING, [("prediction-key", "pk")], PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (TRAINING, [("training-key", "pk")], PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (PREDICTION, [("training-key", "tk")], PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
])
def test_refused_callers_and_their_status(keys, kind, metadata, error, status):
    with pytest.raises(error) as info:
        auth.authenticate(keys, None, kind, metadata)
    assert info.value.grpc_status == status
    assert info.value.code == "Unauthorized"  # Custom Vision's code, as REST answers


def test_the_rate_limit_is_the_rest_limit_of_the_same_key(keys):
    now = [0.0]
    limiter = RateLimiter(1.0, 2.0, clock=lambda: now[0])
    metadata = [("training-key", "tk")]
    auth.authenticate(keys, limiter, TRAINING, metadata)
    limiter.check("Training-Key:tk")  # a REST request of the same key takes from one bucket
    with pytest.raises(TooManyRequests) as info:
        auth.authenticate(keys, limiter, TRAINING, metadata)
    assert info.value.grpc_status == grpc.StatusCode.RESOURCE_EXHAUSTED
    now[0] = 1.0
    assert auth.authenticate(keys, limiter, TRAINING, metadata).account_id == "a1"
    assert auth.buckets([("prediction-key", "pk")]) == ["Prediction-Key:pk"]
    # Every key sent counts: a random training key beside a spent one gives no fresh budget.
    for i in range(3):
        with pytest.raises(TooManyRequests):
            auth.authenticate(keys, limiter, TRAINING, metadata + [("prediction-key", f"r{i}")])


@pytest.mark.parametrize("peer, address", [("ipv4:127.0.0.1:5000", "127.0.0.1"),
                                           ("ipv6:[::1]:5000", "::1"), ("unix:/tmp/s", "/tmp/s")])
def test_peer_address(peer, address):
    assert auth.peer_address(peer) == address


def test_request_ids_are_canonicalised():
    upper = "9F3C2A4E-8B1D-4C6E-A5F7-0123456789AB"
    msg = convert.canonical_ids(api.UploadImagesRequest(project_id=upper))
    assert msg.project_id == upper.lower()
    assert convert.canonical_ids(api.GetProjectRequest(project_id="not-a-guid")).project_id == "not-a-guid"


def _upload(project_id, *parts):
    """A stream that names its project in a first message of its own (allowed: any message
    may carry it), then the parts."""
    yield api.UploadImagesRequest(project_id=project_id)
    for part in parts:
        if isinstance(part, api.NewImage):
            yield api.UploadImagesRequest(image=part)
        else:
            yield api.UploadImagesRequest(chunk=part)


def test_an_upload_stream_joins_each_images_chunks(config):
    a, b = _png(10), _png(200)
    project, entries = read_upload(_upload(
        "p1", api.NewImage(name="a", tag_ids=[TAG], data=a[:5]), a[5:50], a[50:],
        api.NewImage(data=b)), config)
    assert project == "p1"
    assert [(e.name, e.data, e.tag_ids, e.too_large) for e in entries] == [
        ("a", a, [TAG], False), ("image 1", b, [], False)]


def test_an_image_over_the_limit_is_kept_as_too_large_without_its_bytes(config):
    _project, entries = read_upload(_upload(
        "p1", api.NewImage(data=b"x" * 1500), b"x" * 1500, b"x" * 10), config)
    assert entries[0].too_large and entries[0].data is None and entries[0].size == 3010


@pytest.mark.parametrize("parts, code", [
    ((), "BadRequestImageBatch"),
    ((b"bytes first",), "BadRequestImageBatch"),
    ((api.NewImage(tag_ids=["not-a-guid"], data=b"x"),), "BadRequestImageTags"),
    ((api.NewImage(tag_ids=[f"00000000-0000-0000-0000-{i:012d}" for i in range(21)], data=b"x"),),
     "BadRequestExceededBatchSize"),
    (tuple(api.NewImage(data=b"x") for _ in range(65)), "BadRequestExceededBatchSize"),
])
def test_a_malformed_upload_stream_is_refused(config, parts, code):
    with pytest.raises(BadRequest) as info:
        read_upload(_upload("p1", *parts), config)
    assert info.value.code == code


def test_an_upload_names_its_project(config):
    with pytest.raises(BadRequest) as info:
        read_upload(_upload("", api.NewImage(data=b"x")), config)
    assert info.value.code == "BadRequestRequiredParamIsNull"


def test_conversions_copy_public_identifiers_only():
    project = convert.project(mpb.Project(id="p", account_id="secret-account", name="n",
                                          created=Timestamp(seconds=5)))
    assert project.id == "p" and project.created.seconds == 5 and project.domain_id
    assert "secret-account" not in str(project)
    it = mpb.Iteration(id="i", name="Iteration 1", status="Training", artifact_key="artifacts/p/i",
                       progress_stage="embedding", progress_percent=40.0, progress_eta_seconds=3)
    event = convert.progress(it)
    assert (event.stage, event.percent, event.eta_seconds, event.finished) == ("embedding", 40.0, 3, False)
    assert "artifacts" not in str(event)
    it.status = "Completed"
    done = convert.progress(it)
    assert (done.finished, done.percent, done.eta_seconds, done.iteration.status) == (
        True, 100.0, 0.0, "Completed")
    image = convert.image(mpb.Image(id="im", sha256="abc", tags=[mpb.ImageTag(tag_id="t")]))
    assert list(image.tag_ids) == ["t"] and "abc" not in str(image)


def test_predictions_are_ranked_highest_first():
    result = convert.prediction(ppb.ClassifyResponse(prediction_id="x", iteration_id="i", predictions=[
        ppb.TagProbability(tag_id="a", tag_name="A", probability=0.2),
        ppb.TagProbability(tag_id="b", tag_name="B", probability=0.8)]))
    assert [p.tag_id for p in result.predictions] == ["b", "a"]
    err = convert.classify_error(BadRequest("nope", "BadRequestImageFormat"))
    assert (err.status, err.code, err.message) == ("INVALID_ARGUMENT", "BadRequestImageFormat", "nope")


class _Context:
    """What TrainProject asks of a grpc.ServicerContext."""

    def __init__(self, metadata):
        self._metadata = metadata

    def invocation_metadata(self):
        return self._metadata

    def peer(self):
        return "ipv4:127.0.0.1:5000"

    def is_active(self):
        return True


class _Iterations:
    """get_iteration answers the given states in turn (the trainer's progress, as polled)."""

    def __init__(self, states):
        self.states = list(states)

    def get_iteration(self, account_id, project_id, iteration_id):
        return self.states.pop(0)


def test_train_project_streams_every_progress_change_it_sees_then_the_finished_iteration(
        keys, config, monkeypatch):
    from loupe_gateway.flows import iterations
    from loupe_gateway.grpcapi.servicer import ApiContext, TrainingServicer

    def state(status, stage="", percent=0.0):
        return mpb.Iteration(id="00000000-0000-0000-0000-0000000000a1", name="Iteration 1", status=status,
                             progress_stage=stage, progress_percent=percent)

    polled = [state("Training", "features", 20.0), state("Training", "features", 20.0),  # unchanged
              state("Training", "training", 60.0), state("Completed")]
    monkeypatch.setattr(iterations, "train", lambda *a, **kw: state("Training", "queued"))
    servicer = TrainingServicer(ApiContext(config, _Iterations(polled), keys, progress_poll_seconds=0))
    events = list(servicer.TrainProject(
        api.TrainProjectRequest(project_id="00000000-0000-0000-0000-00000000000c"),
        _Context([("training-key", "tk")])))
    assert [(e.stage, e.percent, e.finished) for e in events] == [
        ("queued", 0.0, False), ("features", 20.0, False), ("training", 60.0, False),
        ("Completed", 100.0, True)]
    assert events[-1].iteration.status == "Completed"
