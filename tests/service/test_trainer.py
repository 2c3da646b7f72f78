"""Trainer.run_job in-process against the test stack's real metadata and storage services:
cancellation at every point of a job, and determinism. Cancellation is injected by deleting
the iteration through the real metadata service at a chosen call."""
from __future__ import annotations

import io
import uuid

import numpy as np
import pytest
from PIL import Image

from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import metadata_pb2_grpc, storage_pb2_grpc
from loupe.v1 import storage_pb2 as spb
from loupe.v1 import training_pb2 as tpb
from internal_clients import ByRole
from loupe_common import internal_auth
from loupe_metadata import access as metadata_access
from loupe_storage import access as storage_access
from loupe_common.errors import NotFound
from loupe_model.backbone import get_backbone, make_embedder
from loupe_model.head import LINEAR, MLP, Head
from loupe_training.core import BACKBONE, Trainer

pytestmark = pytest.mark.service


@pytest.fixture(scope="module")
def backends(live, credentials):
    # The trainer's calls go out as a trainer; the set-up a test does as the gateway would.
    trainer_first = (internal_auth.TRAINING, internal_auth.GATEWAY)
    metadata = ByRole(live.layout.addr("metadata"), metadata_pb2_grpc.MetadataServiceStub,
                      credentials, metadata_access.ALLOW, prefer=trainer_first)
    storage = ByRole(live.layout.addr("storage"), storage_pb2_grpc.StorageServiceStub,
                     credentials, storage_access.ALLOW, prefer=trainer_first)
    embedder = make_embedder(get_backbone(BACKBONE), live.service_env()["LOUPE_MODEL_CACHE"])
    account = metadata.CreateAccount(mpb.CreateAccountRequest(name="trainer-tests")).account.id
    yield metadata, storage, embedder, account
    metadata.close()
    storage.close()


def _png(rgb) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (24, 24), rgb).save(buf, format="PNG")
    return buf.getvalue()


def _project_with_iteration(metadata, storage, account, n_per_tag: int = 20,
                            training_type: str = "Regular", budget_hours: float = 0.0):
    """A project with two colour tags and an iteration in Training (not queued on Kafka)."""
    pid = metadata.CreateProject(mpb.CreateProjectRequest(
        account_id=account, name=f"t-{uuid.uuid4().hex[:6]}", classification_type="Multiclass")).project.id
    rng = np.random.default_rng(0)
    new = []
    for base in ((200, 30, 30), (30, 30, 200)):
        tag = metadata.CreateTag(mpb.CreateTagRequest(account_id=account, project_id=pid,
                                                      name=str(base))).tag.id
        for _ in range(n_per_tag):
            data = _png(tuple(int(np.clip(c + rng.integers(-40, 40), 0, 255)) for c in base))
            sha = storage.PutImage(spb.PutImageRequest(project_id=pid, data=data)).sha256
            new.append(mpb.NewImage(sha256=sha, width=24, height=24, content_type="image/png",
                                    size_bytes=len(data), tag_ids=[tag]))
    metadata.AddImages(mpb.AddImagesRequest(account_id=account, project_id=pid, images=new))
    iteration = metadata.CreateIteration(mpb.CreateIterationRequest(
        account_id=account, project_id=pid, training_type=training_type,
        reserved_budget_in_hours=budget_hours, force_train=True)).iteration
    return pid, iteration.id


class DeleteAt:
    """The real metadata client, which deletes the iteration (as DELETE …/iterations/{id}
    does, through the real service) just before the `nth` call of `method`."""

    def __init__(self, metadata, account, pid, iid, method: str, nth: int = 1):
        self._metadata, self._key = metadata, (account, pid, iid)
        self._method, self._nth, self.calls = method, nth, 0

    def __getattr__(self, name):
        real = getattr(self._metadata, name)
        if name != self._method:
            return real

        def call(request, *args, **kwargs):
            self.calls += 1
            if self.calls == self._nth:
                account, pid, iid = self._key
                self._metadata.DeleteIteration(mpb.DeleteIterationRequest(
                    account_id=account, project_id=pid, iteration_id=iid))
            return real(request, *args, **kwargs)

        return call


def _run(metadata, storage, embedder, pid, iid, events=None):
    trainer = Trainer(metadata, storage, embedder, "test-trainer",
                      publish_event=(events.append if events is not None else None))
    return trainer.run_job(tpb.TrainingJob(iteration_id=iid, project_id=pid))


def _artifact_exists(storage, pid, iid) -> bool:
    try:
        storage.GetObject(spb.GetObjectRequest(key=f"artifacts/{pid}/{iid}/head.npz"))
        return True
    except NotFound:
        return False


def test_completed_training_reports_progress_with_eta_and_writes_the_artifact(backends):
    metadata, storage, embedder, account = backends
    pid, iid = _project_with_iteration(metadata, storage, account)
    events: list[tpb.TrainingEvent] = []
    assert _run(metadata, storage, embedder, pid, iid, events).status == "Completed"
    it = metadata.GetIteration(mpb.GetIterationRequest(account_id=account, project_id=pid, iteration_id=iid)).iteration
    assert it.status == "Completed" and _artifact_exists(storage, pid, iid)
    percents = [e.percent for e in events]
    assert percents == sorted(percents) and events[-1].stage == "completed"
    assert any(e.eta_seconds > 0 for e in events[1:-1])


