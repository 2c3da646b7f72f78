"""The official SDK's listing, counting and deleting operations, with paging at its edges."""
from __future__ import annotations

import time
import uuid

import pytest
import requests
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)
from msrest.authentication import ApiKeyCredentials
from msrest.exceptions import HttpOperationError

from loupe_model.datasets import load_fashion_mnist
from loupe_model.head import Head

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trainer(live_env) -> CustomVisionTrainingClient:
    return CustomVisionTrainingClient(
        live_env["LOUPE_ENDPOINT"], ApiKeyCredentials(in_headers={"Training-key": live_env["LOUPE_TRAINING_KEY"]}))


def _code(call, *args, **kwargs) -> str:
    with pytest.raises(CustomVisionErrorException) as info:
        call(*args, **kwargs)
    return info.value.error.code


def test_domains(trainer):
    domains = trainer.get_domains()
    assert {d.type for d in domains} == {"Classification"}
    for d in domains:
        assert trainer.get_domain(d.id).name == d.name
    assert _code(trainer.get_domain, str(uuid.uuid4())) == "NotFoundDomain"


def test_listing_counting_paging_and_deleting(trainer, live_env):
    project = trainer.create_project(f"list-{uuid.uuid4().hex[:6]}")
    pid = project.id
    a, b = trainer.create_tag(pid, "a"), trainer.create_tag(pid, "b")
    data = load_fashion_mnist("train", (0, 1, 2), 6, seed=61)
    entries = []
    for i, (img, label) in enumerate(data):
        tags = [[a.id], [b.id], []][label]
        entries.append(ImageFileCreateEntry(name=f"{i}.png", contents=img, tag_ids=tags))
    batch = ImageFileCreateBatch(images=entries, metadata={"source": "fashion-mnist"})
    assert trainer.create_images_from_files(pid, batch).is_batch_successful

    assert trainer.get_image_count(pid) == 18
    assert trainer.get_tagged_image_count(pid) == 12
    assert trainer.get_untagged_image_count(pid) == 6
    assert trainer.get_tagged_image_count(pid, tag_ids=[a.id]) == 6
    assert len(trainer.get_tagged_images(pid, tag_ids=[b.id])) == 6
    assert all(not i.tags for i in trainer.get_untagged_images(pid))

    # Paging: stable, complete, without overlaps, in both orders.
    newest = trainer.get_images(pid, take=256)
    assert len(newest) == 18
    pages = [trainer.get_images(pid, take=5, skip=s) for s in range(0, 20, 5)]
    assert [i.id for p in pages for i in p] == [i.id for i in newest]
    oldest = trainer.get_images(pid, order_by="Oldest", take=256)
    assert [i.id for i in oldest] == [i.id for i in reversed(newest)]
    assert all(i.original_image_uri and i.thumbnail_uri for i in newest)
    assert all(i.metadata == {"source": "fashion-mnist"} for i in newest)
    # take is capped at 256 by Custom Vision (the SDK checks it itself; raw HTTP gets a 400)
    resp = requests.get(f"{live_env['LOUPE_ENDPOINT']}/customvision/v3.3/training/projects/{pid}/images",
                        params={"take": 257}, headers={"Training-Key": live_env["LOUPE_TRAINING_KEY"]}, timeout=30)
    assert resp.status_code == 400 and resp.json()["code"].startswith("BadRequest")

    # deleting a tag unlinks its images (they become untagged), counts stay true
    trainer.delete_tag(pid, b.id)
    assert [t.name for t in trainer.get_tags(pid)] == ["a"]
    assert trainer.get_untagged_image_count(pid) == 12
    assert _code(trainer.get_tag, pid, b.id) == "NotFoundTag"

    # iterations: list, delete (refused while published)
    second = trainer.create_tag(pid, "b2")
    trainer.create_images_from_files(pid, ImageFileCreateBatch(images=[
        ImageFileCreateEntry(name=f"x{i}.png", contents=img, tag_ids=[second.id])
        for i, (img, label) in enumerate(data) if label == 2]))
    iteration = trainer.train_project(pid)
    deadline = time.monotonic() + 180
    while trainer.get_iteration(pid, iteration.id).status == "Training":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert [i.id for i in trainer.get_iterations(pid)] == [iteration.id]
    # the iteration's trained head is an artifact of the project
    head = Head.from_bytes(b"".join(trainer.get_artifact(pid, f"{iteration.id}/head.npz")))
    assert sorted(head.tag_names) == ["a", "b2"]
    # (the SDK raises a plain HttpOperationError for this streaming operation; the body is ours)
    for path, status, code in (("../other/head.npz", 400, "BadRequestInvalidArtifactUri"),
                               ("nothing/here.npz", 404, "NotFound")):
        with pytest.raises(HttpOperationError) as info:
            trainer.get_artifact(pid, path)
        assert info.value.response.status_code == status
        assert info.value.response.json()["code"] == code
    trainer.publish_iteration(pid, iteration.id, "listing", live_env["LOUPE_PREDICTION_RESOURCE_ID"])
    assert _code(trainer.delete_iteration, pid, iteration.id) == "BadRequestIterationIsPublished"
    trainer.unpublish_iteration(pid, iteration.id)
    trainer.delete_iteration(pid, iteration.id)
    assert trainer.get_iterations(pid) == []
    assert _code(trainer.get_iteration, pid, iteration.id) == "NotFoundIteration"

    # delete some images, then all
    some = [i.id for i in newest[:3]]
    trainer.delete_images(pid, image_ids=some)
    assert trainer.get_image_count(pid) == 15
    trainer.delete_images(pid, all_images=True)
    assert trainer.get_image_count(pid) == 0
    trainer.delete_project(pid)
