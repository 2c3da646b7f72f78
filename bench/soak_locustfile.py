"""Locust users for `make load` (bench/soak.py runs this file; it is not run on its own).

Each user acts for one of the accounts bench/soak.py prepared (LOUPE_SOAK_ACCOUNTS names their
JSON) with Custom Vision's REST API, as scripts written against Azure would: classify with and
without storing, upload small batches, query stored predictions, list and count images, train,
delete images, and now and then create a project, fill it and delete it again. Every answer's
status is counted per operation into LOUPE_SOAK_STATUS (JSON) when the run ends.
"""
from __future__ import annotations

import base64
import io
import itertools
import json
import os
import random
import threading
import uuid
from collections import Counter, defaultdict

from locust import HttpUser, between, events, task
from PIL import Image

TRAINING = "/customvision/v3.3/training"
PREDICTION = "/customvision/v3.0/prediction"
#: Answers that are the API working as documented under this traffic, not failures.
EXPECTED_4XX = {
    "train": {"BadRequestTrainingNotNeeded", "BadRequestTrainingAlreadyInProgress"},
}

ACCOUNTS = json.loads(open(os.environ["LOUPE_SOAK_ACCOUNTS"]).read())
_next_account = itertools.count()
_status: dict[str, Counter] = defaultdict(Counter)
_status_lock = threading.Lock()


@events.request.add_listener
def _count(name, response, exception, **_):
    status = "error" if response is None or not getattr(response, "status_code", 0) else str(response.status_code)
    with _status_lock:
        _status[name][status] += 1


@events.quitting.add_listener
def _write_status(**_):
    with open(os.environ["LOUPE_SOAK_STATUS"], "w") as out:
        json.dump({name: dict(c) for name, c in _status.items()}, out)


def _png(rng: random.Random) -> bytes:
    img = Image.frombytes("RGB", (32, 32), rng.randbytes(32 * 32 * 3))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class CustomVisionUser(HttpUser):
    wait_time = between(0.05, 0.4)

    def on_start(self):
        self.account = ACCOUNTS[next(_next_account) % len(ACCOUNTS)]
        self.rng = random.Random(uuid.uuid4().int)
        self.uploaded: list[str] = []
        self.training = {"Training-Key": self.account["training_key"]}

    def _check(self, resp, op: str) -> None:
        """Marks a documented refusal as a success and anything else outside 2xx as a failure."""
        if 200 <= resp.status_code < 300:
            resp.success()
            return
        code = ""
        try:
            code = resp.json().get("code", "")
        except ValueError:
            pass
        if code in EXPECTED_4XX.get(op, ()):
            resp.success()
        else:
            resp.failure(f"{resp.status_code} {code}")

    def _classify(self, op: str, suffix: str) -> None:
        url = f"{PREDICTION}/{self.account['published']}/classify/iterations/soak/image{suffix}"
        with self.client.post(url, data=_png(self.rng), name=op, catch_response=True, timeout=120,
                              headers={"Prediction-Key": self.account["prediction_key"],
                                       "Content-Type": "application/octet-stream"}) as resp:
            self._check(resp, op)

    @task(6)
    def classify_nostore(self):
        self._classify("classify", "/nostore")

    @task(3)
    def classify_store(self):
        self._classify("classify+store", "")

    @task(3)
    def upload(self):
        body = {"images": [{"name": f"{i}.png", "contents": base64.b64encode(_png(self.rng)).decode()}
                           for i in range(4)],
                "tagIds": [self.rng.choice(self.account["tags"])]}
        with self.client.post(f"{TRAINING}/projects/{self.account['uploads']}/images/files", json=body,
                              name="upload", catch_response=True, timeout=120, headers=self.training) as resp:
            self._check(resp, "upload")
            if resp.status_code == 200:
                self.uploaded += [i["image"]["id"] for i in resp.json()["images"] if i.get("image")]

    @task(2)
    def query_predictions(self):
        with self.client.post(f"{TRAINING}/projects/{self.account['published']}/predictions/query",
                              json={"maxCount": 32}, name="query", catch_response=True, timeout=120,
                              headers=self.training) as resp:
            self._check(resp, "query")

    @task(1)
    def list_images(self):
        with self.client.get(f"{TRAINING}/projects/{self.account['uploads']}/images/tagged",
                             params={"take": 50}, name="list", catch_response=True, timeout=120,
                             headers=self.training) as resp:
            self._check(resp, "list")

    @task(1)
    def train(self):
        with self.client.post(f"{TRAINING}/projects/{self.account['uploads']}/train", name="train",
                              catch_response=True, timeout=120, headers=self.training) as resp:
            self._check(resp, "train")

    @task(1)
    def delete_images(self):
        if not self.uploaded:
            return
        batch, self.uploaded = self.uploaded[:64], self.uploaded[64:]
        with self.client.delete(f"{TRAINING}/projects/{self.account['uploads']}/images",
                                params={"imageIds": ",".join(batch)}, name="delete images",
                                catch_response=True, timeout=120, headers=self.training) as resp:
            self._check(resp, "delete images")

    @task(1)
    def project_lifecycle(self):
        if self.rng.random() > 0.2:
            return
        with self.client.post(f"{TRAINING}/projects", params={"name": f"soak-{uuid.uuid4().hex[:8]}"},
                              name="create project", catch_response=True, timeout=120,
                              headers=self.training) as resp:
            self._check(resp, "create project")
            if resp.status_code != 200:
                return
            project = resp.json()["id"]
        body = {"images": [{"name": f"{i}.png", "contents": base64.b64encode(_png(self.rng)).decode()}
                           for i in range(3)]}
        with self.client.post(f"{TRAINING}/projects/{project}/images/files", json=body, name="upload",
                              catch_response=True, timeout=120, headers=self.training) as resp:
            self._check(resp, "upload")
        with self.client.delete(f"{TRAINING}/projects/{project}", name="delete project",
                                catch_response=True, timeout=120, headers=self.training) as resp:
            self._check(resp, "delete project")
