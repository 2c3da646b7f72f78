"""The trained part of a Loupe iteration: a head on L2-normalised backbone embeddings.

Two kinds of head share one format:
- linear (quick training, `Regular`): logits = W x + b, fitted by `fit_linear`;
- one hidden ReLU layer (`Advanced`): logits = W relu(H x + c) + b, fitted by `mlp.fit_mlp`.
x is the L2-normalised embedding in both. Training needs scikit-learn (linear) or torch
(hidden layer); applying a head (`Head.predict_proba`) and (de)serialising it need only numpy,
so the prediction service can load heads without torch or scikit-learn.
"""

from __future__ import annotations

import dataclasses
import io
import json
import warnings
from typing import Sequence

import numpy as np

from .backbone import get_backbone

HEAD_FORMAT = "loupe-head"
# Version 1: linear heads (weights, bias). Version 2 adds the hidden layer (hidden_weights,
# hidden_bias); linear heads are still written as version 1, so older readers keep working.
HEAD_FORMAT_VERSION = 1
HIDDEN_HEAD_FORMAT_VERSION = 2
LINEAR = "linear"
MLP = "mlp"
HEAD_KINDS = (LINEAR, MLP)

MULTICLASS = "Multiclass"
MULTILABEL = "Multilabel"

# Inverse L2 strength of the logistic regression on unit-length embeddings. On Fashion-MNIST
# (10 classes, 15 images each, 3 draws) held-out accuracy was flat (0.79-0.80) for C in
# 1..100 and dropped at 0.1 (0.77); a larger C also keeps top probabilities above the default
# 0.5 threshold when there are many tags.
DEFAULT_C = 10.0
_MAX_ITER = 1000
# Logit given to a multiclass tag that had no training image: it is never the answer, yet
# its probability stays a finite number.
_ABSENT_CLASS_LOGIT = -20.0


def l2_normalize(features: np.ndarray) -> np.ndarray:
    """Scales each row to unit length (all-zero rows stay zero).

    Args:
        features: (N, D) embeddings.

    Returns:
        float64 (N, D).
    """
    features = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def rarest_tag_count(labels: np.ndarray) -> int:
    """Images of the tag with the fewest, among tags with any (0 when no tag has one)."""
    counts = (np.asarray(labels) > 0.5).sum(axis=0)
    counts = counts[counts > 0]
    return int(counts.min()) if counts.size else 0


def activate(logits: np.ndarray, multilabel: bool) -> np.ndarray:
    """Logits (N, T) -> probabilities: per-tag sigmoid (multilabel) or row softmax."""
    z = np.asarray(logits, dtype=np.float64)
    if multilabel:
        # exp(-|z|) never overflows; both branches are the logistic function.
        e = np.exp(-np.abs(z))
        return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclasses.dataclass
class Layers:
    """The arrays of a head: logits = weights @ relu(hidden_weights @ x + hidden_bias) + bias,
    or weights @ x + bias without a hidden layer, x the L2-normalised embedding."""

    weights: np.ndarray
    bias: np.ndarray
    hidden_weights: np.ndarray | None = None
    hidden_bias: np.ndarray | None = None

    @property
    def input_dim(self) -> int:
        """Length of the embeddings the layers take."""
        w = self.hidden_weights if self.hidden_weights is not None else self.weights
        return int(w.shape[1])

    def logits(self, features: np.ndarray) -> np.ndarray:
        """float64 (N, T) logits of raw embeddings (N, D) (normalised here)."""
        x = l2_normalize(np.atleast_2d(features))
        if self.hidden_weights is not None:
            x = np.maximum(x @ self.hidden_weights.T.astype(np.float64) + self.hidden_bias.astype(np.float64), 0.0)
        return x @ self.weights.T.astype(np.float64) + self.bias.astype(np.float64)


