"""Wire format of embeddings between the TorchServe backbone handler and its clients.

A response body is a 12-byte header -- magic b"LPE1", rows (uint32 LE), dim (uint32 LE) --
followed by rows * dim float32 little-endian values. It is exact (no float-to-text rounding),
about 5 KB for a 1280-d embedding, and decodes with one numpy call.
"""

from __future__ import annotations

import json
import struct

import numpy as np

MAGIC = b"LPE1"
CONTENT_TYPE = "application/x-loupe-embedding"
_HEADER = struct.Struct("<4sII")


class EmbeddingFormatError(ValueError):
    """The bytes are not an encoded embedding."""


def encode_embeddings(embeddings: np.ndarray) -> bytes:
    """Encodes one embedding (D,) or a batch (B, D).

    Returns:
        The header followed by the float32 little-endian values.
    """
    arr = np.asarray(embeddings, dtype="<f4")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"expected (D,) or (B, D), got {arr.shape}")
    rows, dim = arr.shape
    return _HEADER.pack(MAGIC, rows, dim) + np.ascontiguousarray(arr).tobytes()


def decode_embeddings(data: bytes) -> np.ndarray:
    """Decodes `encode_embeddings` output to float32 (B, D).

    Raises:
        EmbeddingFormatError: wrong magic or length (e.g. an error body from TorchServe).
    """
    if len(data) < _HEADER.size:
        raise EmbeddingFormatError(f"too short for an embedding ({len(data)} bytes)")
    magic, rows, dim = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise EmbeddingFormatError("not a Loupe embedding")
    expected = _HEADER.size + rows * dim * 4
    if len(data) != expected:
        raise EmbeddingFormatError(f"length {len(data)} != {expected} for {rows}x{dim}")
    arr = np.frombuffer(data, dtype="<f4", count=rows * dim, offset=_HEADER.size)
    return arr.reshape(rows, dim).astype(np.float32)


def decode_embedding(data: bytes) -> np.ndarray:
    """Decodes a single embedding to float32 (D,).

    Raises:
        EmbeddingFormatError: not an encoded embedding, or not exactly one row.
    """
    arr = decode_embeddings(data)
    if arr.shape[0] != 1:
        raise EmbeddingFormatError(f"expected one embedding, got {arr.shape[0]}")
    return arr[0]


def encode_error(message: str) -> bytes:
    """The JSON body the handler returns for a request it cannot embed."""
    return json.dumps({"error": message}).encode("utf-8")
