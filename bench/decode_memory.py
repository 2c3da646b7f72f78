"""Peak memory of decoding one crafted image: Loupe's bounded decoder against Pillow's own.

Each image is small on the wire (hundreds of KB) and 10240 x 10240 pixels, the largest side
Custom Vision accepts. Every measurement runs in a fresh process and reports how much its
peak RSS (VmHWM) grew while decoding (the bytes were read before the baseline was taken), for
`preprocess_bytes(data, 224)` (what the trainer and the TorchServe handler call), `image_info`
(what the prediction recorder calls) and the storage service's thumbnail, beside Pillow's plain
`Image.open(...).convert("RGB")` as the baseline.

    .venv/bin/python bench/decode_memory.py [--side 10240]
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
sys.path[:0] = [{common!r}, {storage!r}]
import numpy, PIL.Image
from loupe_model.preprocess import preprocess_bytes, image_info
from loupe_storage.core import _thumbnail
data = open({path!r}, "rb").read()
def pillow(d):
    import io, warnings
    warnings.simplefilter("ignore")
    PIL.Image.MAX_IMAGE_PIXELS = None
    return PIL.Image.open(io.BytesIO(d)).convert("RGB")
fn = {{"pillow": pillow, "preprocess_bytes": lambda d: preprocess_bytes(d, 224), "image_info": image_info,
      "thumbnail": lambda d: _thumbnail(d, 520)}}[{what!r}]
def peak_kb():
    # VmHWM, not ru_maxrss: the latter keeps the parent's high-water mark across fork and exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
before = peak_kb()
t = time.perf_counter()
try:
    fn(data)
    outcome = "ok"
except Exception as exc:
    outcome = type(exc).__name__ + ": " + str(exc)[:70]
grew = (peak_kb() - before) / 1024
print(f"{{grew:.0f}}\t{{time.perf_counter() - t:.2f}}\t{{outcome}}")
"""


def crafted(side: int) -> dict[str, bytes]:
    def save(img: Image.Image, fmt: str, **kw) -> bytes:
        out = io.BytesIO()
        img.save(out, fmt, **kw)
        return out.getvalue()

    grey16 = np.zeros((side, side), dtype=np.uint16)
    grey16[::7] = 40000
    rgb = Image.new("RGB", (side, side), (10, 200, 30))
    return {
        "16-bit grey PNG": save(Image.fromarray(grey16), "PNG"),
        "RGB PNG": save(rgb, "PNG"),
        "RGBA PNG": save(Image.new("RGBA", (side, side), (10, 200, 30, 128)), "PNG"),
        "palette PNG, transparency": save(rgb.convert("P"), "PNG", transparency=0),
        "JPEG": save(rgb, "JPEG", quality=90),
        "WebP (decoded only whole)": save(rgb, "WEBP"),
    }


def measure(path: Path, what: str) -> tuple[float, float, str]:
    code = CHILD.format(common=str(REPO / "services" / "common"), storage=str(REPO / "services" / "storage"),
                        path=str(path), what=what)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    grew, secs, outcome = out.strip().split("\t", 2)
    return float(grew), float(secs), outcome


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--side", type=int, default=10240)
    args = parser.parse_args()
    print(f"peak RSS growth of one decode, MB (seconds); images {args.side} px a side")
    print(f"{'image':28} {'bytes':>9}  {'Pillow (baseline)':>18}  {'preprocess_bytes':>18}  {'image_info':>14}  {'thumbnail':>14}  outcome")
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in crafted(args.side).items():
            path = Path(tmp) / "img"
            path.write_bytes(data)
            base = measure(path, "pillow")
            cells, outcome = [], ""
            for what in ("preprocess_bytes", "image_info", "thumbnail"):
                grew, secs, outcome_ = measure(path, what)
                cells.append(f"{grew:6.0f} ({secs:5.2f}s)")
                outcome = outcome or ("" if outcome_ == "ok" else outcome_)
            print(f"{name:28} {len(data):>9}  {base[0]:7.0f} ({base[1]:5.2f}s)  {cells[0]:>18}  {cells[1]:>14}  "
                  f"{cells[2]:>14}  {outcome or 'ok'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