@dataclasses.dataclass
class Head:
    """A classifier over tags (linear, or with one hidden layer).

    Attributes:
        weights: float32 (T, D) applied to L2-normalised embeddings, or (T, H) applied to the
            hidden layer's output when there is one.
        bias: float32 (T,).
        multilabel: per-tag sigmoid when true, softmax over tags otherwise.
        tag_ids / tag_names: the T tags, in column order.
        backbone: backbone name (see backbone.BACKBONES).
        image_size: backbone input size the embeddings were computed at.
        hidden_weights / hidden_bias: float32 (H, D) and (H,) of the hidden ReLU layer, or
            None for a linear head.
    """

    weights: np.ndarray
    bias: np.ndarray
    multilabel: bool
    tag_ids: list[str]
    tag_names: list[str]
    backbone: str
    image_size: int
    hidden_weights: np.ndarray | None = None
    hidden_bias: np.ndarray | None = None

    @property
    def kind(self) -> str:
        """`LINEAR` or `MLP`."""
        return LINEAR if self.hidden_weights is None else MLP

    @property
    def layers(self) -> Layers:
        return Layers(self.weights, self.bias, self.hidden_weights, self.hidden_bias)

    @property
    def input_dim(self) -> int:
        """Length of the embeddings the head takes."""
        return self.layers.input_dim

    @property
    def classification_type(self) -> str:
        """"Multilabel" or "Multiclass" (Custom Vision's names)."""
        return MULTILABEL if self.multilabel else MULTICLASS

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Raw scores (N, T) for embeddings (N, D) (normalised here).

        Raises:
            ValueError: the embeddings are not the length this head was trained on (e.g. a
                head from another backbone or feature definition).
        """
        x = np.atleast_2d(features)
        if x.shape[1] != self.input_dim:
            raise ValueError(
                f"embedding length {x.shape[1]} does not match this head's {self.input_dim}"
                f" (backbone {self.backbone})"
            )
        return self.layers.logits(x)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Tag probabilities.

        Args:
            features: raw backbone embeddings (N, D) or (D,).

        Returns:
            float64 (N, T): softmax rows summing to 1 (multiclass) or independent sigmoids.
        """
        return activate(self.logits(features), self.multilabel)

    def to_bytes(self) -> bytes:
        """Serialises to an .npz (no pickle): arrays plus a JSON metadata array."""
        hidden = self.hidden_weights is not None
        meta = {
            "format": HEAD_FORMAT,
            "version": HIDDEN_HEAD_FORMAT_VERSION if hidden else HEAD_FORMAT_VERSION,
            "classification_type": self.classification_type,
            "tag_ids": list(self.tag_ids),
            "tag_names": list(self.tag_names),
            "backbone": self.backbone,
            "image_size": int(self.image_size),
        }
        if hidden:
            meta["hidden_activation"] = "relu"
        arrays = {
            "weights": np.asarray(self.weights, dtype=np.float32),
            "bias": np.asarray(self.bias, dtype=np.float32),
            "meta": np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
        }
        if hidden:
            arrays["hidden_weights"] = np.asarray(self.hidden_weights, dtype=np.float32)
            arrays["hidden_bias"] = np.asarray(self.hidden_bias, dtype=np.float32)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Head":
        """Loads a head written by `to_bytes`.

        Raises:
            ValueError: not a Loupe head, or an unsupported version.
        """
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                weights = np.array(npz["weights"], dtype=np.float32)
                bias = np.array(npz["bias"], dtype=np.float32)
                meta = json.loads(bytes(npz["meta"]).decode("utf-8"))
                hidden_weights = hidden_bias = None
                if meta.get("version") == HIDDEN_HEAD_FORMAT_VERSION:
                    hidden_weights = np.array(npz["hidden_weights"], dtype=np.float32)
                    hidden_bias = np.array(npz["hidden_bias"], dtype=np.float32)
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"not a Loupe head: {exc}") from exc
        version = meta.get("version")
        if meta.get("format") != HEAD_FORMAT or version not in (HEAD_FORMAT_VERSION, HIDDEN_HEAD_FORMAT_VERSION):
            raise ValueError(f"unsupported head format {meta.get('format')} v{version}")
        if version == HIDDEN_HEAD_FORMAT_VERSION and meta.get("hidden_activation") != "relu":
            raise ValueError(f"unsupported hidden activation {meta.get('hidden_activation')!r}")
        tag_ids = list(meta["tag_ids"])
        if weights.ndim != 2 or weights.shape[0] != len(tag_ids) or bias.shape != (len(tag_ids),):
            raise ValueError("head arrays do not match its tags")
        if hidden_weights is not None and (
            hidden_weights.ndim != 2
            or hidden_weights.shape[0] != weights.shape[1]
            or hidden_bias.shape != (hidden_weights.shape[0],)
        ):
            raise ValueError("head hidden layer does not match its output layer")
        return cls(
            weights=weights,
            bias=bias,
            multilabel=meta["classification_type"] == MULTILABEL,
            tag_ids=tag_ids,
            tag_names=list(meta["tag_names"]),
            backbone=str(meta["backbone"]),
            image_size=int(meta["image_size"]),
            hidden_weights=hidden_weights,
            hidden_bias=hidden_bias,
        )


