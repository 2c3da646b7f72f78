"""Iteration export (ONNX) and project export / import through the official SDK (3.1.1).

The central check: the exported model, run with onnxruntime on held-out images preprocessed
with loupe_model.preprocess, gives the probabilities the service's classify answers.
"""
from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
import zipfile

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import requests
from azure.cognitiveservices.vision.customvision.training.models import (
    CustomVisionErrorException,
    ImageFileCreateBatch,
    ImageFileCreateEntry,
)

from loupe_model.datasets import load_fashion_mnist
from loupe_model.preprocess import preprocess_bytes

pytestmark = pytest.mark.e2e

TAGS = ("top", "trouser", "sneaker")
CLASSES = (0, 1, 7)


def _domain(trainer, name: str):
    return next(d for d in trainer.get_domains() if d.name == name)


def _wait(trainer, project_id, iteration):
    deadline = time.monotonic() + 180
    while iteration.status == "Training":
        assert time.monotonic() < deadline, "training did not finish"
        time.sleep(0.5)
        iteration = trainer.get_iteration(project_id, iteration.id)
    assert iteration.status == "Completed", iteration.status
    return iteration


def _project(trainer, domain_name: str, seed: int):
    project = trainer.create_project(f"export-{uuid.uuid4().hex[:6]}",
                                     domain_id=_domain(trainer, domain_name).id)
    tags = [trainer.create_tag(project.id, name) for name in TAGS]
    data = load_fashion_mnist("train", CLASSES, 8, seed=seed)
    entries = [ImageFileCreateEntry(name=f"{i}.png", contents=img, tag_ids=[tags[label].id])
               for i, (img, label) in enumerate(data)]
    assert trainer.create_images_from_files(
        project.id, ImageFileCreateBatch(images=entries)).is_batch_successful
    return project, tags


@pytest.fixture(scope="module")
def compact(clients):
    """A trained General (compact) project: (project, tags, completed iteration)."""
    trainer = clients[0]
    project, tags = _project(trainer, "General (compact)", seed=41)
    iteration = _wait(trainer, project.id, trainer.train_project(project.id))
    assert iteration.exportable and iteration.exportable_to == ["ONNX", "DockerFile"]
    yield project, tags, iteration
    try:
        trainer.unpublish_iteration(project.id, iteration.id)
    except CustomVisionErrorException:
        pass
    trainer.delete_project(project.id)


