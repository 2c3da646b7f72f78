"""The fault matrix: every process of the stack SIGKILLed in turn under a steady load.

One load runs through the whole matrix: uploads (each image distinct, so every stored copy can
be told apart), classifications that store their prediction, and training after training on
the uploaded images. Each component in turn loses its whole process group to SIGKILL, as an
OOM kill or a lost node would do it (PostgreSQL its backends, TorchServe its frontend and
workers); supervisord restarts it, as the chart's Deployments and StatefulSets would.

What must hold afterwards, for every component:
- every upload that got a 2xx is stored exactly once, row and bytes; whatever else is stored
  is an upload the client saw fail (a retry of it would answer OKDuplicate), never an unknown;
- every prediction answered with 200 is recorded exactly once;
- no iteration is left in Training;
- an outage is answered 5xx (or the connection drops), never a 4xx that blames the client;
- the load goes on: uploads and classifications started after the restart succeed.

The table printed at the end (run with -s) is the report: per component, the requests that
failed during its outage and the time from the kill until uploads and classifications work.
"""
from __future__ import annotations

import hashlib
import io
import os
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pytest
import requests
from PIL import Image

from rest_api import PREDICTION, TRAINING

pytestmark = pytest.mark.e2e

#: Supervisord's program names, the infrastructure last (their restarts take longest).
COMPONENTS = ("gateway", "metadata", "storage", "training", "prediction",
              "torchserve", "kafka", "minio", "postgres")
#: The 4xx codes training legitimately answers under this load (a job still running, nothing new).
TRAIN_REFUSALS = {"BadRequestTrainingAlreadyInProgress", "BadRequestTrainingNotNeeded"}
RECOVERY_TIMEOUT = 180.0


def _png(rng: np.random.Generator) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class Outcome:
    op: str
    started: float
    ended: float
    ok: bool
    detail: str = ""


@dataclass
class Load:
    """Upload, classify and train loops against the gateway, each on its own keep-alive session."""

    endpoint: str
    training_key: str
    prediction_key: str
    upload_project: str
    tag_ids: list[str]
    published_project: str
    outcomes: list[Outcome] = field(default_factory=list)
    acknowledged_uploads: dict[str, str] = field(default_factory=dict)  # image id -> sha256
    attempted_uploads: set[str] = field(default_factory=set)  # sha256
    acknowledged_predictions: list[str] = field(default_factory=list)
    iterations: list[str] = field(default_factory=list)
    client_errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _record(self, op: str, started: float, ok: bool, detail: str = "") -> None:
        with self._lock:
            self.outcomes.append(Outcome(op, started, time.monotonic(), ok, detail))

    def _call(self, session: requests.Session, op: str, method: str, url: str, **kw) -> dict | None:
        """One request; its outcome recorded. Returns the JSON of a 2xx, else None."""
        started = time.monotonic()
        try:
            resp = session.request(method, url, timeout=30, **kw)
        except requests.RequestException as err:
            self._record(op, started, False, type(err).__name__)
            return None
        body = resp.json() if resp.content and resp.headers.get("Content-Type", "").startswith("application/json") else {}
        if 400 <= resp.status_code < 500:
            code = body.get("code", "") if isinstance(body, dict) else ""
            if op == "train" and code in TRAIN_REFUSALS:
                return None
            with self._lock:
                self.client_errors.append(f"{op}: {resp.status_code} {resp.text[:200]}")
        ok = 200 <= resp.status_code < 300
        self._record(op, started, ok, "" if ok else f"{resp.status_code} {body.get('code', '') if isinstance(body, dict) else ''}")
        return body if ok else None

    def _uploads(self) -> None:
        session, rng, n = requests.Session(), np.random.default_rng(7), 0
        url = f"{self.endpoint}{TRAINING}/projects/{self.upload_project}/images"
        while not self._stop.is_set():
            image = _png(rng)
            sha = hashlib.sha256(image).hexdigest()
            with self._lock:
                self.attempted_uploads.add(sha)
            got = self._call(session, "upload", "POST", url, data=image,
                             params={"tagIds": self.tag_ids[n % len(self.tag_ids)]},
                             headers={"Training-Key": self.training_key,
                                      "Content-Type": "application/octet-stream"})
            if got is not None:
                if got.get("isBatchSuccessful") and got["images"][0]["status"] == "OK":
                    with self._lock:
                        self.acknowledged_uploads[got["images"][0]["image"]["id"]] = sha
                else:  # a 200 whose image failed: the outage told per image, nothing stored
                    self._record("upload", time.monotonic(), False, got["images"][0]["status"])
            n += 1
            time.sleep(0.05)

    def _classifications(self) -> None:
        session, rng = requests.Session(), np.random.default_rng(11)
        url = f"{self.endpoint}{PREDICTION}/{self.published_project}/classify/iterations/live/image"
        while not self._stop.is_set():
            got = self._call(session, "classify", "POST", url, data=_png(rng),
                             headers={"Prediction-Key": self.prediction_key,
                                      "Content-Type": "application/octet-stream"})
            if got is not None:
                with self._lock:
                    self.acknowledged_predictions.append(got["id"])
            time.sleep(0.05)

    def _trainings(self) -> None:
        session = requests.Session()
        base = f"{self.endpoint}{TRAINING}/projects/{self.upload_project}"
        headers = {"Training-Key": self.training_key}
        while not self._stop.is_set():
            got = self._call(session, "train", "POST", f"{base}/train", headers=headers)
            if got is not None:
                with self._lock:
                    self.iterations.append(got["id"])
            self._stop.wait(2.0)

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=t, daemon=True, name=t.__name__)
                   for t in (self._uploads, self._classifications, self._trainings)]
        for t in threads:
            t.start()
        return threads

    def stop(self, threads: list[threading.Thread]) -> None:
        self._stop.set()
        for t in threads:
            t.join(timeout=60)

    def works_since(self, since: float, ops: tuple[str, ...] = ("upload", "classify")) -> bool:
        """Whether each op has succeeded in a request started after `since`."""
        with self._lock:
            done = {o.op for o in self.outcomes if o.ok and o.started > since}
        return all(op in done for op in ops)

    def failed_between(self, start: float, end: float) -> Counter:
        with self._lock:
            return Counter(o.op for o in self.outcomes if not o.ok and start <= o.ended <= end)


