"""Pure request validation: images (format, bytes, dimensions), batch limits, ids, query values.

No I/O. Every refusal is a `BadRequest` carrying the Custom Vision error code the official SDK
enumerates (`CustomVisionErrorCodes`); `upload_status` turns such a refusal into the per-image
`ImageCreateStatus` string an upload summary reports.
"""
from __future__ import annotations

import io
import uuid
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from loupe_common.errors import BadRequest, LoupeError

#: PIL format name -> MIME type, for the formats Custom Vision accepts (plus WebP).
FORMATS = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "BMP": "image/bmp",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}

#: Custom Vision error code of a refused image -> its status in an upload summary.
_UPLOAD_STATUS = {
    "BadRequestImageFormat": "ErrorImageFormat",
    "BadRequestImageSizeBytes": "ErrorImageSize",
    "BadRequestImageDimensions": "ErrorImageDimensions",
    "BadRequestImageTags": "ErrorInvalidTag",
    "BadRequestExceedTagPerImageLimit": "ErrorTagLimitExceed",
    "BadRequestNegativeAndRegularTagOnSameImage": "ErrorNegativeAndRegularTagOnSameImage",
}


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    content_type: str
    size_bytes: int


#: Custom Vision refuses images whose long side is more than 25 times the short one.
MAX_ASPECT_RATIO = 25.0


