"""A small Custom Vision REST client over `requests`, as a script written against Azure would
call the API (shared by the e2e and k8s tiers)."""
from __future__ import annotations

import base64
import time
import uuid

import requests
from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from msrest.authentication import ApiKeyCredentials

TRAINING = "/customvision/v3.3/training"
PREDICTION = "/customvision/v3.0/prediction"


class Api:
    """Raw HTTP against the gateway, as a Custom Vision script would call it."""

    def __init__(self, endpoint: str, training_key: str, prediction_key: str, resource_id: str):
        self.endpoint = endpoint.rstrip("/")
        self.training_key = training_key
        self.prediction_key = prediction_key
        self.resource_id = resource_id
        self.http = requests.Session()

    def train(self, method: str, path: str, expect: int | tuple[int, ...] = 200, **kw):
        headers = {"Training-Key": self.training_key, **kw.pop("headers", {})}
        resp = self.http.request(method, self.endpoint + TRAINING + path, headers=headers, timeout=60, **kw)
        expected = (expect,) if isinstance(expect, int) else expect
        assert resp.status_code in expected, f"{method} {path}: {resp.status_code} {resp.text[:500]}"
        return resp.json() if resp.content else None

    def predict(self, path: str, image: bytes, expect: int = 200, key: str | None = None, **kw):
        resp = self.http.post(
            self.endpoint + PREDICTION + path, data=image, timeout=60,
            headers={"Prediction-Key": key or self.prediction_key, "Content-Type": "application/octet-stream"},
            **kw,
        )
        assert resp.status_code == expect, f"POST {path}: {resp.status_code} {resp.text[:500]}"
        return resp.json()

    def new_project(self, name: str, **params) -> dict:
        return self.train("POST", "/projects", params={"name": name, **params})

    def upload_files(self, project_id: str, images: list[bytes], tag_id: str) -> dict:
        body = {"images": [{"name": f"img{i}.png", "contents": base64.b64encode(b).decode()}
                           for i, b in enumerate(images)], "tagIds": [tag_id]}
        return self.train("POST", f"/projects/{project_id}/images/files", json=body)

    def published_project(self, prefix: str, publish_name: str, seed: int) -> tuple[str, str]:
        """A new two-tag Fashion-MNIST project (5 images a tag), trained and published as
        `publish_name`; returns (project id, iteration id)."""
        from loupe_model.datasets import load_fashion_mnist

        pid = self.new_project(f"{prefix}-{uuid.uuid4().hex[:6]}")["id"]
        data = load_fashion_mnist("train", (0, 1), 5, seed=seed)
        for position in range(2):
            tag = self.train("POST", f"/projects/{pid}/tags", params={"name": f"t{position}"})
            self.upload_files(pid, [img for img, label in data if label == position], tag["id"])
        iteration = self.train("POST", f"/projects/{pid}/train")
        assert self.wait_iteration(pid, iteration["id"])["status"] == "Completed"
        self.train("POST", f"/projects/{pid}/iterations/{iteration['id']}/publish",
                   params={"publishName": publish_name, "predictionId": self.resource_id})
        return pid, iteration["id"]

    def wait_iteration(self, project_id: str, iteration_id: str, timeout: float = 180.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            it = self.train("GET", f"/projects/{project_id}/iterations/{iteration_id}")
            if it["status"] != "Training":
                return it
            assert time.monotonic() < deadline, f"iteration still training after {timeout}s: {it}"
            time.sleep(0.5)


def sdk_clients(env: dict[str, str]):
    """The official SDK's training and prediction clients for an env file's endpoint and keys,
    and the prediction resource id."""
    endpoint = env["LOUPE_ENDPOINT"]
    trainer = CustomVisionTrainingClient(
        endpoint, ApiKeyCredentials(in_headers={"Training-key": env["LOUPE_TRAINING_KEY"]}))
    predictor = CustomVisionPredictionClient(
        endpoint, ApiKeyCredentials(in_headers={"Prediction-key": env["LOUPE_PREDICTION_KEY"]}))
    return trainer, predictor, env["LOUPE_PREDICTION_RESOURCE_ID"]
