"""Soak test (`make load`): locust on loopback, mixed traffic from several accounts, with the
memory of every process of the stack.

Against a running local stack (`make up`; its data folder, default .loupe): creates --accounts
accounts (each with a published project and an upload project), runs bench/soak_locustfile.py
headless with --users users for --duration seconds, and samples each supervisord program's
memory (PSS of its whole process tree, so PostgreSQL's shared buffers count once) every
--sample seconds. Prints:
- p50 / p95 and requests per operation (locust's own statistics);
- the answers by status per operation (every 5xx is a failure of the goal);
- each process's memory at the end of the warm-up and at the end, its peak, and its slope after
  the warm-up (least squares, MB/min; goal < 5 MB/min).
Usage:
    python bench/soak.py [--duration 600] [--users 12] [--accounts 3] [--warmup 120] [--data .loupe]
Exit status 1 when any answer was 5xx or a request failed without one. Writes
bench/results/soak.json.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import requests
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "deploy/local"), str(REPO / "services/common")]

from loupe_stack.layout import DEFAULT_BASE_PORT, Layout  # noqa: E402
from loupe_stack.stack import Stack, read_env  # noqa: E402

TRAINING = "/customvision/v3.3/training"
LOCUSTFILE = REPO / "bench/soak_locustfile.py"
PROGRAMS = ("gateway", "metadata", "storage", "training", "prediction", "torchserve", "kafka", "minio", "postgres")


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def prepare_account(stack: Stack, endpoint: str, name: str) -> dict:
    """A new account with a published, trained project ("soak") and a project to upload into."""
    out = subprocess.run([sys.executable, "-m", "loupe_metadata", "create-account", "--name", name],
                         check=True, capture_output=True, text=True, env=dict(os.environ, **stack.service_env()))
    account = json.loads(out.stdout)
    http = requests.Session()
    http.headers["Training-Key"] = account["training_key"]

    def call(method: str, path: str, **kw):
        resp = http.request(method, endpoint + TRAINING + path, timeout=120, **kw)
        resp.raise_for_status()
        return resp.json() if resp.content else None

    def project_with_tags(label: str) -> tuple[str, list[str]]:
        pid = call("POST", "/projects", params={"name": f"{label}-{uuid.uuid4().hex[:6]}"})["id"]
        tags = [call("POST", f"/projects/{pid}/tags", params={"name": f"t{i}"})["id"] for i in range(2)]
        for n, tag in enumerate(tags):
            call("POST", f"/projects/{pid}/images", params={"tagIds": tag},
                 files={f"img{i}": (f"{i}.png", _png(hash((label, n, i)) % 2**32), "image/png") for i in range(5)})
        return pid, tags

    published, _ = project_with_tags("soak-published")
    iteration = call("POST", f"/projects/{published}/train")
    deadline = time.monotonic() + 600
    while (it := call("GET", f"/projects/{published}/iterations/{iteration['id']}"))["status"] == "Training":
        if time.monotonic() > deadline:
            raise SystemExit("the soak project's training did not finish in 10 minutes")
        time.sleep(1)
    if it["status"] != "Completed":
        raise SystemExit(f"the soak project's training failed: {it}")
    call("POST", f"/projects/{published}/iterations/{iteration['id']}/publish",
         params={"publishName": "soak", "predictionId": account["prediction_resource_id"]})
    uploads, tags = project_with_tags("soak-uploads")
    return {"training_key": account["training_key"], "prediction_key": account["prediction_key"],
            "published": published, "uploads": uploads, "tags": tags}


@dataclass
class MemorySampler:
    """Samples the PSS of each supervisord program's process tree (MB) in a thread."""

    stack: Stack
    every: float
    samples: dict[str, list[tuple[float, float]]]

    def __init__(self, stack: Stack, every: float):
        self.stack, self.every = stack, every
        self.samples = {p: [] for p in PROGRAMS}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="memory-sampler")

    def _tree_pss(self, program: str) -> float | None:
        out = self.stack.ctl("pid", program, check=False).stdout.strip()
        if not out.isdigit() or out == "0":
            return None
        try:
            root = psutil.Process(int(out))
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return None
        total = 0
        for proc in procs:
            try:
                total += proc.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return total / 2**20

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic() - start
            for program in PROGRAMS:
                value = self._tree_pss(program)
                if value is not None:
                    self.samples[program].append((now, value))
            self._stop.wait(self.every)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def memory_report(samples: dict[str, list[tuple[float, float]]], warmup: float) -> dict[str, dict]:
    """Per program: MB after the warm-up and at the end, the peak, and the slope after the
    warm-up (least squares over the samples, MB/min)."""
    out = {}
    for program, points in samples.items():
        after = [(t, v) for t, v in points if t >= warmup]
        if len(after) < 3:
            continue
        t = np.array([p[0] for p in after]) / 60.0
        v = np.array([p[1] for p in after])
        slope = float(np.polyfit(t, v, 1)[0])
        out[program] = {"after_warmup_mb": round(float(v[0]), 1), "end_mb": round(float(v[-1]), 1),
                        "peak_mb": round(max(p[1] for p in points), 1), "slope_mb_per_min": round(slope, 2)}
    return out


