"""Loupe on Kubernetes, operated as an operator would: the SDK and REST flows through the
cluster's gateway, `helm test`, replicas that share the work, a rolling upgrade under load, a
trainer deleted mid-job, the bundled infrastructure restarted."""
from __future__ import annotations

import io
import json
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from PIL import Image

from cluster_client import cluster_node, cluster_up, metric_sum
from e2e.test_grpc_api import run_example_client
from e2e.test_sdk import sdk_quickstart
from loupe_model.datasets import load_fashion_mnist
from rest_api import PREDICTION

GATEWAY_PORT = 8080
TRAINING_METRICS_PORT = 9103
PREDICTION_METRICS_PORT = 9104
CONTAINERD_SOCK = "/run/loupe-k8s/containerd.sock"
CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "loupe"


def make_project(api, name: str, per_tag: int = 10, seed: int = 5) -> tuple[dict, list[dict]]:
    project = api.new_project(f"{name}-{uuid.uuid4().hex[:6]}")
    tags = [api.train("POST", f"/projects/{project['id']}/tags", params={"name": n}) for n in ("top", "trouser")]
    data = load_fashion_mnist("train", (0, 1), per_tag, seed=seed)
    for label, tag in enumerate(tags):
        summary = api.upload_files(project["id"], [img for img, lab in data if lab == label], tag["id"])
        assert summary["isBatchSuccessful"], summary
    return project, tags


def train(api, project_id: str, timeout: float = 300) -> dict:
    it = api.train("POST", f"/projects/{project_id}/train")
    return api.wait_iteration(project_id, it["id"], timeout=timeout)


@pytest.fixture(scope="module")
def published(k8s_api):
    """A trained, published classifier and test images to classify."""
    project, _ = make_project(k8s_api, "k8s-published")
    it = train(k8s_api, project["id"])
    assert it["status"] == "Completed", it
    k8s_api.train("POST", f"/projects/{project['id']}/iterations/{it['id']}/publish",
                  params={"publishName": "k8s", "predictionId": k8s_api.resource_id})
    images = [img for img, _ in load_fashion_mnist("test", (0, 1), 4, seed=9)]
    return project, images


def test_the_official_sdk_quickstart_through_the_clusters_gateway(k8s_clients):
    sdk_quickstart(*k8s_clients)


def test_the_grpc_api_example_client_through_the_clusters_gateway(k8s_env, tmp_path):
    # LOUPE_GRPC_ENDPOINT of .loupe/k8s/env: the gateway's public gRPC port as a NodePort.
    run_example_client(k8s_env, tmp_path)


def test_rest_smoke_through_the_clusters_gateway(k8s_api, published):
    project, images = published
    domains = k8s_api.train("GET", "/domains")
    assert any(d["name"] == "General (compact)" for d in domains)
    result = k8s_api.predict(f"/{project['id']}/classify/iterations/k8s/image", images[0])
    assert {p["tagName"] for p in result["predictions"]} == {"top", "trouser"}
    assert abs(sum(p["probability"] for p in result["predictions"]) - 1) < 1e-3
    # Bad input gets Custom Vision's error, from inside the cluster as on the local stack.
    resp = requests.post(k8s_api.endpoint + PREDICTION + f"/{project['id']}/classify/iterations/k8s/image",
                         data=b"not an image", timeout=30,
                         headers={"Prediction-Key": k8s_api.prediction_key,
                                  "Content-Type": "application/octet-stream"})
    assert resp.status_code == 400 and resp.json()["code"] == "BadRequestImageFormat", resp.text
    resp = requests.get(k8s_api.endpoint + "/customvision/v3.3/training/projects", timeout=30,
                        headers={"Training-Key": "0" * 32})
    assert resp.status_code == 401, resp.text


def test_helm_test_passes(cluster):
    # (The pod is deleted once it succeeds, so its logs cannot be asked for.)
    out = cluster.helm("test", cluster.release, timeout=300)
    assert "Phase:          Succeeded" in out, out


