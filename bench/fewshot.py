"""Few-shot accuracy and training speed of Loupe's Regular and Advanced training (issue 4).

Protocol: Fashion-MNIST (Debian's `dataset-fashion-mnist`), K classes, N random images per
class drawn from the train split (PNG-encoded 28 px greys, upscaled by the normal
preprocessing), accuracy on a fixed class-balanced sample of the test split, mean over draws.

Loupe's numbers go through the training service's own code path: `loupe_training.core.Trainer`
runs each job against in-memory stand-ins for the metadata and storage services (the gRPC
messages are the real protobufs), so decoding, the per-image feature cache, cross-validation,
performance at threshold 0.5 and the head artifact are exactly what a trainer does; only the
network hops to PostgreSQL/MinIO are missing. Test images are embedded like the TorchServe
handler does (`preprocess_bytes` + the same ONNX `Embedder`) and scored with the stored head.

Baselines measured in the same run, on the same draws:
- logistic regression on raw pixels (28x28, scaled to [0, 1], scikit-learn defaults);
- the final pooled EfficientNet-Lite0 vector + logistic regression (Loupe's previous head).

Advanced training (the hidden-layer head) runs in a second project with the same images, so
its time includes computing the features again, as a first training of a project would.

Usage: python bench/fewshot.py [--draws 3] [--n 5,10,30] [--classes 10] [--quick] [--no-advanced]
Writes bench/results/fewshot.json (or --out).
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import resource
import sys
import time
import uuid
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for _sub in ("services/common", "services/training"):
    _path = str(REPO / _sub)
    if _path not in sys.path:
        sys.path.insert(0, _path)

from loupe.v1 import metadata_pb2 as mpb  # noqa: E402
from loupe.v1 import storage_pb2 as spb  # noqa: E402
from loupe.v1 import training_pb2 as tpb  # noqa: E402
from loupe_common.errors import NotFound  # noqa: E402
from loupe_model.backbone import FINAL_DIM, embed_images, get_backbone, make_embedder  # noqa: E402
from loupe_model.datasets import FASHION_MNIST_CLASSES, load_fashion_mnist  # noqa: E402
from loupe_model.head import DEFAULT_C, Head, fit_linear, l2_normalize  # noqa: E402
from loupe_model.mlp import device as head_device  # noqa: E402
from loupe_training.core import BACKBONE, Trainer, feature_key  # noqa: E402

DEFAULT_OUT = REPO / "bench" / "results" / "fewshot.json"
# Draw seeds differ from those the feature design was chosen on (train 1000-1002, test 777).
TRAIN_SEED = 2000
TEST_SEED = 4242
TARGETS = {"n30_accuracy": 0.82, "n5_accuracy": 0.68, "train_seconds_300": 10.0,
           "retrain_seconds": 3.0, "honesty": 0.05, "advanced_n30_accuracy": 0.86,
           "advanced_seconds_cpu": 300.0}


class MemoryStorage:
    """The storage service's calls the trainer makes, kept in dicts."""

    def __init__(self) -> None:
        self.images: dict[tuple[str, str], bytes] = {}
        self.objects: dict[str, bytes] = {}

    def GetObject(self, req):  # noqa: N802 - gRPC method names
        try:
            return spb.GetObjectResponse(data=self.objects[req.key])
        except KeyError:
            raise NotFound(f"no object {req.key}") from None

    def GetImage(self, req):  # noqa: N802
        return spb.GetImageResponse(data=self.images[(req.project_id, req.sha256)])

    def PutObject(self, req):  # noqa: N802
        self.objects[req.key] = bytes(req.data)
        return spb.PutObjectResponse()


