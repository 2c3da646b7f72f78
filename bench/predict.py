"""Classification speed: the iteration's own ONNX export in-process (the model-only ceiling)
beside REST (`…/classify/iterations/{name}/image/nostore`) and the public gRPC API's
`ClassifyStream` (docs/grpc.md), at the same concurrency.

Against a running Loupe (`make up`; reads `.loupe/env`, or LOUPE_ENDPOINT, LOUPE_GRPC_ENDPOINT,
LOUPE_TRAINING_KEY, LOUPE_PREDICTION_KEY, LOUPE_PREDICTION_RESOURCE_ID from the environment):
trains and publishes a two-class Fashion-MNIST project (over gRPC), exports the iteration as
ONNX (REST), then classifies 320-px JPEGs of scikit-image's photos without storing them:

- model only: the exported model under ONNX Runtime in this process (2 threads), on images
  decoded beforehand: p50 at batch 1 and images/s at batch 8, the ceiling the ratios divide by;
- REST, concurrency c: c threads, each with its own keep-alive session, one request at a time;
- gRPC, concurrency c: c ClassifyStreams, each sending its next image once the previous answer
  came (the same c requests in flight as REST);
- gRPC pipelined, concurrency c: c streams that send without waiting (the server works on up
  to 8 requests of a stream at once).

Prints p50/p95 latency and images/s of each, their ratios to the model-only images/s, the
client's own CPU per request (it shares the cores with the server), and the largest difference
between the service's probabilities and the export's. Usage:
    python bench/predict.py [--concurrency 1 4 16] [--requests 200] [--env .loupe/env]
Writes bench/results/predict.json.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from pathlib import Path

import grpc
import numpy as np
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "services/common"))

from loupe.v1 import api_pb2 as api  # noqa: E402
from loupe.v1 import api_pb2_grpc  # noqa: E402
from loupe_model.datasets import load_fashion_mnist  # noqa: E402
from loupe_model.preprocess import preprocess_bytes  # noqa: E402

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


def setup(env: dict[str, str], channel: grpc.Channel) -> tuple[str, str]:
    """A trained project published as PUBLISH_NAME; returns its id and the iteration's."""
    tkey = [("training-key", env["LOUPE_TRAINING_KEY"])]
    projects = api_pb2_grpc.ProjectsStub(channel)
    training = api_pb2_grpc.TrainingStub(channel)
    # General (compact), as the measurement: an exportable domain (same backbone).
    domains = requests.get(f"{env['LOUPE_ENDPOINT'].rstrip('/')}/customvision/v3.3/training/domains",
                           headers={"Training-Key": env["LOUPE_TRAINING_KEY"]}, timeout=30).json()
    (compact,) = [d["id"] for d in domains if d["name"] == "General (compact)" and d["type"] == "Classification"]
    project = projects.CreateProject(api.CreateProjectRequest(
        name=f"bench-predict-{uuid.uuid4().hex[:6]}", domain_id=compact), metadata=tkey).project
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
    return project.id, last.iteration.id


def photos(size: int = 320) -> list[bytes]:
    """scikit-image's colour photos as JPEGs `size` px on the long side (quality 90)."""
    from PIL import Image
    from skimage import data

    out = []
    for name in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field"):
        img = Image.fromarray(getattr(data, name)()).convert("RGB")
        img.thumbnail((size, size))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def export_onnx(env: dict[str, str], project_id: str, iteration_id: str) -> tuple[bytes, list[str]]:
    """The iteration's ONNX export (REST, as a Custom Vision client makes it): model and tag ids."""
    base = f"{env['LOUPE_ENDPOINT'].rstrip('/')}/customvision/v3.3/training/projects/{project_id}"
    url = f"{base}/iterations/{iteration_id}/export"
    headers = {"Training-Key": env["LOUPE_TRAINING_KEY"]}
    requests.post(url, params={"platform": "ONNX"}, headers=headers, timeout=60).raise_for_status()
    deadline = time.monotonic() + 300
    while True:
        (export,) = [e for e in requests.get(url, headers=headers, timeout=30).json() if e["platform"] == "ONNX"]
        if export["status"] != "Exporting":
            break
        if time.monotonic() > deadline:
            raise SystemExit("the ONNX export did not finish in 300 s")
        time.sleep(0.5)
    if export["status"] != "Done":
        raise SystemExit(f"the ONNX export failed: {export}")
    with zipfile.ZipFile(io.BytesIO(requests.get(export["downloadUri"], timeout=120).content)) as zf:
        props = json.loads(zf.read("metadata_properties.json"))
        return zf.read("model.onnx"), [t["id"] for t in props["tags"]]


