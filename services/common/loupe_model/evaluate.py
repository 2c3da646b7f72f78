"""Honest held-out evaluation of a head, and Custom Vision-style performance figures.

`cross_validate` assigns every image to one of k stratified folds and predicts it with a head
trained on the other folds only, so every reported probability is a held-out one.
`performance` turns those probabilities into precision, recall and average precision.

Conventions where a ratio is undefined (documented in the API too):
- precision with no positive predictions (TP + FP = 0) is 0, as Custom Vision reports it;
- recall of a tag with no images (TP + FN = 0) is 0;
- average precision of a tag with no images is 0;
- standard deviations are the population standard deviation across folds of the per-fold
  value, over the folds where that value is defined; 0 when fewer than two folds define it.
A tag is predicted for an image when its probability >= threshold, in multiclass projects too
(so a low threshold can predict several tags, as in Custom Vision).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Callable, Sequence

import numpy as np

from .head import DEFAULT_C, LINEAR, activate, fit_layers, rarest_tag_count

MAX_FOLDS = 5
# Linear heads get up to 10 folds where the learning curve is steep (fewer than
# `STEEP_IMAGES_PER_TAG` images in some tag): each fold then trains on 90% of the images instead
# of 80%. 10 images per tag, 8 design draws (`python bench/heads.py folds`): mean error of the
# held-out accuracy against the test accuracy +0.008 with 10 folds, -0.009 with 5; RMS error
# 0.025 against 0.031. At 30 images per tag 10 folds gained nothing (RMS 0.018 against 0.019)
# and cost retraining time, so larger projects keep 5. Linear fits on a few hundred images
# take a few hundredths of a second each; beyond `SMALL_PROJECT_IMAGES` images it is 5 folds.
STEEP_MAX_FOLDS = 10
STEEP_IMAGES_PER_TAG = 20
SMALL_PROJECT_IMAGES = 1000
EVALUATION_FORMAT = "loupe-evaluation"
EVALUATION_FORMAT_VERSION = 1


@dataclasses.dataclass
class Evaluation:
    """Held-out predictions for every training image.

    Attributes:
        probabilities: float (N, T); row i comes from a head that never saw image i.
        labels: float 0/1 (N, T), the true tags.
        folds: int (N,), the fold each image was held out in.
        num_folds: k.
        multilabel: how the heads were trained.
        seed: the seed used for fold assignment and training.
        logit_scale: the factor applied to the held-out logits before `probabilities` were
            computed (1.0: uncalibrated; see `fit_logit_scale`). A head trained for these
            figures must apply the same factor (`train_head(..., logit_scale=...)`).
    """

    probabilities: np.ndarray
    labels: np.ndarray
    folds: np.ndarray
    num_folds: int
    multilabel: bool
    seed: int
    logit_scale: float = 1.0

    def to_json(self) -> bytes:
        """Serialises to UTF-8 JSON (probabilities rounded to 6 decimals)."""
        doc = {
            "format": EVALUATION_FORMAT,
            "version": EVALUATION_FORMAT_VERSION,
            "multilabel": bool(self.multilabel),
            "seed": int(self.seed),
            "num_folds": int(self.num_folds),
            "logit_scale": float(self.logit_scale),
            "folds": [int(f) for f in self.folds],
            "labels": np.asarray(self.labels, dtype=np.int64).tolist(),
            "probabilities": np.round(np.asarray(self.probabilities, dtype=np.float64), 6).tolist(),
        }
        return json.dumps(doc, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str) -> "Evaluation":
        """Loads an evaluation written by `to_json`.

        Raises:
            ValueError: not an evaluation, or an unsupported version.
        """
        doc = json.loads(data)
        if doc.get("format") != EVALUATION_FORMAT or doc.get("version") != EVALUATION_FORMAT_VERSION:
            raise ValueError("not a Loupe evaluation")
        n = len(doc["folds"])
        probabilities = np.asarray(doc["probabilities"], dtype=np.float64)
        labels = np.asarray(doc["labels"], dtype=np.float64)
        if n == 0:
            probabilities = probabilities.reshape(0, 0)
            labels = labels.reshape(0, 0)
        return cls(
            probabilities=probabilities,
            labels=labels,
            folds=np.asarray(doc["folds"], dtype=np.int64),
            num_folds=int(doc["num_folds"]),
            multilabel=bool(doc["multilabel"]),
            seed=int(doc["seed"]),
            logit_scale=float(doc.get("logit_scale", 1.0)),
        )


def max_folds_for(labels: np.ndarray, kind: str = LINEAR) -> int:
    """The fold cap: `STEEP_MAX_FOLDS` for a linear head on a small project whose rarest tag
    has fewer than `STEEP_IMAGES_PER_TAG` images, else `MAX_FOLDS`."""
    labels = np.asarray(labels)
    if (kind == LINEAR and labels.shape[0] <= SMALL_PROJECT_IMAGES
            and rarest_tag_count(labels) < STEEP_IMAGES_PER_TAG):
        return STEEP_MAX_FOLDS
    return MAX_FOLDS


def choose_num_folds(labels: np.ndarray, max_folds: int = MAX_FOLDS) -> int:
    """k for k-fold: at most `max_folds`, at most the image count of the rarest tag, at least 2.

    A tag with fewer images than folds would be absent from some training folds; capping k
    at the rarest tag's count keeps every tag in every training split when possible.
    """
    labels = np.asarray(labels)
    rarest = rarest_tag_count(labels) or labels.shape[0]
    return int(max(2, min(max_folds, rarest, labels.shape[0])))


def assign_folds(labels: np.ndarray, multilabel: bool, seed: int, num_folds: int) -> np.ndarray:
    """Stratified fold assignment that works for multilabel data and tiny tags.

    Each image is keyed by its tag (multiclass) or by its rarest tag (multilabel; untagged
    images share one key). Keys are dealt out rarest first, each shuffled and assigned
    round-robin continuing where the previous key stopped, so every tag is spread evenly over
    the folds and the folds stay within one image of each other in size.

    Args:
        labels: (N, T) 0/1.
        multilabel: how to key images.
        seed: shuffling seed.
        num_folds: k >= 2.

    Returns:
        int64 (N,) fold indices in [0, k).
    """
    labels = np.asarray(labels) > 0.5
    n, t = labels.shape
    counts = labels.sum(axis=0)
    if multilabel:
        # Ties broken by tag index so the key does not depend on floating point.
        rank = np.where(labels, counts[None, :] * (t + 1) + np.arange(t)[None, :], np.iinfo(np.int64).max)
        keys = np.where(labels.any(axis=1), rank.argmin(axis=1), t)
    else:
        keys = labels.argmax(axis=1)
    key_sizes = np.bincount(keys, minlength=t + 1)
    rng = np.random.default_rng(seed)
    folds = np.zeros(n, dtype=np.int64)
    offset = 0
    for key in sorted(np.flatnonzero(key_sizes), key=lambda k: (key_sizes[k], k)):
        members = rng.permutation(np.flatnonzero(keys == key))
        folds[members] = (offset + np.arange(len(members))) % num_folds
        offset = (offset + len(members)) % num_folds
    return folds


# Candidate logit scales for `fit_logit_scale` (a fixed grid keeps it deterministic).
LOGIT_SCALES = np.geomspace(0.25, 16.0, 121)


def _held_out_nll(logits: np.ndarray, labels: np.ndarray, multilabel: bool) -> float:
    probs = activate(logits, multilabel)
    eps = 1e-12
    if multilabel:
        truth = labels > 0.5
        p = np.where(truth, probs, 1.0 - probs)
        return float(-np.mean(np.log(np.maximum(p, eps))))
    return float(-np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels.argmax(axis=1)], eps))))


def _break_even_gap(logits: np.ndarray, truth: np.ndarray, multilabel: bool, threshold: float) -> float:
    predicted = activate(logits, multilabel) >= threshold
    tp = int(np.sum(predicted & truth))
    if tp == 0:
        return np.inf
    return abs(tp / int(predicted.sum()) - tp / int(truth.sum()))


def fit_logit_scale(
    logits: np.ndarray, labels: np.ndarray, multilabel: bool, threshold: float = 0.5
) -> float:
    """The factor applied to held-out logits before they become reported probabilities.

    A head on a few thousand dimensions, regularised for accuracy, gives timid probabilities
    (most below 0.5 with a few images per tag), so precision/recall at the usual 0.5 threshold
    would say little about how often it is right: with 30 Fashion-MNIST images per tag, raw
    held-out recall at 0.5 was 0.70 for a test accuracy of 0.85. The scale is the larger of
    - temperature scaling: the factor with the lowest held-out log loss (calibration), and
    - break-even: the factor at which held-out micro precision equals recall at `threshold`,
    so the probabilities are never less confident than calibrated ones, and the precision and
    recall reported at the default threshold both estimate the accuracy (on tuning draws they
    were within 0.01 of the test accuracy at 30 images per tag, against -0.03/+0.03 with the
    temperature alone). Only probabilities change; argmax predictions, hence accuracy, do not.

    Args:
        logits: held-out logits (N, T).
        labels: (N, T) 0/1.
        multilabel: sigmoid (else softmax) probabilities.
        threshold: the threshold performance is reported at.

    Returns:
        A scale from the fixed grid `LOGIT_SCALES` (1.0 when there is nothing to fit).
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    truth = labels > 0.5
    if logits.size == 0 or not truth.any():
        return 1.0
    losses = [_held_out_nll(logits * scale, labels, multilabel) for scale in LOGIT_SCALES]
    calibrated = float(LOGIT_SCALES[int(np.argmin(losses))])
    gaps = [_break_even_gap(logits * scale, truth, multilabel, threshold) for scale in LOGIT_SCALES]
    if not np.isfinite(min(gaps)):
        return calibrated
    return max(calibrated, float(LOGIT_SCALES[int(np.argmin(gaps))]))


