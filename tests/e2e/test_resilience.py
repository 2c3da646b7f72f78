"""Services killed mid-flow: nothing a user uploaded or predicted is lost or half-stored."""
from __future__ import annotations

import hashlib
import time
import uuid

import pytest

from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import metadata_pb2_grpc
from loupe.v1 import storage_pb2 as spb
from loupe.v1 import storage_pb2_grpc
from loupe_common.clients import ServiceClient
from loupe_common.errors import NotFound
from loupe_model.datasets import load_fashion_mnist

pytestmark = pytest.mark.e2e


def _kill(live, name: str) -> None:
    """SIGKILL, as a crash would: no graceful shutdown."""
    live.ctl("signal", "KILL", name)
    live.ctl("stop", name, check=False)


def _published_project(api) -> tuple[str, list[dict]]:
    project = api.new_project(f"resil-{uuid.uuid4().hex[:6]}")
    pid = project["id"]
    data = load_fashion_mnist("train", (0, 1), 6, seed=31)
    tags = []
    for position in range(2):
        tag = api.train("POST", f"/projects/{pid}/tags", params={"name": f"t{position}"})
        api.upload_files(pid, [img for img, label in data if label == position], tag["id"])
        tags.append(tag)
    iteration = api.train("POST", f"/projects/{pid}/train")
    assert api.wait_iteration(pid, iteration["id"])["status"] == "Completed"
    api.train("POST", f"/projects/{pid}/iterations/{iteration['id']}/publish",
              params={"publishName": "live", "predictionId": api.resource_id})
    return pid, tags


def test_upload_while_metadata_is_down_leaves_nothing_behind(live, api, credentials):
    project = api.new_project(f"meta-down-{uuid.uuid4().hex[:6]}")
    pid = project["id"]
    tag = api.train("POST", f"/projects/{pid}/tags", params={"name": "x"})
    image = load_fashion_mnist("train", (3,), 1, seed=41)[0][0]
    storage = ServiceClient(live.layout.addr("storage"), storage_pb2_grpc.StorageServiceStub,
                            credential=credentials["gateway"])
    _kill(live, "metadata")
    try:
        resp = api.http.post(f"{api.endpoint}/customvision/v3.3/training/projects/{pid}/images",
                             params={"tagIds": tag["id"]}, data=image, timeout=60,
                             headers={"Training-Key": api.training_key,
                                      "Content-Type": "application/octet-stream"})
        assert resp.status_code >= 500 or resp.json().get("isBatchSuccessful") is False
        assert "code" in resp.json() or resp.json()["images"][0]["status"].startswith("Error")
    finally:
        live.ctl("start", "metadata")
    # The bytes the gateway put before metadata failed were removed again: no orphan object.
    sha = hashlib.sha256(image).hexdigest()
    with pytest.raises(NotFound):
        storage.GetImage(spb.GetImageRequest(project_id=pid, sha256=sha))
    assert api.train("GET", f"/projects/{pid}/images/count") == 0
    # and the same upload works once metadata is back
    again = api.train("POST", f"/projects/{pid}/images", params={"tagIds": tag["id"]}, data=image,
                      headers={"Content-Type": "application/octet-stream"})
    assert again["images"][0]["status"] == "OK"
    storage.close()


def test_prediction_is_stored_after_storage_comes_back(live, api, credentials):
    pid, _tags = _published_project(api)
    image = load_fashion_mnist("test", (0,), 1, seed=51)[0][0]
    api.predict(f"/{pid}/classify/iterations/live/image/nostore", image)  # head cached
    metadata = ServiceClient(live.layout.addr("metadata"), metadata_pb2_grpc.MetadataServiceStub,
                             credential=credentials["gateway"])
    account = metadata.ResolveKey(mpb.ResolveKeyRequest(key=api.training_key)).account_id
    _kill(live, "storage")
    try:
        result = api.predict(f"/{pid}/classify/iterations/live/image", image)
        time.sleep(3)  # the recorder is retrying against the dead storage service
        stored = metadata.ListPredictions(mpb.ListPredictionsRequest(account_id=account, project_id=pid)).predictions
        assert [p.id for p in stored] == []
    finally:
        live.ctl("start", "storage")
    deadline = time.monotonic() + 60
    while True:
        stored = metadata.ListPredictions(mpb.ListPredictionsRequest(account_id=account, project_id=pid)).predictions
        if stored:
            break
        assert time.monotonic() < deadline, "the prediction was lost"
        time.sleep(0.5)
    assert [p.id for p in stored] == [result["id"]]
    assert stored[0].image_sha256 == hashlib.sha256(image).hexdigest()
    metadata.close()