def test_gateway_and_prediction_replicas_both_serve(cluster, k8s_api, published):
    project, images = published
    gateways = cluster.wait_ready("gateway", 2)
    predictions = cluster.wait_ready("prediction", 2)
    before_gw = {p: metric_sum(cluster.metrics(p, GATEWAY_PORT), "loupe_gateway_requests_total") for p in gateways}
    before_pr = {p: metric_sum(cluster.metrics(p, PREDICTION_METRICS_PORT), "loupe_grpc_server_handled_total")
                 for p in predictions}
    # Fresh connections, as many clients make them: kube-proxy spreads them over the gateways,
    # and each gateway spreads its gRPC calls over the prediction replicas (round_robin).
    for i in range(40):
        resp = requests.post(k8s_api.endpoint + PREDICTION + f"/{project['id']}/classify/iterations/k8s/image/nostore",
                             data=images[i % len(images)], timeout=30,
                             headers={"Prediction-Key": k8s_api.prediction_key, "Connection": "close",
                                      "Content-Type": "application/octet-stream"})
        assert resp.status_code == 200, resp.text
    served_gw = {p: metric_sum(cluster.metrics(p, GATEWAY_PORT), "loupe_gateway_requests_total") - before_gw[p]
                 for p in gateways}
    served_pr = {p: metric_sum(cluster.metrics(p, PREDICTION_METRICS_PORT), "loupe_grpc_server_handled_total")
                 - before_pr[p] for p in predictions}
    assert all(n > 0 for n in served_gw.values()), served_gw
    assert all(n > 0 for n in served_pr.values()), served_pr


def test_two_trainers_both_receive_jobs(cluster, k8s_api):
    cluster.scale("training", 2)
    try:
        trainers = cluster.wait_ready("training", 2)
        before = {p: metric_sum(cluster.metrics(p, TRAINING_METRICS_PORT), "loupe_training_jobs_total") for p in trainers}
        # Jobs are keyed by project id over 8 partitions, which the two trainers share: train
        # projects until each trainer has done at least one (bounded).
        done = dict.fromkeys(trainers, 0.0)
        for attempt in range(8):
            project, _ = make_project(k8s_api, f"k8s-scale{attempt}", per_tag=5, seed=attempt)
            assert train(k8s_api, project["id"])["status"] == "Completed"
            done = {p: metric_sum(cluster.metrics(p, TRAINING_METRICS_PORT), "loupe_training_jobs_total") - before[p]
                    for p in trainers}
            if all(n > 0 for n in done.values()):
                break
        assert all(n > 0 for n in done.values()), done
    finally:
        cluster.scale("training", 1)
        cluster.wait_ready("training", 1)


def _delete_and_sigkill(cluster, pod: str) -> None:
    """Force-delete the pod and SIGKILL its container on the node, as a lost node or the OOM
    killer would: the pod's 2 s minimum grace must not let it finish the job it holds."""
    container_id = cluster.json("get", "pod", pod)["status"]["containerStatuses"][0]["containerID"]
    cluster.kubectl("delete", "pod", pod, "--grace-period=0", "--force", "--wait=false")
    subprocess.run(["ctr", "--address", CONTAINERD_SOCK, "-n", "k8s.io", "tasks", "kill", "--signal", "SIGKILL",
                    container_id.split("://", 1)[1]], check=True, capture_output=True, timeout=30)


def test_a_trainer_deleted_mid_training_completes_the_iteration_exactly_once(cluster, k8s_api):
    # Enough images that the job runs for seconds: time to kill it mid-way.
    project, _ = make_project(k8s_api, "k8s-crash", per_tag=60, seed=3)
    # One trainer alone: none left draining from an earlier scale-down.
    trainers = cluster.wait_ready("training", 1, settled=True)
    it = k8s_api.train("POST", f"/projects/{project['id']}/train")
    deadline = time.monotonic() + 120
    while True:  # until the trainer really works on it
        got = k8s_api.train("GET", f"/projects/{project['id']}/iterations/{it['id']}")
        if (got.get("progress") or {}).get("stage") in ("loading", "features"):
            break
        assert got["status"] == "Training", f"finished before it could be killed: {got}"
        assert time.monotonic() < deadline, got
        time.sleep(0.05)
    _delete_and_sigkill(cluster, trainers[0])
    got = k8s_api.train("GET", f"/projects/{project['id']}/iterations/{it['id']}")
    assert got["status"] == "Training", got
    done = k8s_api.wait_iteration(project["id"], it["id"], timeout=600)
    assert done["status"] == "Completed", done
    iterations = k8s_api.train("GET", f"/projects/{project['id']}/iterations")
    assert [i["id"] for i in iterations] == [it["id"]]
    new = cluster.wait_ready("training", 1)
    assert new != trainers
    # The replacement trainer did the redelivered job, once; a second delivery would count again.
    time.sleep(3)
    text = cluster.metrics(new[0], TRAINING_METRICS_PORT)
    outcomes = [line for line in text.splitlines() if line.startswith("loupe_training_jobs_total{")]
    restarts = cluster.json("get", "pod", new[0])["status"]["containerStatuses"][0]["restartCount"]
    assert metric_sum(text, "loupe_training_jobs_total", outcome="completed") == 1, (outcomes, restarts)


