"""Training latency through the real services (issue 4's timing protocol).

Against a running Loupe (`make up`; reads `.loupe/env` or LOUPE_ENDPOINT / LOUPE_TRAINING_KEY),
through the public REST API: uploads N Fashion-MNIST images for each of K classes, then times
`POST …/train` → iteration `Completed` (all features new), then adds a few images and times the
retraining (features of unchanged images come from the cache), then an Advanced training of the
same images (`forceTrain`; features cached, so this is the hidden-layer head's own time), and
finally classifies held-out images through the prediction API with both to report accuracy
beside each iteration's reported precision/recall. The trainer's peak resident memory (its
`loupe_process_peak_rss_bytes` metric, since the process started) is read after the first
training and after the Advanced one.

Usage: python bench/train_latency.py [--n 30] [--classes 10] [--extra 3] [--test-per-class 30]
                                     [--no-advanced] [--trainer-metrics URL]
Writes bench/results/train_latency.json.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
import time
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "services/common"))

from loupe_common.limits import MAX_BATCH_IMAGES  # noqa: E402
from loupe_model.datasets import load_fashion_mnist  # noqa: E402

sys.path.insert(0, str(REPO / "deploy/local"))
from loupe_stack.layout import PORT_OFFSETS  # noqa: E402

sys.path.insert(0, str(REPO / "cli"))
from loupe_cli.api import Client, load_config  # noqa: E402 - the CLI's client: env file, keys, 429 retries

def _trainer_metrics_url(endpoint: str) -> str:
    """The local stack's trainer /metrics, found from the gateway's port (see layout.py)."""
    match = re.match(r"^(https?://[^/:]+):(\d+)", endpoint)
    if not match:
        return ""
    port = int(match.group(2)) - PORT_OFFSETS["gateway"] + PORT_OFFSETS["training_metrics"]
    return f"{match.group(1)}:{port}/metrics"


def _peak_rss_mb(url: str) -> float | None:
    """The trainer's peak RSS in MB, or None when its metrics cannot be read."""
    try:
        text = requests.get(url, timeout=5).text
    except requests.RequestException:
        return None
    match = re.search(r"^loupe_process_peak_rss_bytes ([0-9.e+]+)$", text, re.MULTILINE)
    return round(float(match.group(1)) / 2**20, 1) if match else None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--extra", type=int, default=3)
    parser.add_argument("--test-per-class", type=int, default=30)
    parser.add_argument("--seed", type=int, default=2100)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/train_latency.json")
    parser.add_argument("--no-advanced", dest="advanced", action="store_false")
    parser.add_argument("--trainer-metrics", default=None,
                        help="the trainer's /metrics URL (default: the local stack's, from LOUPE_ENDPOINT)")
    args = parser.parse_args()
    client = Client(load_config({}, env_file=REPO / ".loupe" / "env"))
    config = client.config
    metrics_url = (args.trainer_metrics or os.environ.get("LOUPE_TRAINER_METRICS")
                   or _trainer_metrics_url(config.endpoint))
    call = client.train

    classes = tuple(range(args.classes))
    train = load_fashion_mnist("train", classes, args.n + args.extra, seed=args.seed)
    project = call("POST", "/projects", params={"name": f"bench-{uuid.uuid4().hex[:6]}"})
    pid = project["id"]
    tags = [call("POST", f"/projects/{pid}/tags", params={"name": f"class{c}"}) for c in classes]
    by_class = {c: [img for img, label in train if label == c] for c in range(args.classes)}

    def upload(images, tag):
        for start in range(0, len(images), MAX_BATCH_IMAGES):
            body = {"images": [{"name": f"{i}.png", "contents": base64.b64encode(b).decode()}
                               for i, b in enumerate(images[start:start + MAX_BATCH_IMAGES])], "tagIds": [tag["id"]]}
            call("POST", f"/projects/{pid}/images/files", json=body)

    for c, tag in enumerate(tags):
        upload(by_class[c][: args.n], tag)

    def train_once(**params):
        started = time.perf_counter()
        it = call("POST", f"/projects/{pid}/train", params=params)
        while it["status"] == "Training":
            time.sleep(0.15)  # under 10 requests/s per key, the gateway's own limit when it is on
            it = call("GET", f"/projects/{pid}/iterations/{it['id']}")
        return it, time.perf_counter() - started

    first, first_s = train_once()
    peak_first = _peak_rss_mb(metrics_url)
    for c, tag in enumerate(tags[: args.extra]):
        upload(by_class[c][args.n: args.n + 1], tag)
    second, second_s = train_once()
    test = load_fashion_mnist("test", classes, args.test_per_class, seed=4343)

    def evaluate(iteration: dict, name: str):
        perf = call("GET", f"/projects/{pid}/iterations/{iteration['id']}/performance", params={"threshold": 0.5})
        call("POST", f"/projects/{pid}/iterations/{iteration['id']}/publish",
             params={"publishName": name, "predictionId": config.prediction_resource_id})
        right, latencies = 0, []
        for img, label in test:
            time.sleep(0.11)  # under that limit too: no latency includes a throttling wait
            t0 = time.perf_counter()
            out = client.predict(pid, name, img, store=False)
            latencies.append(time.perf_counter() - t0)
            best = max(out["predictions"], key=lambda p: p["probability"])
            right += best["tagName"] == f"class{label}"
        latencies.sort()
        return perf, right, latencies

    perf, right, latencies = evaluate(second, "bench")
    advanced = {}
    if args.advanced:
        third, third_s = train_once(trainingType="Advanced", reservedBudgetInHours=1, forceTrain="true")
        adv_perf, adv_right, _ = evaluate(third, "bench-advanced")
        advanced = {
            "trainer_peak_rss_mb_after_advanced": _peak_rss_mb(metrics_url),
            "advanced_seconds_features_cached": round(third_s, 2), "advanced_status": third["status"],
            "advanced_test_accuracy": round(adv_right / len(test), 3),
            "advanced_reported_precision": round(adv_perf["precision"], 3),
            "advanced_reported_recall": round(adv_perf["recall"], 3),
        }
    call("DELETE", f"/projects/{pid}")
    result = {
        "through": "real services (REST API of a running stack)",
        "images": args.n * args.classes,
        "first_training_seconds": round(first_s, 2), "first_status": first["status"],
        "retraining_seconds": round(second_s, 2), "retraining_new_images": args.extra,
        "test_accuracy": round(right / len(test), 3),
        "reported_precision": round(perf["precision"], 3), "reported_recall": round(perf["recall"], 3),
        "predict_p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
        "predict_p90_ms": round(1000 * latencies[int(len(latencies) * 0.9)], 1),
        "trainer_peak_rss_mb_after_first_training": peak_first,
        **advanced,
    }
    print(f"| images | train (s) | retrain +{args.extra} (s) | test acc | CV precision | CV recall | predict p50/p90 (ms) |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {result['images']} | {result['first_training_seconds']} | {result['retraining_seconds']} | "
          f"{result['test_accuracy']} | {result['reported_precision']} | {result['reported_recall']} | "
          f"{result['predict_p50_ms']}/{result['predict_p90_ms']} |")
    if advanced:
        print(f"\nAdvanced (same {result['images'] + args.extra} images, features cached): "
              f"{advanced['advanced_seconds_features_cached']} s, {advanced['advanced_status']}, test acc "
              f"{advanced['advanced_test_accuracy']}, CV precision {advanced['advanced_reported_precision']}, "
              f"CV recall {advanced['advanced_reported_recall']}")
    print(f"\nTrainer peak RSS since it started ({metrics_url}): "
          f"{result['trainer_peak_rss_mb_after_first_training']} MB after the first training"
          + (f", {advanced['trainer_peak_rss_mb_after_advanced']} MB after Advanced" if advanced else ""))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
