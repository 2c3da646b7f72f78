"""Helpers of the e2e tests that copy projects between accounts and installs
(tests/e2e/test_import_azure.py, tests/e2e/test_import_dataset.py): a fresh account, generated
images, uploads with tags and metadata, and an inventory of a project by image bytes."""
from __future__ import annotations

import base64
import hashlib
import io
import json

import numpy as np
from PIL import Image

from loupe.v1 import metadata_pb2 as mpb
from loupe.v1.metadata_pb2_grpc import MetadataServiceStub
from loupe_common.clients import ServiceClient
from rest_api import Api


def png(n: int) -> bytes:
    """A small PNG whose bytes differ for every n."""
    pixels = np.random.default_rng(n).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def account(live, credentials, name: str, live_env) -> Api:
    """A new account of the test stack (its own keys)."""
    metadata = ServiceClient(live.layout.addr("metadata"), MetadataServiceStub, timeout=10,
                             credential=credentials["gateway"])
    try:
        acc = metadata.CreateAccount(mpb.CreateAccountRequest(name=name)).account
    finally:
        metadata.close()
    return Api(live_env["LOUPE_ENDPOINT"], acc.training_key, acc.prediction_key,
               acc.prediction_resource_id)


def upload(api: Api, pid: str, items: list[tuple[int, list[str], dict | None]]) -> None:
    """Uploads (image number, tag ids, metadata) in calls of one metadata each."""
    groups: dict[str, list] = {}
    for n, tags, metadata in items:
        groups.setdefault(json.dumps(metadata, sort_keys=True), []).append((n, tags))
    for key, group in groups.items():
        for start in range(0, len(group), 64):
            body = {"images": [{"name": f"{n}.png", "contents": base64.b64encode(png(n)).decode(),
                                "tagIds": tags} for n, tags in group[start:start + 64]]}
            if json.loads(key):
                body["metadata"] = json.loads(key)
            summary = api.train("POST", f"/projects/{pid}/images/files", json=body)
            assert all(r["status"] == "OK" for r in summary["images"]), summary


def inventory(api: Api, pid: str) -> dict[str, tuple[frozenset, dict]]:
    """sha256 of each image's original bytes -> (its tag ids, its metadata); asserts no two
    images hold the same bytes."""
    found: dict[str, tuple[frozenset, dict]] = {}
    listed = 0
    for kind in ("tagged", "untagged"):
        skip = 0
        while True:
            page = api.train("GET", f"/projects/{pid}/images/{kind}",
                             params={"take": 256, "skip": skip, "orderBy": "Oldest"})
            for img in page:
                data = api.http.get(img["originalImageUri"], timeout=30).content
                found[hashlib.sha256(data).hexdigest()] = (
                    frozenset(t["tagId"] for t in img["tags"]), img["metadata"] or {})
            listed += len(page)
            if len(page) < 256:
                break
            skip += 256
    assert listed == len(found), "an image is there twice"
    return found
