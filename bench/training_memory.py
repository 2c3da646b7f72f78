"""Peak RSS of a trainer's feature extraction, by training-set size.

Runs `loupe_training.core.Trainer._features` (what a job does with its uncached images: read
each from storage, decode, embed with the real ONNX backbone, store the features) in a fresh
process per measurement, with storage and metadata answered in-process: every GetImage returns
a fresh copy of one JPEG, as a gRPC response would, so only what the trainer itself keeps is
measured. Prints VmHWM (peak RSS) after the backbone is loaded and has run one batch, and at the end.

`--chunk all` reads every image before embedding any (what the trainer did before it streamed
images `FEATURE_CHUNK` at a time), for comparison.

    .venv/bin/python bench/training_memory.py [--images 300 3000] [--side 1024] [--chunk 32 all]

Measured 2026-12-06 on the 2-core machine (shared, busy), 1024x768 JPEGs of 519 KB, VmHWM
growth over the loaded backbone (392-395 MB):
| images | streamed, 32 at a time | all read first (before) |
|---|---|---|
| 300 | 170 MB (17.1 s) | 260 MB (18.7 s) |
| 3,000 | 262 MB (125.4 s) | 1,633 MB (122.5 s) |
What still grows with the streamed set is mostly the features matrix itself (3,792 float32
per image: 45 MB at 3,000 images), which training needs whole.
"""
from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys, time
sys.path[:0] = [{common!r}, {training!r}]
from loupe.v1 import metadata_pb2 as mpb, storage_pb2 as spb, training_pb2 as tpb
from loupe_common.errors import NotFound
from loupe_model.backbone import get_backbone, make_embedder
from loupe_training import core

def peak_mb():
    # VmHWM, not ru_maxrss: the latter keeps the parent's high-water mark across fork and exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

template = open({path!r}, "rb").read()

class Storage:
    def GetObject(self, request):
        raise NotFound("no cached features")
    def GetImage(self, request):
        return spb.GetImageResponse(data=bytes(bytearray(template)))  # a copy per call
    def PutObject(self, request):
        return spb.PutObjectResponse()

class Metadata:
    def ReportProgress(self, request):
        return mpb.ReportProgressResponse()

if {chunk!r} != "all":
    core.FEATURE_CHUNK = int({chunk!r})
else:
    core.FEATURE_CHUNK = 10**9
embedder = make_embedder(get_backbone(core.BACKBONE), None, threads=2)
images = [mpb.TrainingImage(image_id=str(i), sha256=f"{{i:064x}}") for i in range({n})]
trainer = core.Trainer(Metadata(), Storage(), embedder, "bench")
# One full backbone batch first: the runtime's own buffers belong to the baseline.
embedder.embed(__import__("numpy").zeros((32, 3, embedder.image_size, embedder.image_size), "float32"))
base = peak_mb()
t = time.perf_counter()
feats = trainer._features(tpb.TrainingJob(iteration_id="i", project_id="p"), images, time.monotonic())
print(f"{{base:.0f}}\t{{peak_mb():.0f}}\t{{time.perf_counter() - t:.1f}}")
"""


def jpeg(side: int) -> bytes:
    """A photo-like JPEG (noise over gradients: it compresses like a photograph, not a flat image)."""
    rng = np.random.default_rng(0)
    h = side * 3 // 4
    grad = np.linspace(0, 255, side, dtype=np.float32)[None, :, None]
    pixels = np.clip(grad + rng.normal(0, 40, (h, side, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def measure(path: Path, n: int, chunk: str) -> tuple[float, float, float]:
    code = CHILD.format(common=str(REPO / "services" / "common"), training=str(REPO / "services" / "training"),
                        path=str(path), n=n, chunk=chunk)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    base, peak, secs = out.strip().splitlines()[-1].split("\t")
    return float(base), float(peak), float(secs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, nargs="+", default=[300, 3000])
    parser.add_argument("--side", type=int, default=1024, help="JPEG width (height is 3/4 of it)")
    parser.add_argument("--chunk", nargs="+", default=["32"], help="images per chunk, or 'all'")
    args = parser.parse_args(argv)
    data = jpeg(args.side)
    print(f"trainer feature extraction, uncached {args.side}x{args.side * 3 // 4} JPEGs of {len(data) / 1e3:.0f} KB")
    print(f"{'images':>7} {'chunk':>6} {'VmHWM after load, MB':>21} {'VmHWM at end, MB':>17} {'growth, MB':>11} {'seconds':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "img.jpg"
        path.write_bytes(data)
        for chunk in args.chunk:
            for n in args.images:
                base, peak, secs = measure(path, n, chunk)
                print(f"{n:>7} {chunk:>6} {base:>21.0f} {peak:>17.0f} {peak - base:>11.0f} {secs:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