class MemoryMetadata:
    """The metadata service's calls the trainer makes: one training set per iteration."""

    def __init__(self) -> None:
        self.sets: dict[str, mpb.GetTrainingSetResponse] = {}
        self.finished: dict[str, mpb.FinishIterationRequest] = {}

    def GetTrainingSet(self, req):  # noqa: N802
        return self.sets[req.iteration_id]

    def ReportProgress(self, req):  # noqa: N802
        return mpb.ReportProgressResponse()

    def StartTrainingAttempt(self, req):  # noqa: N802 - every job here starts once
        return mpb.StartTrainingAttemptResponse(attempts=1)

    def FinishIteration(self, req):  # noqa: N802
        self.finished[req.iteration_id] = req
        self.sets[req.iteration_id].iteration.status = req.status
        return mpb.FinishIterationResponse(already_finished=False)


class Project:
    """A multiclass project with one tag per class, trained through `Trainer.run_job`."""

    def __init__(self, trainer: Trainer, storage: MemoryStorage, metadata: MemoryMetadata,
                 class_names: list[str], rng: np.random.Generator) -> None:
        import hashlib

        self._hash = lambda data: hashlib.sha256(data).hexdigest()
        self.trainer, self.storage, self.metadata = trainer, storage, metadata
        # Ids from a seeded generator: the trainer seeds from the iteration id, so a rerun of
        # the benchmark trains the same heads.
        self._rng = rng
        self.id = self._uuid()
        self.tags = [mpb.Tag(id=self._uuid(), name=name, type="Regular") for name in class_names]
        self.images: list[mpb.TrainingImage] = []

    def _uuid(self) -> str:
        return str(uuid.UUID(bytes=self._rng.bytes(16), version=4))

    def add(self, items: list[tuple[bytes, int]]) -> None:
        for data, label in items:
            sha = self._hash(data)
            self.storage.images[(self.id, sha)] = data
            self.images.append(mpb.TrainingImage(image_id=self._uuid(), sha256=sha,
                                                 tag_ids=[self.tags[label].id]))

    def train(self, training_type: str = "Regular") -> dict:
        """Runs one training job; returns the outcome, timing, performance and head."""
        iteration_id = self._uuid()
        self.metadata.sets[iteration_id] = mpb.GetTrainingSetResponse(
            iteration=mpb.Iteration(id=iteration_id, project_id=self.id, status="Training",
                                    classification_type="Multiclass", training_type=training_type),
            tags=self.tags, images=self.images)
        start = time.perf_counter()
        outcome = self.trainer.run_job(tpb.TrainingJob(iteration_id=iteration_id, project_id=self.id))
        seconds = time.perf_counter() - start
        if outcome.status != "Completed":
            raise RuntimeError(f"training failed: {outcome.detail}")
        finished = self.metadata.finished[iteration_id]
        head = Head.from_bytes(self.storage.objects[finished.artifact_key])
        perf = finished.performance
        return {"seconds": seconds, "head": head, "precision": perf.precision, "recall": perf.recall,
                "evaluation": finished.evaluation}

    def cached_features(self) -> np.ndarray:
        return np.stack([np.load(io.BytesIO(self.storage.objects[feature_key(self.id, img.sha256)]))
                         for img in self.images])


def _pixels(items: list[tuple[bytes, int]]) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("L"), dtype=np.float32).ravel() / 255.0
                     for b, _ in items])


def _pixel_baseline(train, test) -> float:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(max_iter=1000).fit(_pixels(train), [y for _, y in train])
    return float((model.predict(_pixels(test)) == np.array([y for _, y in test])).mean())


