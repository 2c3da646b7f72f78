"""Loupe's machine-learning core: preprocessing, backbone, head, evaluation, serving format.

Pure computation, no network or database I/O; shared by the training service, the prediction
service and the TorchServe backbone handler. Submodules import torch / scikit-learn only
where they need them, so `import loupe_model` stays light.
"""

from .backbone import (
    BACKBONES,
    DEFAULT_BACKBONE,
    FINAL_DIM,
    BackboneSpec,
    Embedder,
    TorchEmbedder,
    build_feature_model,
    default_cache_dir,
    embed_images,
    ensure_onnx,
    export_onnx,
    get_backbone,
    make_embedder,
)
from .evaluate import Evaluation, average_precision, cross_validate, performance
from .head import MULTICLASS, MULTILABEL, Head, train_head
# The `preprocess` function is deliberately not re-exported: the name would shadow the
# `loupe_model.preprocess` submodule (import it from there).
from .preprocess import InvalidImage, decode_image, image_info, preprocess_bytes
from .serving import decode_embedding, decode_embeddings, encode_embeddings
from .train import train_quick

__all__ = [
    "BACKBONES",
    "DEFAULT_BACKBONE",
    "FINAL_DIM",
    "MULTICLASS",
    "MULTILABEL",
    "BackboneSpec",
    "Embedder",
    "Evaluation",
    "Head",
    "InvalidImage",
    "TorchEmbedder",
    "average_precision",
    "build_feature_model",
    "cross_validate",
    "decode_embedding",
    "decode_embeddings",
    "decode_image",
    "default_cache_dir",
    "embed_images",
    "encode_embeddings",
    "ensure_onnx",
    "export_onnx",
    "get_backbone",
    "image_info",
    "make_embedder",
    "performance",
    "preprocess_bytes",
    "train_head",
    "train_quick",
]