@pytest.mark.parametrize("nth", [1, 2, 3])
def test_deleting_the_iteration_mid_job_cancels_without_an_artifact(backends, nth):
    metadata, storage, embedder, account = backends
    pid, iid = _project_with_iteration(metadata, storage, account)
    events: list[tpb.TrainingEvent] = []
    injected = DeleteAt(metadata, account, pid, iid, "ReportProgress", nth)
    assert _run(injected, storage, embedder, pid, iid, events).status == "Cancelled"
    assert not _artifact_exists(storage, pid, iid)
    assert events[-1].stage == "cancelled"
    assert [i.status for i in metadata.ListIterations(
        mpb.ListIterationsRequest(account_id=account, project_id=pid)).iterations] == []


def test_deleted_just_before_finishing_removes_the_written_artifact(backends):
    metadata, storage, embedder, account = backends
    pid, iid = _project_with_iteration(metadata, storage, account)
    injected = DeleteAt(metadata, account, pid, iid, "FinishIteration")
    assert _run(injected, storage, embedder, pid, iid).status == "Cancelled"
    assert not _artifact_exists(storage, pid, iid)


def test_job_for_a_deleted_iteration_is_skipped(backends):
    metadata, storage, embedder, account = backends
    pid, iid = _project_with_iteration(metadata, storage, account)
    metadata.DeleteIteration(mpb.DeleteIterationRequest(account_id=account, project_id=pid, iteration_id=iid))
    assert _run(metadata, storage, embedder, pid, iid).status == "Skipped"


def test_same_images_give_the_same_model_in_another_iteration(backends):
    metadata, storage, embedder, account = backends
    pid, first = _project_with_iteration(metadata, storage, account)
    assert _run(metadata, storage, embedder, pid, first).status == "Completed"
    second = metadata.CreateIteration(mpb.CreateIterationRequest(
        account_id=account, project_id=pid, training_type="Regular", force_train=True)).iteration.id
    assert _run(metadata, storage, embedder, pid, second).status == "Completed"
    heads = [Head.from_bytes(storage.GetObject(spb.GetObjectRequest(
        key=f"artifacts/{pid}/{iid}/head.npz")).data) for iid in (first, second)]
    assert np.array_equal(heads[0].weights, heads[1].weights)
    assert np.array_equal(heads[0].bias, heads[1].bias)


def _head(storage, pid, iid) -> Head:
    return Head.from_bytes(storage.GetObject(spb.GetObjectRequest(key=f"artifacts/{pid}/{iid}/head.npz")).data)


def test_advanced_training_fits_the_hidden_layer_head_reporting_every_fold(backends):
    metadata, storage, embedder, account = backends
    pid, iid = _project_with_iteration(metadata, storage, account, training_type="Advanced", budget_hours=1)
    events: list[tpb.TrainingEvent] = []
    assert _run(metadata, storage, embedder, pid, iid, events).status == "Completed"
    head = _head(storage, pid, iid)
    assert head.kind == MLP
    evaluating = [e.percent for e in events if e.stage == "evaluating"]
    assert len(evaluating) == 1 + 5 and evaluating == sorted(evaluating)  # start + each fold
    it = metadata.GetIteration(mpb.GetIterationRequest(account_id=account, project_id=pid, iteration_id=iid)).iteration
    assert (it.status, it.training_type) == ("Completed", "Advanced")
    assert it.performance.precision >= 0.9 and it.performance.recall >= 0.9
    assert "budget" not in events[-1].message


def test_advanced_training_cancelled_between_folds(backends):
    metadata, storage, embedder, account = backends
    pid, iid = _project_with_iteration(metadata, storage, account, training_type="Advanced")
    events: list[tpb.TrainingEvent] = []
    # ReportProgress calls: loading, 2 feature batches of 32, evaluating start, fold 1, fold 2:
    # the iteration is deleted just before the report of fold 2.
    injected = DeleteAt(metadata, account, pid, iid, "ReportProgress", 6)
    assert _run(injected, storage, embedder, pid, iid, events).status == "Cancelled"
    assert not _artifact_exists(storage, pid, iid)
    stages = [e.stage for e in events]
    assert stages[-1] == "cancelled" and "training" not in stages
    assert [round(e.percent) for e in events if e.stage == "evaluating"] == [82, 84, 86]


def test_advanced_training_over_its_budget_trains_the_regular_head_and_says_so(backends):
    metadata, storage, embedder, account = backends
    pid, iid = _project_with_iteration(metadata, storage, account, training_type="Advanced",
                                       budget_hours=0.1 / 3600)  # a tenth of a second
    events: list[tpb.TrainingEvent] = []
    assert _run(metadata, storage, embedder, pid, iid, events).status == "Completed"
    assert _head(storage, pid, iid).kind == LINEAR
    assert events[-1].stage == "completed" and "budget" in events[-1].message
    percents = [e.percent for e in events]
    assert percents == sorted(percents)  # the fallback does not move the progress bar back



def test_advanced_training_with_few_images_per_tag_trains_the_linear_head_and_says_so(backends):
    metadata, storage, embedder, account = backends
    pid, iid = _project_with_iteration(metadata, storage, account, n_per_tag=8, training_type="Advanced")
    events: list[tpb.TrainingEvent] = []
    assert _run(metadata, storage, embedder, pid, iid, events).status == "Completed"
    assert _head(storage, pid, iid).kind == LINEAR
    assert "8 images, fewer than the 20" in events[-1].message
