"""Advanced training through the official SDK: the hidden-layer head is trained by the
training service, stored, published and served by the prediction service like any other."""
from __future__ import annotations

import uuid

import pytest
from azure.cognitiveservices.vision.customvision.training.models import (
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)

from loupe_model.datasets import load_fashion_mnist
from loupe_model.head import MLP, Head

pytestmark = pytest.mark.e2e

CLASSES = (0, 1, 7)
NAMES = ("top", "trouser", "sneaker")


def test_advanced_iteration_trains_the_hidden_layer_head_and_is_served(clients, api):
    trainer, predictor, resource_id = clients
    project = trainer.create_project(f"adv-{uuid.uuid4().hex[:6]}")
    tags = [trainer.create_tag(project.id, name) for name in NAMES]
    data = load_fashion_mnist("train", CLASSES, 20, seed=41)  # the hidden layer needs 20 per tag
    summary = trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=[
        ImageFileCreateEntry(name=f"{i}.png", contents=img, tag_ids=[tags[label].id])
        for i, (img, label) in enumerate(data)]))
    assert summary.is_batch_successful
    iteration = trainer.train_project(project.id, training_type="Advanced", reserved_budget_in_hours=1)
    assert iteration.training_type == "Advanced"
    done = api.wait_iteration(project.id, iteration.id, timeout=240)
    assert done["status"] == "Completed", done
    head = Head.from_bytes(b"".join(trainer.get_artifact(project.id, f"{iteration.id}/head.npz")))
    assert head.kind == MLP and sorted(head.tag_names) == sorted(NAMES)
    perf = trainer.get_iteration_performance(project.id, iteration.id, threshold=0.5)
    assert 0.6 <= perf.precision <= 1.0 and 0.6 <= perf.recall <= 1.0

    trainer.publish_iteration(project.id, iteration.id, "advanced", resource_id)
    held_out = load_fashion_mnist("test", CLASSES, 8, seed=43)
    correct = 0
    for image, label in held_out:
        result = predictor.classify_image(project.id, "advanced", image)
        probs = [p.probability for p in result.predictions]
        assert abs(sum(probs) - 1.0) < 1e-3 and result.iteration == iteration.id
        correct += result.predictions[0].tag_name == NAMES[label]
    assert correct / len(held_out) >= 0.7
    trainer.unpublish_iteration(project.id, iteration.id)
    trainer.delete_project(project.id)