def _kill_group(live, name: str) -> None:
    """SIGKILL to the program's whole process group (supervisord starts each in its own)."""
    pid = int(live.ctl("pid", name).stdout.strip())
    os.killpg(os.getpgid(pid), signal.SIGKILL)


def _running(live, name: str) -> bool:
    return "RUNNING" in live.ctl("status", name, check=False).stdout


def _all(api, path: str) -> list[dict]:
    """Every image of a listing, paged by 256."""
    out, skip = [], 0
    while True:
        page = api.train("GET", path, params={"take": 256, "skip": skip})
        out += page
        if len(page) < 256:
            return out
        skip += 256


def _stored_predictions(api, project_id: str) -> list[str]:
    ids, token = [], {}
    while True:
        got = api.train("POST", f"/projects/{project_id}/predictions/query", json=token)
        ids += [p["id"] for p in got["results"]]
        if not got["token"].get("continuation"):
            return ids
        token = got["token"]


@pytest.fixture(scope="module")
def load(api) -> Load:
    rng = np.random.default_rng(3)
    published = api.new_project(f"fault-published-{uuid.uuid4().hex[:6]}")
    tags = [api.train("POST", f"/projects/{published['id']}/tags", params={"name": f"p{i}"}) for i in range(2)]
    for tag in tags:
        api.upload_files(published["id"], [_png(rng) for _ in range(5)], tag["id"])
    it = api.train("POST", f"/projects/{published['id']}/train")
    assert api.wait_iteration(published["id"], it["id"])["status"] == "Completed"
    api.train("POST", f"/projects/{published['id']}/iterations/{it['id']}/publish",
              params={"publishName": "live", "predictionId": api.resource_id})
    target = api.new_project(f"fault-uploads-{uuid.uuid4().hex[:6]}")
    upload_tags = [api.train("POST", f"/projects/{target['id']}/tags", params={"name": f"u{i}"})["id"]
                   for i in range(2)]
    for tag in upload_tags:
        api.upload_files(target["id"], [_png(rng) for _ in range(5)], tag)
    return Load(api.endpoint, api.training_key, api.prediction_key, target["id"], upload_tags, published["id"])


