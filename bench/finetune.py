"""Does fine-tuning the backbone beat Advanced's frozen features? A design measurement.

On the *design* draws of the few-shot protocol (Fashion-MNIST, train seeds 1000+, N images per
class, test seed 777; see bench/heads.py), for each head kind:

1. fit the head on the frozen Lite0 multi-scale features exactly as Loupe does (`fit_layers`:
   the linear head of Regular training or the hidden-layer head of Advanced), which is the
   "epoch 0" row;
2. then fine-tune the whole backbone together with that head ("LP-FT"): AdamW, cosine schedule,
   label smoothing 0.1, batch 32, random flips and random resized crops (affine resampling on
   the preprocessed tensors), BatchNorm statistics frozen; test accuracy at checkpoint epochs.

It runs on CUDA when present (bf16 autocast), else on the CPU (slow: use --epochs 1 to time an
epoch). Not part of `make bench`; the numbers it printed are in docs/design-notes.md.

Usage: python bench/finetune.py [--n 30] [--draws 3] [--epochs 5,10,20] [--lr 1e-4,3e-5]
                                [--heads linear,mlp] [--test-per-class 300] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "services" / "common"))

from loupe_model.backbone import build_feature_model, get_backbone  # noqa: E402
from loupe_model.datasets import load_fashion_mnist  # noqa: E402
from loupe_model.head import LINEAR, MLP, fit_layers  # noqa: E402
from loupe_model.preprocess import preprocess_bytes  # noqa: E402

DESIGN_TRAIN_SEED = 1000
DESIGN_TEST_SEED = 777
CLASSES = list(range(10))
BATCH = 32
LABEL_SMOOTHING = 0.1
WEIGHT_DECAY = 1e-2
MIN_ZOOM = 0.75  # a crop keeps at least 0.75 of each side


def _tensor(items, size: int):
    import torch

    return torch.from_numpy(np.stack([preprocess_bytes(b, size) for b, _ in items]))


def _augment(x, generator):
    """Random horizontal flips and resized crops (zoom in up to 1/MIN_ZOOM), per image."""
    import torch
    import torch.nn.functional as F

    b = x.shape[0]
    zoom = MIN_ZOOM + (1.0 - MIN_ZOOM) * torch.rand(b, generator=generator)
    shift = (torch.rand(b, 2, generator=generator) * 2.0 - 1.0) * (1.0 - zoom)[:, None]
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = zoom * flip
    theta[:, 1, 1] = zoom
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="border", align_corners=False)


class Tuned:
    """The feature model followed by a Loupe head (`Layers`), all of it trainable."""

    def __init__(self, spec, layers, on: str) -> None:
        import torch

        self.features = build_feature_model(spec).to(on)
        for p in self.features.parameters():
            p.requires_grad_(True)
        t = lambda a: torch.nn.Parameter(torch.tensor(np.asarray(a), dtype=torch.float32, device=on))  # noqa: E731
        self.hidden = None
        if layers.hidden_weights is not None:
            self.hidden = (t(layers.hidden_weights), t(layers.hidden_bias))
        self.out = (t(layers.weights), t(layers.bias))

    def parameters(self):
        extra = list(self.out) + (list(self.hidden) if self.hidden else [])
        return list(self.features.parameters()) + extra

    def __call__(self, x):
        import torch

        f = self.features(x).float()
        f = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)  # the heads take L2-normalised input
        if self.hidden is not None:
            f = torch.relu(f @ self.hidden[0].T + self.hidden[1])
        return f @ self.out[0].T + self.out[1]


def _accuracy(model, x, y, on: str, autocast) -> float:
    import torch

    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 250):
            with autocast():
                logits = model(x[i:i + 250].to(on, non_blocking=True))
            correct += int((logits.argmax(1).cpu() == y[i:i + 250]).sum())
    return correct / len(x)


def run(args) -> dict:
    import contextlib

    import torch

    on = "cuda" if torch.cuda.is_available() else "cpu"
    amp = on == "cuda"

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if amp else contextlib.nullcontext()

    spec = get_backbone("lite0")
    frozen = build_feature_model(spec).to(on)
    test = load_fashion_mnist("test", CLASSES, args.test_per_class, seed=DESIGN_TEST_SEED)
    test_x = _tensor(test, spec.image_size)
    test_y = torch.tensor([y for _, y in test])
    if on == "cuda":
        test_x = test_x.pin_memory()
    rows = []
    for draw in range(args.draws):
        seed = DESIGN_TRAIN_SEED + draw
        items = load_fashion_mnist("train", CLASSES, args.n, seed=seed)
        x = _tensor(items, spec.image_size).to(on)
        y = torch.tensor([label for _, label in items], device=on)
        with torch.no_grad(), autocast():
            feats = torch.cat([frozen(x[i:i + 100]).float() for i in range(0, len(x), 100)]).cpu().numpy()
        labels = np.eye(len(CLASSES))[[label for _, label in items]]
        for kind in args.heads:
            t0 = time.perf_counter()
            layers = fit_layers(feats.astype(np.float64), labels, False, seed, kind=kind)
            head_seconds = time.perf_counter() - t0
            for lr in args.lr:
                torch.manual_seed(seed)
                model = Tuned(spec, layers, on)
                curve = {0: _accuracy(model, test_x, test_y, on, autocast)}
                params = model.parameters()
                optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=WEIGHT_DECAY)
                steps_per_epoch = -(-len(x) // BATCH)
                last = max(args.epochs)
                schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, last * steps_per_epoch)
                gen = torch.Generator().manual_seed(seed)
                loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING)
                train_seconds = 0.0
                for epoch in range(1, last + 1):
                    if on == "cuda":
                        torch.cuda.synchronize()
                    t0 = time.perf_counter()
                    order = torch.randperm(len(x), generator=gen).to(on)
                    for i in range(0, len(x), BATCH):
                        rows_ = order[i:i + BATCH]
                        batch = _augment(x[rows_], gen)
                        optimiser.zero_grad(set_to_none=True)
                        with autocast():
                            logits = model(batch)
                        loss_fn(logits.float(), y[rows_]).backward()
                        optimiser.step()
                        schedule.step()
                    if on == "cuda":
                        torch.cuda.synchronize()
                    train_seconds += time.perf_counter() - t0
                    if epoch in args.epochs:
                        curve[epoch] = _accuracy(model, test_x, test_y, on, autocast)
                row = {"draw": seed, "head": kind, "lr": lr, "accuracy": curve,
                       "head_seconds": head_seconds, "finetune_seconds": train_seconds,
                       "seconds_per_epoch": train_seconds / last}
                rows.append(row)
                print(json.dumps(row), flush=True)
                del model, optimiser
    return {"device": on, "gpu": torch.cuda.get_device_name(0) if on == "cuda" else None,
            "n": args.n, "draws": args.draws, "test_images": len(test), "rows": rows}


def report(result: dict, epochs: list[int]) -> str:
    lines = [f"Fine-tuning Lite0 with Loupe's heads (LP-FT) on {result['device']}"
             + (f" ({result['gpu']}, bf16 autocast)" if result["gpu"] else "")
             + f": N={result['n']}, {result['draws']} design draws, {result['test_images']} test images",
             "",
             "| head, lr | " + " | ".join(f"epoch {e}" for e in [0] + epochs) + " | s/epoch |",
             "|---|" + "---|" * (len(epochs) + 2)]
    keys = sorted({(r["head"], r["lr"]) for r in result["rows"]})
    for head, lr in keys:
        sel = [r for r in result["rows"] if (r["head"], r["lr"]) == (head, lr)]
        accs = [np.mean([r["accuracy"][e] for r in sel]) for e in [0] + epochs]
        lines.append(f"| {head}, {lr:g} | " + " | ".join(f"{a:.3f}" for a in accs)
                     + f" | {np.mean([r['seconds_per_epoch'] for r in sel]):.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--epochs", default="5,10,20", help="checkpoint epochs; the last is the length")
    parser.add_argument("--lr", default="1e-4,3e-5")
    parser.add_argument("--heads", default=f"{LINEAR},{MLP}")
    parser.add_argument("--test-per-class", type=int, default=300)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "finetune.json"))
    args = parser.parse_args(argv)
    args.epochs = sorted(int(e) for e in args.epochs.split(","))
    args.lr = [float(v) for v in args.lr.split(",")]
    args.heads = [h for h in args.heads.split(",") if h]
    result = run(args)
    text = report(result, args.epochs)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
