"""Training on frozen backbone features: a cross-validated evaluation, then the head.

Quick training (`Regular`) fits a linear head; `Advanced` fits a head with a hidden layer
(`head.MLP`, see `mlp.py`), which takes seconds per fit instead of hundredths.

`fit_quick` is the part after feature extraction; the training service calls it on its cached
features, and `train_quick` calls it after embedding the images, so both share one path.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .backbone import DEFAULT_BACKBONE, EmbedderLike, embed_images, get_backbone
from .evaluate import Evaluation, cross_validate
from .head import DEFAULT_C, LINEAR, MLP, Head, rarest_tag_count, train_head

# Share of the overall progress per stage: feature extraction dominates the run time
# (about 5-12 ms per image against well under a second for all head fits).
_FEATURES_END = 85.0
_EVALUATING_END = 95.0


# The hidden-layer head needs images: on the design draws (`python bench/heads.py heads --n N`)
# it lost to the linear head at 5 images per tag (-0.01 to -0.026 on 4 draws), tied at 10 and
# won at 30 (+0.005). Below this many images in some tag, Advanced training fits the linear head.
MLP_MIN_IMAGES_PER_TAG = 20


def advanced_head_kind(labels: np.ndarray) -> tuple[str, str]:
    """The head Advanced training fits for these labels, and why when it is the linear one.

    Returns:
        (`head.MLP`, "") when every tag with images has at least `MLP_MIN_IMAGES_PER_TAG`,
        else (`head.LINEAR`, reason).
    """
    fewest = rarest_tag_count(labels)
    if fewest >= MLP_MIN_IMAGES_PER_TAG:
        return MLP, ""
    return LINEAR, (f"a tag has {fewest} images, fewer than the {MLP_MIN_IMAGES_PER_TAG} the "
                    "hidden-layer head needs to beat the linear one: trained the linear head")


def fit_quick(
    features: np.ndarray,
    labels: np.ndarray,
    multilabel: bool,
    seed: int,
    tag_ids: Sequence[str],
    tag_names: Sequence[str],
    backbone: str = DEFAULT_BACKBONE,
    C: float = DEFAULT_C,
    progress: Callable[[str, int, int], None] | None = None,
    kind: str = LINEAR,
) -> tuple[Head, Evaluation]:
    """Cross-validates, calibrates and trains the head on embeddings.

    The held-out logits fix one temperature (`evaluate.fit_logit_scale`); the reported
    held-out probabilities and the final head both use it, so performance at threshold 0.5
    describes the head that is served. Deterministic for the same inputs and seed.

    Args:
        features: backbone embeddings (N, D).
        labels: (N, T) 0/1; multiclass rows have exactly one 1.
        multilabel: Custom Vision "Multilabel" (else "Multiclass").
        seed: fold assignment and training seed.
        tag_ids / tag_names: the T tags, in column order.
        backbone: name of the backbone the features came from (recorded in the head).
        C: head regularisation (linear heads).
        progress: called as progress(stage, done, total) with stage "evaluating" (per fold)
            or "training" (0 of 1 before the final fit, 1 of 1 after).
        kind: `head.LINEAR` or `head.MLP`.

    Returns:
        (head trained on all images, calibrated held-out `Evaluation`).

    Raises:
        ValueError: inconsistent inputs or fewer than 2 images.
    """
    evaluation = cross_validate(
        features,
        labels,
        multilabel,
        seed,
        C=C,
        calibrate=True,
        progress=(lambda done, total: progress("evaluating", done, total)) if progress else None,
        kind=kind,
    )
    if progress is not None:
        progress("training", 0, 1)
    head = train_head(
        features, labels, multilabel, seed, tag_ids, tag_names, backbone,
        C=C, logit_scale=evaluation.logit_scale, kind=kind,
    )
    if progress is not None:
        progress("training", 1, 1)
    return head, evaluation


def train_quick(
    images: Sequence[bytes],
    labels: np.ndarray,
    multilabel: bool,
    seed: int,
    tag_ids: Sequence[str],
    tag_names: Sequence[str],
    embedder: EmbedderLike,
    progress: Callable[[str, float], None] | None = None,
    backbone: str = DEFAULT_BACKBONE,
    batch_size: int = 32,
    C: float = DEFAULT_C,
    kind: str = LINEAR,
) -> tuple[Head, Evaluation]:
    """Embeds encoded images, then `fit_quick`.

    Args:
        images: encoded training images.
        labels: (N, T) 0/1; multiclass rows have exactly one 1.
        multilabel: Custom Vision "Multilabel" (else "Multiclass").
        seed: fold assignment and training seed.
        tag_ids / tag_names: the T tags, in column order.
        embedder: runs the backbone (`Embedder` or `TorchEmbedder`) named by `backbone`.
        progress: called as progress(stage, percent) with stage "features", "evaluating"
            or "training" and percent the overall completion in [0, 100].
        backbone: name of the embedder's backbone (recorded in the head).
        batch_size: images per backbone run.
        C: head regularisation (linear heads).
        kind: `head.LINEAR` or `head.MLP`.

    Returns:
        (head trained on all images, held-out `Evaluation`).

    Raises:
        InvalidImage: an image cannot be decoded.
        ValueError: inconsistent inputs or fewer than 2 images.
    """
    spec = get_backbone(backbone)
    if embedder.image_size != spec.image_size:
        raise ValueError(f"embedder input {embedder.image_size} != {backbone} {spec.image_size}")
    labels = np.asarray(labels, dtype=np.float32)
    if labels.ndim != 2 or labels.shape[0] != len(images):
        raise ValueError(f"labels {labels.shape} do not match {len(images)} images")

    def report(stage: str, percent: float) -> None:
        if progress is not None:
            progress(stage, float(min(100.0, max(0.0, percent))))

    def fit_progress(stage: str, done: int, total: int) -> None:
        if stage == "evaluating":
            report(stage, _FEATURES_END + (_EVALUATING_END - _FEATURES_END) * done / total)
        else:
            report(stage, _EVALUATING_END + (100.0 - _EVALUATING_END) * done / total)

    report("features", 0.0)
    features = embed_images(
        embedder,
        images,
        batch_size=batch_size,
        progress=lambda done, total: report("features", _FEATURES_END * done / max(total, 1)),
    )
    return fit_quick(
        features, labels, multilabel, seed, tag_ids, tag_names, backbone, C=C, progress=fit_progress,
        kind=kind,
    )
