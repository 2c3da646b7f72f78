"""The official SDK's image listing and counting with iterationId (the iteration's frozen
training set) and with a `$filter` over image metadata."""
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
    ImageTagCreateEntry,
)
from msrest.authentication import ApiKeyCredentials

from loupe_model.datasets import load_fashion_mnist

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trainer(live_env) -> CustomVisionTrainingClient:
    return CustomVisionTrainingClient(
        live_env["LOUPE_ENDPOINT"],
        ApiKeyCredentials(in_headers={"Training-key": live_env["LOUPE_TRAINING_KEY"]}),
    )


def _error(call, *args, **kwargs):
    with pytest.raises(CustomVisionErrorException) as info:
        call(*args, **kwargs)
    return info.value


def _upload(trainer, pid, data, tags, metadata=None) -> list[str]:
    entries = [
        ImageFileCreateEntry(name=f"{i}.png", contents=img, tag_ids=tags(label))
        for i, (img, label) in enumerate(data)
    ]
    summary = trainer.create_images_from_files(pid, ImageFileCreateBatch(images=entries))
    assert summary.is_batch_successful, [i.status for i in summary.images]
    ids = [i.image.id for i in summary.images]
    if metadata:
        trainer.update_image_metadata(pid, ids, metadata)
    return ids


def _wait(trainer, pid, iteration):
    deadline = time.monotonic() + 240
    while iteration.status == "Training":
        assert time.monotonic() < deadline
        time.sleep(0.5)
        iteration = trainer.get_iteration(pid, iteration.id)
    return iteration


def test_listing_and_counting_by_iteration(trainer):
    pid = trainer.create_project(f"iterimg-{uuid.uuid4().hex[:6]}").id
    a, b = trainer.create_tag(pid, "a"), trainer.create_tag(pid, "b")
    by_label = {0: [a.id], 1: [b.id]}
    first = _upload(trainer, pid, load_fashion_mnist("train", (0, 1), 5, seed=71),
                    lambda label: by_label[label])
    untagged = _upload(trainer, pid, load_fashion_mnist("train", (2,), 2, seed=72), lambda _: [])
    iteration = trainer.train_project(pid)
    it = iteration.id

    # After the iteration: more images, a retag, a deleted image.
    later = _upload(trainer, pid, load_fashion_mnist("train", (3,), 3, seed=73), lambda _: [a.id])
    a_images = trainer.get_tagged_images(pid, iteration_id=it, tag_ids=[a.id], take=256)
    moved = a_images[0].id
    trainer.delete_image_tags(pid, [moved], [a.id])
    trainer.create_image_tags(pid, [
        ImageTagCreateEntry(image_id=moved, tag_id=b.id),
        ImageTagCreateEntry(image_id=untagged[0], tag_id=b.id),
    ])

    # Workspace: everything, as it is now.
    assert trainer.get_image_count(pid) == 15
    assert trainer.get_tagged_image_count(pid) == 14
    assert trainer.get_untagged_image_count(pid) == 1
    assert trainer.get_tagged_image_count(pid, tag_ids=[a.id]) == 7

    # The iteration: its 10 training images with the tags they had.
    assert trainer.get_image_count(pid, iteration_id=it) == 10
    assert trainer.get_tagged_image_count(pid, iteration_id=it) == 10
    assert trainer.get_untagged_image_count(pid, iteration_id=it) == 0
    assert trainer.get_tagged_image_count(pid, iteration_id=it, tag_ids=[a.id]) == 5
    assert trainer.get_image_count(pid, iteration_id=it, tag_ids=[b.id]) == 5
    snap = trainer.get_images(pid, iteration_id=it, take=256)
    assert {i.id for i in snap} == set(first)
    assert not {i.id for i in snap} & set(later + untagged)
    tags = {i.id: [t.tag_id for t in i.tags] for i in snap}
    assert tags[moved] == [a.id]
    assert trainer.get_images(pid, take=256)[0].id in later  # workspace sees the new ones
    assert not trainer.get_untagged_images(pid, iteration_id=it)
    assert len(trainer.get_tagged_images(pid, iteration_id=it, take=3, skip=8)) == 2

    by_ids = trainer.get_images_by_ids(pid, image_ids=[moved, later[0]], iteration_id=it)
    assert [i.id for i in by_ids] == [moved] and [t.tag_id for t in by_ids[0].tags] == [a.id]
    now = trainer.get_images_by_ids(pid, image_ids=[moved, later[0]])
    assert {i.id for i in now} == {moved, later[0]}
    assert [t.tag_id for t in next(i for i in now if i.id == moved).tags] == [b.id]

    # A second iteration snapshots the new state; the first keeps its own.
    _wait(trainer, pid, iteration)
    second = _wait(trainer, pid, trainer.train_project(pid))
    assert trainer.get_image_count(pid, iteration_id=second.id) == 14
    assert trainer.get_image_count(pid, iteration_id=it) == 10

    unknown = str(uuid.uuid4())
    for call in (trainer.get_images, trainer.get_image_count, trainer.get_tagged_images,
                 trainer.get_untagged_images, trainer.get_tagged_image_count,
                 trainer.get_untagged_image_count):
        err = _error(call, pid, iteration_id=unknown)
        assert err.error.code == "NotFoundIteration", call
    assert _error(trainer.get_images_by_ids, pid, image_ids=[moved],
                  iteration_id=unknown).error.code == "NotFoundIteration"


