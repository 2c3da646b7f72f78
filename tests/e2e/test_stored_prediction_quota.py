"""The per-account quota of stored predictions, through REST: a classification that would store
past it is refused with Custom Vision's code and stores nothing, `…/nostore` still answers, and
deleting stored predictions frees the quota at once. The quota is set small here (3) to test
the setting, on a metadata and a gateway of their own over the stack's database, Kafka, storage
and prediction service; the default is 1,000,000 (tests/unit/test_quota_rules.py)."""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
import requests

from loupe.v1 import metadata_pb2 as mpb
from loupe.v1.metadata_pb2_grpc import MetadataServiceStub
from loupe_common import internal_auth
from loupe_common.clients import ServiceClient
from loupe_model.datasets import load_fashion_mnist
from rest_api import PREDICTION, Api

pytestmark = pytest.mark.e2e

QUOTA = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def quota_api(live, tmp_path_factory):
    """An account served by a gateway whose metadata has a stored-prediction quota of 3."""
    md_port, gw_port = _free_port(), _free_port()
    env = {**live.service_env(), "LOUPE_METRICS_PORT": "0"}
    logs = tmp_path_factory.mktemp("quota")
    procs = [
        subprocess.Popen([sys.executable, "-m", "loupe_metadata"], env={
            **env, "LOUPE_METADATA_ADDR": f"127.0.0.1:{md_port}",
            "LOUPE_QUOTA_STORED_PREDICTIONS_PER_ACCOUNT": str(QUOTA)},
            stdout=open(logs / "metadata.log", "wb"), stderr=subprocess.STDOUT),
        subprocess.Popen([sys.executable, "-m", "loupe_gateway"], env={
            **env, "LOUPE_METADATA_TARGET": f"127.0.0.1:{md_port}", "LOUPE_GATEWAY_HOST": "127.0.0.1",
            "LOUPE_GATEWAY_PORT": str(gw_port), "LOUPE_GATEWAY_GRPC_PORT": "0"},
            stdout=open(logs / "gateway.log", "wb"), stderr=subprocess.STDOUT),
    ]
    md = ServiceClient(f"127.0.0.1:{md_port}", MetadataServiceStub, timeout=30,
                       credential=internal_auth.credential(env["LOUPE_INTERNAL_SECRET"], internal_auth.GATEWAY))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{gw_port}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert all(p.poll() is None for p in procs), (logs / "gateway.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the gateway never became healthy"
            time.sleep(0.2)
        account = md.CreateAccount(mpb.CreateAccountRequest(name="stored-quota")).account
        yield Api(f"http://127.0.0.1:{gw_port}", account.training_key, account.prediction_key,
                  account.prediction_resource_id)
    finally:
        md.close()
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


def _stored(api: Api, pid: str) -> list[str]:
    return sorted(p["id"] for p in api.train("POST", f"/projects/{pid}/predictions/query", json={})["results"])


def test_storing_past_the_accounts_quota_is_refused_and_nostore_still_answers(quota_api):
    api = quota_api
    pid, _ = api.published_project("quota", "q", seed=93)
    image = load_fashion_mnist("test", (0,), 1, seed=94)[0][0]
    made = sorted(api.predict(f"/{pid}/classify/iterations/q/image", image)["id"] for _ in range(QUOTA))

    for path in ("image", "url"):
        kw = {"json": {"url": "http://127.0.0.1:9/never-fetched.png"}} if path == "url" else {}
        resp = api.http.post(f"{api.endpoint}{PREDICTION}/{pid}/classify/iterations/q/{path}",
                             headers={"Prediction-Key": api.prediction_key,
                                      **({} if kw else {"Content-Type": "application/octet-stream"})},
                             data=None if kw else image, timeout=60, **kw)
        assert resp.status_code == 400, resp.text
        err = resp.json()
        assert err["code"] == "BadRequestExceededQuota" and "nostore" in err["message"], err
    resp = api.http.post(f"{api.endpoint}/customvision/v3.3/training/projects/{pid}/quicktest/image",
                         headers={"Training-Key": api.training_key}, files={"imageData": image}, timeout=60)
    assert resp.status_code == 400 and resp.json()["code"] == "BadRequestExceededQuota", resp.text
    # What stores nothing still answers.
    assert api.predict(f"/{pid}/classify/iterations/q/image/nostore", image)["predictions"]
    resp = api.http.post(f"{api.endpoint}/customvision/v3.3/training/projects/{pid}/quicktest/image",
                         params={"store": "false"}, headers={"Training-Key": api.training_key},
                         files={"imageData": image}, timeout=60)
    assert resp.status_code == 200, resp.text

    # The refused ones stored nothing: the stored predictions are the 3 answered.
    deadline = time.monotonic() + 30
    while (stored := _stored(api, pid)) != made:
        assert time.monotonic() < deadline, stored
        time.sleep(0.2)
    time.sleep(2)
    assert _stored(api, pid) == made

    # Deleting stored predictions frees the quota at once.
    api.train("DELETE", f"/projects/{pid}/predictions", params={"ids": made[0]}, expect=204)
    api.predict(f"/{pid}/classify/iterations/q/image", image)
    api.predict(f"/{pid}/classify/iterations/q/image", image, expect=400)
