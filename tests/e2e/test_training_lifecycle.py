"""Training beyond the happy path, through REST: progress while it trains, cancelling by
deleting the iteration, multilabel projects, the Negative tag, a minority tag, determinism."""
from __future__ import annotations

import time
import uuid

import pytest

from loupe.v1 import storage_pb2 as spb
from loupe.v1 import storage_pb2_grpc
from loupe_common.clients import ServiceClient
from loupe_common.errors import NotFound
from loupe_common.limits import MAX_BATCH_IMAGES
from loupe_model.datasets import load_fashion_mnist

pytestmark = pytest.mark.e2e


def _project(api, prefix: str, **params) -> str:
    return api.new_project(f"{prefix}-{uuid.uuid4().hex[:6]}", **params)["id"]


def _tag(api, pid: str, name: str, **params) -> dict:
    return api.train("POST", f"/projects/{pid}/tags", params={"name": name, **params})


def _upload(api, pid: str, images: list[bytes], tag_ids: list[str]) -> None:
    for start in range(0, len(images), MAX_BATCH_IMAGES):
        chunk = images[start:start + MAX_BATCH_IMAGES]
        summary = api.upload_files(pid, chunk, tag_ids[0]) if len(tag_ids) == 1 else api.train(
            "POST", f"/projects/{pid}/images/files",
            json={"images": [{"name": f"i{i}.png", "contents": _b64(b), "tagIds": tag_ids}
                             for i, b in enumerate(chunk)]})
        assert summary["isBatchSuccessful"], summary


def _b64(data: bytes) -> str:
    import base64
    return base64.b64encode(data).decode()


def _performance(api, pid: str, iid: str) -> dict:
    return api.train("GET", f"/projects/{pid}/iterations/{iid}/performance", params={"threshold": 0.5})


def test_deleting_a_training_iteration_cancels_it(live, api, credentials):
    pid = _project(api, "cancel")
    # Enough images that feature extraction alone takes a few seconds on 2 cores.
    images = load_fashion_mnist("test", tuple(range(10)), 60, seed=21)
    for label in range(10):
        tag = _tag(api, pid, f"c{label}")
        _upload(api, pid, [img for img, lab in images if lab == label], [tag["id"]])

    iteration = api.train("POST", f"/projects/{pid}/train")
    iid = iteration["id"]
    seen: list[dict] = []
    deadline = time.monotonic() + 120
    while True:
        it = api.train("GET", f"/projects/{pid}/iterations/{iid}")
        assert it["status"] == "Training", f"finished before it could be cancelled: {it}"
        progress = it.get("progress") or {}
        seen.append(progress)
        if progress.get("stage") == "features" and 0 < progress.get("percent", 0) < 100:
            break
        assert time.monotonic() < deadline, seen[-5:]
        time.sleep(0.05)
    # Progress while training: stage, percent and an ETA (seconds left, once known).
    assert progress["etaSeconds"] is None or progress["etaSeconds"] >= 0
    assert any((p.get("etaSeconds") or 0) > 0 for p in seen), seen[-5:]

    api.train("DELETE", f"/projects/{pid}/iterations/{iid}", expect=204)
    api.train("GET", f"/projects/{pid}/iterations/{iid}", expect=404)
    assert not [i for i in api.train("GET", f"/projects/{pid}/iterations") if i["status"] == "Training"]

    # The project trains again right away; the trainer drops the cancelled job and takes this one.
    again = api.train("POST", f"/projects/{pid}/train")
    done = api.wait_iteration(pid, again["id"], timeout=240)
    assert done["status"] == "Completed", done
    assert [i["id"] for i in api.train("GET", f"/projects/{pid}/iterations")] == [again["id"]]

    storage = ServiceClient(live.layout.addr("storage"), storage_pb2_grpc.StorageServiceStub,
                            credential=credentials["gateway"])
    with pytest.raises(NotFound):
        storage.GetObject(spb.GetObjectRequest(key=f"artifacts/{pid}/{iid}/head.npz"))
    storage.GetObject(spb.GetObjectRequest(key=f"artifacts/{pid}/{again['id']}/head.npz"))


# Fashion-MNIST: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt,
# 7 Sneaker, 8 Bag, 9 Ankle boot. Multilabel tags that are true facts about the classes:
MULTILABEL = {"upper-body": {0, 2, 4, 6}, "footwear": {5, 7, 9}, "long-sleeves": {2, 4}}


