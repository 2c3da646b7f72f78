"""Peak RSS growth of the gateway while it takes one upload batch, against the body's size.

Runs a real stack (`loupe_stack`, the code of `make up`: PostgreSQL, MinIO, Kafka, TorchServe
and the five services) in a fresh temporary data folder on its own ports (`--base-port`), or
uses a running one (`--data .loupe --base-port 7500` for `make up`). Through the public REST
API it uploads each batch into a new project and reads the gateway process's VmHWM (peak RSS)
from /proc: each case restarts the gateway, and the high-water mark is reset
(`/proc/PID/clear_refs`) after a warm-up batch, so the growth is what this one batch cost,
measured, not estimated. The images are scikit-image's
shipped photographs, upscaled and encoded as JPEGs just under the 6 MB limit, each one made
distinct (a few bytes after its end marker) so storage dedupes none. Cases:

- `multipart`: POST …/images, one multipart/form-data body of `--images` parts (issue 14's
  goal: growth at most 1.5 × the body for 64 × 6 MB);
- `json-base64`: POST …/images/files, ImageFileCreateBatch with base64 `contents`;
- `json-numbers`: the same with `contents` as arrays of numbers (`--number-images` of them:
  this form is about 3.7 body bytes per image byte).

    .venv/bin/python bench/upload_memory.py [--images 64] [--number-images 4] [--base-port 26600]
        [--cases multipart json-base64 json-numbers] [--data DIR]
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import requests
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "services/common"), str(REPO / "deploy/local")]
from loupe_stack.layout import Layout  # noqa: E402
from loupe_stack.stack import Stack, read_env  # noqa: E402

MB = 1024 * 1024
TRAINING = "/customvision/v3.3/training"


def _status_kb(pid: int, field: str) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def reset_peak(pid: int) -> float:
    """Resets the VmHWM of `pid` to its current RSS (proc(5), clear_refs "5"); that RSS in MB."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")
    return _status_kb(pid, "VmHWM") / 1024


def peak_mb(pid: int) -> float:
    """The VmHWM (peak resident memory) of `pid` since it started or was last reset, in MB."""
    return _status_kb(pid, "VmHWM") / 1024