def test_every_component_killed_under_load_loses_nothing(live, api, load):
    threads = load.start()
    report = []
    try:
        deadline = time.monotonic() + 60
        while not load.works_since(time.monotonic() - 5, ("upload", "classify", "train")):
            assert time.monotonic() < deadline, f"the load never ran: {load.outcomes[-5:]}"
            time.sleep(0.5)
        for name in COMPONENTS:
            time.sleep(2)  # steady before the fault
            _kill_group(live, name)
            # After the signal, not before: finding the pid (supervisorctl) takes a moment, and
            # requests answered by the component meanwhile are no sign of its recovery.
            killed = time.monotonic()
            while not (_running(live, name) and load.works_since(killed + 0.5)):
                assert time.monotonic() - killed < RECOVERY_TIMEOUT, (
                    f"{name} did not recover: {live.ctl('status', check=False).stdout} "
                    f"{[o for o in load.outcomes if o.started > killed][-5:]}")
                time.sleep(0.2)
            recovered = time.monotonic()
            time.sleep(3)  # and the load goes on
            assert load.works_since(recovered), (
                f"after {name}'s restart the load stopped: "
                f"{[(o.op, round(o.started - killed, 2), round(o.ended - killed, 2), o.ok, o.detail) for o in load.outcomes if o.ended > killed][-40:]}")
            report.append((name, recovered - killed, load.failed_between(killed, recovered + 1)))
    finally:
        load.stop(threads)
    print("\nfault matrix (SIGKILL of the process group; supervisord restarts it)")
    print(f"{'component':<12} {'recovered in':>12}  failed requests during the outage")
    for name, took, failed in report:
        print(f"{name:<12} {took:>10.1f} s  {dict(failed) or 'none'}")
    print(f"load: {len(load.acknowledged_uploads)} uploads, {len(load.acknowledged_predictions)} "
          f"stored predictions, {len(load.iterations)} iterations acknowledged")

    assert load.client_errors == [], load.client_errors[:10]

    # No iteration is left in Training.
    for iteration_id in load.iterations:
        done = api.wait_iteration(load.upload_project, iteration_id, timeout=300)
        assert done["status"] in ("Completed", "Failed"), done
    listed = api.train("GET", f"/projects/{load.upload_project}/iterations")
    assert [i for i in listed if i["status"] == "Training"] == [], listed

    # Every acknowledged upload stored once, row and bytes; nothing stored that was not sent.
    images = _all(api, f"/projects/{load.upload_project}/images/tagged")
    images += _all(api, f"/projects/{load.upload_project}/images/untagged")
    ids = [i["id"] for i in images]
    assert len(ids) == len(set(ids))
    missing = set(load.acknowledged_uploads) - set(ids)
    assert not missing, f"{len(missing)} acknowledged uploads are gone: {sorted(missing)[:5]}"
    by_id = {i["id"]: i for i in images}
    session = requests.Session()
    shas = []
    for image in images:
        body = session.get(image["originalImageUri"], timeout=30)
        assert body.status_code == 200, (image["id"], body.status_code)
        shas.append(hashlib.sha256(body.content).hexdigest())
    assert len(shas) == len(set(shas)), "an image is stored twice"
    for image_id, sha in load.acknowledged_uploads.items():
        assert shas[ids.index(image_id)] == sha, f"{image_id}: other bytes than uploaded"
    seeded = 10  # the fixture's uploads, before the load
    unknown = [s for s in shas if s not in load.attempted_uploads]
    assert len(unknown) == seeded, f"{len(unknown) - seeded} stored images nobody sent"
    assert all(by_id[i]["tags"] for i in load.acknowledged_uploads), "an acknowledged upload lost its tag"

    # Every prediction answered 200 is recorded exactly once.
    deadline = time.monotonic() + 120
    while True:
        stored = _stored_predictions(api, load.published_project)
        if set(load.acknowledged_predictions) <= set(stored):
            break
        assert time.monotonic() < deadline, (
            f"{len(set(load.acknowledged_predictions) - set(stored))} acknowledged predictions not recorded")
        time.sleep(1)
    counts = Counter(stored)
    assert [p for p, n in counts.items() if n > 1] == [], "a prediction is recorded twice"
