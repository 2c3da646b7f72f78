"""A trainer SIGKILLed in the middle of a job: the job is redelivered, the iteration ends
Completed exactly once, and nothing stays in Training."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import grpc
import pytest

from loupe.v1 import metadata_pb2 as mpb
from loupe.v1 import metadata_pb2_grpc, training_pb2, training_pb2_grpc
from loupe_common import kafka as lk
from loupe_common import internal_auth
from loupe_common.clients import ServiceClient
from loupe_model.datasets import load_fashion_mnist

pytestmark = pytest.mark.e2e


def _start_trainer(live, name: str, port: int) -> subprocess.Popen:
    env = dict(os.environ, **live.service_env(), LOUPE_TRAINING_ADDR=f"127.0.0.1:{port}",
               LOUPE_METRICS_PORT="0", LOUPE_TRAINER_ID=name)
    log = open(live.layout.logs / f"{name}.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "loupe_training"], env=env, stdout=log, stderr=log)


def _log_tail(live, name: str, lines: int = 40) -> str:
    path = live.layout.logs / f"{name}.log"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def _wait_owns_every_job_partition(port: int, log, credential: str, timeout: float = 90.0) -> None:
    """Until the consumer group has given this trainer all of loupe.training.jobs."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = training_pb2_grpc.TrainingServiceStub(channel)
        while True:
            try:
                described = stub.DescribeTrainer(training_pb2.DescribeTrainerRequest(), timeout=2,
                                                 metadata=((internal_auth.METADATA_KEY, credential),))
                if described.assigned_partitions == lk.TOPICS[lk.TRAINING_JOBS]:
                    return
            except grpc.RpcError:
                pass  # still starting
            assert time.monotonic() < deadline, f"the trainer never got the job partitions; its log:\n{log()}"
            time.sleep(0.2)


def _events(bootstrap: str, iteration_id: str) -> list[training_pb2.TrainingEvent]:
    consumer = lk.consumer(bootstrap, lk.TRAINING_EVENTS, f"test-{uuid.uuid4()}", consumer_timeout_ms=3000)
    try:
        out = []
        for msg in consumer:
            event = training_pb2.TrainingEvent.FromString(msg.value)
            if event.iteration_id == iteration_id:
                out.append(event)
        return out
    finally:
        consumer.close(autocommit=False)


def test_killed_trainer_job_is_redelivered_and_completed_once(live, api, credentials):
    metadata = ServiceClient(live.layout.addr("metadata"), metadata_pb2_grpc.MetadataServiceStub,
                             credential=credentials["gateway"])
    live.ctl("stop", "training")
    # Test trainers listen next to the stack's own ports (offsets 40 and 41 are unused).
    victim_port, rescuer_port = live.layout.base_port + 40, live.layout.base_port + 41
    victim = _start_trainer(live, "trainer-victim", victim_port)
    rescuer = None
    try:
        project = api.new_project(f"crash-{uuid.uuid4().hex[:6]}")
        pid = project["id"]
        # Enough images that the job runs for a few seconds: time to kill it mid-way.
        images = load_fashion_mnist("train", (0, 1, 7), 60, seed=3)
        for position in range(3):
            tag = api.train("POST", f"/projects/{pid}/tags", params={"name": f"c{position}"})
            mine = [img for img, label in images if label == position]
            api.upload_files(pid, mine[:60], tag["id"])
        account = metadata.ResolveKey(mpb.ResolveKeyRequest(key=api.training_key)).account_id
        _wait_owns_every_job_partition(
            victim_port, lambda: _log_tail(live, "trainer-victim") + "\n--- stack trainer:\n" + _log_tail(live, "training"),
            credentials["gateway"])
        iteration = api.train("POST", f"/projects/{pid}/train")
        iid = iteration["id"]

        deadline = time.monotonic() + 60
        while True:
            it = metadata.GetIteration(mpb.GetIterationRequest(account_id=account, project_id=pid, iteration_id=iid)).iteration
            if it.progress_stage in ("loading", "features"):
                break
            assert it.status == "Training", f"finished before it could be killed: {it.status}"
            assert time.monotonic() < deadline, "the trainer never started the job"
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        it = metadata.GetIteration(mpb.GetIterationRequest(account_id=account, project_id=pid, iteration_id=iid)).iteration
        assert it.status == "Training"

        rescuer = _start_trainer(live, "trainer-rescuer", rescuer_port)
        done = api.wait_iteration(pid, iid, timeout=120)
        assert done["status"] == "Completed", done

        # A duplicate of the finished job (as a redelivery would be) changes nothing.
        before = api.train("GET", f"/projects/{pid}/iterations/{iid}")
        producer = lk.producer(live.layout.addr("kafka"))
        job = training_pb2.TrainingJob(iteration_id=iid, project_id=pid, account_id=account, training_type="Regular")
        producer.send(lk.TRAINING_JOBS, key=pid.encode(), value=job.SerializeToString()).get(timeout=10)
        producer.close()
        time.sleep(4)
        after = api.train("GET", f"/projects/{pid}/iterations/{iid}")
        assert after == before

        events = _events(live.layout.addr("kafka"), iid)
        completed = [e for e in events if e.stage == "completed"]
        assert len(completed) == 1 and completed[0].trainer_id == "trainer-rescuer"
        # (The victim's own events may die with it: they are sent asynchronously. That it had
        # started the job is known from the progress it recorded in metadata above.)
        iterations = api.train("GET", f"/projects/{pid}/iterations")
        assert [i["status"] for i in iterations] == ["Completed"]
    finally:
        for proc in (victim, rescuer):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(20)
        live.ctl("start", "training")
        metadata.close()