def constant_logits(labels: np.ndarray, multilabel: bool) -> tuple[np.ndarray, np.ndarray]:
    """The logits of tags no classifier can learn, and the tags that can be learnt.

    - Multilabel: a tag on no (or every) image cannot be separated; it predicts its smoothed
      frequency for every image. The others are learnt.
    - Multiclass: a tag without images gets `_ABSENT_CLASS_LOGIT` (never the answer, yet a finite
      probability); with a single tag present it is the answer (logit 0) and nothing is
      learnt; otherwise the present tags are learnt.

    Args:
        labels: (N, T) 0/1.
        multilabel: per-tag sigmoid (else softmax).

    Returns:
        (float64 (T,) biases, with those of learnt tags 0; sorted int array of learnt columns).
    """
    labels = np.asarray(labels)
    n, t = labels.shape
    bias = np.zeros(t, dtype=np.float64)
    if multilabel:
        positives = (labels > 0.5).sum(axis=0)
        learnable = (positives > 0) & (positives < n)
        p = (positives[~learnable] + 0.5) / (n + 1.0)
        bias[~learnable] = np.log(p / (1.0 - p))
        return bias, np.flatnonzero(learnable)
    present = np.unique(labels.argmax(axis=1))
    bias[:] = _ABSENT_CLASS_LOGIT
    bias[present] = 0.0
    if len(present) == 1:
        return bias, present[:0]
    return bias, present


def _logistic(C: float, seed: int):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=_MAX_ITER, random_state=seed)


def fit_linear(
    features: np.ndarray, labels: np.ndarray, multilabel: bool, seed: int, C: float = DEFAULT_C
) -> tuple[np.ndarray, np.ndarray]:
    """Fits head weights (the part of `train_head` cross-validation reuses).

    Args:
        features: raw embeddings (N, D).
        labels: (N, T) 0/1; multiclass rows have exactly one 1 (argmax is used).
        multilabel: per-tag sigmoid (else softmax).
        seed: seed for the solver (lbfgs is deterministic; kept for future solvers).
        C: inverse L2 regularisation strength.

    Returns:
        (weights float32 (T, D), bias float32 (T,)).
    """
    from threadpoolctl import threadpool_limits

    # The problems are small (N x min(N, D)): one BLAS thread is consistently faster, and
    # multi-threaded OpenBLAS spin-waits badly on a loaded 2-core machine (a 150-image,
    # 10-tag fit measured 0.02 s single-threaded vs 0.07-1.9 s with 2 threads).
    with threadpool_limits(limits=1):
        return _fit_linear(features, labels, multilabel, seed, C)


