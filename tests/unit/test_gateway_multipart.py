"""Reading image bytes from SDK-shaped multipart bodies (no filename, binary data)."""
from __future__ import annotations

import io

import pytest
import requests
from msrest.universal_http import ClientRequest

from loupe_common.errors import BadRequest
from loupe_gateway import multipart

pytestmark = pytest.mark.unit

#: Binary bytes that a text decoding would mangle: NUL, CR/LF, invalid UTF-8, a fake boundary.
BINARY = b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\xc3\x28--not-a-boundary\r\n\x80\x81" * 50


def sdk_body(content: dict) -> tuple[bytes, str]:
    """The body and Content-Type the official SDK's msrest pipeline sends for form content."""
    req = ClientRequest("POST", "http://loupe.invalid/x", headers={"Content-Type": "multipart/form-data"})
    req.add_formdata(content)
    prepared = requests.Request("POST", req.url, files=req.files).prepare()
    return prepared.body, prepared.headers["Content-Type"]


def test_sdk_image_data_part_without_filename_is_read_as_exact_bytes():
    body, content_type = sdk_body({"imageData": io.BytesIO(BINARY)})
    assert b'name="imageData"' in body and b"filename" not in body
    parts = multipart.parse_multipart(body, content_type, part_limit=1 << 20)
    assert len(parts) == 1
    assert parts[0].name == "imageData"
    assert parts[0].filename is None
    assert bytes(parts[0].data) == BINARY
    assert parts[0].size == len(BINARY)


def test_sdk_raw_bytes_part_is_read_too():
    body, content_type = sdk_body({"imageData": BINARY})
    parts = multipart.parse_multipart(body, content_type, part_limit=1 << 20)
    assert [bytes(p.data) for p in parts] == [BINARY]


def test_parts_of_any_name_keep_body_order_and_filenames():
    files = [
        ("b", ("two.png", b"\x00two", "image/png")),
        ("a", ("one.jpg", b"\xffone", "image/jpeg")),
        ("b", (None, b"three\x00")),
    ]
    prepared = requests.Request("POST", "http://loupe.invalid/x", files=files).prepare()
    parts = multipart.parse_multipart(
        prepared.body, prepared.headers["Content-Type"], part_limit=100
    )
    assert [(p.name, p.filename, bytes(p.data)) for p in parts] == [
        ("b", "two.png", b"\x00two"),
        ("a", "one.jpg", b"\xffone"),
        ("b", None, b"three\x00"),
    ]


def test_part_over_the_limit_is_flagged_and_not_kept():
    body, content_type = sdk_body({"imageData": io.BytesIO(b"x" * 1000)})
    (part,) = multipart.parse_multipart(body, content_type, part_limit=999)
    assert part.too_large and part.size == 1000 and not part.data


def test_missing_boundary_is_a_bad_request():
    with pytest.raises(BadRequest) as err:
        multipart.parse_multipart(b"whatever", "multipart/form-data", part_limit=10)
    assert err.value.code == "BadRequestImageStream"


def test_read_body_stops_past_the_limit():
    chunks = iter([b"a" * 10, b"b" * 10, b"c" * 10])
    assert multipart.read_body(chunks, 15) == (b"", True)
    assert multipart.read_body(iter([b"ab", b"cd"]), 4) == (b"abcd", False)
    stream = io.BytesIO(b"z" * (multipart.CHUNK + 5))
    assert len(b"".join(multipart.stream_chunks(stream.read))) == multipart.CHUNK + 5


def test_is_multipart():
    assert multipart.is_multipart("multipart/form-data; boundary=x")
    assert not multipart.is_multipart("application/octet-stream")
    assert not multipart.is_multipart(None)