def _classify_loop(endpoint: str, key: str, project_id: str, images: list[bytes], stop: threading.Event,
                   results: dict) -> None:
    session = requests.Session()  # keep-alive, as the SDK's client does
    url = endpoint + PREDICTION + f"/{project_id}/classify/iterations/k8s/image/nostore"
    i = 0
    while not stop.is_set():
        try:
            resp = session.post(url, data=images[i % len(images)], timeout=60,
                                headers={"Prediction-Key": key, "Content-Type": "application/octet-stream"})
            if resp.status_code == 200:
                results["ok"] += 1
            else:
                results["failed"].append(f"{resp.status_code} {resp.text[:200]}")
        except requests.RequestException as err:
            results["failed"].append(repr(err))
        i += 1


def test_helm_upgrade_to_a_new_image_tag_under_load_fails_no_prediction(cluster, k8s_api, published):
    project, images = published
    values = cluster.values()
    old_tag = values["image"]["tag"]
    new_tag = f"{old_tag}-upgrade"
    repo = values["image"]["repository"]
    # The same image under a new tag: every Loupe pod rolls, as for a real release.
    subprocess.run(["ctr", "--address", CONTAINERD_SOCK, "-n", "k8s.io", "images", "tag", "--force",
                    f"{repo}:{old_tag}", f"{repo}:{new_tag}"], check=True, capture_output=True)
    stop, results = threading.Event(), {"ok": 0, "failed": []}
    loops = [threading.Thread(target=_classify_loop, args=(k8s_api.endpoint, k8s_api.prediction_key, project["id"],
                                                           images, stop, results)) for _ in range(2)]
    for t in loops:
        t.start()
    try:
        time.sleep(3)
        cluster.helm("upgrade", cluster.release, str(CHART), "--reuse-values",
                     "--set-string", f"image.tag={new_tag}", "--wait", "--timeout", "15m")
        time.sleep(3)
    finally:
        stop.set()
        for t in loops:
            t.join(120)
    images_now = {c["image"] for name in ("gateway", "prediction", "metadata")
                  for pod in cluster.pods(name)
                  for c in cluster.json("get", "pod", pod)["spec"]["containers"]}
    assert images_now == {f"{repo}:{new_tag}"}, images_now
    print(f"upgrade under load: {results['ok']} predictions, {len(results['failed'])} failed")
    assert results["ok"] > 20
    assert results["failed"] == [], results["failed"][:10]
    # Back to the tag the checkout built (the next `make k8s-up` expects it).
    cluster.helm("upgrade", cluster.release, str(CHART), "--reuse-values",
                 "--set-string", f"image.tag={old_tag}", "--wait", "--timeout", "15m")


def _restart_statefulset_pod(cluster, name: str) -> None:
    pod = f"{cluster.component(name)}-0"
    uid = cluster.json("get", "pod", pod)["metadata"]["uid"]
    cluster.kubectl("delete", "pod", pod, "--wait=true", timeout=300)
    deadline = time.monotonic() + 600
    while True:
        got = cluster.json("get", "pod", pod) if pod in cluster.kubectl("get", "pods", "-o", "name") else None
        if got and got["metadata"]["uid"] != uid and any(
                c["type"] == "Ready" and c["status"] == "True" for c in got["status"].get("conditions", [])):
            return
        assert time.monotonic() < deadline, f"{pod} did not come back"
        time.sleep(1)


