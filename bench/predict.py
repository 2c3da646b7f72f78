"""Classification throughput: REST (`…/classify/iterations/{name}/image/nostore`) beside the
public gRPC API's `ClassifyStream` (docs/grpc.md), at the same concurrency.

Against a running Loupe (`make up`; reads `.loupe/env`, or LOUPE_ENDPOINT, LOUPE_GRPC_ENDPOINT,
LOUPE_TRAINING_KEY, LOUPE_PREDICTION_KEY, LOUPE_PREDICTION_RESOURCE_ID from the environment):
trains and publishes a two-class Fashion-MNIST project (over gRPC), then classifies the same
images without storing them:

- REST, concurrency c: c threads, each with its own keep-alive session, one request at a time;
- gRPC, concurrency c: c ClassifyStreams, each sending its next image once the previous answer
  came (the same c requests in flight as REST);
- gRPC pipelined, concurrency c: c streams that send without waiting (the server works on up
  to 8 requests of a stream at once).

Prints images/s for each and the gRPC/REST ratios. Usage:
    python bench/predict.py [--concurrency 1 4 16] [--requests 200] [--env .loupe/env]
Writes bench/results/predict.json.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
import uuid
from pathlib import Path

import grpc
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "services/common"))

from loupe.v1 import api_pb2 as api  # noqa: E402
from loupe.v1 import api_pb2_grpc  # noqa: E402
from loupe_model.datasets import load_fashion_mnist  # noqa: E402

PUBLISH_NAME = "bench"
KEYS = ("LOUPE_ENDPOINT", "LOUPE_GRPC_ENDPOINT", "LOUPE_TRAINING_KEY", "LOUPE_PREDICTION_KEY",
        "LOUPE_PREDICTION_RESOURCE_ID")


def load_env(path: Path) -> dict[str, str]:
    values = {}
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.removeprefix("export ").strip()
            if "=" in line:
                k, v = line.split("=", 1)
                values[k] = v
    values.update({k: os.environ[k] for k in KEYS if os.environ.get(k)})
    missing = [k for k in KEYS if not values.get(k)]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: start Loupe (make up) or set them")
    return values


def setup(env: dict[str, str], channel: grpc.Channel) -> str:
    """A trained project published as PUBLISH_NAME; returns its id."""
    tkey = [("training-key", env["LOUPE_TRAINING_KEY"])]
    projects = api_pb2_grpc.ProjectsStub(channel)
    training = api_pb2_grpc.TrainingStub(channel)
    project = projects.CreateProject(api.CreateProjectRequest(
        name=f"bench-predict-{uuid.uuid4().hex[:6]}"), metadata=tkey).project
    tags = [projects.CreateTag(api.CreateTagRequest(project_id=project.id, name=n),
                               metadata=tkey).tag.id for n in ("top", "trouser")]
    data = load_fashion_mnist("train", (0, 1), 10, seed=11)
    projects.UploadImages(iter([api.UploadImagesRequest(project_id=project.id, image=api.NewImage(
        name=f"{i}.png", tag_ids=[tags[label]], data=img)) for i, (img, label) in enumerate(data)]),
        metadata=tkey)
    *_, last = training.TrainProject(api.TrainProjectRequest(project_id=project.id),
                                     metadata=tkey, timeout=900)
    if last.iteration.status != "Completed":
        raise SystemExit(f"training failed: {last.iteration.error_message}")
    training.PublishIteration(api.PublishIterationRequest(
        project_id=project.id, iteration_id=last.iteration.id, publish_name=PUBLISH_NAME,
        prediction_resource_id=env["LOUPE_PREDICTION_RESOURCE_ID"]), metadata=tkey)
    return project.id


def _run(concurrency: int, total: int, work) -> float:
    """images/s of `total` requests split over `concurrency` threads running work(n)."""
    shares = [total // concurrency + (i < total % concurrency) for i in range(concurrency)]
    errors: list[BaseException] = []

    def target(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(n,)) for n in shares]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return total / elapsed


def rest_worker(env: dict[str, str], project_id: str, images: list[bytes]):
    url = (f"{env['LOUPE_ENDPOINT'].rstrip('/')}/customvision/v3.0/Prediction/{project_id}"
           f"/classify/iterations/{PUBLISH_NAME}/image/nostore")
    headers = {"Prediction-Key": env["LOUPE_PREDICTION_KEY"],
               "Content-Type": "application/octet-stream"}

    def work(n: int) -> None:
        with requests.Session() as session:
            for i in range(n):
                r = session.post(url, data=images[i % len(images)], headers=headers, timeout=60)
                r.raise_for_status()
    return work


def grpc_worker(channel: grpc.Channel, env: dict[str, str], project_id: str,
                images: list[bytes], pipelined: bool):
    stub = api_pb2_grpc.PredictionStub(channel)
    pkey = [("prediction-key", env["LOUPE_PREDICTION_KEY"])]

    def request(i: int) -> api.ClassifyImageRequest:
        return api.ClassifyImageRequest(project_id=project_id, publish_name=PUBLISH_NAME,
                                        image=images[i % len(images)], correlation_id=str(i))

    def work(n: int) -> None:
        if pipelined:
            answers = stub.ClassifyStream((request(i) for i in range(n)), metadata=pkey)
            got = [a for a in answers if not a.HasField("error")]
        else:  # lock-step: the next request goes once the previous answer came
            outbox: queue.Queue = queue.Queue()
            answers = stub.ClassifyStream(iter(outbox.get, None), metadata=pkey)
            got = []
            for i in range(n):
                outbox.put(request(i))
                answer = next(answers)
                if not answer.HasField("error"):
                    got.append(answer)
            outbox.put(None)
            for _rest in answers:
                pass
        if len(got) != n:
            raise RuntimeError(f"{n - len(got)} of {n} stream requests failed")
    return work


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=200, help="images per measurement")
    parser.add_argument("--env", type=Path, default=REPO / ".loupe" / "env")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "predict.json")
    args = parser.parse_args(argv)
    env = load_env(args.env)
    # One channel per measurement thread would be closer to many clients; one shared channel
    # (HTTP/2 multiplexing) is how a backend service uses gRPC.
    channel = grpc.insecure_channel(env["LOUPE_GRPC_ENDPOINT"])
    project_id = setup(env, channel)
    images = [img for img, _label in load_fashion_mnist("test", (0, 1), 25, seed=3)]
    # Warm-up: the head is loaded and connections are open before anything is timed.
    _run(2, 20, rest_worker(env, project_id, images))
    _run(2, 20, grpc_worker(channel, env, project_id, images, pipelined=False))

    rows = []
    print(f"{'concurrency':>11} {'REST img/s':>11} {'gRPC img/s':>11} {'ratio':>6} "
          f"{'pipelined':>10} {'ratio':>6}")
    for c in args.concurrency:
        rest = _run(c, args.requests, rest_worker(env, project_id, images))
        stream = _run(c, args.requests, grpc_worker(channel, env, project_id, images, False))
        piped = _run(c, args.requests, grpc_worker(channel, env, project_id, images, True))
        rows.append({"concurrency": c, "rest_images_per_s": round(rest, 1),
                     "grpc_stream_images_per_s": round(stream, 1),
                     "grpc_pipelined_images_per_s": round(piped, 1),
                     "grpc_over_rest": round(stream / rest, 2),
                     "pipelined_over_rest": round(piped / rest, 2)})
        print(f"{c:>11} {rest:>11.1f} {stream:>11.1f} {stream / rest:>6.2f} {piped:>10.1f} "
              f"{piped / rest:>6.2f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"requests": args.requests, "rows": rows}, indent=2) + "\n")
    api_pb2_grpc.ProjectsStub(channel).DeleteProject(
        api.DeleteProjectRequest(project_id=project_id),
        metadata=[("training-key", env["LOUPE_TRAINING_KEY"])])
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
