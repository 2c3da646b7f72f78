"""Gateway validation: real images made with PIL, batch limits, ids and query values."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from loupe_common.errors import BadRequest
from loupe_gateway import validation

pytestmark = pytest.mark.unit

MAX_BYTES = 6 * 1024 * 1024
MAX_SIDE = 10240


def make_image(fmt: str, size=(32, 24), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (200, 30, 60) if mode == "RGB" else 1).save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize(
    "fmt,mime",
    [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("BMP", "image/bmp"), ("GIF", "image/gif"),
     ("WEBP", "image/webp")],
)
def test_each_supported_format_is_accepted(fmt, mime):
    data = make_image(fmt)
    info = validation.check_image(data, MAX_BYTES, MAX_SIDE)
    assert (info.width, info.height, info.content_type, info.size_bytes) == (32, 24, mime, len(data))


def _code(data: bytes, max_bytes=MAX_BYTES, max_side=MAX_SIDE) -> str:
    with pytest.raises(BadRequest) as err:
        validation.check_image(data, max_bytes, max_side)
    return err.value.code


def test_too_many_bytes_is_refused():
    data = make_image("PNG")
    assert _code(data, max_bytes=len(data) - 1) == "BadRequestImageSizeBytes"


def test_empty_image_is_refused():
    assert _code(b"") == "BadRequestImageSizeBytes"


def test_not_an_image_is_refused():
    assert _code(b"\x00\xffhello, not an image\x80") == "BadRequestImageFormat"
    assert _code(b"%PDF-1.4\n") == "BadRequestImageFormat"


def test_truncated_png_is_refused():
    data = make_image("PNG", (64, 64))
    assert _code(data[: len(data) // 2]) == "BadRequestImageFormat"


def test_unsupported_format_is_refused():
    assert _code(make_image("TIFF")) == "BadRequestImageFormat"


def test_side_over_limit_is_refused():
    data = make_image("PNG", (101, 10), mode="1")
    assert _code(data, max_side=100) == "BadRequestImageDimensions"
    assert validation.check_image(data, MAX_BYTES, 101).width == 101


def test_huge_pixel_count_is_refused_without_a_warning():
    # 20000 x 20000 exceeds both the side limit and PIL's decompression-bomb threshold.
    data = make_image("PNG", (20000, 20000), mode="1")
    assert _code(data) == "BadRequestImageDimensions"


def test_upload_status_names_match_the_sdk_enum():
    from azure.cognitiveservices.vision.customvision.training.models import ImageCreateStatus

    known = {s.value for s in ImageCreateStatus}
    for code in ("BadRequestImageFormat", "BadRequestImageSizeBytes",
                 "BadRequestImageDimensions", "Whatever"):
        assert validation.upload_status(BadRequest("x", code)) in known
    assert validation.upload_status(BadRequest("x", "BadRequestImageSizeBytes")) == "ErrorImageSize"


def test_codes_used_are_sdk_error_codes():
    from azure.cognitiveservices.vision.customvision.training.models import CustomVisionErrorCodes

    known = {c.value for c in CustomVisionErrorCodes}
    for code in ("BadRequestImageFormat", "BadRequestImageSizeBytes", "BadRequestImageDimensions",
                 "BadRequestExceededBatchSize", "BadRequestInvalidIds", "BadRequestImageBatch",
                 "BadRequestImageStream", "BadRequestProjectUnknownDomain", "NotFoundDomain",
                 "BadRequestRequiredParamIsNull", "ErrorProjectTrainingRequestFailed",
                 "BadRequestIterationIsNotTrained", "NotFoundIterationPerformance",
                 "BadRequestProjectUnsupportedExportPlatform", "NotFoundImage"):
        assert code in known


def test_batch_limits():
    validation.check_batch(64, 20, 64, 20)
    for images, tags in ((65, 0), (1, 21)):
        with pytest.raises(BadRequest) as err:
            validation.check_batch(images, tags, 64, 20)
        assert err.value.code == "BadRequestExceededBatchSize"
    with pytest.raises(BadRequest) as err:
        validation.check_batch(0, 0, 64, 20)
    assert err.value.code == "BadRequestImageBatch"


def test_guid_parsing():
    gid = "EE85A74C-405E-4ADC-BB47-FFA8CA0C9F31"
    assert validation.parse_guid(gid) == gid.lower()
    assert validation.parse_guid_list(f"{gid},{gid.lower()}, ,") == [gid.lower()]
    assert validation.parse_guid_list(None) == []
    with pytest.raises(BadRequest) as err:
        validation.parse_guid_list("abc")
    assert err.value.code == "BadRequestInvalidIds"
    with pytest.raises(BadRequest) as err:
        validation.parse_guid_list(["nope"], "BadRequestImageTags")
    assert err.value.code == "BadRequestImageTags"


def test_query_values():
    assert validation.parse_bool("True") is True
    assert validation.parse_bool("false") is False
    assert validation.parse_bool(None, default=True) is True
    assert validation.parse_int("10", "take", 50, 0, 256) == 10
    assert validation.parse_int(None, "take", 50, 0, 256) == 50
    assert validation.parse_float("0.25", "threshold", 0.5) == 0.25
    for bad in (lambda: validation.parse_bool("maybe"),
                lambda: validation.parse_int("300", "take", 50, 0, 256),
                lambda: validation.parse_int("x", "take", 50),
                lambda: validation.parse_float("x", "threshold", 0.5)):
        with pytest.raises(BadRequest):
            bad()


@pytest.mark.parametrize("size, ok", [((250, 10), True), ((251, 10), False), ((10, 250), True), ((10, 251), False)])
def test_aspect_ratio_is_limited_to_25_to_1(size, ok):
    out = io.BytesIO()
    Image.new("L", size).save(out, "PNG")
    if ok:
        assert validation.check_image(out.getvalue(), 6 * 2**20, 10240).width == size[0]
    else:
        with pytest.raises(BadRequest) as info:
            validation.check_image(out.getvalue(), 6 * 2**20, 10240)
        assert info.value.code == "BadRequestImageDimensions"


def test_metadata_limits():
    assert validation.check_metadata(None) == {}
    ok = {f"k{i}": "v" * 256 for i in range(10)}
    assert validation.check_metadata(ok) == ok
    for bad, code in (({f"k{i}": "v" for i in range(11)}, "BadRequestImageMetadataKey"),
                      ({"k" * 129: "v"}, "BadRequestImageMetadataKey"),
                      ({"k": "v" * 257}, "BadRequestImageMetadataValue"),
                      ({"k": 3}, "BadRequestImageMetadataValue"),
                      (["k"], "BadRequestImageMetadataKey")):
        with pytest.raises(BadRequest) as info:
            validation.check_metadata(bad)
        assert info.value.code == code