@pytest.mark.parametrize("component", ["postgresql", "minio", "kafka"])
def test_bundled_infrastructure_restarted_loses_nothing_acknowledged(cluster, k8s_api, published, component):
    project, images = published
    # Acknowledged before the restart: an upload (row and bytes) and a stored prediction.
    tag = k8s_api.train("POST", f"/projects/{project['id']}/tags", params={"name": f"kept-{component}"})
    img = Image.new("RGB", (64, 64), (len(component) * 20, 90, 30))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    summary = k8s_api.upload_files(project["id"], [buf.getvalue()], tag["id"])
    image_id = summary["images"][0]["image"]["id"]
    stored = k8s_api.predict(f"/{project['id']}/classify/iterations/k8s/image", images[1])
    _restart_statefulset_pod(cluster, component)
    deadline = time.monotonic() + 300
    while True:  # the services reconnect by themselves
        try:
            got = k8s_api.train("GET", f"/projects/{project['id']}/images", params={"tagIds": tag["id"]})
            break
        except AssertionError:
            assert time.monotonic() < deadline
            time.sleep(2)
    assert [i["id"] for i in got] == [image_id]
    original = requests.get(got[0]["originalImageUri"], timeout=30)
    assert original.status_code == 200 and original.content == buf.getvalue()
    deadline = time.monotonic() + 120
    while True:
        found = k8s_api.train("POST", f"/projects/{project['id']}/predictions/query",
                              json={"maxCount": 256})
        if any(r["id"] == stored["id"] for r in found["results"]):
            break
        assert time.monotonic() < deadline, "the stored prediction is gone"
        time.sleep(1)
    # And the system still works end to end after the restart: classify and train.
    assert k8s_api.predict(f"/{project['id']}/classify/iterations/k8s/image/nostore", images[2])["predictions"]


def test_network_policies_are_rendered_and_applied(cluster):
    names = set(cluster.kubectl("get", "networkpolicy", "-o", "name").split())
    for component in ("gateway", "metadata", "storage", "training", "prediction", "torchserve",
                      "postgresql", "minio", "kafka"):
        assert f"networkpolicy.networking.k8s.io/{cluster.component(component)}" in names, names


def test_the_cluster_stopped_and_started_again_keeps_everything(cluster, k8s_api, published):
    """`make k8s-down` then `make k8s-up`: every pod restarts on the kept volumes (PostgreSQL
    included, whose data directory the kubelet's fsGroup handling must not open up), with the
    same endpoint and keys, and what was stored before is there."""
    project, images = published
    tag = k8s_api.train("POST", f"/projects/{project['id']}/tags", params={"name": "kept-restart"})
    img = Image.new("RGB", (48, 48), (10, 200, 120))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    summary = k8s_api.upload_files(project["id"], [buf.getvalue()], tag["id"])
    image_id = summary["images"][0]["image"]["id"]
    node = cluster_node()
    node.stop()
    assert not node.running()
    started = time.monotonic()
    cluster_up()
    print(f"k8s-up of a stopped cluster: {time.monotonic() - started:.0f} s")
    # The pods that the stop left Failed were replaced, and removed.
    failed = cluster.json("get", "pods", "--field-selector=status.phase=Failed")["items"]
    assert [p["metadata"]["name"] for p in failed
            if any(o["kind"] == "ReplicaSet" for o in p["metadata"].get("ownerReferences", []))] == []
    got = k8s_api.train("GET", f"/projects/{project['id']}/images", params={"tagIds": tag["id"]})
    assert [i["id"] for i in got] == [image_id]
    assert requests.get(got[0]["originalImageUri"], timeout=30).content == buf.getvalue()
    assert k8s_api.predict(f"/{project['id']}/classify/iterations/k8s/image/nostore", images[0])["predictions"]


_UNCREDENTIALED_CALLS = """
import json, sys
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loupe.v1 import metadata_pb2, metadata_pb2_grpc
out = {}
for target in sys.argv[1].split(","):
    channel = grpc.insecure_channel(target)
    # wait_for_ready: a pod that a restart replaced may linger in DNS (CoreDNS caches 30 s);
    # gRPC re-resolves after a refused connection and goes on to the live one.
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=90,
                                                       wait_for_ready=True)
    out[target] = {"health": health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)}
    if "metadata" in target:
        stub = metadata_pb2_grpc.MetadataServiceStub(channel)
        for name, metadata in (("none", ()), ("forged", (("x-loupe-internal", "gateway.00"),))):
            try:
                stub.ListProjects(metadata_pb2.ListProjectsRequest(account_id="x"), timeout=10,
                                  metadata=metadata)
                out[target][name] = "OK"
            except grpc.RpcError as err:
                out[target][name] = err.code().name
print(json.dumps(out))
"""


