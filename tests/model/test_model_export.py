"""loupe_model.export: the ONNX classifier gives the service's probabilities on real images."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from loupe_model.backbone import BACKBONES, Embedder, default_cache_dir, embed_images, ensure_onnx
from loupe_model.datasets import load_fashion_mnist
from loupe_model.export import INPUT, PROBABILITIES, export_onnx_classifier, export_zip
from loupe_model.head import LINEAR, MLP, train_head
from loupe_model.preprocess import preprocess_bytes

pytestmark = pytest.mark.model

SPEC = BACKBONES["lite0"]
CLASSES = [0, 1, 7, 9]


@pytest.fixture(scope="module")
def onnx_path():
    return ensure_onnx(SPEC, default_cache_dir())


@pytest.fixture(scope="module")
def embedder(onnx_path) -> Embedder:
    return Embedder(onnx_path, threads=2)


@pytest.fixture(scope="module")
def data(embedder):
    train = load_fashion_mnist("train", CLASSES, 6, seed=3)
    test = load_fashion_mnist("test", CLASSES, 3, seed=4)
    features = embed_images(embedder, [img for img, _ in train])
    labels = np.eye(len(CLASSES), dtype=np.float32)[[y for _, y in train]]
    batch = np.stack([preprocess_bytes(img, SPEC.image_size) for img, _ in test])
    return features, labels, batch


def _head(data, multilabel: bool, kind: str = LINEAR):
    features, labels, _ = data
    names = [f"class {c}" for c in CLASSES]
    return train_head(features, labels, multilabel, seed=0, tag_ids=[f"id-{c}" for c in CLASSES],
                      tag_names=names, backbone="lite0", logit_scale=1.7, kind=kind)


@pytest.mark.parametrize("multilabel", [False, True])
@pytest.mark.parametrize("kind", [LINEAR, MLP])
def test_exported_model_gives_the_head_probabilities(data, embedder, onnx_path, multilabel, kind):
    head = _head(data, multilabel, kind)
    assert head.kind == kind
    blob = export_onnx_classifier(head, onnx_path)
    model = onnx.load_from_string(blob)
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    batch = data[2]
    (got,) = session.run([PROBABILITIES], {INPUT: batch})
    want = head.predict_proba(embedder.embed(batch))
    assert got.shape == want.shape == (len(batch), len(CLASSES))
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    if not multilabel:
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["loupe.tags"]) == head.tag_names
    assert props["loupe.classification_type"] == head.classification_type
    pre = json.loads(props["loupe.preprocessing"])
    assert pre["input_shape"] == ["N", 3, 224, 224] and pre["normalization"]["mean"] == [127.0] * 3


def test_exported_model_handles_a_batch_of_one(data, onnx_path):
    head = _head(data, False)
    session = ort.InferenceSession(export_onnx_classifier(head, onnx_path))
    (one,) = session.run([PROBABILITIES], {INPUT: data[2][:1]})
    assert one.shape == (1, len(CLASSES)) and np.isfinite(one).all()


def test_zip_has_model_labels_and_preprocessing(data, onnx_path):
    head = _head(data, False)
    with zipfile.ZipFile(io.BytesIO(export_zip(head, onnx_path))) as zf:
        assert set(zf.namelist()) == {"model.onnx", "labels.txt", "metadata_properties.json",
                                      "README.md"}
        assert zf.read("labels.txt").decode().splitlines() == head.tag_names
        props = json.loads(zf.read("metadata_properties.json"))
        assert props["preprocessing"]["normalization"]["std"] == [128.0] * 3
        assert [t["id"] for t in props["tags"]] == head.tag_ids
        onnx.checker.check_model(onnx.load_from_string(zf.read("model.onnx")))


def test_mismatched_backbone_is_refused(data, onnx_path):
    head = _head(data, False)
    head.image_size = 240
    with pytest.raises(ValueError, match="image size"):
        export_onnx_classifier(head, onnx_path)