def _final_vector_baseline(train_feats, train_labels, test_feats, test_labels, num_classes) -> float:
    final = train_feats[:, -FINAL_DIM:]
    weights, bias = fit_linear(final, np.eye(num_classes)[train_labels], False, 0, DEFAULT_C)
    scores = l2_normalize(test_feats[:, -FINAL_DIM:]) @ weights.T.astype(np.float64) + bias
    return float((scores.argmax(axis=1) == test_labels).mean())


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def run(args: argparse.Namespace) -> dict:
    classes = list(range(args.classes))
    class_names = [FASHION_MNIST_CLASSES[c] for c in classes]
    spec = get_backbone(BACKBONE)
    t0 = time.perf_counter()
    embedder = make_embedder(spec, None, threads=args.threads)  # what a trainer does at start
    size = spec.image_size
    embedder.embed(np.zeros((1, 3, size, size), dtype=np.float32))
    startup_seconds = time.perf_counter() - t0

    storage, metadata = MemoryStorage(), MemoryMetadata()
    trainer = Trainer(metadata, storage, embedder, trainer_id="bench")
    test = load_fashion_mnist("test", classes, args.test_per_class, seed=TEST_SEED)
    test_labels = np.array([y for _, y in test])

    runs = []  # one per (N, draw)
    for n in args.n:
        for draw in range(args.draws):
            seed = TRAIN_SEED + draw
            # N+1 per class: the extra image of the first classes is "added later" (retraining).
            pool = load_fashion_mnist("train", classes, n + 1, seed=seed)
            first = [item for i, item in enumerate(pool) if i % (n + 1) < n]
            extra = [item for i, item in enumerate(pool) if i % (n + 1) == n][: min(3, len(classes))]
            project = Project(trainer, storage, metadata, class_names,
                              np.random.default_rng([seed, n]))
            project.add(first)
            cold = project.train()
            train_feats = project.cached_features()
            project.add(extra)
            retrain = project.train()
            advanced = None
            if args.advanced:
                fresh = Project(trainer, storage, metadata, class_names,
                                np.random.default_rng([seed, n, 1]))
                fresh.add(first)
                advanced = fresh.train("Advanced")
            runs.append({"n": n, "draw": draw, "train": first, "cold": cold, "retrain": retrain,
                         "advanced": advanced,
                         "added": len(extra),
                         "train_feats": train_feats, "train_labels": np.array([y for _, y in first])})
    peak_rss_train_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    t = time.perf_counter()
    test_feats = embed_images(embedder, [b for b, _ in test])  # = the TorchServe handler's work
    test_embed_seconds = time.perf_counter() - t

    rows = []
    from loupe_model.evaluate import Evaluation

    for r in runs:
        cold = r["cold"]
        evaluation = Evaluation.from_json(cold["evaluation"])
        cv_accuracy = float((evaluation.probabilities.argmax(1) == evaluation.labels.argmax(1)).mean())
        accuracy = float((cold["head"].predict_proba(test_feats).argmax(1) == test_labels).mean())
        t = time.perf_counter()
        pixels = _pixel_baseline(r["train"], test)
        pixel_seconds = time.perf_counter() - t
        final = _final_vector_baseline(r["train_feats"], r["train_labels"], test_feats, test_labels,
                                       len(classes))
        adv = r["advanced"]
        advanced = {}
        if adv is not None:
            adv_eval = Evaluation.from_json(adv["evaluation"])
            advanced = {
                "advanced_accuracy": float((adv["head"].predict_proba(test_feats).argmax(1) == test_labels).mean()),
                "advanced_cv_precision": adv["precision"], "advanced_cv_recall": adv["recall"],
                "advanced_cv_accuracy": float((adv_eval.probabilities.argmax(1) == adv_eval.labels.argmax(1)).mean()),
                "advanced_train_seconds": adv["seconds"], "advanced_head": adv["head"].kind,
            }
        rows.append({**advanced,
            "n": r["n"], "draw": r["draw"], "images": len(r["train"]),
            "loupe_accuracy": accuracy, "pixels_accuracy": pixels, "final_vector_accuracy": final,
            "cv_precision": cold["precision"], "cv_recall": cold["recall"], "cv_accuracy": cv_accuracy,
            "train_seconds": cold["seconds"], "retrain_seconds": r["retrain"]["seconds"],
            "retrain_images_added": r["added"],
            "pixels_train_seconds": pixel_seconds,
        })

    summary = {}
    for n in args.n:
        sel = [row for row in rows if row["n"] == n]
        summary[str(n)] = {
            key: _mean([row[key] for row in sel])
            for key in ("loupe_accuracy", "pixels_accuracy", "final_vector_accuracy", "cv_precision",
                        "cv_recall", "cv_accuracy", "train_seconds", "retrain_seconds",
                        "pixels_train_seconds")
        }
        summary[str(n)]["train_seconds_max"] = max(row["train_seconds"] for row in sel)
        summary[str(n)]["retrain_seconds_max"] = max(row["retrain_seconds"] for row in sel)
        summary[str(n)]["honesty_max_abs_error"] = max(
            max(abs(row["cv_precision"] - row["loupe_accuracy"]), abs(row["cv_recall"] - row["loupe_accuracy"]))
            for row in sel)
        if args.advanced:
            for key in ("advanced_accuracy", "advanced_cv_precision", "advanced_cv_recall",
                        "advanced_cv_accuracy", "advanced_train_seconds"):
                summary[str(n)][key] = _mean([row[key] for row in sel])
            summary[str(n)]["advanced_train_seconds_max"] = max(row["advanced_train_seconds"] for row in sel)
            summary[str(n)]["advanced_heads"] = sorted({row["advanced_head"] for row in sel})
            summary[str(n)]["advanced_honesty_max_abs_error"] = max(
                max(abs(row["advanced_cv_precision"] - row["advanced_accuracy"]),
                    abs(row["advanced_cv_recall"] - row["advanced_accuracy"]))
                for row in sel)
    return {
        "protocol": {
            "dataset": "Fashion-MNIST (Debian dataset-fashion-mnist)", "classes": class_names,
            "n": args.n, "draws": args.draws, "test_per_class": args.test_per_class,
            "train_seed": TRAIN_SEED, "test_seed": TEST_SEED,
            "code_path": "loupe_training.core.Trainer.run_job with in-memory metadata/storage stand-ins",
            "backbone": spec.feature_id, "image_size": spec.image_size, "feature_dim": spec.feature_dim,
            "threads": args.threads, "advanced": bool(args.advanced),
            # Where the hidden-layer head trains (CUDA when present, bf16 autocast there).
            "advanced_head_device": head_device(),
        },
        "machine": {"cpus": _cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "gpu": _gpu_name()},
        "startup_seconds": startup_seconds,
        "test_embed_ms_per_image": 1000.0 * test_embed_seconds / max(len(test), 1),
        "peak_rss_mb_after_training": peak_rss_train_mb,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "summary": summary,
        "runs": rows,
        "targets": TARGETS,
    }