def model_only(model: bytes, images: list[bytes], total: int) -> dict[str, float]:
    """The export under ONNX Runtime here, 2 intra-op threads, on already decoded images."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    size = session.get_inputs()[0].shape[-1]
    arrays = [preprocess_bytes(img, size) for img in images]
    for a in arrays:  # warm-up
        session.run(None, {name: a[None]})
    latencies = []
    for i in range(total):
        start = time.perf_counter()
        session.run(None, {name: arrays[i % len(arrays)][None]})
        latencies.append(time.perf_counter() - start)
    batch = np.stack([arrays[i % len(arrays)] for i in range(8)])
    rounds = max(3, total // 8)
    per_s = 0.0
    for _ in range(3):  # the best of 3: the ceiling is what the cores can do, not a noisy moment
        start = time.perf_counter()
        for _ in range(rounds):
            session.run(None, {name: batch})
        per_s = max(per_s, rounds * 8 / (time.perf_counter() - start))
    decode = []
    for i in range(total):
        start = time.perf_counter()
        preprocess_bytes(images[i % len(images)], size)
        decode.append(time.perf_counter() - start)
    return {"p50_ms": _pct(latencies, 50), "p95_ms": _pct(latencies, 95), "images_per_s_batch8": per_s,
            "decode_p50_ms": _pct(decode, 50)}


def local_probabilities(model: bytes, images: list[bytes]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    size = session.get_inputs()[0].shape[-1]
    batch = np.stack([preprocess_bytes(img, size) for img in images])
    (probs,) = session.run(["probabilities"], {session.get_inputs()[0].name: batch})
    return probs


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000.0


class Measured:
    """One measurement: images/s, request latencies, and this client's CPU per request."""

    def __init__(self, concurrency: int, total: int, work):
        shares = [total // concurrency + (i < total % concurrency) for i in range(concurrency)]
        errors: list[BaseException] = []
        self.latencies: list[float] = []

        def target(n: int) -> None:
            try:
                work(n, self.latencies)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=target, args=(n,)) for n in shares]
        cpu = time.process_time()
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        if errors:
            raise errors[0]
        self.per_s = total / elapsed
        self.client_cpu_ms = (time.process_time() - cpu) / total * 1000.0
        self.p50_ms = _pct(self.latencies, 50)
        self.p95_ms = _pct(self.latencies, 95)

    def row(self) -> dict[str, float]:
        return {"images_per_s": round(self.per_s, 1), "p50_ms": round(self.p50_ms, 1),
                "p95_ms": round(self.p95_ms, 1), "client_cpu_ms_per_request": round(self.client_cpu_ms, 2)}


def rest_worker(env: dict[str, str], project_id: str, images: list[bytes]):
    url = (f"{env['LOUPE_ENDPOINT'].rstrip('/')}/customvision/v3.0/Prediction/{project_id}"
           f"/classify/iterations/{PUBLISH_NAME}/image/nostore")
    headers = {"Prediction-Key": env["LOUPE_PREDICTION_KEY"],
               "Content-Type": "application/octet-stream"}

    def work(n: int, latencies: list[float]) -> None:
        with requests.Session() as session:
            for i in range(n):
                start = time.perf_counter()
                r = session.post(url, data=images[i % len(images)], headers=headers, timeout=60)
                r.raise_for_status()
                latencies.append(time.perf_counter() - start)
    return work


def grpc_worker(channel: grpc.Channel, env: dict[str, str], project_id: str,
                images: list[bytes], pipelined: bool):
    stub = api_pb2_grpc.PredictionStub(channel)
    pkey = [("prediction-key", env["LOUPE_PREDICTION_KEY"])]

    def request(i: int) -> api.ClassifyImageRequest:
        return api.ClassifyImageRequest(project_id=project_id, publish_name=PUBLISH_NAME,
                                        image=images[i % len(images)], correlation_id=str(i))

    def work(n: int, latencies: list[float]) -> None:
        if pipelined:  # latency: from a request's sending to its answer (the stream keeps order)
            sent: dict[str, float] = {}

            def requests_out():
                for i in range(n):
                    sent[str(i)] = time.perf_counter()
                    yield request(i)
            got = []
            for answer in stub.ClassifyStream(requests_out(), metadata=pkey):
                latencies.append(time.perf_counter() - sent[answer.correlation_id])
                if not answer.HasField("error"):
                    got.append(answer)
        else:  # lock-step: the next request goes once the previous answer came
            outbox: queue.Queue = queue.Queue()
            answers = stub.ClassifyStream(iter(outbox.get, None), metadata=pkey)
            got = []
            for i in range(n):
                start = time.perf_counter()
                outbox.put(request(i))
                answer = next(answers)
                latencies.append(time.perf_counter() - start)
                if not answer.HasField("error"):
                    got.append(answer)
            outbox.put(None)
            for _rest in answers:
                pass
        if len(got) != n:
            raise RuntimeError(f"{n - len(got)} of {n} stream requests failed")
    return work