def photos(n: int, limit: int) -> list[bytes]:
    """`n` JPEGs just under `limit` bytes, from scikit-image's shipped photographs."""
    from skimage import data

    sources = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.hubble_deep_field(),
               data.immunohistochemistry(), data.retina(), data.cat()]
    made: list[bytes] = []
    for index, pixels in enumerate(sources):
        base = Image.fromarray(np.asarray(pixels)).convert("RGB")
        low, high = 64, 10000
        best = b""
        while high - low > 40:  # the largest width whose JPEG is still under the limit
            width = (low + high) // 2
            out = io.BytesIO()
            base.resize((width, width * base.height // base.width), Image.LANCZOS).save(out, "JPEG", quality=97)
            if out.tell() <= limit:
                low, best = width, out.getvalue()
            else:
                high = width
        made.append(best)
    return [made[i % len(made)] for i in range(n)]


def multipart(images: list[bytes]) -> tuple[bytes, str]:
    boundary = "benchboundary7d1f"
    pieces = []
    for i, data in enumerate(images):
        pieces.append(f'--{boundary}\r\nContent-Disposition: form-data; name="imageData"; '
                      f'filename="{i}.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode())
        pieces.append(data)
        pieces.append(b"\r\n")
    pieces.append(f"--{boundary}--\r\n".encode())
    return b"".join(pieces), f"multipart/form-data; boundary={boundary}"


def files_body(images: list[bytes], numbers: bool) -> bytes:
    entries = [{"name": f"{i}.jpg", "contents": list(data) if numbers else base64.b64encode(data).decode()}
               for i, data in enumerate(images)]
    return json.dumps({"images": entries}, separators=(",", ":")).encode()


def measure(pid: int, env: dict[str, str], route: str, body: bytes, content_type: str,
            warm: tuple[bytes, str]) -> tuple[float, float, int, float, int]:
    """(RSS after the warm-up batch, VmHWM after `body`, its HTTP status, seconds, images it
    added), in a new project."""
    url = env["LOUPE_ENDPOINT"].rstrip("/") + TRAINING
    headers = {"Training-Key": env["LOUPE_TRAINING_KEY"]}
    http = requests.Session()
    project = http.post(f"{url}/projects", params={"name": f"bench-upload-{uuid.uuid4().hex[:6]}"},
                        headers=headers, timeout=60).json()["id"]
    try:
        for _ in range(2):
            warmed = http.post(f"{url}/projects/{project}/{route}", data=warm[0], timeout=120,
                               headers={**headers, "Content-Type": warm[1]})
            assert warmed.status_code == 200, warmed.text[:300]
        before = http.get(f"{url}/projects/{project}/images/count", headers=headers, timeout=60).json()
        time.sleep(1.0)
        base = reset_peak(pid)
        start = time.perf_counter()
        resp = http.post(f"{url}/projects/{project}/{route}", data=body, timeout=900,
                         headers={**headers, "Content-Type": content_type})
        seconds = time.perf_counter() - start
        peak = peak_mb(pid)
        count = http.get(f"{url}/projects/{project}/images/count", headers=headers, timeout=60).json()
        return base, peak, resp.status_code, seconds, count - before
    finally:
        http.delete(f"{url}/projects/{project}", headers=headers, timeout=120)


def fresh_gateway(stack: Stack, env: dict[str, str]) -> int:
    """Restarts the stack's gateway and waits until it answers; its pid. Each case gets a
    fresh process: memory an earlier case freed but the allocator kept would be reused without
    raising the peak, and hide what the case costs."""
    stack.ctl("restart", "gateway")
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(env["LOUPE_ENDPOINT"].rstrip("/") + "/healthz", timeout=5).status_code == 200:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway did not come back after its restart")
        time.sleep(0.5)
    return int(stack.ctl("pid", "gateway").stdout.strip())


def distinct(images: list[bytes]) -> list[bytes]:
    """The images with their index after each one's end: no two alike (decoders ignore it)."""
    return [data + b"loupe-bench-%08d" % i for i, data in enumerate(images)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=64, help="images of the multipart and base64 batches")
    parser.add_argument("--number-images", type=int, default=4, help="images of the number-array batch")
    parser.add_argument("--cases", nargs="+", default=["multipart", "json-base64", "json-numbers"])
    parser.add_argument("--base-port", type=int, default=int(os.environ.get("LOUPE_BENCH_BASE_PORT", "26600")))
    parser.add_argument("--data", type=Path, default=None,
                        help="the data folder of a stack to use (started if not running); default: a fresh one")
    args = parser.parse_args(argv)
    images = distinct(photos(max(args.images, args.number_images), 6 * MB - 64))
    small = distinct(photos(1, 200 * 1024))
    fresh = args.data is None
    data = Path(tempfile.mkdtemp(prefix="loupe-bench-")) if fresh else args.data.resolve()
    if fresh:
        os.chmod(data, 0o755)  # PostgreSQL runs as the postgres user and must enter it
    stack = Stack(Layout(data=data, base_port=args.base_port))
    try:
        started = time.perf_counter()
        stack.start(services=True)
        env = read_env(stack.layout.env_file)
        print(f"stack at {env['LOUPE_ENDPOINT']} ({'fresh, ' if fresh else ''}up in {time.perf_counter() - started:.0f} s)")
        print(f"gateway upload, {args.images} JPEGs of {min(map(len, images)) / MB:.2f}-{max(map(len, images)) / MB:.2f} MB"
              f" (scikit-image photographs, upscaled)")
        print(f"{'case':>13} {'images':>7} {'body, MB':>9} {'RSS before, MB':>15} {'growth, MB':>11} "
              f"{'growth/body':>12} {'status':>7} {'stored':>7} {'seconds':>8}")
        for case in args.cases:
            if case == "multipart":
                n, route = args.images, "images"
                body, ctype = multipart(images[:n])
                warm = multipart(small)
            else:
                numbers = case == "json-numbers"
                n, route = (args.number_images if numbers else args.images), "images/files"
                body, ctype = files_body(images[:n], numbers), "application/json"
                warm = files_body(small, numbers), "application/json"
            pid = fresh_gateway(stack, env)
            base, peak, status, seconds, stored = measure(pid, env, route, body, ctype, warm)
            growth = peak - base
            print(f"{case:>13} {n:>7} {len(body) / MB:>9.1f} {base:>15.0f} {growth:>11.0f} "
                  f"{growth * MB / len(body):>12.2f} {status:>7} {stored:>7} {seconds:>8.1f}", flush=True)
            del body
    finally:
        if fresh:
            stack.stop()
            pg = data / "postgres"
            if pg.is_symlink():
                shutil.rmtree(pg.resolve(), ignore_errors=True)
            shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
