"""`python -m loupe_cluster up|down|status|env`: Loupe on a real single-node Kubernetes.

up      installs what is missing (Debian packages; Kubernetes, CoreDNS and helm built from the Go
        module proxy into the Loupe cache), starts the cluster, builds and loads the images,
        installs (or upgrades) the chart, waits for every pod, writes .loupe/k8s/env
down    stops the pods and the cluster's processes; the data stays in .loupe/k8s
status  the cluster's processes and Loupe's pods
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from loupe_cluster import build, images
from loupe_cluster.cluster import NODE_NAME, Cluster, ClusterLayout, write_config

log = logging.getLogger("loupe_cluster")

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "deploy" / "helm" / "loupe"
LOCAL_VALUES = REPO / "deploy" / "k8s" / "values-local.yaml"
RELEASE = "loupe"
NAMESPACE = "loupe"
#: The gateway's NodePort, served on 127.0.0.1 only (kube-proxy's nodePortAddresses).
GATEWAY_NODE_PORT = 30750
#: The gateway's public gRPC API (docs/grpc.md) as a NodePort too: LOUPE_GRPC_ENDPOINT.
GATEWAY_GRPC_NODE_PORT = 30751

DEBIAN_PACKAGES = {
    # package -> a file that proves it is installed
    "containerd": "/usr/bin/containerd",
    "runc": "/usr/sbin/runc",
    "containernetworking-plugins": "/usr/lib/cni/bridge",
    "iptables": "/usr/sbin/iptables",
    "conntrack": "/usr/sbin/conntrack",
    "iproute2": "/usr/sbin/ip",
    "etcd-server": "/usr/bin/etcd",
    "buildah": "/usr/bin/buildah",
    "mmdebstrap": "/usr/bin/mmdebstrap",
    "openssl": "/usr/bin/openssl",
}


def cache_dir() -> Path:
    return Path(os.environ.get("LOUPE_CACHE", Path.home() / ".cache" / "loupe"))


def layout() -> ClusterLayout:
    data = Path(os.environ.get("LOUPE_K8S_DATA", REPO / ".loupe" / "k8s"))
    return ClusterLayout(data=data, cache=cache_dir())


def ensure_debian_packages() -> None:
    missing = [p for p, proof in DEBIAN_PACKAGES.items() if not Path(proof).exists()]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit("make k8s-up runs a kubelet and containerd: it needs root")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log.info("installing %s", " ".join(missing))
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env)


def _step(name: str, t0: float) -> None:
    log.info("%s (%.0f s)", name, time.monotonic() - t0)


def helm(L: ClusterLayout, *args: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, KUBECONFIG=str(L.admin_kubeconfig),
               HELM_CACHE_HOME=str(L.cache / "helm" / "cache"), HELM_CONFIG_HOME=str(L.cache / "helm" / "config"),
               HELM_DATA_HOME=str(L.cache / "helm" / "data"))
    return subprocess.run([str(L.bin / "helm"), *args], check=check, env=env, text=True,
                          capture_output=capture)


def apply_basics(cluster: Cluster) -> None:
    """What a bare cluster lacks for the chart: CoreDNS's read access, a default StorageClass and
    local volumes for the bundled PostgreSQL, MinIO and Kafka (each pre-bound to its claim and
    owned by the uid its image runs as, since hostPath volumes ignore fsGroup)."""
    L = cluster.layout
    docs = [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "loupe:coredns"},
         "rules": [{"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"]},
                   {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "loupe:coredns"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "loupe:coredns"},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:coredns"}]},
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
         "metadata": {"name": "local", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
         "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer",
         "reclaimPolicy": "Retain"},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
    ]
    for name, uid in (("postgresql", 999), ("minio", 10001), ("kafka", 1000)):
        claim = f"data-{RELEASE}-{name}-0"
        path = L.volumes / name
        if not path.exists():  # once: later, the kubelet owns its mode (fsGroup, OnRootMismatch)
            path.mkdir(parents=True, mode=0o700)
            os.chown(path, uid, uid)
        docs.append({
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{NAMESPACE}-{claim}"},
            "spec": {"capacity": {"storage": "1Ti"}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "local",
                     "claimRef": {"namespace": NAMESPACE, "name": claim},
                     "local": {"path": str(path)},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "kubernetes.io/hostname", "operator": "In", "values": [NODE_NAME]}]}]}}},
        })
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))


def install_chart(cluster: Cluster, refs: dict[str, str], timeout: str = "15m") -> None:
    L = cluster.layout
    repo, _, tag = refs["loupe"].rpartition(":")
    sets = {
        "image.repository": repo, "image.tag": tag,
        "postgresql.image": refs["postgresql"], "minio.image": refs["minio"], "kafka.image": refs["kafka"],
    }
    args = ["upgrade", "--install", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(LOCAL_VALUES),
            "--wait", "--timeout", timeout, "--set", f"gateway.service.nodePort={GATEWAY_NODE_PORT}",
            "--set", f"gateway.service.grpcNodePort={GATEWAY_GRPC_NODE_PORT}"]
    for k, v in sets.items():
        args += ["--set-string", f"{k}={v}"]
    stop = threading.Event()
    sweeper = threading.Thread(target=_sweep_pods_of_gone_images, args=(cluster, set(refs.values()), stop),
                               daemon=True)
    sweeper.start()
    try:
        r = helm(L, *args, check=False)
    finally:
        stop.set()
        sweeper.join()
    if r.returncode != 0:
        cluster.kubectl("-n", NAMESPACE, "get", "pods,jobs", "-o", "wide", check=False, capture=False)
        raise SystemExit(f"helm upgrade --install failed; pods above, logs with: "
                         f"KUBECONFIG={L.admin_kubeconfig} {L.bin / 'kubectl'} -n {NAMESPACE} logs <pod>")


#: Why a container waits when its image is not on the node (pull policy Never, no registry).
_NO_IMAGE = {"ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff"}


def pods_of_gone_images(pods: list[dict], wanted: set[str]) -> list[str]:
    """Names of the pods that wait for an image this install does not bring.

    Their image was an older build, pruned since (another checkout's `k8s-up` on this machine
    builds and keeps its own tags). Such a pod can never start, and a StatefulSet does not
    replace a pod that never became ready, so the upgrade would wait for it until it timed out.
    A pod waiting for one of `wanted` is left alone: that is a real failure to report.
    """
    names = []
    for pod in pods:
        status = pod.get("status", {})
        for cs in status.get("containerStatuses", []) + status.get("initContainerStatuses", []):
            reason = cs.get("state", {}).get("waiting", {}).get("reason")
            if reason in _NO_IMAGE and cs.get("image") not in wanted:
                names.append(pod["metadata"]["name"])
                break
    return names


def _sweep_pods_of_gone_images(cluster: Cluster, wanted: set[str], stop: threading.Event) -> None:
    """While helm upgrades, deletes the pods `pods_of_gone_images` names: their controllers make
    them again, from the new template once helm has applied it."""
    while not stop.wait(5):
        r = cluster.kubectl("-n", NAMESPACE, "get", "pods", "-o", "json", check=False)
        if r.returncode != 0:
            continue
        names = pods_of_gone_images(json.loads(r.stdout)["items"], wanted)
        if names:
            log.info("deleting pods whose image is gone: %s", " ".join(names))
            cluster.kubectl("-n", NAMESPACE, "delete", "pod", "--wait=false", *names, check=False)


def remove_replaced_pods(cluster: Cluster) -> list[str]:
    """Deletes the release's failed pods that a ReplicaSet has replaced.

    A pod whose node stopped under it (`make k8s-down`) comes back as Failed
    (ContainerStatusUnknown) while its ReplicaSet starts a new one; Kubernetes keeps such pods
    until thousands have piled up. Job pods stay: their logs say why a hook failed.
    """
    pods = json.loads(cluster.kubectl("-n", NAMESPACE, "get", "pods", "-o", "json").stdout)["items"]
    names = [p["metadata"]["name"] for p in pods
             if p.get("status", {}).get("phase") == "Failed"
             and any(o.get("kind") == "ReplicaSet" for o in p["metadata"].get("ownerReferences", []))]
    if names:
        cluster.kubectl("-n", NAMESPACE, "delete", "pod", "--wait=false", *names)
    return names


def secret_values(cluster: Cluster, name: str) -> dict[str, str]:
    r = cluster.kubectl("-n", NAMESPACE, "get", "secret", name, "-o", "json")
    return {k: base64.b64decode(v).decode() for k, v in json.loads(r.stdout)["data"].items()}


def internal_targets(cluster: Cluster) -> list[str]:
    """host:port in the cluster of every internal gRPC server (their Services' gRPC ports)."""
    out = []
    for name in ("metadata", "storage", "training", "prediction"):
        svc = json.loads(cluster.kubectl("-n", NAMESPACE, "get", "service", f"{RELEASE}-{name}",
                                         "-o", "json").stdout)
        port = svc["spec"]["ports"][0]["port"]  # the gRPC port first, then metrics
        out.append(f"{RELEASE}-{name}.{NAMESPACE}.svc.cluster.local:{port}")
    return out


def write_env(cluster: Cluster) -> dict[str, str]:
    L = cluster.layout
    auth = secret_values(cluster, f"{RELEASE}-auth")
    values = {
        "LOUPE_ENDPOINT": f"http://127.0.0.1:{GATEWAY_NODE_PORT}",
        "LOUPE_GRPC_ENDPOINT": f"127.0.0.1:{GATEWAY_GRPC_NODE_PORT}",
        # In-cluster addresses (from a pod, or `kubectl port-forward svc/...`): credential
        # required, health and reflection open.
        "LOUPE_GRPC_INTERNAL_TARGETS": ",".join(internal_targets(cluster)),
        "LOUPE_TRAINING_KEY": auth["training-key"],
        "LOUPE_PREDICTION_KEY": auth["prediction-key"],
        "LOUPE_PREDICTION_RESOURCE_ID": (f"/subscriptions/{auth['account-id']}/resourceGroups/loupe/providers/"
                                         "Microsoft.CognitiveServices/accounts/loupe-prediction"),
        "KUBECONFIG": str(L.admin_kubeconfig),
        "LOUPE_K8S_NAMESPACE": NAMESPACE,
        "LOUPE_K8S_RELEASE": RELEASE,
        "LOUPE_K8S_BIN": str(L.bin),
    }
    tmp = L.env_file.with_suffix(".tmp")
    tmp.write_text("".join(f"export {k}={v}\n" for k, v in values.items()))
    tmp.chmod(0o600)
    tmp.rename(L.env_file)
    return values


def wait_gateway(url: str, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the gateway does not answer on {url}")
        time.sleep(1)


def up() -> None:
    t0 = time.monotonic()
    L = layout()
    ensure_debian_packages()
    bin_dir = build.build_all(L.cache)
    _step("binaries ready", t0)
    store = images.Images(L.cache, L.containerd_sock)
    pause = store.pause(bin_dir / "pause")
    write_config(L, pause)
    cluster = Cluster(L)
    cluster.start()
    cluster.wait_api()
    apply_basics(cluster)  # CoreDNS's access first: pods resolve names from their first start
    _step("API server ready", t0)
    refs = images.build_and_load(L.cache, L.containerd_sock, bin_dir / "pause")
    _step("images built and loaded", t0)
    cluster.wait_node()
    install_chart(cluster, refs)
    _step("chart installed, every pod ready", t0)
    store.prune(refs)  # every pod runs these now: older builds only take disk
    remove_replaced_pods(cluster)
    env = write_env(cluster)
    wait_gateway(env["LOUPE_ENDPOINT"])
    kubectl = f"{L.bin / 'kubectl'}"
    print(f"""
Loupe runs on Kubernetes ({time.monotonic() - t0:.0f} s): {env['LOUPE_ENDPOINT']}  (web UI and REST API)
  keys and endpoint: . {L.env_file}
  kubectl:           KUBECONFIG={L.admin_kubeconfig} {kubectl} -n {NAMESPACE} get pods
  helm:              KUBECONFIG={L.admin_kubeconfig} {L.bin / 'helm'} -n {NAMESPACE} status {RELEASE}
  (after `. {L.env_file}`, $KUBECONFIG is set: `export PATH={L.bin}:$PATH` gives kubectl and helm)
  stop it:           make k8s-down (the data stays in {L.data})
""")


def down() -> None:
    Cluster(layout()).stop()


def status() -> None:
    L = layout()
    cluster = Cluster(L)
    if not cluster.running():
        print("the cluster is not running")
        return
    print(cluster.ctl("status", check=False).stdout)
    cluster.kubectl("-n", NAMESPACE, "get", "pods", "-o", "wide", check=False, capture=False)


@contextlib.contextmanager
def one_at_a_time(cache: Path):
    """Holds the machine-wide lock of cluster commands: two `up`s at once (two checkouts, a test
    run beside `make k8s-up`) would build into one image store and start one node twice."""
    path = cache / "k8s" / "command.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another cluster command runs on this machine: waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loupe_cluster")
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="k8s: %(message)s")
    if args.command == "status":
        status()
    else:
        with one_at_a_time(layout().cache):
            {"up": up, "down": down}[args.command]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