def run(stack: Stack, duration: float, users: int, accounts: int, warmup: float, sample: float = 5.0) -> dict:
    """Prepares the accounts, runs locust and the memory sampler; returns the report."""
    endpoint = read_env(stack.layout.env_file)["LOUPE_ENDPOINT"].rstrip("/")
    prepared = [prepare_account(stack, endpoint, f"soak-{i}-{uuid.uuid4().hex[:4]}") for i in range(accounts)]
    with tempfile.TemporaryDirectory(prefix="loupe-soak-") as tmp:
        accounts_file, status_file = Path(tmp) / "accounts.json", Path(tmp) / "status.json"
        accounts_file.write_text(json.dumps(prepared))
        sampler = MemorySampler(stack, sample)
        sampler.start()
        started = time.monotonic()
        proc = subprocess.run(
            [str(Path(sys.executable).parent / "locust"), "-f", str(LOCUSTFILE), "--headless",
             "--host", endpoint, "--users", str(users), "--spawn-rate", str(max(1, users // 4)),
             "--run-time", f"{int(duration)}s", "--stop-timeout", "30", "--csv", f"{tmp}/stats",
             "--only-summary", "--loglevel", "WARNING"],
            env=dict(os.environ, LOUPE_SOAK_ACCOUNTS=str(accounts_file), LOUPE_SOAK_STATUS=str(status_file)),
            capture_output=True, text=True, timeout=duration + 300)
        elapsed = time.monotonic() - started
        sampler.stop()
        if not status_file.exists():
            raise SystemExit(f"locust did not finish (exit {proc.returncode}): {proc.stderr[-3000:]}")
        statuses = json.loads(status_file.read_text())
        with open(f"{tmp}/stats_stats.csv") as f:
            stats = {row["Name"]: row for row in csv.DictReader(f) if row["Name"] != "Aggregated"}
    operations = {}
    for name, row in sorted(stats.items()):
        operations[name] = {"requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                            "p50_ms": float(row["50%"]), "p95_ms": float(row["95%"]),
                            "per_s": round(float(row["Requests/s"]), 2), "status": statuses.get(name, {})}
    server_errors = {name: {s: n for s, n in counts.items() if s.startswith("5") or s == "error"}
                     for name, counts in statuses.items()}
    return {"duration_s": round(elapsed, 1), "users": users, "accounts": accounts, "warmup_s": warmup,
            "operations": operations, "server_errors": {k: v for k, v in server_errors.items() if v},
            "memory": memory_report(sampler.samples, warmup)}


def print_report(report: dict) -> None:
    print(f"\nsoak: {report['users']} users over {report['accounts']} accounts for {report['duration_s']} s "
          f"(memory slope after {report['warmup_s']:.0f} s of warm-up)")
    print(f"{'operation':<16} {'requests':>8} {'per s':>6} {'p50 ms':>8} {'p95 ms':>8}  answers by status")
    for name, op in report["operations"].items():
        answers = ", ".join(f"{s}: {n}" for s, n in sorted(op["status"].items()))
        print(f"{name:<16} {op['requests']:>8} {op['per_s']:>6} {op['p50_ms']:>8.0f} {op['p95_ms']:>8.0f}  {answers}")
    print(f"\n{'process':<12} {'after warm-up MB':>16} {'end MB':>8} {'peak MB':>8} {'slope MB/min':>13}")
    for program, m in report["memory"].items():
        flag = "" if m["slope_mb_per_min"] < 5 else "  (over the 5 MB/min goal)"
        print(f"{program:<12} {m['after_warmup_mb']:>16} {m['end_mb']:>8} {m['peak_mb']:>8} "
              f"{m['slope_mb_per_min']:>13}{flag}")
    errors = report["server_errors"]
    print(f"\n5xx answers or failed connections: {errors or 'none'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--users", type=int, default=12)
    parser.add_argument("--accounts", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=None, help="seconds (default: a fifth of the run)")
    parser.add_argument("--sample", type=float, default=5.0)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("LOUPE_DATA", REPO / ".loupe")))
    parser.add_argument("--base-port", type=int, default=int(os.environ.get("LOUPE_BASE_PORT", DEFAULT_BASE_PORT)))
    args = parser.parse_args()
    stack = Stack(Layout(data=args.data.resolve(), base_port=args.base_port))
    if not stack.supervisor_running():
        raise SystemExit(f"no running stack in {args.data}: run `make up` first")
    report = run(stack, args.duration, args.users, args.accounts,
                 args.warmup if args.warmup is not None else args.duration / 5, args.sample)
    print_report(report)
    results = REPO / "bench/results"
    results.mkdir(exist_ok=True)
    (results / "soak.json").write_text(json.dumps(report, indent=2))
    return 1 if report["server_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
