"""Design measurements behind the heads and the fold count, on the *design* draws.

`bench/fewshot.py` reports Loupe's numbers on fresh draws (train seeds 2000+, test seed 4242);
the choices it reports on were made here, on other draws (train seeds 1000+, test seed 777), so
the benchmark does not grade the data the design was tuned on.

- `heads`: linear (Regular) and hidden-layer (Advanced) heads through `fit_quick` on the same
  Lite0 multi-scale features: test accuracy, cross-validated accuracy, seconds per training.
- `folds`: how well the cross-validated accuracy of the linear head predicts the test accuracy
  with 5 folds and with 10 (mean and RMS error over draws).
- `devices`: the hidden-layer head (`fit_mlp` alone, final fit) over several initialisation
  seeds on each device there is: the CPU in fp32, and CUDA in bf16 autocast and in fp32 when a
  GPU is present. Test accuracy and seconds per fit. This one uses the *bench* draws of
  bench/fewshot.py (train seeds 2000+, test seed 4242), to explain its GPU and CPU rows.
- `inputs`: the linear head on Lite0 features of other input sizes and resize filters, on
  both the design draws and the bench draws (the shipped input is 224 px, bilinear).

Usage: python bench/heads.py heads [--n 30] [--draws 3]
       python bench/heads.py folds [--n 10] [--draws 8]
       python bench/heads.py devices [--n 30] [--draws 3] [--seeds 4] [--threads 2]
       python bench/heads.py inputs [--sizes 176,192,208,224] [--filters bilinear,bicubic,lanczos]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "services" / "common"))

from loupe_model.backbone import embed_images, get_backbone, make_embedder  # noqa: E402
from loupe_model.datasets import load_fashion_mnist  # noqa: E402
from loupe_model.evaluate import cross_validate  # noqa: E402
from loupe_model.head import LINEAR, MLP, fit_linear, l2_normalize  # noqa: E402
from loupe_model.mlp import fit_mlp  # noqa: E402
from loupe_model.train import fit_quick  # noqa: E402

DESIGN_TRAIN_SEED = 1000
DESIGN_TEST_SEED = 777
BENCH_TRAIN_SEED = 2000  # bench/fewshot.py's draws
BENCH_TEST_SEED = 4242
CLASSES = list(range(10))


def _draws(embedder, n: int, draws: int):
    for seed in range(DESIGN_TRAIN_SEED, DESIGN_TRAIN_SEED + draws):
        items = load_fashion_mnist("train", CLASSES, n, seed=seed)
        yield seed, embed_images(embedder, [b for b, _ in items]), np.array([y for _, y in items])


def heads(args, embedder, test_x, test_y) -> None:
    ids = [str(c) for c in CLASSES]
    results: dict[str, list[tuple[float, float, float]]] = {LINEAR: [], MLP: []}
    for seed, x, y in _draws(embedder, args.n, args.draws):
        for kind in results:
            start = time.perf_counter()
            head, ev = fit_quick(x, np.eye(len(CLASSES))[y], False, seed, ids, ids, "lite0", kind=kind)
            seconds = time.perf_counter() - start
            accuracy = float((head.predict_proba(test_x).argmax(1) == test_y).mean())
            cv = float((ev.probabilities.argmax(1) == y).mean())
            results[kind].append((accuracy, cv, seconds))
            print(f"draw {seed} {kind:6s} test {accuracy:.3f} cv {cv:.3f} {seconds:.1f} s", flush=True)
    print(f"\nN={args.n}, {args.draws} draws, {len(test_y)} test images")
    print("| head | test accuracy | CV accuracy | seconds per training (CV + final fit) |")
    print("|---|---|---|---|")
    for kind, rows in results.items():
        a, c, s = np.mean(rows, axis=0)
        print(f"| {kind} | {a:.3f} | {c:.3f} | {s:.1f} |")


def folds(args, embedder, test_x, test_y) -> None:
    errors: dict[int, list[float]] = {5: [], 10: []}
    for seed, x, y in _draws(embedder, args.n, args.draws):
        labels = np.eye(len(CLASSES))[y]
        weights, bias = fit_linear(x, labels, False, 0)
        accuracy = float(((l2_normalize(test_x) @ weights.T + bias).argmax(1) == test_y).mean())
        line = f"draw {seed} test {accuracy:.3f}"
        for k in errors:
            ev = cross_validate(x, labels, False, seed, folds=k, calibrate=True)
            cv = float((ev.probabilities.argmax(1) == y).mean())
            errors[k].append(cv - accuracy)
            line += f" cv{k} {cv:.3f}"
        print(line, flush=True)
    print(f"\nN={args.n}, {args.draws} draws: CV accuracy minus test accuracy")
    print("| folds | mean error | RMS error | max abs error |")
    print("|---|---|---|---|")
    for k, e in errors.items():
        e = np.array(e)
        print(f"| {k} | {e.mean():+.3f} | {np.sqrt((e ** 2).mean()):.3f} | {np.abs(e).max():.3f} |")


def devices(args, embedder, test_x, test_y) -> None:
    import torch

    variants = [("cpu", False)] + ([("cuda", True), ("cuda", False)] if torch.cuda.is_available() else [])
    rows: dict[tuple[str, bool], list[tuple[int, float, float]]] = {v: [] for v in variants}
    for seed in range(BENCH_TRAIN_SEED, BENCH_TRAIN_SEED + args.draws):
        # fewshot.py draws N+1 per class and trains on the first N of each class.
        pool = load_fashion_mnist("train", CLASSES, args.n + 1, seed=seed)
        items = [item for i, item in enumerate(pool) if i % (args.n + 1) < args.n]
        x = embed_images(embedder, [b for b, _ in items])
        labels = np.eye(len(CLASSES))[[y for _, y in items]]
        for on, bf16 in variants:
            for init in range(args.seeds):
                if on == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                layers = fit_mlp(x, labels, False, init, on=on, mixed_precision=bf16)
                seconds = time.perf_counter() - start
                accuracy = float((layers.logits(test_x).argmax(1) == test_y).mean())
                rows[(on, bf16)].append((seed, accuracy, seconds))
                print(f"draw {seed} {on} {'bf16' if bf16 else 'fp32'} seed {init} test {accuracy:.4f} "
                      f"{seconds:.2f} s", flush=True)
    gpu = f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""
    print(f"\nN={args.n}, bench draws {BENCH_TRAIN_SEED}+ x {args.draws}, {args.seeds} seeds each, "
          f"{len(test_y)} test images{gpu}")
    print("| device, precision | mean accuracy | per draw (mean over seeds) | seed sd | median s per fit |")
    print("|---|---|---|---|---|")
    for (on, bf16), r in rows.items():
        draws = sorted({d for d, _, _ in r})
        per_draw = [np.mean([a for d, a, _ in r if d == draw]) for draw in draws]
        sd = np.mean([np.std([a for d, a, _ in r if d == draw], ddof=1) for draw in draws]) if args.seeds > 1 else 0.0
        print(f"| {on}, {'bf16' if bf16 else 'fp32'} | {np.mean([a for _, a, _ in r]):.4f} | "
              + " / ".join(f"{a:.4f}" for a in per_draw)
              + f" | {sd:.4f} | {np.median([s for _, _, s in r]):.2f} |")


def inputs(args) -> None:
    import dataclasses

    from PIL import Image

    # (label, test images, test labels, [(train images, train labels) per draw]), loaded once
    draw_sets = []
    for label, train_seed, test_seed, extra in [("design", DESIGN_TRAIN_SEED, DESIGN_TEST_SEED, 0),
                                                ("bench", BENCH_TRAIN_SEED, BENCH_TEST_SEED, 1)]:
        test = load_fashion_mnist("test", CLASSES, args.test_per_class, seed=test_seed)
        draws = []
        for seed in range(train_seed, train_seed + args.draws):
            # the bench draws are fewshot.py's: N+1 per class, trained on the first N
            pool = load_fashion_mnist("train", CLASSES, args.n + extra, seed=seed)
            items = [it for i, it in enumerate(pool) if i % (args.n + extra) < args.n]
            draws.append(([b for b, _ in items], np.eye(len(CLASSES))[[y for _, y in items]]))
        draw_sets.append((label, [b for b, _ in test], np.array([y for _, y in test]), draws))

    settings = [(size, "bilinear") for size in args.sizes]
    settings += [(224, f) for f in args.filters if f != "bilinear"]
    results = []
    for size, name in settings:
        spec = dataclasses.replace(get_backbone("lite0"), image_size=size)
        embedder = make_embedder(spec, None, threads=args.threads)
        resample = getattr(Image.Resampling, name.upper())
        row = []
        for label, test_images, test_y, draws in draw_sets:
            test_x = l2_normalize(embed_images(embedder, test_images, resample=resample))
            accuracies = []
            for images, labels in draws:
                x = embed_images(embedder, images, resample=resample)
                weights, bias = fit_linear(x, labels, False, 0)
                accuracies.append(float(((test_x @ weights.T + bias).argmax(1) == test_y).mean()))
            row.append(float(np.mean(accuracies)))
            print(f"{size} px {name} {label} draws: " + " ".join(f"{a:.3f}" for a in accuracies),
                  flush=True)
        results.append((size, name, row))
    print(f"\nlinear head, Lite0, N={args.n}, {args.draws} draws per set, "
          f"{args.test_per_class * len(CLASSES)} test images per set")
    print("| input | design draws | bench draws |")
    print("|---|---|---|")
    for size, name, (design, bench) in results:
        print(f"| {size} px, {name} | {design:.3f} | {bench:.3f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("heads", "folds", "devices", "inputs"))
    parser.add_argument("--n", type=int, default=None, help="images per class (30 heads, 10 folds)")
    parser.add_argument("--draws", type=int, default=None, help="draws (3 heads, 8 folds)")
    parser.add_argument("--test-per-class", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=4, help="initialisation seeds (devices)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads")
    parser.add_argument("--sizes", default="176,192,208,224", help="input sides (inputs)")
    parser.add_argument("--filters", default="bilinear,bicubic,lanczos",
                        help="resize filters at 224 px (inputs)")
    args = parser.parse_args(argv)
    args.n = args.n or (10 if args.what == "folds" else 30)
    args.draws = args.draws or (8 if args.what == "folds" else 3)
    if args.what == "inputs":
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        args.filters = [f.strip().lower() for f in args.filters.split(",") if f.strip()]
        inputs(args)
        return 0
    embedder = make_embedder(get_backbone("lite0"), None, threads=args.threads)
    test_seed = BENCH_TEST_SEED if args.what == "devices" else DESIGN_TEST_SEED
    test = load_fashion_mnist("test", CLASSES, args.test_per_class, seed=test_seed)
    test_x = embed_images(embedder, [b for b, _ in test])
    test_y = np.array([y for _, y in test])
    {"heads": heads, "folds": folds, "devices": devices}[args.what](args, embedder, test_x, test_y)
    return 0


if __name__ == "__main__":
    sys.exit(main())