def test_metadata_filter(trainer, live_env):
    pid = trainer.create_project(f"filter-{uuid.uuid4().hex[:6]}").id
    a = trainer.create_tag(pid, "a")
    data = load_fashion_mnist("train", (0, 1, 2), 2, seed=81)
    x1 = _upload(trainer, pid, data[:2], lambda _: [a.id], {"site": "x", "cam": "1"})
    x2 = _upload(trainer, pid, data[2:4], lambda _: [], {"site": "x", "cam": "2"})
    y1 = _upload(trainer, pid, data[4:], lambda _: [a.id], {"site": "y", "cam": "1"})

    def ids(expr, **kw):
        return {i.id for i in trainer.get_images(pid, filter=expr, take=256, **kw)}

    assert ids("metadata=site eq 'x'") == set(x1 + x2)
    assert ids("metadata=site eq 'x' and cam ne '2'") == set(x1)
    assert ids("metadata/site eq 'y' or metadata/cam eq '2'") == set(y1 + x2)
    assert ids("(site eq 'x' or site eq 'y') and cam eq '1'") == set(x1 + y1)
    assert ids("site eq 'z'") == set()
    assert ids("site eq 'x'", tagging_status="Tagged") == set(x1)
    assert trainer.get_image_count(pid, filter="cam eq '1'") == 4
    assert trainer.get_image_count(pid, filter="cam eq '1'", tagging_status="Untagged") == 0
    assert trainer.get_image_count(pid, filter="site ne 'x'", tag_ids=[a.id]) == 2

    for bad in ("site gt 'x'", "site eq x", "site eq 'x' and", "contains(site, 'x')"):
        err = _error(trainer.get_images, pid, filter=bad)
        assert err.response.status_code == 400 and "$filter" in err.error.message, bad
        assert _error(trainer.get_image_count, pid, filter=bad).response.status_code == 400

    # Raw HTTP: the parameter is `$filter`; an injection attempt is just an unmatched value.
    resp = requests.get(
        f"{live_env['LOUPE_ENDPOINT']}/customvision/v3.4-preview/training/projects/{pid}/images",
        params={"$filter": "site eq 'x'' or ''1''=''1'"},
        headers={"Training-Key": live_env["LOUPE_TRAINING_KEY"]}, timeout=30,
    )
    assert resp.status_code == 200 and resp.json() == []
