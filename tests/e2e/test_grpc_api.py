"""The public gRPC API (protos/loupe/v1/api.proto, docs/grpc.md) on the live stack: the whole
flow, the key rules and status codes (with the Custom Vision code in trailing metadata), bad
input refused with nothing stored, and examples/grpc_client.py."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loupe.v1 import api_pb2 as api
from loupe.v1 import api_pb2_grpc
from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import storage_pb2 as spb
from loupe.v1.metadata_pb2_grpc import MetadataServiceStub
from loupe.v1.storage_pb2_grpc import StorageServiceStub
from loupe_common import internal_auth
from loupe_common.clients import ServiceClient
from loupe_common.errors import NotFound
from loupe_model.datasets import load_fashion_mnist

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
PUBLISH_NAME = "grpcprod"
CHUNK = 700  # small, so every image spans several UploadImages messages


@pytest.fixture(scope="module")
def channel(live_env):
    with grpc.insecure_channel(live_env["LOUPE_GRPC_ENDPOINT"]) as ch:
        yield ch


@pytest.fixture(scope="module")
def keys(live_env):
    return ([("training-key", live_env["LOUPE_TRAINING_KEY"])],
            [("prediction-key", live_env["LOUPE_PREDICTION_KEY"])])


@pytest.fixture(scope="module")
def stubs(channel):
    return (api_pb2_grpc.ProjectsStub(channel), api_pb2_grpc.TrainingStub(channel),
            api_pb2_grpc.PredictionStub(channel))


def _stream(project_id: str, images: list[tuple[bytes, list[str]]], chunk: int = CHUNK):
    for i, (data, tags) in enumerate(images):
        yield api.UploadImagesRequest(project_id=project_id, image=api.NewImage(
            name=f"{i}.png", tag_ids=tags, data=data[:chunk]))
        for start in range(chunk, len(data), chunk):
            yield api.UploadImagesRequest(chunk=data[start:start + chunk])


def _failure(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    """The status and Custom Vision code (trailing `loupe-error-code`) of a failing call."""
    with pytest.raises(grpc.RpcError) as info:
        result = call(*args, **kwargs)
        if hasattr(result, "__iter__") and not hasattr(result, "DESCRIPTOR"):
            list(result)  # a streamed answer fails when read
    err = info.value
    return err.code(), dict(err.trailing_metadata() or ()).get("loupe-error-code", "")


@pytest.fixture(scope="module")
def trained(stubs, keys, live_env):
    """A two-tag project uploaded, trained (with its progress events) and published over gRPC."""
    projects, training, _prediction = stubs
    tkey, _pkey = keys
    project = projects.CreateProject(api.CreateProjectRequest(
        name=f"grpc-{uuid.uuid4().hex[:6]}"), metadata=tkey).project
    tags = [projects.CreateTag(api.CreateTagRequest(project_id=project.id, name=n),
                               metadata=tkey).tag for n in ("top", "trouser")]
    data = load_fashion_mnist("train", (0, 1), 8, seed=47)
    summary = projects.UploadImages(
        _stream(project.id, [(img, [tags[label].id]) for img, label in data]), metadata=tkey)
    events = list(training.TrainProject(api.TrainProjectRequest(project_id=project.id),
                                        metadata=tkey, timeout=600))
    iteration = events[-1].iteration
    training.PublishIteration(api.PublishIterationRequest(
        project_id=project.id, iteration_id=iteration.id, publish_name=PUBLISH_NAME,
        prediction_resource_id=live_env["LOUPE_PREDICTION_RESOURCE_ID"]), metadata=tkey)
    test = load_fashion_mnist("test", (0, 1), 4, seed=5)
    return {"project": project, "tags": tags, "data": data, "summary": summary,
            "events": events, "iteration": iteration, "test": test}


def test_the_whole_flow_over_grpc(stubs, keys, trained, live_env):
    projects, training, prediction = stubs
    tkey, pkey = keys
    project, tags, iteration = trained["project"], trained["tags"], trained["iteration"]

    summary = trained["summary"]
    assert summary.is_batch_successful
    assert [r.status for r in summary.images] == ["OK"] * len(trained["data"])
    assert [r.name for r in summary.images] == [f"{i}.png" for i in range(len(trained["data"]))]
    assert all(r.image.tag_ids == [tags[label].id]
               for r, (_img, label) in zip(summary.images, trained["data"]))
    listed = projects.ListImages(api.ListImagesRequest(project_id=project.id, take=100),
                                 metadata=tkey)
    assert listed.total == len(trained["data"])
    assert {t.name: t.image_count for t in projects.ListTags(
        api.ListTagsRequest(project_id=project.id), metadata=tkey).tags} == {"top": 8, "trouser": 8}

    events = trained["events"]
    assert events[0].iteration.status == "Training" and not events[0].finished
    assert events[-1].finished and iteration.status == "Completed"
    assert all(not e.finished for e in events[:-1])
    percents = [e.percent for e in events]
    assert percents == sorted(percents) and percents[-1] == 100.0
    # How many progress steps a poll catches depends on how fast this machine trains 16 images
    # (idle: all of it between two polls); that every change is streamed is the unit test's
    # (tests/unit/test_gateway_grpcapi.py::test_train_project_streams_every_progress_change...).
    assert len(events) >= 2, [(e.stage, e.percent) for e in events]
    assert all(e.iteration.id == iteration.id for e in events)

    got = training.GetIteration(api.GetIterationRequest(
        project_id=project.id, iteration_id=iteration.id), metadata=tkey).iteration
    assert got.publish_name == PUBLISH_NAME
    assert [i.id for i in training.ListIterations(
        api.ListIterationsRequest(project_id=project.id), metadata=tkey).iterations] == [iteration.id]
    perf = training.GetIterationPerformance(api.GetIterationPerformanceRequest(
        project_id=project.id, iteration_id=iteration.id, threshold=0.5), metadata=tkey)
    assert {t.tag_id for t in perf.per_tag} == {t.id for t in tags}
    assert all(0.0 <= t.precision <= 1.0 and 0.0 <= t.recall <= 1.0 for t in perf.per_tag)
    assert perf.precision > 0.5

    # The bidirectional stream: answers in request order with their correlation ids, a bad
    # request answered in place without ending the stream.
    test = trained["test"]
    requests = [api.ClassifyImageRequest(project_id=project.id, publish_name=PUBLISH_NAME,
                                         image=img, store=True, application="grpc-e2e",
                                         correlation_id=f"c{i}")
                for i, (img, _label) in enumerate(test)]
    requests.insert(3, api.ClassifyImageRequest(project_id=project.id, publish_name=PUBLISH_NAME,
                                                image=b"not an image", correlation_id="bad"))
    answers = list(prediction.ClassifyStream(iter(requests), metadata=pkey))
    assert [a.correlation_id for a in answers] == [r.correlation_id for r in requests]
    bad = answers.pop(3)
    assert bad.WhichOneof("result") == "error"
    assert (bad.error.status, bad.error.code) == ("INVALID_ARGUMENT", "BadRequestImageFormat")
    right = 0
    for answer, (_img, label) in zip(answers, test):
        ranked = answer.prediction.predictions
        assert {p.tag_id for p in ranked} == {t.id for t in tags}
        assert [p.probability for p in ranked] == sorted((p.probability for p in ranked), reverse=True)
        right += ranked[0].tag_id == tags[label].id
    assert right >= len(test) - 2

    one = prediction.ClassifyImage(api.ClassifyImageRequest(
        project_id=project.id, publish_name=PUBLISH_NAME, image=test[0][0]), metadata=pkey)
    assert one.prediction.iteration_id == iteration.id
    assert one.prediction.predictions[0].tag_id == answers[0].prediction.predictions[0].tag_id

    # Stored predictions (recorded off the request path): the stored ones, not the nostore one.
    expected = {a.prediction.id for a in answers}
    deadline = time.monotonic() + 30
    while True:
        found = training.QueryPredictions(api.QueryPredictionsRequest(
            project_id=project.id, application="grpc-e2e"), metadata=tkey).predictions
        if {p.id for p in found} >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert {p.id for p in found} == expected
    assert all(p.iteration_id == iteration.id and p.application == "grpc-e2e" for p in found)

    assert _failure(prediction.ClassifyImage, api.ClassifyImageRequest(
        project_id=project.id, publish_name="nosuchname", image=test[0][0]),
        metadata=pkey)[0] == grpc.StatusCode.NOT_FOUND
    training.UnpublishIteration(api.UnpublishIterationRequest(
        project_id=project.id, iteration_id=iteration.id), metadata=tkey)
    assert _failure(prediction.ClassifyImage, api.ClassifyImageRequest(
        project_id=project.id, publish_name=PUBLISH_NAME, image=test[0][0]),
        metadata=pkey)[0] == grpc.StatusCode.NOT_FOUND
    assert _failure(training.UnpublishIteration, api.UnpublishIterationRequest(
        project_id=project.id, iteration_id=iteration.id), metadata=tkey) == (
        grpc.StatusCode.FAILED_PRECONDITION, "BadRequestIterationNotPublished")
    training.PublishIteration(api.PublishIterationRequest(
        project_id=project.id, iteration_id=iteration.id, publish_name=PUBLISH_NAME,
        prediction_resource_id=live_env["LOUPE_PREDICTION_RESOURCE_ID"]), metadata=tkey)


def test_missing_or_unknown_keys_are_unauthenticated(stubs, keys):
    projects, training, prediction = stubs
    for metadata in ([], [("training-key", "")], [("training-key", "nosuchkey")],
                     [("other-header", "x")]):
        assert _failure(projects.ListProjects, api.ListProjectsRequest(), metadata=metadata) == (
            grpc.StatusCode.UNAUTHENTICATED, "Unauthorized"), metadata
    assert _failure(training.TrainProject, api.TrainProjectRequest(project_id=str(uuid.uuid4())),
                    metadata=[("training-key", "nosuchkey")]) == (
        grpc.StatusCode.UNAUTHENTICATED, "Unauthorized")
    assert _failure(prediction.ClassifyStream, iter([api.ClassifyImageRequest()]),
                    metadata=[]) == (grpc.StatusCode.UNAUTHENTICATED, "Unauthorized")


def test_a_key_of_the_other_kind_is_permission_denied(stubs, keys):
    projects, training, prediction = stubs
    tkey, pkey = keys
    sent_as_prediction_key = pkey
    sent_as_training_key = [("training-key", pkey[0][1])]
    for metadata in (sent_as_prediction_key, sent_as_training_key):
        assert _failure(projects.ListProjects, api.ListProjectsRequest(), metadata=metadata) == (
            grpc.StatusCode.PERMISSION_DENIED, "Unauthorized")
        assert _failure(training.TrainProject, api.TrainProjectRequest(
            project_id=str(uuid.uuid4())), metadata=metadata) == (
            grpc.StatusCode.PERMISSION_DENIED, "Unauthorized")
    assert _failure(prediction.ClassifyImage, api.ClassifyImageRequest(), metadata=tkey) == (
        grpc.StatusCode.PERMISSION_DENIED, "Unauthorized")


def test_another_accounts_project_is_not_found(live, stubs, trained, credentials):
    projects, training, prediction = stubs
    metadata = ServiceClient(live.layout.addr("metadata"), MetadataServiceStub, timeout=10,
                             credential=credentials[internal_auth.GATEWAY])
    try:
        other = metadata.CreateAccount(mpb.CreateAccountRequest(name="grpc-other")).account
    finally:
        metadata.close()
    tkey = [("training-key", other.training_key)]
    pkey = [("prediction-key", other.prediction_key)]
    pid, iid = trained["project"].id, trained["iteration"].id
    image = trained["test"][0][0]
    assert pid not in {p.id for p in projects.ListProjects(
        api.ListProjectsRequest(), metadata=tkey).projects}
    calls = [
        (projects.GetProject, api.GetProjectRequest(project_id=pid)),
        (projects.DeleteProject, api.DeleteProjectRequest(project_id=pid)),
        (projects.ListTags, api.ListTagsRequest(project_id=pid)),
        (projects.CreateTag, api.CreateTagRequest(project_id=pid, name="stolen")),
        (projects.DeleteTag, api.DeleteTagRequest(project_id=pid, tag_id=trained["tags"][0].id)),
        (projects.ListImages, api.ListImagesRequest(project_id=pid)),
        (projects.UploadImages, _stream(pid, [(image, [])])),
        (training.TrainProject, api.TrainProjectRequest(project_id=pid, force_train=True)),
        (training.GetIteration, api.GetIterationRequest(project_id=pid, iteration_id=iid)),
        (training.ListIterations, api.ListIterationsRequest(project_id=pid)),
        (training.GetIterationPerformance, api.GetIterationPerformanceRequest(
            project_id=pid, iteration_id=iid)),
        (training.PublishIteration, api.PublishIterationRequest(
            project_id=pid, iteration_id=iid, publish_name="stolen",
            prediction_resource_id=other.prediction_resource_id)),
        (training.UnpublishIteration, api.UnpublishIterationRequest(project_id=pid, iteration_id=iid)),
        (training.QueryPredictions, api.QueryPredictionsRequest(project_id=pid)),
    ]
    for call, request in calls:
        status, code = _failure(call, request, metadata=tkey)
        assert status == grpc.StatusCode.NOT_FOUND and code.startswith("NotFound"), (call, code)
    status, code = _failure(prediction.ClassifyImage, api.ClassifyImageRequest(
        project_id=pid, publish_name=PUBLISH_NAME, image=image), metadata=pkey)
    assert status == grpc.StatusCode.NOT_FOUND and code.startswith("NotFound"), code


def test_bad_uploads_are_invalid_argument_and_store_nothing(live, stubs, keys, trained, credentials):
    projects, _training, _prediction = stubs
    tkey, _pkey = keys
    project = projects.CreateProject(api.CreateProjectRequest(
        name=f"grpc-bad-{uuid.uuid4().hex[:6]}"), metadata=tkey).project
    tag = projects.CreateTag(api.CreateTagRequest(project_id=project.id, name="t"),
                             metadata=tkey).tag
    good = [img for img, _label in trained["test"]]
    cases = [
        ("not an image", [(good[0], [tag.id]), (b"GIF89a but not really", [tag.id])],
         "BadRequestImageFormat"),
        ("too many images", [(good[i % len(good)], [tag.id]) for i in range(65)],
         "BadRequestExceededBatchSize"),
        ("unknown tag", [(good[1], [tag.id]), (good[2], [str(uuid.uuid4())])],
         "BadRequestImageTags"),
        ("a tag that is no id", [(good[1], ["not-a-guid"])], "BadRequestImageTags"),
    ]
    for what, images, expected in cases:
        assert _failure(projects.UploadImages, _stream(project.id, images), metadata=tkey) == (
            grpc.StatusCode.INVALID_ARGUMENT, expected), what
    assert _failure(projects.UploadImages, iter([api.UploadImagesRequest(project_id=project.id)]),
                    metadata=tkey) == (grpc.StatusCode.INVALID_ARGUMENT, "BadRequestImageBatch")
    assert projects.ListImages(api.ListImagesRequest(project_id=project.id),
                               metadata=tkey).total == 0
    # Not even the bytes: the unknown-tag batch stored its images before AddImages refused it,
    # and removed them again.
    storage = ServiceClient(live.layout.addr("storage"), StorageServiceStub, timeout=10,
                            credential=credentials[internal_auth.GATEWAY])
    try:
        for data in good[:3]:
            with pytest.raises(NotFound):
                storage.GetImage(spb.GetImageRequest(
                    project_id=project.id, sha256=hashlib.sha256(data).hexdigest(),
                    variant=spb.IMAGE_VARIANT_ORIGINAL))
    finally:
        storage.close()
    # A chunk before any image, and no project.
    assert _failure(projects.UploadImages, iter([api.UploadImagesRequest(
        project_id=project.id, chunk=b"x")]), metadata=tkey) == (
        grpc.StatusCode.INVALID_ARGUMENT, "BadRequestImageBatch")
    assert _failure(projects.UploadImages, iter([api.UploadImagesRequest(
        image=api.NewImage(data=good[0]))]), metadata=tkey) == (
        grpc.StatusCode.INVALID_ARGUMENT, "BadRequestRequiredParamIsNull")
    # The same batch, valid, is stored whole; again, every image is a duplicate.
    first = projects.UploadImages(_stream(project.id, [(g, [tag.id]) for g in good]), metadata=tkey)
    again = projects.UploadImages(_stream(project.id, [(g, [tag.id]) for g in good]), metadata=tkey)
    assert first.is_batch_successful and not again.is_batch_successful
    assert [r.status for r in again.images] == ["OKDuplicate"] * len(good)
    assert [r.image.id for r in again.images] == [r.image.id for r in first.images]
    projects.DeleteProject(api.DeleteProjectRequest(project_id=project.id), metadata=tkey)
    assert _failure(projects.GetProject, api.GetProjectRequest(project_id=project.id),
                    metadata=tkey) == (grpc.StatusCode.NOT_FOUND, "NotFoundProject")


def test_health_and_reflection_on_the_public_port(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", "loupe.v1.api.Projects", "loupe.v1.api.Training", "loupe.v1.api.Prediction"):
        assert health.Check(health_pb2.HealthCheckRequest(service=name)).status == \
            health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2 as reflection
    from grpc_reflection.v1alpha import reflection_pb2_grpc
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = stub.ServerReflectionInfo(iter([reflection.ServerReflectionRequest(list_services="")]))
    names = {s.name for a in answers for s in a.list_services_response.service}
    assert {"loupe.v1.api.Projects", "loupe.v1.api.Training", "loupe.v1.api.Prediction"} <= names


def test_the_example_client_runs(live_env, tmp_path):
    run_example_client(live_env, tmp_path)


def run_example_client(loupe_env: dict[str, str], tmp_path: Path) -> None:
    """examples/grpc_client.py against the Loupe of `loupe_env` (LOUPE_GRPC_ENDPOINT and keys),
    with two tags of Fashion-MNIST images: the whole flow, checked from its output."""
    for label, name in enumerate(("top", "trouser")):
        folder = tmp_path / name
        folder.mkdir()
        for i, (img, _label) in enumerate(load_fashion_mnist("train", (label,), 6, seed=3)):
            (folder / f"{i}.png").write_bytes(img)
    env = {**os.environ, **loupe_env}
    env.pop("PYTHONPATH", None)  # the example finds the checkout's generated code itself
    out = subprocess.run([sys.executable, str(REPO / "examples" / "grpc_client.py"),
                          "--images", str(tmp_path)], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "uploaded 12 images (batch successful: True)" in out.stdout
    assert "training: Completed 100.0%" in out.stdout
    assert "stored predictions: 2" in out.stdout
    assert out.stdout.count("top (") + out.stdout.count("trouser (") == 2, out.stdout


GRPCURL_VERSION = "v1.9.3"


def _grpcurl() -> Path:
    """grpcurl from the Loupe cache, built there once with `go install` (about a minute)."""
    from loupe_stack.layout import cache_dir

    gobin = cache_dir() / "go-bin"
    binary = gobin / "grpcurl"
    stamp = gobin / "grpcurl.version"
    if binary.exists() and stamp.exists() and stamp.read_text().strip() == GRPCURL_VERSION:
        return binary
    assert shutil.which("go"), "Go is needed (make deps builds MinIO with it too)"
    gobin.mkdir(parents=True, exist_ok=True)
    subprocess.run(["go", "install", f"github.com/fullstorydev/grpcurl/cmd/grpcurl@{GRPCURL_VERSION}"],
                   env={**os.environ, "GOBIN": str(gobin)}, check=True, timeout=900)
    stamp.write_text(GRPCURL_VERSION + "\n")
    return binary


def test_the_grpcurl_commands_of_the_docs_work(live_env, trained):
    grpcurl = _grpcurl()
    endpoint = live_env["LOUPE_GRPC_ENDPOINT"]
    proto = ["-plaintext", "-import-path", str(REPO / "protos"), "-proto", "loupe/v1/api.proto"]
    key = ["-H", f"training-key: {live_env['LOUPE_TRAINING_KEY']}"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(grpcurl), *args], capture_output=True, text=True, timeout=60)

    listed = run(*proto, endpoint, "list")
    assert listed.returncode == 0 and "loupe.v1.api.Training" in listed.stdout, listed.stderr
    projects = run(*proto, *key, endpoint, "loupe.v1.api.Projects/ListProjects")
    assert projects.returncode == 0, projects.stderr
    assert trained["project"].id in projects.stdout
    refused = run(*proto, "-v", *key, "-d", json.dumps({"project_id": str(uuid.uuid4())}),
                  endpoint, "loupe.v1.api.Projects/GetProject")
    assert refused.returncode != 0
    assert "Code: NotFound" in refused.stdout + refused.stderr
    assert "loupe-error-code: NotFoundProject" in refused.stdout + refused.stderr
    if importlib.util.find_spec("grpc_reflection") is not None:  # the server reflects itself
        reflected = run("-plaintext", endpoint, "list")
        assert "loupe.v1.api.Prediction" in reflected.stdout, reflected.stderr


def test_every_public_rpc_refuses_a_caller_without_a_key(channel):
    """Walks every method of every public service (from the proto's descriptor, so a new RPC
    is covered the day it is added): without a key each answers UNAUTHENTICATED."""
    from google.protobuf import message_factory

    methods = [m for s in api.DESCRIPTOR.services_by_name.values() for m in s.methods]
    assert len(methods) == 18  # Projects 9, Training 7, Prediction 2
    for method in methods:
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        path = f"/{method.containing_service.full_name}/{method.name}"
        kind = {(False, False): channel.unary_unary, (True, False): channel.stream_unary,
                (False, True): channel.unary_stream, (True, True): channel.stream_stream}[
            (method.client_streaming, method.server_streaming)]
        call = kind(path, request_serializer=request_cls.SerializeToString,
                    response_deserializer=response_cls.FromString)
        request = iter([request_cls()]) if method.client_streaming else request_cls()
        assert _failure(call, request, timeout=10) == (
            grpc.StatusCode.UNAUTHENTICATED, "Unauthorized"), path
