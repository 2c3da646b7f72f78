"""kubectl and helm against the cluster of `make k8s-up`, for the k8s tier."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class Cluster:
    """kubectl and helm against the cluster, and what the tests ask of them."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.ns = env["LOUPE_K8S_NAMESPACE"]
        self.release = env["LOUPE_K8S_RELEASE"]
        self.bin = Path(env["LOUPE_K8S_BIN"])
        self.proc_env = dict(os.environ, KUBECONFIG=env["KUBECONFIG"])

    def kubectl(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        r = subprocess.run([str(self.bin / "kubectl"), "-n", self.ns, *args], env=self.proc_env,
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def helm(self, *args: str, timeout: float = 900) -> str:
        r = subprocess.run([str(self.bin / "helm"), "-n", self.ns, *args], env=self.proc_env,
                           capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, f"helm {' '.join(args)}: {r.stdout[-2000:]}{r.stderr[-2000:]}"
        return r.stdout

    def json(self, *args: str):
        return json.loads(self.kubectl(*args, "-o", "json"))

    def component(self, name: str) -> str:
        return f"{self.release}-{name}"

    def pods(self, component: str, ready_only: bool = True, terminating: bool = False) -> list[str]:
        """The component's pods: the ready ones (or all that run), with those terminating
        (deleted, still draining) only when `terminating`."""
        items = self.json("get", "pods", "-l", f"app.kubernetes.io/component={component}")["items"]
        names = []
        for pod in items:
            if pod["metadata"].get("deletionTimestamp"):
                if terminating:
                    names.append(pod["metadata"]["name"])
                continue
            # Failed or Succeeded for good: e.g. a pod whose node stopped under it, which the
            # kubelet marks ContainerStatusUnknown; its ReplicaSet has replaced it.
            if pod.get("status", {}).get("phase") in ("Failed", "Succeeded"):
                continue
            ready = any(c["type"] == "Ready" and c["status"] == "True"
                        for c in pod.get("status", {}).get("conditions", []))
            if ready or not ready_only:
                names.append(pod["metadata"]["name"])
        return sorted(names)

    def metrics(self, pod: str, port: int) -> str:
        """A pod's /metrics, through the API server's proxy (the test never dials a pod)."""
        return self.kubectl("get", "--raw", f"/api/v1/namespaces/{self.ns}/pods/{pod}:{port}/proxy/metrics")

    def wait_ready(self, component: str, count: int, timeout: float = 600, settled: bool = False) -> list[str]:
        """Waits until `count` pods of the component are ready and no others run (with
        `settled`, none is left terminating either) and returns the ready ones."""
        deadline = time.monotonic() + timeout
        while True:
            ready, every = self.pods(component), self.pods(component, ready_only=False, terminating=settled)
            if len(ready) == count and len(every) == count:
                return ready
            assert time.monotonic() < deadline, f"{component}: {len(ready)}/{count} ready: {every}"
            time.sleep(1)

    def scale(self, component: str, replicas: int) -> None:
        """Sets a component's replicas (through its HPA's floor where it has one)."""
        name = self.component(component)
        hpas = self.kubectl("get", "hpa", "-o", "name", check=False).split()
        if f"horizontalpodautoscaler.autoscaling/{name}" in hpas:
            patch = json.dumps({"spec": {"minReplicas": replicas, "maxReplicas": max(replicas, 10)}})
            self.kubectl("patch", "hpa", name, "--type", "merge", "-p", patch)
        self.kubectl("scale", "deployment", name, f"--replicas={replicas}")

    def values(self) -> dict:
        return json.loads(self.helm("get", "values", self.release, "-o", "json"))


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus metric's samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        if metric != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += float(value)
    return total


def cluster_node():
    """The checkout's cluster node (what `make k8s-up` / `make k8s-down` drive)."""
    from loupe_cluster.__main__ import layout
    from loupe_cluster.cluster import Cluster as Node
    return Node(layout())


def cluster_up() -> None:
    """`make k8s-up`: builds or starts the cluster and installs the chart, idempotently."""
    # pytest's pythonpath (pyproject) reaches the child too, whether or not make set PYTHONPATH.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    subprocess.run([sys.executable, "-m", "loupe_cluster", "up"], check=True, cwd=REPO, env=env)