def check_image(data: bytes, max_bytes: int, max_side: int,
                max_aspect_ratio: float = MAX_ASPECT_RATIO) -> ImageInfo:
    """Checks that `data` is one image Loupe accepts; returns its dimensions and type.

    Only the header is decoded (plus PIL's structural `verify`), so this is cheap even for
    large images.

    Raises:
        BadRequest: BadRequestImageSizeBytes (empty or over `max_bytes`),
            BadRequestImageFormat (not an image, or a format other than JPEG/PNG/BMP/GIF/WebP),
            BadRequestImageDimensions (a side over `max_side` pixels, or zero, or a long side
            more than `max_aspect_ratio` times the short one).
    """
    size = len(data)
    if size == 0:
        raise BadRequest("the image is empty", "BadRequestImageSizeBytes")
    if size > max_bytes:
        raise BadRequest(
            f"the image is {size} bytes; the limit is {max_bytes} bytes",
            "BadRequestImageSizeBytes",
        )
    try:
        # PIL's decompression-bomb guard warns (an error under pytest) or raises on huge images;
        # the side limit below is the rule that applies here.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt = img.format
                width, height = img.size
                img.verify()
    except Image.DecompressionBombError:
        raise BadRequest(
            f"the image has too many pixels; sides are limited to {max_side} pixels",
            "BadRequestImageDimensions",
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadRequest(f"the data is not a valid image: {exc}", "BadRequestImageFormat") from None
    if fmt not in FORMATS:
        raise BadRequest(
            f"image format {fmt} is not supported (JPEG, PNG, BMP, GIF, WebP)",
            "BadRequestImageFormat",
        )
    if width <= 0 or height <= 0 or width > max_side or height > max_side:
        raise BadRequest(
            f"the image is {width}x{height} pixels; sides are limited to {max_side} pixels",
            "BadRequestImageDimensions",
        )
    if max(width, height) > max_aspect_ratio * min(width, height):
        raise BadRequest(
            f"the image is {width}x{height} pixels; the aspect ratio is limited to "
            f"{max_aspect_ratio:g}:1",
            "BadRequestImageDimensions",
        )
    return ImageInfo(width, height, FORMATS[fmt], size)


def upload_status(err: LoupeError) -> str:
    """The ImageCreateStatus an upload summary reports for an image refused with `err`."""
    return _UPLOAD_STATUS.get(err.code, "ErrorUnknown")


def check_batch(images: int, tags: int, max_images: int, max_tags: int) -> None:
    """Refuses an upload batch over the configured limits (by default Custom Vision's,
    loupe_common.limits)."""
    if images > max_images:
        raise BadRequest(
            f"a batch holds at most {max_images} images; this one has {images}",
            "BadRequestExceededBatchSize",
        )
    if tags > max_tags:
        raise BadRequest(
            f"a batch carries at most {max_tags} tags; this one has {tags}",
            "BadRequestExceededBatchSize",
        )
    if images == 0:
        raise BadRequest("the request holds no image", "BadRequestImageBatch")


def canonical_path_ids(values: dict | None) -> None:
    """Rewrites every `*_id` URL value that is a GUID to its canonical form, in place.

    The services store ids (and storage keys made of them) in lowercase; a caller may write a
    GUID in upper case, with braces or without hyphens. Canonicalised once here, at the edge,
    every later step (row look-ups, storage prefixes, caches) sees the one spelling. A value
    that is no GUID is left as it is: the step that looks it up answers not-found.
    """
    for name, value in (values or {}).items():
        if name.endswith("_id") and isinstance(value, str):
            try:
                values[name] = str(uuid.UUID(value.strip()))
            except ValueError:
                pass


def parse_guid(value: str | None, code: str = "BadRequestInvalidIds") -> str:
    """The canonical (lowercase, hyphenated) form of a GUID, or BadRequest with `code`."""
    try:
        return str(uuid.UUID(str(value).strip()))
    except (ValueError, TypeError, AttributeError):
        raise BadRequest(f"invalid id {value!r}", code) from None


def parse_guid_list(
    values: str | Iterable[str] | None, code: str = "BadRequestInvalidIds"
) -> list[str]:
    """GUIDs from a comma-separated query value (or a list); keeps order, drops repeats."""
    if values is None:
        return []
    if isinstance(values, str):
        values = values.split(",")
    out: dict[str, None] = {}
    for value in values:
        if isinstance(value, str) and not value.strip():
            continue
        out[parse_guid(value, code)] = None
    return list(out)


def parse_bool(value: str | None, default: bool = False) -> bool:
    """A query boolean as .NET writes it (true/false, any case; 1/0)."""
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise BadRequest(f"{value!r} is not a boolean", "BadRequest")


def parse_int(
    value: str | None, name: str, default: int, minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """A query integer within [minimum, maximum]; BadRequest otherwise."""
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, not {value!r}", "BadRequest") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise BadRequest(f"{name} must be between {minimum} and {maximum}", "BadRequest")
    return number


#: Custom Vision's page sizes of image listings (`take`).
MAX_TAKE = 256
DEFAULT_TAKE = 50


def parse_take(value: str | None) -> int:
    """A listing's `take`: 1 to MAX_TAKE, DEFAULT_TAKE when absent or 0."""
    return parse_int(value, "take", DEFAULT_TAKE, 0, MAX_TAKE) or DEFAULT_TAKE


def parse_skip(value: str | None) -> int:
    """A listing's `skip`: 0 or more."""
    return parse_int(value, "skip", 0, 0)


def parse_float(value: str | None, name: str, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise BadRequest(f"{name} must be a number, not {value!r}", "BadRequest") from None


#: Custom Vision's image metadata limits.
MAX_METADATA_KEYS = 10
MAX_METADATA_KEY_LENGTH = 128
MAX_METADATA_VALUE_LENGTH = 256


def check_metadata(value: object) -> dict[str, str]:
    """Image metadata as Custom Vision accepts it: at most 10 string pairs, keys of 1 to 128
    characters, values of at most 256. Raises BadRequest (BadRequestImageMetadataKey/Value)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("metadata must be a JSON object of strings", "BadRequestImageMetadataKey")
    if len(value) > MAX_METADATA_KEYS:
        raise BadRequest(f"at most {MAX_METADATA_KEYS} metadata keys", "BadRequestImageMetadataKey")
    for key, item in value.items():
        if not key or len(key) > MAX_METADATA_KEY_LENGTH:
            raise BadRequest(f"metadata keys are 1 to {MAX_METADATA_KEY_LENGTH} characters",
                             "BadRequestImageMetadataKey")
        if not isinstance(item, str) or len(item) > MAX_METADATA_VALUE_LENGTH:
            raise BadRequest(
                f"metadata values are strings of at most {MAX_METADATA_VALUE_LENGTH} characters",
                "BadRequestImageMetadataValue",
            )
    return dict(value)


def parse_batch(body: object, model: str, max_images: int, max_tags: int
                ) -> tuple[list[tuple[dict, list[str]]], dict[str, str]]:
    """An image batch body (ImageFileCreateBatch, ImageUrlCreateBatch, ImageIdCreateBatch).

    Returns:
        ([(entry, its tag ids: the batch's first, then its own, without repeats)], the batch's
        metadata).
    Raises:
        BadRequest: BadRequestImageBatch, BadRequestImageTags, BadRequestExceededBatchSize,
            BadRequestImageMetadataKey / BadRequestImageMetadataValue.
    """
    if not isinstance(body, dict) or not isinstance(body.get("images"), list):
        raise BadRequest(f"the body must be an {model}", "BadRequestImageBatch")
    batch_tags = parse_guid_list(body.get("tagIds") or [], "BadRequestImageTags")
    items = body["images"]
    check_batch(len(items), len(batch_tags), max_images, max_tags)
    metadata = check_metadata(body.get("metadata"))
    entries = []
    for item in items:
        if not isinstance(item, dict):
            raise BadRequest("an image entry must be an object", "BadRequestImageBatch")
        own = parse_guid_list(item.get("tagIds") or [], "BadRequestImageTags")
        entries.append((item, list(dict.fromkeys(batch_tags + own))))
    return entries, metadata
