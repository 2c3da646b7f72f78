"""Kafka SIGKILLed while the stack's trainer runs a job, and down for longer than the consumer's
session: the trainer survives it and the next training completes. (Before the trainer healed,
this test failed: its consumer thread died on the commit, health stayed SERVING and the later
iteration stayed in Training.)"""
from __future__ import annotations

import time
import uuid

import pytest

from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import metadata_pb2_grpc
from loupe_common import internal_auth
from loupe_common.clients import ServiceClient
from loupe_model.datasets import load_fashion_mnist

pytestmark = pytest.mark.e2e


def test_trainer_survives_a_kafka_crash_mid_job_and_trains_the_next_iteration(live, api, credentials):
    # Watched as the gateway would (it resolves keys and reads iterations).
    metadata = ServiceClient(live.layout.addr("metadata"), metadata_pb2_grpc.MetadataServiceStub,
                             credential=credentials[internal_auth.GATEWAY])
    try:
        pid = api.new_project(f"heal-{uuid.uuid4().hex[:6]}")["id"]
        images = load_fashion_mnist("train", (0, 1, 7), 60, seed=5)  # a job of a few seconds
        for position in range(3):
            tag = api.train("POST", f"/projects/{pid}/tags", params={"name": f"c{position}"})
            api.upload_files(pid, [img for img, label in images if label == position], tag["id"])
        account = metadata.ResolveKey(mpb.ResolveKeyRequest(key=api.training_key)).account_id
        trainer_pid = live.ctl("pid", "training").stdout.strip()

        iid = api.train("POST", f"/projects/{pid}/train")["id"]
        deadline = time.monotonic() + 60
        while True:
            it = metadata.GetIteration(mpb.GetIterationRequest(account_id=account, project_id=pid, iteration_id=iid)).iteration
            if it.progress_stage in ("loading", "features") or it.status != "Training":
                break
            assert time.monotonic() < deadline, "the trainer never started the job"
            time.sleep(0.02)
        # Down longer than the consumer's session timeout (10 s): the job ends meanwhile, and
        # its commit meets a broker that has to take the group back.
        live.ctl("signal", "KILL", "kafka")
        live.ctl("stop", "kafka", check=False)
        assert api.wait_iteration(pid, iid, timeout=180)["status"] == "Completed"
        time.sleep(15)
        live.ctl("start", "kafka")

        # Kafka is back when the gateway can queue a job again; the same trainer process takes it.
        deadline = time.monotonic() + 120
        while True:
            resp = api.http.post(f"{api.endpoint}/customvision/v3.3/training/projects/{pid}/train",
                                 params={"forceTrain": "true"}, headers={"Training-Key": api.training_key},
                                 timeout=60)
            if resp.status_code == 200:
                break
            assert time.monotonic() < deadline, f"Kafka did not come back: {resp.status_code} {resp.text}"
            time.sleep(2)
        again = resp.json()["id"]
        assert api.wait_iteration(pid, again, timeout=240)["status"] == "Completed"
        assert live.ctl("pid", "training").stdout.strip() == trainer_pid
    finally:
        live.ctl("start", "kafka", check=False)
        metadata.close()