def _fit_linear(
    features: np.ndarray, labels: np.ndarray, multilabel: bool, seed: int, C: float
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.exceptions import ConvergenceWarning

    x = l2_normalize(features)
    labels = np.asarray(labels)
    n, t = labels.shape
    d = x.shape[1]
    # With fewer images than dimensions, the L2-optimal weights lie in the span of the
    # images (representer theorem; the intercept is not penalised), so fitting on the
    # images' coordinates in that span gives the same head several times faster.
    basis = None
    if n < d:
        u, s, basis = np.linalg.svd(x, full_matrices=False)
        x = u * s
    weights = np.zeros((t, x.shape[1]), dtype=np.float64)
    bias, learn = constant_logits(labels, multilabel)
    with warnings.catch_warnings():
        # A head that has not fully converged after _MAX_ITER lbfgs steps is still a good
        # head; the warning would only make strict callers fail.
        warnings.simplefilter("ignore", ConvergenceWarning)
        if multilabel:
            for j in learn:
                model = _logistic(C, seed).fit(x, (labels[:, j] > 0.5).astype(np.int64))
                weights[j] = model.coef_[0]
                bias[j] = model.intercept_[0]
        elif len(learn):
            model = _logistic(C, seed).fit(x, labels.argmax(axis=1))
            classes = model.classes_
            if len(classes) == 2:
                # scikit-learn fits one sigmoid for two classes; splitting it evenly
                # gives the softmax with identical probabilities.
                w, b = model.coef_[0], model.intercept_[0]
                weights[classes[0]], bias[classes[0]] = -w / 2, -b / 2
                weights[classes[1]], bias[classes[1]] = w / 2, b / 2
            else:
                weights[classes] = model.coef_
                bias[classes] = model.intercept_
    if basis is not None:
        weights = weights @ basis
    return weights.astype(np.float32), bias.astype(np.float32)


def fit_layers(
    features: np.ndarray,
    labels: np.ndarray,
    multilabel: bool,
    seed: int,
    kind: str = LINEAR,
    C: float = DEFAULT_C,
) -> Layers:
    """Fits a head's arrays: `fit_linear` (kind `LINEAR`) or `mlp.fit_mlp` (kind `MLP`).

    Raises:
        ValueError: unknown kind.
    """
    if kind == LINEAR:
        return Layers(*fit_linear(features, labels, multilabel, seed, C))
    if kind == MLP:
        from .mlp import fit_mlp

        return fit_mlp(features, labels, multilabel, seed)
    raise ValueError(f"unknown head kind {kind!r} (expected one of {HEAD_KINDS})")


def train_head(
    features: np.ndarray,
    labels: np.ndarray,
    multilabel: bool,
    seed: int,
    tag_ids: Sequence[str],
    tag_names: Sequence[str],
    backbone: str,
    C: float = DEFAULT_C,
    logit_scale: float = 1.0,
    kind: str = LINEAR,
) -> Head:
    """Trains a head on all the given images.

    Args:
        features: raw backbone embeddings (N, D).
        labels: (N, T) 0/1 float; multiclass rows have exactly one 1.
        multilabel: per-tag sigmoid (Custom Vision "Multilabel") or softmax ("Multiclass").
        seed: solver seed.
        tag_ids / tag_names: the T tags, in column order.
        backbone: backbone name the features came from.
        C: inverse L2 regularisation strength (linear heads).
        logit_scale: factor folded into the output weights and bias (temperature scaling, see
            `evaluate.fit_logit_scale`); it changes the probabilities, never the argmax.
        kind: `LINEAR` or `MLP` (see `fit_layers`).

    Returns:
        The trained `Head`.

    Raises:
        KeyError: unknown backbone.
        ValueError: inconsistent shapes, or no images.
    """
    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.float32)
    if features.ndim != 2 or labels.ndim != 2 or features.shape[0] != labels.shape[0]:
        raise ValueError(f"features {features.shape} and labels {labels.shape} do not match")
    if labels.shape[1] != len(tag_ids) or len(tag_ids) != len(tag_names):
        raise ValueError("labels, tag_ids and tag_names must describe the same tags")
    if features.shape[0] == 0:
        raise ValueError("no training images")
    spec = get_backbone(backbone)
    layers = fit_layers(features, labels, multilabel, seed, kind, C)
    scale = np.float32(logit_scale)
    return Head(
        weights=layers.weights * scale,
        bias=layers.bias * scale,
        hidden_weights=layers.hidden_weights,
        hidden_bias=layers.hidden_bias,
        multilabel=multilabel,
        tag_ids=[str(t) for t in tag_ids],
        tag_names=[str(t) for t in tag_names],
        backbone=backbone,
        image_size=spec.image_size,
    )