def test_exported_onnx_gives_the_service_probabilities(clients, compact):
    trainer, predictor, resource_id = clients
    project, tags, iteration = compact
    assert trainer.get_exports(project.id, iteration.id) == []

    started = time.monotonic()
    export = trainer.export_iteration(project.id, iteration.id, "ONNX")
    took = time.monotonic() - started
    assert export.platform == "ONNX" and export.status in ("Exporting", "Done")
    assert export.newer_version_available is False
    deadline = time.monotonic() + 120
    while True:
        (export,) = trainer.get_exports(project.id, iteration.id)
        if export.status != "Exporting":
            break
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert export.status == "Done" and export.download_uri
    print(f"\nONNX export took {took:.2f} s")

    # A plain HTTP client downloads it: the URI is signed, no key needed.
    resp = requests.get(export.download_uri, timeout=60)
    assert resp.status_code == 200, resp.text[:300]
    assert resp.headers["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(resp.content)) as zf:
        names = set(zf.namelist())
        model_bytes = zf.read("model.onnx")
        labels = zf.read("labels.txt").decode().splitlines()
        props = json.loads(zf.read("metadata_properties.json"))
    assert {"model.onnx", "labels.txt", "metadata_properties.json"} <= names
    assert sorted(labels) == sorted(TAGS)
    assert props["preprocessing"]["resize"]["width"] == 224
    onnx.checker.check_model(onnx.load_from_string(model_bytes))
    # A tampered signature is refused.
    assert requests.get(export.download_uri.replace("sig=", "sig=0"), timeout=30).status_code == 401

    trainer.publish_iteration(project.id, iteration.id, "exportprod", resource_id)
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    test = load_fashion_mnist("test", CLASSES, 4, seed=42)
    batch = np.stack([preprocess_bytes(img, 224) for img, _ in test])
    (local,) = session.run(["probabilities"], {"data": batch})
    tag_ids = [t["id"] for t in props["tags"]]
    worst = 0.0
    for row, (img, _label) in zip(local, test):
        answer = predictor.classify_image(project.id, "exportprod", img)
        service = {p.tag_id: p.probability for p in answer.predictions}
        assert set(service) == set(tag_ids)
        np.testing.assert_allclose(row, [service[t] for t in tag_ids], atol=1e-4, rtol=0)
        worst = max(worst, float(np.abs(row - [service[t] for t in tag_ids]).max()))
    print(f"largest |exported - service| probability difference: {worst:.2e}")

    # Exporting again answers the stored export at once.
    again = trainer.export_iteration(project.id, iteration.id, "ONNX")
    assert again.status == "Done"
    assert len(trainer.get_exports(project.id, iteration.id)) == 1


def test_unsupported_platform_and_domain(clients, compact):
    trainer = clients[0]
    project, _tags, iteration = compact
    with pytest.raises(CustomVisionErrorException) as info:
        trainer.export_iteration(project.id, iteration.id, "CoreML")
    assert info.value.error.code == "BadRequestProjectUnsupportedExportPlatform"
    with pytest.raises(CustomVisionErrorException) as info:
        trainer.export_iteration(project.id, iteration.id, "ONNX", flavor="TensorFlowLite")
    assert info.value.error.code == "BadRequestProjectUnsupportedExportPlatform"
    with pytest.raises(CustomVisionErrorException) as info:
        trainer.export_iteration(project.id, str(uuid.uuid4()), "ONNX")
    assert info.value.error.code == "NotFoundIteration"

    general, _ = _project(trainer, "General", seed=43)
    try:
        it = _wait(trainer, general.id, trainer.train_project(general.id))
        assert it.exportable is False
        with pytest.raises(CustomVisionErrorException) as info:
            trainer.export_iteration(general.id, it.id, "ONNX")
        assert info.value.error.code == "BadRequestProjectUnsupportedExportPlatform"
        assert trainer.get_exports(general.id, it.id) == []
    finally:
        trainer.delete_project(general.id)


def _tagging(trainer, project_id) -> list[tuple[str, tuple[str, ...]]]:
    """(sha256 of the original bytes, sorted tag names) of every image, sorted."""
    out = []
    images = trainer.get_images(project_id, take=256)
    for img in images:
        data = requests.get(img.original_image_uri, timeout=30).content
        out.append((hashlib.sha256(data).hexdigest(), tuple(sorted(t.tag_name for t in img.tags or []))))
    return sorted(out)


def test_project_export_import_round_trip(clients, compact):
    trainer = clients[0]
    project, tags, _iteration = compact
    # One untagged image and metadata travel too.
    extra = load_fashion_mnist("test", (9,), 1, seed=44)[0][0]
    added = trainer.create_images_from_data(project.id, extra).images[0].image
    trainer.update_image_metadata(project.id, [added.id], {"source": "export-test"})

    exported = trainer.export_project(project.id)
    assert exported.image_count == 25 and exported.tag_count == 3
    assert exported.iteration_count == 1 and exported.region_count == 0
    assert exported.token and exported.estimated_import_time_in_ms > 0

    imported = trainer.import_project(exported.token, name="imported copy")
    try:
        assert imported.id != project.id and imported.name == "imported copy"
        assert imported.settings.domain_id == project.settings.domain_id
        assert imported.settings.classification_type == project.settings.classification_type
        src_tags = {(t.name, t.type, t.image_count) for t in trainer.get_tags(project.id)}
        dst_tags = {(t.name, t.type, t.image_count) for t in trainer.get_tags(imported.id)}
        assert src_tags == dst_tags
        assert trainer.get_image_count(imported.id) == 25
        assert trainer.get_untagged_image_count(imported.id) == 1
        assert _tagging(trainer, imported.id) == _tagging(trainer, project.id)
        copied = [i for i in trainer.get_untagged_images(imported.id)]
        assert copied[0].metadata == {"source": "export-test"}
        # The copy has no iterations and trains on its own.
        assert trainer.get_iterations(imported.id) == []
    finally:
        trainer.delete_project(imported.id)
    # Without a name the import keeps the original's.
    again = trainer.import_project(exported.token)
    assert again.name == project.name
    trainer.delete_project(again.id)


def test_import_refuses_bad_tokens(clients, compact):
    trainer = clients[0]
    project = compact[0]
    token = trainer.export_project(project.id).token
    body, _, sig = token.partition(".")
    for bad in ("nonsense", token[:-2] + ("00" if not token.endswith("00") else "11"),
                body + "x." + sig):
        with pytest.raises(CustomVisionErrorException) as info:
            trainer.import_project(bad)
        assert info.value.error.code == "BadRequestInvalidImportToken"
