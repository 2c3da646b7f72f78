"""TorchServe handler serving the shared Loupe backbone: image bytes in, embedding out.

One model serves every project: the prediction service applies each iteration's head to the
returned embedding. TorchServe batches concurrent requests (batch_size / max_batch_delay set
at registration); a batch is decoded here and run through ONNX Runtime in a single call.

The .mar carries the ONNX export as its serialized file and the `loupe_model` package as extra
files, so decoding and preprocessing are byte-for-byte those used in training.

Response per request: 200 with `loupe_model.serving` bytes (content type
application/x-loupe-embedding), or 400 with {"error": ...} JSON when the body is not a
supported image. The worker's ONNX Runtime thread count comes from LOUPE_ORT_THREADS
(default 2), read when the model is loaded.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


class LoupeBackboneHandler:
    """TorchServe entry point (the module must define exactly one class)."""

    def __init__(self) -> None:
        self.initialized = False
        # loupe_model is importable only once initialize() has put model_dir on sys.path.
        self._embedder: Any = None
        self._preprocess_bytes: Any = None
        self._invalid_image: type[Exception] = ValueError
        self._serving: Any = None

    def initialize(self, context: Any) -> None:
        """Loads the ONNX backbone from the extracted model archive."""
        model_dir = context.system_properties.get("model_dir") or os.getcwd()
        # The archive's extra files (the loupe_model package) are extracted into model_dir.
        if model_dir not in sys.path:
            sys.path.insert(0, model_dir)
        from loupe_model import serving
        from loupe_model.backbone import Embedder
        from loupe_model.preprocess import InvalidImage, preprocess_bytes

        self._serving = serving
        self._preprocess_bytes = preprocess_bytes
        self._invalid_image = InvalidImage

        manifest = context.manifest or {}
        serialized = manifest.get("model", {}).get("serializedFile") or "backbone.onnx"
        threads = int(os.environ.get("LOUPE_ORT_THREADS", "2"))
        self._embedder = Embedder(os.path.join(model_dir, serialized), threads=threads)
        # Run once so the first real request does not pay for ONNX Runtime's lazy setup.
        size = self._embedder.image_size
        self._embedder.embed(np.zeros((1, 3, size, size), dtype=np.float32))
        self.initialized = True
        logger.info("Loupe backbone %s loaded (%d threads)", serialized, threads)

    @staticmethod
    def _body(row: Any) -> bytes:
        if isinstance(row, dict):
            body = row.get("body")
            if body is None:
                body = row.get("data")
        else:
            body = row
        if isinstance(body, (bytes, bytearray, memoryview)):
            return bytes(body)
        if isinstance(body, str):
            # Only happens when a client sends the image as a text form field; such bytes
            # are already mangled, and decoding will report the image as invalid.
            return body.encode("latin-1", errors="replace")
        return b""

    def handle(self, data: list[Any], context: Any) -> list[bytes]:
        """Embeds a batch of requests; one response per request, in order."""
        size = self._embedder.image_size
        responses: list[bytes] = [b""] * len(data)
        inputs: list[np.ndarray] = []
        positions: list[int] = []
        for idx, row in enumerate(data):
            try:
                inputs.append(self._preprocess_bytes(self._body(row), size))
                positions.append(idx)
            except self._invalid_image as exc:
                context.set_response_status(400, "Invalid image", idx)
                context.set_response_content_type(idx, "application/json")
                responses[idx] = self._serving.encode_error(str(exc))
        if inputs:
            embeddings = self._embedder.embed(np.stack(inputs))
            for row_index, idx in enumerate(positions):
                context.set_response_content_type(idx, self._serving.CONTENT_TYPE)
                responses[idx] = self._serving.encode_embeddings(embeddings[row_index])
        return responses