def stack_processes(env_file: Path) -> dict[str, int]:
    """program -> pid of the local stack whose env file this is (`make up`: the supervisor's
    config sits beside it), or {} for a Loupe run otherwise."""
    conf = env_file.parent / "supervisord.conf"
    ctl = Path(sys.executable).with_name("supervisorctl")
    if not conf.exists() or not ctl.exists():
        return {}
    out = subprocess.run([str(ctl), "-c", str(conf), "status"], capture_output=True, text=True).stdout
    return {line.split()[0]: int(line.split("pid ")[1].split(",")[0])
            for line in out.splitlines() if "RUNNING" in line and "pid " in line}


def cpu_seconds(programs: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each program's process tree (TorchServe's
    workers are children of its Java frontend)."""
    import psutil

    used = {}
    for name, pid in programs.items():
        total = 0.0
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            procs = []
        for proc in procs:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        used[name] = total
    return used


def service_probabilities(env: dict[str, str], project_id: str, images: list[bytes],
                          tag_ids: list[str]) -> np.ndarray:
    url = (f"{env['LOUPE_ENDPOINT'].rstrip('/')}/customvision/v3.0/Prediction/{project_id}"
           f"/classify/iterations/{PUBLISH_NAME}/image/nostore")
    rows = []
    for img in images:
        r = requests.post(url, data=img, timeout=60, headers={
            "Prediction-Key": env["LOUPE_PREDICTION_KEY"], "Content-Type": "application/octet-stream"})
        r.raise_for_status()
        got = {p["tagId"]: p["probability"] for p in r.json()["predictions"]}
        rows.append([got[t] for t in tag_ids])
    return np.array(rows)


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
    project_id, iteration_id = setup(env, channel)
    images = photos()
    model, tag_ids = export_onnx(env, project_id, iteration_id)
    ceiling = model_only(model, images, args.requests)
    worst = float(np.abs(local_probabilities(model, images)
                         - service_probabilities(env, project_id, images, tag_ids)).max())
    # Warm-up: the head is loaded and connections are open before anything is timed.
    Measured(2, 20, rest_worker(env, project_id, images))
    Measured(2, 20, grpc_worker(channel, env, project_id, images, pipelined=False))

    top = ceiling["images_per_s_batch8"]
    print(f"model only (the export in-process, 2 threads): batch 1 p50 {ceiling['p50_ms']:.1f} ms, "
          f"batch 8 {top:.1f} images/s; decoding a 320-px JPEG p50 {ceiling['decode_p50_ms']:.1f} ms")
    print(f"largest |service - export| probability: {worst:.1e}")
    print(f"{'path':<15} {'conc':>4} {'img/s':>7} {'x model':>7} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'client CPU ms/req':>17}")
    rows = []
    for c in args.concurrency:
        for path, work in (("REST", rest_worker(env, project_id, images)),
                           ("gRPC stream", grpc_worker(channel, env, project_id, images, False)),
                           ("gRPC pipelined", grpc_worker(channel, env, project_id, images, True))):
            m = Measured(c, args.requests, work)
            rows.append({"path": path, "concurrency": c, **m.row(), "over_model_only": round(m.per_s / top, 2)})
            print(f"{path:<15} {c:>4} {m.per_s:>7.1f} {m.per_s / top:>7.2f} {m.p50_ms:>7.1f} "
                  f"{m.p95_ms:>7.1f} {m.client_cpu_ms:>17.2f}", flush=True)
    print("(pipelined latencies include the wait behind the client's own queued requests)")
    cpu_profile = {}
    programs = stack_processes(args.env)
    if programs:  # where the cores go: CPU per request of each process, REST at the top concurrency
        c = max(args.concurrency)
        before, client = cpu_seconds(programs), time.process_time()
        m = Measured(c, args.requests, rest_worker(env, project_id, images))
        after = cpu_seconds(programs)
        cpu_profile = {n: round((after[n] - before[n]) / args.requests * 1000.0, 2) for n in programs}
        cpu_profile["client"] = round(m.client_cpu_ms, 2)
        total = sum(cpu_profile.values())
        print(f"CPU ms per REST request at concurrency {c} ({m.per_s:.1f} images/s), by process: "
              + ", ".join(f"{n} {v:.2f}" for n, v in sorted(cpu_profile.items(), key=lambda kv: -kv[1])
                          if v >= 0.05)
              + f"; total {total:.1f} ms, i.e. at most {2000.0 / total:.0f} images/s on 2 cores")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"requests": args.requests, "model_only": ceiling,
                                    "max_probability_difference": worst, "rows": rows,
                                    "cpu_ms_per_rest_request": cpu_profile}, indent=2) + "\n")
    api_pb2_grpc.ProjectsStub(channel).DeleteProject(
        api.DeleteProjectRequest(project_id=project_id),
        metadata=[("training-key", env["LOUPE_TRAINING_KEY"])])
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
