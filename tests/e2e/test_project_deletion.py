"""Deleting a project removes everything stored for it, by prefix: image bytes and their
variants, stored predictions' images, the trained head, the trainer's cached features and the
exports. Checked in the bucket itself, not through the API."""
from __future__ import annotations

import time
import uuid

import pytest
from minio import Minio

from loupe_model.datasets import load_fashion_mnist

pytestmark = pytest.mark.e2e


def _objects_of(s3_config, project_id: str) -> list[str]:
    client = Minio(s3_config["LOUPE_S3_ENDPOINT"], access_key=s3_config["LOUPE_S3_ACCESS_KEY"],
                   secret_key=s3_config["LOUPE_S3_SECRET_KEY"], secure=s3_config["LOUPE_S3_SECURE"] == "true")
    return [o.object_name for o in client.list_objects(s3_config["LOUPE_S3_BUCKET"], recursive=True)
            if project_id in o.object_name]


def test_a_deleted_project_leaves_no_object_in_the_bucket(api, s3_config):
    project = api.new_project(f"delete-all-{uuid.uuid4().hex[:6]}",
                              domainId="0732100f-1a38-4e49-a514-c9b44c697ab5")  # General (compact)
    pid = project["id"]
    data = load_fashion_mnist("train", (0, 1), 6, seed=17)
    for position in range(2):
        tag = api.train("POST", f"/projects/{pid}/tags", params={"name": f"c{position}"})
        api.upload_files(pid, [img for img, label in data if label == position], tag["id"])
    it = api.train("POST", f"/projects/{pid}/train")
    assert api.wait_iteration(pid, it["id"])["status"] == "Completed"
    api.train("POST", f"/projects/{pid}/iterations/{it['id']}/publish",
              params={"publishName": "gone", "predictionId": api.resource_id})
    prediction = api.predict(f"/{pid}/classify/iterations/gone/image", data[0][0])
    api.train("POST", f"/projects/{pid}/iterations/{it['id']}/export", params={"platform": "ONNX"})
    deadline = time.monotonic() + 120
    while True:  # the prediction recorded (its image stored), the export built
        stored = api.train("POST", f"/projects/{pid}/predictions/query", json={})["results"]
        exports = api.train("GET", f"/projects/{pid}/iterations/{it['id']}/export")
        if [p["id"] for p in stored] == [prediction["id"]] and exports[0]["status"] == "Done":
            break
        assert time.monotonic() < deadline, (stored, exports)
        time.sleep(0.5)
    before = _objects_of(s3_config, pid)
    roots = {key.split("/", 1)[0] for key in before}
    assert roots == {"images", "artifacts", "features", "exports"}, before
    api.train("DELETE", f"/projects/{pid}/iterations/{it['id']}/publish", expect=(200, 204))
    api.train("DELETE", f"/projects/{pid}", expect=204)
    assert _objects_of(s3_config, pid) == []
