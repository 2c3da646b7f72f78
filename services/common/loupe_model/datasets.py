"""Small real-image datasets for tests and benchmarks (no downloads).

Fashion-MNIST comes from Debian's package (idx files under /usr/share/datasets/fashion-mnist).
"""

from __future__ import annotations

import gzip
import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte idx file")
    shape = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion_mnist_arrays(
    split: str, root: str | Path = FASHION_MNIST_DIR
) -> tuple[np.ndarray, np.ndarray]:
    """Reads a Fashion-MNIST split.

    Args:
        split: "train" or "test".
        root: directory holding the gzipped idx files.

    Returns:
        (images uint8 (N, 28, 28), labels uint8 (N,)).
    """
    if split not in _FILES:
        raise ValueError("split must be 'train' or 'test'")
    images_name, labels_name = _FILES[split]
    root = Path(root)
    return _read_idx(root / images_name), _read_idx(root / labels_name)


def load_fashion_mnist(
    split: str,
    classes: list[int] | tuple[int, ...],
    n_per_class: int,
    seed: int,
    root: str | Path = FASHION_MNIST_DIR,
) -> list[tuple[bytes, int]]:
    """Draws a class-balanced sample of Fashion-MNIST as PNG-encoded greys.

    Args:
        split: "train" or "test".
        classes: Fashion-MNIST class indices (0-9) to draw.
        n_per_class: images per class.
        seed: sampling seed (the same seed gives the same images).
        root: directory holding the gzipped idx files.

    Returns:
        [(png_bytes, position of the label in `classes`)], grouped by class.
    """
    images, labels = load_fashion_mnist_arrays(split, root)
    rng = np.random.default_rng(seed)
    out: list[tuple[bytes, int]] = []
    for position, cls in enumerate(classes):
        candidates = np.flatnonzero(labels == cls)
        if len(candidates) < n_per_class:
            raise ValueError(f"class {cls} has only {len(candidates)} images")
        for idx in rng.choice(candidates, size=n_per_class, replace=False):
            buf = io.BytesIO()
            Image.fromarray(images[idx], mode="L").save(buf, format="PNG")
            out.append((buf.getvalue(), position))
    return out