def cross_validate(
    features: np.ndarray,
    labels: np.ndarray,
    multilabel: bool,
    seed: int,
    folds: int | None = None,
    C: float = DEFAULT_C,
    progress: Callable[[int, int], None] | None = None,
    calibrate: bool = False,
    kind: str = LINEAR,
) -> Evaluation:
    """Predicts every image with a head trained without it (stratified k-fold).

    Args:
        features: raw backbone embeddings (N, D), computed once and reused by every fold.
        labels: (N, T) 0/1.
        multilabel: head type.
        seed: fold assignment and training seed.
        folds: k; default `choose_num_folds` capped by `max_folds_for` (5 or 10).
        C: head regularisation, as in training (linear heads).
        progress: called as progress(folds_done, k).
        calibrate: fit a logit scale on the held-out logits (`fit_logit_scale`) and report
            the scaled probabilities; the final head must then use `logit_scale` too.
        kind: head kind (`head.LINEAR` or `head.MLP`), as in training.

    Returns:
        The `Evaluation`.

    Raises:
        ValueError: fewer than 2 images, or inconsistent shapes.
    """
    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.float64)
    n = features.shape[0]
    if labels.ndim != 2 or labels.shape[0] != n:
        raise ValueError(f"features {features.shape} and labels {labels.shape} do not match")
    if n < 2:
        raise ValueError("cross-validation needs at least 2 images")
    if folds is None:
        k = choose_num_folds(labels, max_folds_for(labels, kind))
    else:
        k = int(max(2, min(folds, n)))
    assignment = assign_folds(labels, multilabel, seed, k)
    logits = np.zeros(labels.shape, dtype=np.float64)
    for f in range(k):
        held_out = assignment == f
        train = ~held_out
        if held_out.any():
            layers = fit_layers(features[train], labels[train], multilabel, seed, kind, C)
            logits[held_out] = layers.logits(features[held_out])
        if progress is not None:
            progress(f + 1, k)
    scale = fit_logit_scale(logits, labels, multilabel) if calibrate else 1.0
    return Evaluation(
        probabilities=activate(logits * scale, multilabel),
        labels=labels,
        folds=assignment,
        num_folds=k,
        multilabel=multilabel,
        seed=seed,
        logit_scale=scale,
    )


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the precision-recall curve, as a step sum (no interpolation).

    AP = sum_k (R_k - R_{k-1}) * P_k over the distinct score thresholds, highest first
    (the definition scikit-learn uses). 0 when there are no positives.

    Args:
        scores: (M,) probabilities.
        positives: (M,) 0/1 truth.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positives = np.asarray(positives).ravel() > 0.5
    total = int(positives.sum())
    if total == 0:
        return 0.0
    order = np.argsort(-scores, kind="mergesort")
    s = scores[order]
    y = positives[order]
    tps = np.cumsum(y)
    fps = np.cumsum(~y)
    # Tied scores form one threshold: evaluate only at the last element of each tie group.
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp = tps[last]
    fp = fps[last]
    precision = tp / (tp + fp)
    recall = tp / total
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den > 0 else None


