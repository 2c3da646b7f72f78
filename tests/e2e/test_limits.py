"""Every documented limit at its edge: at the limit accepted, one over refused, nothing stored."""
from __future__ import annotations

import base64
import io
import uuid

import numpy as np
import pytest
from PIL import Image

from loupe_common.limits import (
    MAX_BATCH_IMAGES, MAX_BATCH_TAGS, MAX_PREDICTION_IMAGE_BYTES, MAX_TRAINING_IMAGE_BYTES,
)
from loupe_model.datasets import load_fashion_mnist

pytestmark = pytest.mark.e2e


def _png(size=(32, 32), seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0]), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def _exactly(n_bytes: int, seed: int) -> bytes:
    """A valid PNG of exactly n_bytes (bytes after IEND are ignored by decoders)."""
    data = _png((64, 64), seed)
    return data + b"\0" * (n_bytes - len(data))


def _files(images, tag_ids=()):
    return {"images": [{"name": f"{i}.png", "contents": base64.b64encode(b).decode()} for i, b in enumerate(images)],
            "tagIds": list(tag_ids)}


def _post_files(api, pid, body):
    return api.http.post(f"{api.endpoint}/customvision/v3.3/training/projects/{pid}/images/files",
                         json=body, headers={"Training-Key": api.training_key}, timeout=120)


def test_batch_size_and_tags_per_batch(api):
    pid = api.new_project(f"lim-batch-{uuid.uuid4().hex[:6]}")["id"]
    ok = _post_files(api, pid, _files([_png(seed=i) for i in range(MAX_BATCH_IMAGES)]))
    assert ok.status_code == 200 and ok.json()["isBatchSuccessful"]
    over = _post_files(api, pid, _files([_png(seed=100 + i) for i in range(MAX_BATCH_IMAGES + 1)]))
    assert over.status_code == 400 and over.json()["code"] == "BadRequestExceededBatchSize"
    assert api.train("GET", f"/projects/{pid}/images/count") == MAX_BATCH_IMAGES

    tags = [api.train("POST", f"/projects/{pid}/tags", params={"name": f"t{i}"})["id"]
            for i in range(MAX_BATCH_TAGS + 1)]
    at_limit = _post_files(api, pid, _files([_png(seed=500)], tags[:MAX_BATCH_TAGS]))
    assert at_limit.status_code == 200, at_limit.text
    assert len(at_limit.json()["images"][0]["image"]["tags"]) == MAX_BATCH_TAGS
    over = _post_files(api, pid, _files([_png(seed=501)], tags))
    assert over.status_code == 400 and over.json()["code"] == "BadRequestExceededBatchSize"
    assert api.train("GET", f"/projects/{pid}/images/count") == MAX_BATCH_IMAGES + 1
    api.train("DELETE", f"/projects/{pid}", expect=204)


def test_training_image_bytes_and_dimensions(api):
    pid = api.new_project(f"lim-img-{uuid.uuid4().hex[:6]}")["id"]
    cases = [
        (_exactly(MAX_TRAINING_IMAGE_BYTES, 1), "OK"),
        (_exactly(MAX_TRAINING_IMAGE_BYTES + 1, 2), "ErrorImageSize"),
        (_png((10240, 410), 3), "OK"),
        (_png((10241, 410), 4), "ErrorImageDimensions"),
        (_png((250, 10), 5), "OK"),          # 25:1
        (_png((251, 10), 6), "ErrorImageDimensions"),  # over 25:1
    ]
    resp = _post_files(api, pid, _files([c[0] for c in cases]))
    assert resp.status_code == 207, resp.text
    statuses = [i["status"] for i in resp.json()["images"]]
    assert statuses == [c[1] for c in cases]
    assert api.train("GET", f"/projects/{pid}/images/count") == 3
    api.train("DELETE", f"/projects/{pid}", expect=204)


def test_prediction_image_bytes(api):
    pid = api.new_project(f"lim-pred-{uuid.uuid4().hex[:6]}")["id"]
    data = load_fashion_mnist("train", (0, 1), 5, seed=71)
    for position in range(2):
        tag = api.train("POST", f"/projects/{pid}/tags", params={"name": f"c{position}"})
        api.upload_files(pid, [img for img, label in data if label == position], tag["id"])
    it = api.train("POST", f"/projects/{pid}/train")
    assert api.wait_iteration(pid, it["id"])["status"] == "Completed"
    api.train("POST", f"/projects/{pid}/iterations/{it['id']}/publish",
              params={"publishName": "edge", "predictionId": api.resource_id})
    at_limit = api.predict(f"/{pid}/classify/iterations/edge/image/nostore", _exactly(MAX_PREDICTION_IMAGE_BYTES, 7))
    assert len(at_limit["predictions"]) == 2
    resp = api.http.post(f"{api.endpoint}/customvision/v3.0/prediction/{pid}/classify/iterations/edge/image",
                         data=_exactly(MAX_PREDICTION_IMAGE_BYTES + 1, 8), timeout=60,
                         headers={"Prediction-Key": api.prediction_key, "Content-Type": "application/octet-stream"})
    assert resp.status_code == 400 and resp.json()["code"] == "BadRequestImageSizeBytes"
    api.train("DELETE", f"/projects/{pid}/iterations/{it['id']}/publish", expect=(200, 204))
    api.train("DELETE", f"/projects/{pid}", expect=204)
