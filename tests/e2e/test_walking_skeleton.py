"""Upload → train → publish → predict through all five services, on Fashion-MNIST."""
from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image

from loupe_model.datasets import load_fashion_mnist

pytestmark = pytest.mark.e2e

CLASSES = (0, 1, 7)  # T-shirt/top, Trouser, Sneaker
NAMES = ("tshirt", "trouser", "sneaker")


def test_upload_train_publish_classify(api):
    domains = api.train("GET", "/domains")
    assert any(d["type"] == "Classification" for d in domains)

    project = api.new_project(f"fashion-{uuid.uuid4().hex[:6]}", classificationType="Multiclass")
    pid = project["id"]
    assert project["settings"]["classificationType"] == "Multiclass"
    tags = [api.train("POST", f"/projects/{pid}/tags", params={"name": n}) for n in NAMES]
    assert [t["imageCount"] for t in tags] == [0, 0, 0]

    train = load_fashion_mnist("train", CLASSES, 16, seed=7)
    for position, tag in enumerate(tags):
        mine = [img for img, label in train if label == position]
        summary = api.upload_files(pid, mine[:15], tag["id"])
        assert summary["isBatchSuccessful"], summary
        assert {i["status"] for i in summary["images"]} == {"OK"}
        # the 16th image of each class: once as multipart, once more as a bare body
        resp = api.http.post(
            f"{api.endpoint}/customvision/v3.3/training/projects/{pid}/images",
            params={"tagIds": tag["id"]}, headers={"Training-Key": api.training_key},
            files={"imageData": ("", mine[15], "image/png")}, timeout=60,
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["images"][0]["status"] == "OK"
        again = api.train("POST", f"/projects/{pid}/images", params={"tagIds": tag["id"]},
                          data=mine[15], headers={"Content-Type": "application/octet-stream"})
        assert again["images"][0]["status"] == "OKDuplicate"

    listed = api.train("GET", f"/projects/{pid}/tags")
    assert sorted(t["imageCount"] for t in listed) == [16, 16, 16]

    iteration = api.train("POST", f"/projects/{pid}/train")
    assert iteration["status"] == "Training"
    done = api.wait_iteration(pid, iteration["id"])
    assert done["status"] == "Completed", done

    perf = api.train("GET", f"/projects/{pid}/iterations/{iteration['id']}/performance", params={"threshold": 0.5})
    assert len(perf["perTagPerformance"]) == 3
    assert 0.0 <= perf["precision"] <= 1.0 and 0.0 <= perf["recall"] <= 1.0

    api.train("POST", f"/projects/{pid}/iterations/{iteration['id']}/publish",
              params={"publishName": "prod", "predictionId": api.resource_id})

    held_out = load_fashion_mnist("test", CLASSES, 10, seed=11)
    correct = 0
    for image, label in held_out:
        result = api.predict(f"/{pid}/classify/iterations/prod/image", image)
        probs = result["predictions"]
        assert abs(sum(p["probability"] for p in probs) - 1.0) < 1e-3
        assert probs == sorted(probs, key=lambda p: -p["probability"])
        correct += probs[0]["tagName"] == NAMES[label]
    accuracy = correct / len(held_out)
    assert accuracy >= 0.7, f"held-out accuracy {accuracy:.2f}"

    # nostore: same answer shape; the image is not kept
    nostore = api.predict(f"/{pid}/classify/iterations/prod/image/nostore", held_out[0][0])
    assert nostore["project"] == pid and nostore["iteration"] == iteration["id"]
    assert len(nostore["predictions"]) == 3

    # The URL Azure's portal shows (`Prediction`, `Image`) and its REST reference's `Training`:
    # routed like the SDK's lower-case paths; the published name keeps its case.
    portal = api.http.post(
        f"{api.endpoint}/customvision/v3.0/Prediction/{pid}/classify/iterations/prod/Image/NoStore",
        data=held_out[0][0], timeout=60,
        headers={"Prediction-Key": api.prediction_key, "Content-Type": "application/octet-stream"})
    assert portal.status_code == 200, portal.text
    assert portal.json()["predictions"] == nostore["predictions"]
    wrong_case_name = api.http.post(
        f"{api.endpoint}/customvision/v3.0/Prediction/{pid}/classify/iterations/PROD/image",
        data=held_out[0][0], timeout=60,
        headers={"Prediction-Key": api.prediction_key, "Content-Type": "application/octet-stream"})
    assert wrong_case_name.status_code == 404, wrong_case_name.text
    assert wrong_case_name.json()["code"] == "NotFoundIteration"  # routed; no such name
    listed = api.http.get(f"{api.endpoint}/customvision/v3.3/Training/Projects/{pid}/Tags",
                          headers={"Training-Key": api.training_key}, timeout=30)
    assert listed.status_code == 200 and sorted(t["name"] for t in listed.json()) == sorted(NAMES)


def test_keys_are_checked(api):
    resp = api.http.get(f"{api.endpoint}/customvision/v3.3/training/projects",
                        headers={"Training-Key": "wrong"}, timeout=10)
    assert resp.status_code == 401 and resp.json()["code"]
    resp = api.http.get(f"{api.endpoint}/customvision/v3.3/training/projects", timeout=10)
    assert resp.status_code == 401
    # a prediction key cannot train
    resp = api.http.get(f"{api.endpoint}/customvision/v3.3/training/projects",
                        headers={"Training-Key": api.prediction_key}, timeout=10)
    assert resp.status_code == 401


def test_bad_image_is_refused_and_nothing_is_stored(api):
    project = api.new_project(f"bad-{uuid.uuid4().hex[:6]}")
    pid = project["id"]
    resp = api.http.post(f"{api.endpoint}/customvision/v3.3/training/projects/{pid}/images",
                         data=b"this is not an image", timeout=30,
                         headers={"Training-Key": api.training_key, "Content-Type": "application/octet-stream"})
    assert resp.status_code in (200, 207, 400), resp.text
    body = resp.json()
    if resp.status_code == 400:
        assert body["code"].startswith("BadRequest")
    else:
        assert body["isBatchSuccessful"] is False
        assert body["images"][0]["status"].startswith("Error")
    count = api.train("GET", f"/projects/{pid}/images/count")
    assert count == 0
    out = io.BytesIO()
    Image.new("RGB", (64, 64)).save(out, "PNG")
    api.train("DELETE", f"/projects/{pid}", expect=(200, 204))


def test_query_parameter_names_ignore_case(api):
    # ASP.NET binds `?Name=` like `?name=`; so does Loupe (values keep their case).
    name = f"Case-{uuid.uuid4().hex[:6]}"
    resp = api.http.post(f"{api.endpoint}/customvision/v3.3/Training/projects",
                         params={"Name": name, "ClassificationType": "Multilabel"},
                         headers={"Training-Key": api.training_key}, timeout=30)
    assert resp.status_code == 200, resp.text
    project = resp.json()
    assert project["name"] == name
    assert project["settings"]["classificationType"] == "Multilabel"
    tag = api.train("POST", f"/projects/{project['id']}/tags", params={"NAME": "Sneaker"})
    assert tag["name"] == "Sneaker"
    api.train("DELETE", f"/projects/{project['id']}", expect=(200, 204))
