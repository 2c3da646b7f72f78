"""ImageFileCreateBatch bodies parsed without copies of their images.

`json.loads` of a batch would hold the body, its text, a string per image and then the decoded
bytes at once (about 3 times the body), and `contents` written as an array of numbers (which
some clients send instead of base64) becomes a list of one pointer per byte: 8 bytes of memory
for every byte of image. So the images are taken out of the raw body first: every `contents`
value that is a long base64 string or array of numbers is decoded straight from the body's
bytes and replaced by a placeholder that names it, and only what is left (names, tags,
metadata) goes through `json.loads`. A batch then costs its body (read into one buffer:
`read_exactly`) and its images' bytes, and the body is dropped before anything is stored.
"""
from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Callable

from loupe_common.errors import BadRequest

#: Shorter `contents` values are left to `json.loads` (so a metadata value, at most 256
#: characters, is never mistaken for an image, even under a key named `contents`).
MIN_TAKEN = 1024
#: Bytes of an array of numbers parsed at a time.
CHUNK = 64 * 1024

_CONTENTS = re.compile(
    rb'"contents"\s*:\s*("[A-Za-z0-9+/=]{%d,}"|\[[0-9,\s]{%d,}\])' % (MIN_TAKEN, MIN_TAKEN),
    re.IGNORECASE,
)


def _bad(message: str) -> BadRequest:
    return BadRequest(message, "BadRequestImageStream")


def numbers_to_bytes(text: memoryview | bytes) -> bytes:
    """The bytes of a JSON array's numbers (`text` without its brackets), parsed `CHUNK` at a
    time, so that no list of the whole array is ever made.

    Raises:
        BadRequest (BadRequestImageStream): a value that is no integer from 0 to 255.
    """
    view = memoryview(text)
    out = bytearray()
    start, end = 0, len(view)
    while start < end:
        stop = min(start + CHUNK, end)
        piece = bytes(view[start:stop])
        if stop < end:  # cut after the last comma: a number split across pieces stays whole
            comma = piece.rfind(b",")
            if comma >= 0:
                piece, stop = piece[:comma], start + comma + 1
        try:
            out += bytes(map(int, piece.split(b",")))
        except ValueError:
            raise _bad("contents must be bytes 0-255") from None
        start = stop
    return bytes(out)


def read_exactly(read: Callable[[int], bytes], length: int) -> bytearray:
    """The `length` bytes of a body, read `CHUNK` at a time into one buffer allocated once
    (reading a body whole holds it twice for a moment: its pieces and their join).

    Raises:
        BadRequest: the body ends before `length` bytes.
    """
    body = bytearray(length)
    got = 0
    while got < length:
        chunk = read(min(CHUNK, length - got))
        if not chunk:
            raise BadRequest(f"the request body ends after {got} of its {length} bytes", "BadRequest")
        body[got:got + len(chunk)] = chunk
        got += len(chunk)
    return body


def take_images(body: bytes | bytearray) -> tuple[bytes, list[bytes], str]:
    """Takes the images out of a raw ImageFileCreateBatch body.

    Returns:
        (the body with each long `contents` value replaced by `{"<marker>": <index>}`, the
        images' bytes by index, the marker: random per call, so no client can forge one).
    Raises:
        BadRequest (BadRequestImageStream): a `contents` that is not valid base64 or bytes.
    """
    view = memoryview(body)
    marker = "loupe-image-" + secrets.token_hex(8)
    images: list[bytes] = []

    def replace(match: re.Match) -> bytes:
        start, end = match.span(1)
        inner = view[start + 1:end - 1]
        if body[start] == ord('"'):
            try:
                data = base64.b64decode(inner, validate=True)
            except (binascii.Error, ValueError):
                raise _bad("contents must be base64") from None
        else:
            data = numbers_to_bytes(inner)
        images.append(data)
        return b'"contents":{"%s":%d}' % (marker.encode(), len(images) - 1)

    skeleton = _CONTENTS.sub(replace, body)
    return skeleton, images, marker


def contents(value: object, images: list[bytes], marker: str) -> bytes:
    """The bytes of an entry's `contents`: a taken image, a (short) base64 string or an array
    of numbers.

    Raises:
        BadRequest (BadRequestImageStream): no contents, or contents that are not bytes.
    """
    if isinstance(value, dict) and len(value) == 1 and marker in value:
        index = value[marker]
        if isinstance(index, int) and 0 <= index < len(images):
            return images[index]
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _bad("contents must be base64") from None
    if isinstance(value, list):
        try:
            return bytes(value)
        except (TypeError, ValueError):
            raise _bad("contents must be bytes 0-255") from None
    raise _bad("an image entry has no contents")


def parse(body: bytes | bytearray, loads: Callable[[bytes], object]) -> tuple[object, list[bytes], str]:
    """`loads` (the app's JSON parser) of `body` with its images taken out first (`take_images`).

    Returns:
        (the parsed JSON, or None when it is no JSON; the images; the marker).
    """
    skeleton, images, marker = take_images(body)
    try:
        return loads(skeleton), images, marker
    except ValueError:
        return None, images, marker
