"""loupe_model.backbone, serving, archive, the TorchServe handler, and train_quick end to end.

The ONNX export is cached in $LOUPE_MODEL_CACHE (default ~/.cache/loupe/models), so only the
first run pays for it.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from loupe_model import serving
from loupe_model.backbone import (
    BACKBONES,
    Embedder,
    build_feature_model,
    default_cache_dir,
    embed_images,
    ensure_onnx,
    make_embedder,
)
from loupe_model.datasets import load_fashion_mnist
from loupe_model.preprocess import InvalidImage, preprocess_bytes
from loupe_model.train import train_quick

SPEC = BACKBONES["lite0"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def onnx_path() -> Path:
    return ensure_onnx(SPEC, default_cache_dir())


@pytest.fixture(scope="session")
def embedder(onnx_path) -> Embedder:
    return Embedder(onnx_path, threads=2)


@pytest.fixture(scope="session")
def sample_images() -> list[bytes]:
    """A real photo-like JPEG, a grey Fashion-MNIST PNG and a flat RGBA PNG."""
    rng = np.random.default_rng(0)
    smooth = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    buf = io.BytesIO()
    smooth.resize((640, 480), Image.Resampling.BICUBIC).save(buf, "JPEG", quality=90)
    flat = io.BytesIO()
    Image.new("RGBA", (50, 80), (30, 200, 90, 255)).save(flat, "PNG")
    fashion = load_fashion_mnist("test", [7], 1, seed=0)[0][0]
    return [buf.getvalue(), fashion, flat.getvalue()]


def test_onnx_matches_torch_feature_model(embedder, sample_images):
    import torch

    batch = np.stack([preprocess_bytes(b, SPEC.image_size) for b in sample_images])
    with torch.inference_mode():
        expected = build_feature_model(SPEC)(torch.from_numpy(batch)).numpy()
    got = embedder.embed(batch)
    assert got.shape == (3, SPEC.feature_dim) and got.dtype == np.float32
    # Deep-stage features reach ~25 in magnitude: float32 rounding differs by ~1e-5 relative.
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    assert np.abs(got).max() > 0.1  # not an all-zero output


def test_export_is_cached_single_file(onnx_path):
    mtime = onnx_path.stat().st_mtime_ns
    assert ensure_onnx(SPEC, onnx_path.parent) == onnx_path
    assert onnx_path.stat().st_mtime_ns == mtime
    assert not Path(str(onnx_path) + ".data").exists()
    assert onnx_path.stat().st_size > 10_000_000  # the weights are inside the file


def test_dynamic_batch_gives_same_rows(embedder, sample_images):
    batch = np.stack([preprocess_bytes(b, SPEC.image_size) for b in sample_images])
    together = embedder.embed(batch)
    alone = np.concatenate([embedder.embed(batch[i : i + 1]) for i in range(len(batch))])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert embedder.embed(batch[:0]).shape == (0, SPEC.feature_dim)


def test_embed_images_order_progress_and_errors(embedder, sample_images):
    calls = []
    out = embed_images(embedder, sample_images * 2, batch_size=4, progress=lambda d, t: calls.append((d, t)))
    assert out.shape == (6, SPEC.feature_dim)
    np.testing.assert_allclose(out[:3], out[3:], atol=1e-5)
    assert calls == [(4, 6), (6, 6)]
    with pytest.raises(InvalidImage, match="image 1"):
        embed_images(embedder, [sample_images[0], b"broken"])


def test_make_embedder_prefers_onnxruntime(onnx_path):
    assert isinstance(make_embedder(SPEC, onnx_path.parent), Embedder)


def test_serving_round_trip(embedder, sample_images):
    vec = embed_images(embedder, sample_images[:1])[0]
    data = serving.encode_embeddings(vec)
    assert len(data) == 12 + 4 * SPEC.feature_dim
    np.testing.assert_array_equal(serving.decode_embedding(data), vec)
    batch = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(serving.decode_embeddings(serving.encode_embeddings(batch)), batch)
    for bad in (b"", serving.encode_error("bad image"), data[:-4]):
        with pytest.raises(serving.EmbeddingFormatError):
            serving.decode_embedding(bad)


class FakeContext:
    """The parts of ts.context.Context the handler uses."""

    def __init__(self, model_dir: str, serialized: str):
        self.system_properties = {"model_dir": model_dir}
        self.manifest = {"model": {"serializedFile": serialized}}
        self.status: dict[int, tuple[int, str]] = {}
        self.content_type: dict[int, str] = {}

    def set_response_status(self, code: int = 200, phrase: str = "", idx: int = 0) -> None:
        self.status[idx] = (code, phrase)

    def set_response_content_type(self, idx: int, value: str) -> None:
        self.content_type[idx] = value


def test_torchserve_handler_in_process(tmp_path, onnx_path, embedder, sample_images):
    (tmp_path / onnx_path.name).symlink_to(onnx_path)
    spec = importlib.util.spec_from_file_location(
        "loupe_test_handler", REPO / "services" / "prediction" / "torchserve" / "handler.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler = module.LoupeBackboneHandler()
    context = FakeContext(str(tmp_path), onnx_path.name)
    handler.initialize(context)
    rows = [{"body": bytearray(sample_images[0])}, {"data": b"junk"}, {"body": sample_images[1]}]
    out = handler.handle(rows, context)
    assert len(out) == 3
    assert context.status == {1: (400, "Invalid image")}
    assert "error" in json.loads(out[1])
    expected = embedder.embed(np.stack([preprocess_bytes(sample_images[i], 224) for i in (0, 1)]))
    np.testing.assert_allclose(serving.decode_embedding(out[0]), expected[0], atol=1e-5)
    np.testing.assert_allclose(serving.decode_embedding(out[2]), expected[1], atol=1e-5)
    assert context.content_type[0] == serving.CONTENT_TYPE


def test_build_mar_contents(tmp_path, onnx_path):
    from loupe_model.archive import build_mar

    mar = build_mar(SPEC, onnx_path.parent, tmp_path)
    assert mar == tmp_path / "loupe-backbone-lite0-ms1.mar"
    with zipfile.ZipFile(mar) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read("MAR-INF/MANIFEST.json"))
    assert {"handler.py", "loupe_model/__init__.py", "loupe_model/preprocess.py", onnx_path.name} <= names
    assert manifest["model"]["serializedFile"] == onnx_path.name
    assert manifest["model"]["handler"] == "handler.py"
    assert not any("__pycache__" in n for n in names)


def test_train_quick_fashion_mnist_end_to_end(embedder):
    classes = [0, 1, 7]  # T-shirt/top, Trouser, Sneaker
    train = load_fashion_mnist("train", classes, 15, seed=0)
    test = load_fashion_mnist("test", classes, 10, seed=1)
    labels = np.eye(3, dtype=np.float32)[[label for _, label in train]]
    stages = []
    head, evaluation = train_quick(
        [b for b, _ in train], labels, False, 0, ["a", "b", "c"], ["T-shirt", "Trouser", "Sneaker"],
        embedder, progress=lambda stage, pct: stages.append((stage, pct)),
    )
    percents = [p for _, p in stages]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert {s for s, _ in stages} == {"features", "evaluating", "training"}
    assert evaluation.probabilities.shape == (45, 3) and evaluation.num_folds == 10  # 15 images per tag (< 20): 10 folds
    held_out = (evaluation.probabilities.argmax(axis=1) == labels.argmax(axis=1)).mean()
    assert held_out >= 0.7
    features = embed_images(embedder, [b for b, _ in test])
    accuracy = (head.predict_proba(features).argmax(axis=1) == [label for _, label in test]).mean()
    assert accuracy >= 0.7
    assert head.tag_names == ["T-shirt", "Trouser", "Sneaker"] and head.backbone == "lite0"


def test_default_cache_dir_reads_env_at_call_time(monkeypatch, tmp_path):
    monkeypatch.setenv("LOUPE_MODEL_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("LOUPE_MODEL_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "loupe" / "models"
    assert os.environ.get("LOUPE_MODEL_CACHE") is None