def _std(values: list[float | None]) -> float:
    defined = [v for v in values if v is not None]
    return float(np.std(defined)) if len(defined) >= 2 else 0.0


def _counts(predicted: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    tp = int(np.sum(predicted & truth))
    fp = int(np.sum(predicted & ~truth))
    fn = int(np.sum(~predicted & truth))
    return tp, fp, fn


def performance(
    evaluation: Evaluation,
    threshold: float,
    tag_ids: Sequence[str],
    tag_names: Sequence[str],
) -> dict:
    """Precision, recall and average precision at a probability threshold.

    Args:
        evaluation: from `cross_validate`.
        threshold: a tag is predicted when its probability >= threshold.
        tag_ids / tag_names: the T tags, in column order.

    Returns:
        {"threshold", "image_count", "num_folds",
         "precision", "precision_std_deviation", "recall", "recall_std_deviation",
         "average_precision" (micro: all image-tag pairs pooled),
         "mean_average_precision" (mean of per-tag AP over tags with images),
         "per_tag": [{"id", "name", "image_count", "precision", "precision_std_deviation",
                      "recall", "recall_std_deviation", "average_precision"}, ...]}
        Overall precision/recall are micro averages (counts pooled over tags). Undefined
        ratios follow the module conventions (0).
    """
    probs = np.asarray(evaluation.probabilities, dtype=np.float64)
    truth = np.asarray(evaluation.labels) > 0.5
    t = truth.shape[1] if truth.ndim == 2 else 0
    if len(tag_ids) != t or len(tag_names) != t:
        raise ValueError(f"evaluation has {t} tags, got {len(tag_ids)} ids / {len(tag_names)} names")
    predicted = probs >= threshold
    folds = np.asarray(evaluation.folds)
    fold_ids = list(range(int(evaluation.num_folds)))

    per_tag = []
    for j in range(t):
        tp, fp, fn = _counts(predicted[:, j], truth[:, j])
        fold_p, fold_r = [], []
        for f in fold_ids:
            m = folds == f
            ftp, ffp, ffn = _counts(predicted[m, j], truth[m, j])
            fold_p.append(_ratio(ftp, ftp + ffp))
            fold_r.append(_ratio(ftp, ftp + ffn))
        per_tag.append(
            {
                "id": str(tag_ids[j]),
                "name": str(tag_names[j]),
                "image_count": int(truth[:, j].sum()),
                "precision": _ratio(tp, tp + fp) or 0.0,
                "precision_std_deviation": _std(fold_p),
                "recall": _ratio(tp, tp + fn) or 0.0,
                "recall_std_deviation": _std(fold_r),
                "average_precision": average_precision(probs[:, j], truth[:, j]),
            }
        )

    tp, fp, fn = _counts(predicted, truth)
    fold_p, fold_r = [], []
    for f in fold_ids:
        m = folds == f
        ftp, ffp, ffn = _counts(predicted[m], truth[m])
        fold_p.append(_ratio(ftp, ftp + ffp))
        fold_r.append(_ratio(ftp, ftp + ffn))
    aps = [p["average_precision"] for p in per_tag if p["image_count"] > 0]
    return {
        "threshold": float(threshold),
        "image_count": int(truth.shape[0]),
        "num_folds": int(evaluation.num_folds),
        "precision": _ratio(tp, tp + fp) or 0.0,
        "precision_std_deviation": _std(fold_p),
        "recall": _ratio(tp, tp + fn) or 0.0,
        "recall_std_deviation": _std(fold_r),
        "average_precision": average_precision(probs.ravel(), truth.ravel()) if t else 0.0,
        "mean_average_precision": float(np.mean(aps)) if aps else 0.0,
        "per_tag": per_tag,
    }