def test_internal_servers_refuse_a_pod_without_the_credential(cluster, k8s_env):
    """From inside the cluster (a gateway pod, which NetworkPolicies let reach metadata), a call
    without Loupe's internal credential, or with a forged one, is refused; health stays open."""
    targets = k8s_env["LOUPE_GRPC_INTERNAL_TARGETS"]
    assert len(targets.split(",")) == 4, targets
    pod = cluster.pods("gateway")[0]
    out = json.loads(cluster.kubectl("exec", pod, "--", "python", "-c", _UNCREDENTIALED_CALLS, targets,
                                     timeout=420).strip().splitlines()[-1])
    assert all(v["health"] == "SERVING" for v in out.values()), out
    (metadata,) = [v for k, v in out.items() if "metadata" in k]
    assert metadata["none"] == metadata["forged"] == "UNAUTHENTICATED", out


_STORAGE_CALL = """
import json, os, sys
from loupe_common.config import load
from loupe_gateway.clients import Backends
from loupe_gateway.config import GatewayConfig
backends = Backends(load(GatewayConfig, os.environ))
if sys.argv[1] == "put":
    print(json.dumps({"sha256": backends.put_image(sys.argv[2], sys.stdin.buffer.read(), "image/png").sha256}))
else:
    print(json.dumps({"projects": backends.list_project_ids()}))
"""


def _storage_call(cluster, pod: str, *args: str, data: bytes = b"") -> dict:
    """Runs _STORAGE_CALL in a gateway pod (the gateway's credential; storage is not reachable
    from outside the cluster)."""
    r = subprocess.run([str(cluster.bin / "kubectl"), "-n", cluster.ns, "exec", "-i", pod, "--",
                        "python", "-c", _STORAGE_CALL, *args], env=cluster.proc_env, input=data,
                       capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def test_the_sweep_cronjob_removes_a_deleted_projects_late_bytes(cluster, k8s_api):
    """The chart's orphan-sweep CronJob, run now as its schedule would run it (a Job made from
    it): bytes written for a project metadata does not know (a stored prediction recorded after
    its project's deletion) go, and the run's log ends with what it removed."""
    cronjob = cluster.json("get", "cronjob", cluster.component("sweep"))
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    gateway = cluster.pods("gateway")[0]
    env = {e["name"]: e.get("value") for e in
           cluster.json("get", "pod", gateway)["spec"]["containers"][0]["env"]}
    assert env["LOUPE_ORPHAN_SWEEP_INTERVAL_S"] == "0"  # the CronJob sweeps, not each replica
    # A project that exists and has bytes: with none, the sweep's safety valve (metadata knows
    # none of the projects storage holds: the wrong database?) would rightly remove nothing.
    kept, _ = make_project(k8s_api, f"k8s-sweep-{uuid.uuid4().hex[:6]}", per_tag=2, seed=9)
    gone = str(uuid.uuid4())
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (200, 30, 90)).save(buf, format="PNG")
    _storage_call(cluster, gateway, "put", gone, data=buf.getvalue())
    assert gone in _storage_call(cluster, gateway, "list")["projects"]
    job = f"{cluster.component('sweep')}-test-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "job", job, f"--from=cronjob/{cluster.component('sweep')}")
    try:
        done = cluster.kubectl("wait", "--for=condition=complete", f"job/{job}", "--timeout=300s",
                               check=False, timeout=320)
        logs = cluster.kubectl("logs", f"job/{job}", check=False)
        assert "condition met" in done, cluster.kubectl("describe", f"job/{job}") + logs
        summary = json.loads([line for line in logs.splitlines() if line.startswith("{")][-1])
        assert summary["projects"] >= 1 and not summary["skipped"], logs
        projects = _storage_call(cluster, gateway, "list")["projects"]
        assert gone not in projects and kept["id"] in projects
    finally:
        cluster.kubectl("delete", "job", job, "--wait=false", check=False)