def _cpu_count() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _gpu_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def report(result: dict) -> str:
    """The markdown the benchmark prints."""
    p, s = result["protocol"], result["summary"]
    ns = [str(n) for n in p["n"]]
    last = ns[-1]
    lines = [
        f"Few-shot benchmark: {len(p['classes'])} Fashion-MNIST classes, N images per class from the "
        f"train split, accuracy on {p['test_per_class']} test images per class, mean of {p['draws']} draw(s).",
        f"Loupe numbers come from {p['code_path']} (the trainer's own code path; no network hops).",
        f"Backbone {p['backbone']} at {p['image_size']} px, {p['feature_dim']}-d embedding, "
        f"{p['threads']} ONNX Runtime threads, {result['machine']['cpus']} CPUs"
        + (f", GPU {result['machine']['gpu']}" if result["machine"].get("gpu") else ", no GPU")
        + (f"; the Advanced head trains on {p['advanced_head_device']}"
           + (" (bf16 mixed precision)" if p["advanced_head_device"] == "cuda" else "")
           if p.get("advanced") else "") + ".",
        "",
        "| method | " + " | ".join(f"N={n}" for n in ns) + f" | train time, N={last} |",
        "|---|" + "---|" * len(ns) + "---|",
        "| logistic regression on raw pixels | " + " | ".join(f"{s[n]['pixels_accuracy']:.3f}" for n in ns)
        + f" | {s[last]['pixels_train_seconds']:.1f} s (fit only) |",
        "| frozen Lite0 final pooled vector + logistic regression (previous Loupe head) | "
        + " | ".join(f"{s[n]['final_vector_accuracy']:.3f}" for n in ns) + " | – |",
        "| **Loupe quick training** (Lite0 multi-scale features + logistic regression) | "
        + " | ".join(f"**{s[n]['loupe_accuracy']:.3f}**" for n in ns)
        + f" | {s[last]['train_seconds']:.1f} s (max {s[last]['train_seconds_max']:.1f} s), end to end |",
    ]
    if p.get("advanced"):
        lines.append(
            "| **Loupe Advanced training** (same features; hidden-layer head from 20 images per tag) | "
            + " | ".join(f"**{s[n]['advanced_accuracy']:.3f}**" for n in ns)
            + f" | {s[last]['advanced_train_seconds']:.1f} s (max {s[last]['advanced_train_seconds_max']:.1f} s), "
            "end to end |")
    lines += [
        "",
        "Honesty: cross-validated overall precision/recall at threshold 0.5 (what the iteration reports) "
        "against the test accuracy:",
        "",
        "| N, training | test accuracy | CV precision@0.5 | CV recall@0.5 | CV accuracy | max abs error over draws |",
        "|---|---|---|---|---|---|",
    ]
    for n in ns:
        lines.append(f"| {n} Regular | {s[n]['loupe_accuracy']:.3f} | {s[n]['cv_precision']:.3f} | "
                     f"{s[n]['cv_recall']:.3f} | {s[n]['cv_accuracy']:.3f} | "
                     f"{s[n]['honesty_max_abs_error']:.3f} |")
    if p.get("advanced"):
        for n in ns:
            lines.append(f"| {n} Advanced ({'/'.join(s[n]['advanced_heads'])} head) | {s[n]['advanced_accuracy']:.3f} | {s[n]['advanced_cv_precision']:.3f} | "
                         f"{s[n]['advanced_cv_recall']:.3f} | {s[n]['advanced_cv_accuracy']:.3f} | "
                         f"{s[n]['advanced_honesty_max_abs_error']:.3f} |")
    lines += [
        "",
        "Timings (end to end through Trainer.run_job: decode + features + CV evaluation + head + artifact):",
    ]
    for n in ns:
        lines.append(f"- N={n} ({int(n) * len(p['classes'])} new images): {s[n]['train_seconds']:.2f} s mean, "
                     f"{s[n]['train_seconds_max']:.2f} s max; retraining after adding "
                     f"{min(3, len(p['classes']))} images (others cached): {s[n]['retrain_seconds']:.2f} s mean, "
                     f"{s[n]['retrain_seconds_max']:.2f} s max"
                     + (f"; Advanced (features computed again): {s[n]['advanced_train_seconds']:.1f} s mean, "
                        f"{s[n]['advanced_train_seconds_max']:.1f} s max" if p.get("advanced") else ""))
    lines += [
        f"- backbone start (export/load + warm-up, once per trainer): {result['startup_seconds']:.1f} s; "
        f"test embedding {result['test_embed_ms_per_image']:.1f} ms/image",
        f"- peak RSS: {result['peak_rss_mb_after_training']:.0f} MB after all trainings "
        f"(bench process: dataset, embedder, trainer), {result['peak_rss_mb']:.0f} MB at the end",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--n", default="5,10,30", help="images per class, comma separated")
    parser.add_argument("--classes", type=int, default=10, help="the first K Fashion-MNIST classes")
    parser.add_argument("--test-per-class", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--no-advanced", dest="advanced", action="store_false",
                        help="skip Advanced training (the slow part)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: N=5, 3 classes, 1 draw, 20 test images per class")
    args = parser.parse_args(argv)
    args.n = [int(x) for x in str(args.n).split(",") if x.strip()]
    if args.quick:
        args.n, args.classes, args.draws, args.test_per_class = [5], 3, 1, 20
    if not 2 <= args.classes <= 10:
        parser.error("--classes must be 2..10")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print(report(result))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
