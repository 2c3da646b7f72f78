"""The official Custom Vision SDK (3.1.1), unmodified, against Loupe."""
from __future__ import annotations

import time
import uuid

import pytest
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)

from loupe_model.datasets import load_fashion_mnist

pytestmark = pytest.mark.e2e


def sdk_quickstart(trainer, predictor, resource_id: str) -> None:
    """The Custom Vision Python quickstart, step by step, with the official SDK's clients: create
    a project and tags, upload (files and multipart data), train, read performance, publish,
    classify (stored and nostore), unpublish, delete."""
    domains = trainer.get_domains()
    general = next(d for d in domains if d.name == "General")
    project = trainer.create_project(f"sdk-{uuid.uuid4().hex[:6]}", domain_id=general.id)
    assert project.settings.domain_id == general.id
    tags = [trainer.create_tag(project.id, name) for name in ("top", "trouser")]
    data = load_fashion_mnist("train", (0, 1), 8, seed=21)

    entries = [ImageFileCreateEntry(name=f"{i}.png", contents=img, tag_ids=[tags[label].id])
               for i, (img, label) in enumerate(data) if i % 8 != 7]
    summary = trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=entries))
    assert summary.is_batch_successful
    assert all(i.status == "OK" for i in summary.images)
    # create_images_from_data sends a multipart part named imageData without a filename
    for i, (img, label) in enumerate(data):
        if i % 8 == 7:
            result = trainer.create_images_from_data(project.id, img, tag_ids=[tags[label].id])
            assert result.images[0].status == "OK"
    assert sorted(t.image_count for t in trainer.get_tags(project.id)) == [8, 8]

    iteration = trainer.train_project(project.id)
    assert iteration.status == "Training"
    deadline = time.monotonic() + 180
    while iteration.status == "Training":
        assert time.monotonic() < deadline
        time.sleep(0.5)
        iteration = trainer.get_iteration(project.id, iteration.id)
    assert iteration.status == "Completed"
    perf = trainer.get_iteration_performance(project.id, iteration.id)
    assert {p.name for p in perf.per_tag_performance} == {"top", "trouser"}

    trainer.publish_iteration(project.id, iteration.id, "sdkprod", resource_id)
    test = load_fashion_mnist("test", (0, 1), 5, seed=22)
    right = 0
    for img, label in test:
        result = predictor.classify_image(project.id, "sdkprod", img)
        best = max(result.predictions, key=lambda p: p.probability)
        right += best.tag_name == ("top", "trouser")[label]
    assert right >= 8
    nostore = predictor.classify_image_with_no_store(project.id, "sdkprod", test[0][0])
    assert len(nostore.predictions) == 2

    trainer.unpublish_iteration(project.id, iteration.id)
    trainer.delete_project(project.id)
    with pytest.raises(CustomVisionErrorException) as info:
        trainer.get_project(project.id)
    assert info.value.error.code == "NotFoundProject"


def test_quickstart_flow_with_the_sdk(clients):
    """The Custom Vision Python quickstart, step by step."""
    sdk_quickstart(*clients)


def test_sdk_errors_carry_custom_vision_codes(clients):
    trainer, _, _ = clients
    project = trainer.create_project(f"sdk-err-{uuid.uuid4().hex[:6]}")
    trainer.create_tag(project.id, "dup")
    with pytest.raises(CustomVisionErrorException) as info:
        trainer.create_tag(project.id, "dup")
    assert info.value.error.code == "BadRequestTagNameNotUnique"
    with pytest.raises(CustomVisionErrorException) as info:
        trainer.train_project(project.id)
    assert info.value.error.code == "BadRequestTrainingValidationFailed"
    trainer.delete_project(project.id)
