"""Many published iterations: the prediction service's memory with N of them served, and the
latency of each one's first prediction (its head not yet cached) beside later ones.

Against a running local stack (`make up`; reads `.loupe/env` and, for the internal credential,
`.loupe/secrets.env` beside it): trains one two-class Fashion-MNIST project through REST, then
makes N-1 more Completed iterations of it through metadata's and storage's internal APIs (as a
trainer would leave them: each with its own copy of the trained head under its own key; training
each for real would take the better part of an hour) and publishes all N under their own names.
Then, through REST (`…/classify/iterations/{name}/image/nostore`, one request at a time):

- pass 1 classifies once with each iteration: its head is loaded from storage on the way
  (the first prediction of an iteration not yet cached);
- pass 2 does it again (every head cached: LOUPE_HEAD_CACHE_SIZE is 1024).

Prints p50/p95/max of each pass and the prediction and gateway processes' RSS before and
after (psutil), and the growth per iteration. The project is deleted at the end. Usage:
    python bench/published_iterations.py [--iterations 1000] [--env .loupe/env]
Writes bench/results/published_iterations.json.
"""
from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "services/common"))
sys.path.insert(0, str(REPO / "bench"))

from loupe.v1 import metadata_pb2 as mpb  # noqa: E402
from loupe.v1 import metadata_pb2_grpc, storage_pb2_grpc  # noqa: E402
from loupe.v1 import storage_pb2 as spb  # noqa: E402
from loupe_common import internal_auth, storage_keys  # noqa: E402
from loupe_common.clients import ServiceClient  # noqa: E402
from loupe_model.datasets import load_fashion_mnist  # noqa: E402
from predict import load_env, photos, stack_processes  # noqa: E402

TRAINING = "/customvision/v3.3/training"
PREDICTION = "/customvision/v3.0/prediction"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_mb(pid: int | None) -> float:
    import psutil

    if pid is None:
        return float("nan")
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def _secret(env_file: Path) -> str:
    for line in (env_file.parent / "secrets.env").read_text().splitlines():
        if line.startswith("INTERNAL_SECRET="):
            return line.split("=", 1)[1].strip()
    raise SystemExit("no INTERNAL_SECRET beside the env file: this bench needs a local stack (make up)")