def test_multilabel_project_predicts_independent_sigmoids(api):
    pid = _project(api, "multilabel", classificationType="Multilabel")
    tags = {name: _tag(api, pid, name)["id"] for name in MULTILABEL}
    classes = (0, 2, 4, 5, 7, 9)
    train = load_fashion_mnist("train", classes, 15, seed=5)
    for position, label in enumerate(classes):  # load_fashion_mnist labels by position
        tag_ids = [tags[n] for n, members in MULTILABEL.items() if label in members]
        assert 1 <= len(tag_ids) <= 2
        _upload(api, pid, [img for img, lab in train if lab == position], tag_ids)

    iteration = api.train("POST", f"/projects/{pid}/train")
    done = api.wait_iteration(pid, iteration["id"])
    assert done["status"] == "Completed", done
    assert done["classificationType"] == "Multilabel"
    perf = _performance(api, pid, iteration["id"])
    per_tag = {t["name"]: t for t in perf["perTagPerformance"]}
    assert set(per_tag) == set(MULTILABEL)
    assert per_tag["footwear"]["recall"] > 0.8 and per_tag["upper-body"]["recall"] > 0.8, per_tag
    counts = {t["name"]: t["imageCount"] for t in api.train("GET", f"/projects/{pid}/tags")}
    assert counts == {"upper-body": 45, "footwear": 45, "long-sleeves": 30}

    api.train("POST", f"/projects/{pid}/iterations/{iteration['id']}/publish",
              params={"publishName": "ml", "predictionId": api.resource_id})
    held_out = load_fashion_mnist("test", (0, 4, 7), 4, seed=9)
    sums, correct = [], 0
    for image, label in held_out:
        probs = {p["tagName"]: p["probability"]
                 for p in api.predict(f"/{pid}/classify/iterations/ml/image", image)["predictions"]}
        assert set(probs) == set(MULTILABEL) and all(0 <= p <= 1 for p in probs.values())
        sums.append(sum(probs.values()))
        truth = {n for n, members in MULTILABEL.items() if (0, 4, 7)[label] in members}
        correct += {n for n, p in probs.items() if p >= 0.5} == truth
    assert any(abs(s - 1.0) > 0.05 for s in sums), sums  # not a softmax
    assert correct >= len(held_out) // 2, correct


def test_negative_tag_trains_and_predicts(api):
    pid = _project(api, "negative", classificationType="Multiclass")
    shirt = _tag(api, pid, "tshirt")
    trouser = _tag(api, pid, "trouser")
    negative = _tag(api, pid, "Negative", type="Negative")
    assert negative["type"] == "Negative"
    train = load_fashion_mnist("train", (0, 1, 8), 12, seed=13)  # bags are the Negative images
    for label, tag in enumerate((shirt, trouser, negative)):
        _upload(api, pid, [img for img, lab in train if lab == label], [tag["id"]])
    iteration = api.train("POST", f"/projects/{pid}/train")
    done = api.wait_iteration(pid, iteration["id"])
    assert done["status"] == "Completed", done
    api.train("POST", f"/projects/{pid}/iterations/{iteration['id']}/publish",
              params={"publishName": "neg", "predictionId": api.resource_id})
    held_out = load_fashion_mnist("test", (0, 1, 8), 4, seed=17)
    correct = 0
    for image, label in held_out:
        probs = api.predict(f"/{pid}/classify/iterations/neg/image", image)["predictions"]
        assert {p["tagName"] for p in probs} == {"tshirt", "trouser", "Negative"}
        assert abs(sum(p["probability"] for p in probs) - 1.0) < 1e-3
        correct += probs[0]["tagName"] == ("tshirt", "trouser", "Negative")[label]
    assert correct >= 9, correct


def test_minority_tag_keeps_recall_and_retraining_is_deterministic(api):
    pid = _project(api, "imbalance", classificationType="Multiclass")
    tags = [_tag(api, pid, n) for n in ("tshirt", "trouser", "sneaker")]
    counts = (60, 5, 60)
    train = load_fashion_mnist("train", (0, 1, 7), 60, seed=23)
    for label, (tag, n) in enumerate(zip(tags, counts)):
        _upload(api, pid, [img for img, lab in train if lab == label][:n], [tag["id"]])
    first = api.train("POST", f"/projects/{pid}/train")
    assert api.wait_iteration(pid, first["id"])["status"] == "Completed"
    per_tag = {t["name"]: t for t in _performance(api, pid, first["id"])["perTagPerformance"]}
    assert per_tag["trouser"]["recall"] > 0, per_tag

    # The same images again (forceTrain): the same model, so the same probabilities.
    api.train("POST", f"/projects/{pid}/train", expect=400)  # nothing changed
    second = api.train("POST", f"/projects/{pid}/train", params={"forceTrain": "true"})
    assert api.wait_iteration(pid, second["id"])["status"] == "Completed"
    for name, it in (("first", first), ("second", second)):
        api.train("POST", f"/projects/{pid}/iterations/{it['id']}/publish",
                  params={"publishName": name, "predictionId": api.resource_id})
    for image, _ in load_fashion_mnist("test", (0, 1, 7), 1, seed=29):
        a = api.predict(f"/{pid}/classify/iterations/first/image/nostore", image)["predictions"]
        b = api.predict(f"/{pid}/classify/iterations/second/image/nostore", image)["predictions"]
        assert [(p["tagName"], p["probability"]) for p in a] == [(p["tagName"], p["probability"]) for p in b]
