"""ImageFileCreateBatch bodies parsed with the images taken out of the raw body first."""
from __future__ import annotations

import base64
import io
import json

import pytest

from loupe_common.errors import BadRequest
from loupe_gateway import jsonbatch

pytestmark = pytest.mark.unit

IMAGE = bytes(range(256)) * 20  # 5120 bytes: long enough to be taken out of the body


def _body(entries, **extra) -> bytes:
    return json.dumps({"images": entries, **extra}).encode()


def _images(parsed, images, marker):
    return [jsonbatch.contents(e["contents"], images, marker) for e in parsed["images"]]


@pytest.mark.parametrize("form", ["base64", "numbers", "numbers-spaced"])
def test_long_contents_are_taken_and_decoded(form):
    if form == "base64":
        value = base64.b64encode(IMAGE).decode()
    else:
        value = list(IMAGE)
    body = _body([{"name": "a.png", "contents": value, "tagIds": ["t"]}, {"name": "b.png", "contents": value}],
                 tagIds=["u"])
    if form == "numbers-spaced":
        body = json.dumps(json.loads(body), indent=2).encode()
    parsed, images, marker = jsonbatch.parse(body, json.loads)
    assert len(images) == 2
    assert parsed["images"][0]["name"] == "a.png" and parsed["images"][0]["tagIds"] == ["t"]
    assert parsed["tagIds"] == ["u"]
    assert _images(parsed, images, marker) == [IMAGE, IMAGE]


def test_short_contents_are_left_to_json():
    body = _body([{"contents": base64.b64encode(b"tiny").decode()}, {"contents": [1, 2, 3]}])
    parsed, images, marker = jsonbatch.parse(body, json.loads)
    assert images == []
    assert _images(parsed, images, marker) == [b"tiny", b"\x01\x02\x03"]


def test_numbers_split_across_pieces_stay_whole():
    data = bytes([200, 7, 255, 0, 13]) * 40000  # several CHUNKs of text
    text = ",".join(map(str, data)).encode()
    assert jsonbatch.numbers_to_bytes(text) == data
    assert jsonbatch.numbers_to_bytes(b" 1 ,\n2,\t3 ") == b"\x01\x02\x03"


@pytest.mark.parametrize("value", [[256] * 2000, [0] * 1000 + [1000], "=" * 2000, "A" * 2001])
def test_bad_long_contents_are_bad_requests(value):
    with pytest.raises(BadRequest) as err:
        jsonbatch.parse(_body([{"contents": value}]), json.loads)
    assert err.value.code == "BadRequestImageStream"


@pytest.mark.parametrize("value", [None, 3, [1, -1], [1.5], "not base64!", {"x": 1}])
def test_bad_short_contents_are_bad_requests(value):
    parsed, images, marker = jsonbatch.parse(_body([{"contents": value}]), json.loads)
    with pytest.raises(BadRequest) as err:
        jsonbatch.contents(parsed["images"][0]["contents"], images, marker)
    assert err.value.code == "BadRequestImageStream"


def test_a_forged_placeholder_is_not_an_image():
    """A client that writes a placeholder of its own gets no image of the batch: the marker is
    random per request."""
    body = _body([{"contents": base64.b64encode(IMAGE).decode()},
                  {"contents": {"loupe-image-0000000000000000": 0}}])
    parsed, images, marker = jsonbatch.parse(body, json.loads)
    assert jsonbatch.contents(parsed["images"][0]["contents"], images, marker) == IMAGE
    with pytest.raises(BadRequest):
        jsonbatch.contents(parsed["images"][1]["contents"], images, marker)


def test_contents_text_inside_a_string_is_not_taken():
    """`"contents":` written inside a JSON string is escaped there, so never matched."""
    fake = '"contents":"' + "A" * 2000 + '"'
    body = _body([{"name": fake, "contents": base64.b64encode(IMAGE).decode()}])
    parsed, images, marker = jsonbatch.parse(body, json.loads)
    assert parsed["images"][0]["name"] == fake and len(images) == 1


def test_not_json_parses_to_none():
    assert jsonbatch.parse(b"{not json", json.loads)[0] is None


def test_read_exactly_fills_one_buffer_from_short_reads():
    source = io.BytesIO(IMAGE * 30)
    body = jsonbatch.read_exactly(lambda n: source.read(min(n, 1000)), len(IMAGE) * 30)
    assert body == IMAGE * 30 and type(body) is bytearray
    with pytest.raises(BadRequest) as err:
        jsonbatch.read_exactly(io.BytesIO(b"short").read, 10)
    assert "after 5 of its 10 bytes" in err.value.message