def _targets(env_file: Path) -> dict[str, str]:
    """The internal targets of the local stack (LOUPE_GRPC_INTERNAL_TARGETS lists them in the
    order metadata, storage, training, prediction)."""
    env = load_env(env_file)
    names = ("metadata", "storage", "training", "prediction")
    for line in env_file.read_text().splitlines():
        if "LOUPE_GRPC_INTERNAL_TARGETS=" in line:
            return dict(zip(names, line.split("=", 1)[1].strip().split(",")))
    raise SystemExit(f"no LOUPE_GRPC_INTERNAL_TARGETS in {env_file} ({sorted(env)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--env", type=Path, default=REPO / ".loupe" / "env")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "published_iterations.json")
    args = parser.parse_args(argv)
    env = load_env(args.env)
    base = env["LOUPE_ENDPOINT"].rstrip("/")
    http = requests.Session()
    http.headers["Training-Key"] = env["LOUPE_TRAINING_KEY"]
    secret = _secret(args.env)
    targets = _targets(args.env)
    gateway_cred = internal_auth.credential(secret, internal_auth.GATEWAY)
    metadata = ServiceClient(targets["metadata"], metadata_pb2_grpc.MetadataServiceStub, credential=gateway_cred)
    storage = ServiceClient(targets["storage"], storage_pb2_grpc.StorageServiceStub,
                            credential=internal_auth.credential(secret, internal_auth.TRAINING))
    account = metadata.ResolveKey(mpb.ResolveKeyRequest(key=env["LOUPE_TRAINING_KEY"])).account_id

    pid = http.post(f"{base}{TRAINING}/projects", params={"name": f"bench-many-{uuid.uuid4().hex[:6]}"},
                    timeout=30).json()["id"]
    try:
        data = load_fashion_mnist("train", (0, 1), 8, seed=21)
        for position in range(2):
            tag = http.post(f"{base}{TRAINING}/projects/{pid}/tags", params={"name": f"t{position}"}, timeout=30).json()
            body = {"images": [{"name": f"{i}.png", "contents": base64.b64encode(img).decode()}
                               for i, (img, label) in enumerate(data) if label == position],
                    "tagIds": [tag["id"]]}
            http.post(f"{base}{TRAINING}/projects/{pid}/images/files", json=body, timeout=120).raise_for_status()
        first = http.post(f"{base}{TRAINING}/projects/{pid}/train", timeout=60).json()
        while (it := http.get(f"{base}{TRAINING}/projects/{pid}/iterations/{first['id']}", timeout=30).json())["status"] == "Training":
            time.sleep(0.5)
        if it["status"] != "Completed":
            raise SystemExit(f"training failed: {it}")
        trained = metadata.GetIteration(mpb.GetIterationRequest(
            account_id=account, project_id=pid, iteration_id=first["id"])).iteration
        head = storage.GetObject(spb.GetObjectRequest(key=trained.artifact_key)).data
        ids = [first["id"]]
        made = time.monotonic()
        for _ in range(args.iterations - 1):
            iteration = metadata.CreateIteration(mpb.CreateIterationRequest(
                account_id=account, project_id=pid, training_type="Regular", force_train=True)).iteration
            metadata.MarkTrainingJobSent(mpb.MarkTrainingJobSentRequest(iteration_id=iteration.id))
            key = storage_keys.head_key(pid, iteration.id)
            storage.PutObject(spb.PutObjectRequest(key=key, data=head, content_type="application/octet-stream"))
            metadata.FinishIteration(mpb.FinishIterationRequest(
                iteration_id=iteration.id, status="Completed", artifact_key=key,
                performance=trained.performance))
            ids.append(iteration.id)
        for n, iteration_id in enumerate(ids):
            metadata.PublishIteration(mpb.PublishIterationRequest(
                account_id=account, project_id=pid, iteration_id=iteration_id, publish_name=f"it{n}",
                prediction_resource_id=env["LOUPE_PREDICTION_RESOURCE_ID"]))
        print(f"{len(ids)} published iterations made in {time.monotonic() - made:.1f} s", flush=True)

        procs = stack_processes(args.env)
        image = photos()[0]  # a 320-px JPEG, as bench/predict.py sends
        predict = requests.Session()
        predict.headers.update({"Prediction-Key": env["LOUPE_PREDICTION_KEY"],
                                "Content-Type": "application/octet-stream"})
        # Warm the path (gateway, prediction, TorchServe) on one iteration first: pass 1 then
        # measures what a head not yet cached adds, not the first request of the process.
        for _ in range(5):
            predict.post(f"{base}{PREDICTION}/{pid}/classify/iterations/it0/image/nostore", data=image,
                         timeout=60).raise_for_status()
        before = {name: rss_mb(procs.get(name)) for name in ("prediction", "gateway")}
        passes = []
        for _ in range(2):
            took = []
            for n in range(len(ids)):
                start = time.perf_counter()
                resp = predict.post(f"{base}{PREDICTION}/{pid}/classify/iterations/it{n}/image/nostore",
                                    data=image, timeout=60)
                took.append((time.perf_counter() - start) * 1000)
                resp.raise_for_status()
            passes.append(took[1:])  # it0 was warmed
        after = {name: rss_mb(procs.get(name)) for name in ("prediction", "gateway")}
    finally:
        requests.delete(f"{base}{TRAINING}/projects/{pid}", headers={"Training-Key": env["LOUPE_TRAINING_KEY"]},
                        timeout=300)
        metadata.close()
        storage.close()

    result = {
        "iterations": len(ids),
        "first_prediction_ms": {"p50": _pct(passes[0], 0.5), "p95": _pct(passes[0], 0.95), "max": max(passes[0])},
        "cached_prediction_ms": {"p50": _pct(passes[1], 0.5), "p95": _pct(passes[1], 0.95), "max": max(passes[1])},
        "rss_mb_before": before, "rss_mb_after": after,
        "rss_mb_growth": {k: after[k] - before[k] for k in before},
        "head_bytes": len(head),
    }
    print(f"\n{len(ids)} published iterations, one 320-px JPEG each, REST, one request at a time")
    print(f"{'pass':<34}{'p50 ms':>8}{'p95 ms':>8}{'max ms':>8}")
    for label, key in (("1: first prediction (head loaded)", "first_prediction_ms"),
                       ("2: again (head cached)", "cached_prediction_ms")):
        r = result[key]
        print(f"{label:<34}{r['p50']:>8.1f}{r['p95']:>8.1f}{r['max']:>8.1f}")
    ratio = result["first_prediction_ms"]["p50"] / result["cached_prediction_ms"]["p50"]
    print(f"first / cached p50: {ratio:.2f}")
    for name in ("prediction", "gateway"):
        g = result["rss_mb_growth"][name]
        print(f"{name:<11} RSS {before[name]:7.1f} -> {after[name]:7.1f} MB: +{g:.1f} MB "
              f"({1024 * g / len(ids):.1f} KB per iteration; a head is {len(head) / 1024:.1f} KB)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
