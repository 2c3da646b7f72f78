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


def _body(parts: list[tuple[str, bytes]], boundary: str = "b0undary") -> tuple[bytes, str]:
    out = b""
    for name, data in parts:
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.png"\r\n'
                f"Content-Type: image/png\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_streamed_chunks_split_anywhere_give_the_same_parts():
    """The body read chunk by chunk (as it comes off the socket), cut at every offset near the
    delimiters and headers: the parts are the same as from the whole body."""
    body, content_type = _body([("a", BINARY), ("b", b""), ("c", BINARY[::-1])])
    whole = multipart.parse_multipart(body, content_type, part_limit=1 << 20)
    assert [(p.name, p.filename, p.content_type, bytes(p.data)) for p in whole] == [
        ("a", "a.png", "image/png", BINARY), ("b", "b.png", "image/png", b""), ("c", "c.png", "image/png", BINARY[::-1])]
    for size in (1, 2, 3, 7, 13, 64, 1000):
        chunks = [body[i:i + size] for i in range(0, len(body), size)]
        parts = multipart.parse_multipart(iter(chunks), content_type, part_limit=1 << 20)
        assert [(p.name, bytes(p.data)) for p in parts] == [(p.name, bytes(p.data)) for p in whole], size
    for cut in range(len(body)):
        parts = multipart.parse_multipart(iter([body[:cut], body[cut:]]), content_type, part_limit=1 << 20)
        assert [bytes(p.data) for p in parts] == [BINARY, b"", BINARY[::-1]], cut


def test_parts_hold_immutable_bytes():
    body, content_type = _body([("a", BINARY)])
    (part,) = multipart.parse_multipart(body, content_type, part_limit=1 << 20)
    assert type(part.data) is bytes


def test_body_limit_stops_reading():
    body, content_type = _body([("a", BINARY), ("b", BINARY)])
    read = []

    def chunks():
        for i in range(0, len(body), 100):
            read.append(i)
            yield body[i:i + 100]

    assert multipart.parse_multipart(chunks(), content_type, 1 << 20, body_limit=len(body) // 2) is None
    assert len(read) <= len(body) // 200 + 1  # not one chunk past the limit was asked for
    assert len(multipart.parse_multipart(iter([body]), content_type, 1 << 20, body_limit=len(body))) == 2


def test_preamble_epilogue_quoted_boundary_and_transport_padding():
    body, _ = _body([("imageData", BINARY)], boundary="a b:c")
    body = b"a preamble\r\n" + body.replace(b"--a b:c\r\n", b"--a b:c  \r\n", 1) + b"an epilogue"
    (part,) = multipart.parse_multipart(body, 'multipart/form-data; boundary="a b:c"', 1 << 20)
    assert part.name == "imageData" and bytes(part.data) == BINARY


def test_quoted_names_with_semicolons_and_escapes():
    body = (b'--x\r\nContent-Disposition: form-data; name="a;b"; filename="c \\"d\\".png"\r\n\r\n'
            b"data\r\n--x--")
    (part,) = multipart.parse_multipart(body, "multipart/form-data; boundary=x", 1 << 20)
    assert (part.name, part.filename, part.data) == ("a;b", 'c "d".png', b"data")


@pytest.mark.parametrize("body", [
    b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno closing delimiter",
    b"no delimiter at all",
    b"--x\r\n" + b"X-Long: " + b"h" * (multipart.MAX_PART_HEADERS + 10),
    b"",
])
def test_truncated_or_endless_bodies_are_bad_requests(body):
    with pytest.raises(BadRequest) as err:
        multipart.parse_multipart(body, "multipart/form-data; boundary=x", 1 << 20)
    assert err.value.code == "BadRequestImageStream"


def test_a_too_large_part_keeps_its_full_size():
    body, content_type = _body([("big", BINARY), ("small", b"ok")])
    big, small = multipart.parse_multipart(iter([body[:50], body[50:]]), content_type, part_limit=100)
    assert big.too_large and big.size == len(BINARY) and big.data == b""
    assert not small.too_large and small.data == b"ok"
