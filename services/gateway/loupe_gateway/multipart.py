"""Reading image bytes from request bodies, streamed: each byte is read once, and only the
image bytes of the parts are kept.

The official SDK sends images as a `multipart/form-data` part named `imageData` with no
filename; Werkzeug then decodes such a part into `request.form` as text, mangling binary bytes.
So image parts are read here, as bytes, from the raw body stream. A body that is not multipart
(`application/octet-stream`, `image/*`, ...) is one image.

Parts may have any name (Custom Vision accepts several files in one request); they are kept in
body order. A part over the size limit is not kept in memory: it is returned with
`too_large=True` and its size. The parser holds no more of the body than one chunk and a
delimiter's length besides the parts' bytes (no copy of the whole body, no split of it), so a
batch costs about its images in memory (bench/upload_memory.py).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from loupe_common.errors import BadRequest

CHUNK = 64 * 1024
#: The most bytes of headers one part may have.
MAX_PART_HEADERS = 16 * 1024


@dataclass
class Part:
    name: str
    filename: str | None = None
    content_type: str | None = None
    data: bytes = b""
    size: int = 0
    too_large: bool = False


_BOUNDARY = re.compile(rb'boundary=(?:"([^"]+)"|([^";,\s]+))', re.IGNORECASE)
_PARAM = re.compile(r'(?i)[;\s]\s*(name|filename)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))')


def _malformed(why: str) -> BadRequest:
    return BadRequest(f"malformed multipart body: {why}", "BadRequestImageStream")


def _part_headers(block: bytes) -> Part:
    """A Part (no data yet) from the header block of one part."""
    part = Part("")
    for line in block.decode("utf-8", "replace").split("\r\n"):
        field, sep, value = line.partition(":")
        if not sep:
            continue
        field = field.strip().lower()
        if field == "content-disposition":
            for match in _PARAM.finditer(";" + value):
                text = match.group(2) if match.group(2) is not None else match.group(3)
                text = re.sub(r"\\(.)", r"\1", text)
                if match.group(1).lower() == "name":
                    part.name = text
                else:
                    part.filename = text
        elif field == "content-type":
            part.content_type = value.strip()
    return part


class _Parser:
    """A multipart/form-data parser fed chunk by chunk (RFC 7578, RFC 2046 section 5.1.1)."""

    def __init__(self, boundary: bytes, part_limit: int):
        self._delimiter = b"\r\n--" + boundary
        self._limit = part_limit
        self._buf = bytearray(b"\r\n")  # the first delimiter has no CRLF of its own before it
        self._state = "preamble"
        self._part: Part | None = None
        self._data = bytearray()
        self.parts: list[Part] = []

    def feed(self, chunk) -> None:
        self._buf += chunk
        while self._step():
            pass

    def _step(self) -> bool:
        """Consumes what it can of the buffer; True when it should be called again."""
        buf = self._buf
        if self._state == "preamble":
            at = buf.find(self._delimiter)
            if at < 0:
                del buf[:max(0, len(buf) - len(self._delimiter))]
                return False
            del buf[:at + len(self._delimiter)]
            self._state = "after-delimiter"
            return True
        if self._state == "after-delimiter":
            if len(buf) < 2:
                return False
            if buf[:2] == b"--":
                self._state = "end"
                buf.clear()
                return False
            eol = buf.find(b"\r\n")  # transport padding (spaces) may precede the CRLF
            if eol < 0:
                if len(buf) > 1024:
                    raise _malformed("no line end after a boundary")
                return False
            del buf[:eol + 2]
            self._state = "headers"
            return True
        if self._state == "headers":
            end = buf.find(b"\r\n\r\n")
            if end < 0 and not buf.startswith(b"\r\n"):
                if len(buf) > MAX_PART_HEADERS:
                    raise _malformed("part headers too long")
                return False
            if buf.startswith(b"\r\n"):  # a part with no headers at all
                block, skip = b"", 2
            else:
                block, skip = bytes(buf[:end]), end + 4
            del buf[:skip]
            self._part = _part_headers(block)
            self.parts.append(self._part)
            self._data = bytearray()
            self._state = "data"
            return True
        if self._state == "data":
            at = buf.find(self._delimiter)
            if at < 0:
                # Keep what could be the start of a delimiter split across chunks.
                keep = len(self._delimiter) - 1
                if len(buf) > keep:
                    self._take(memoryview(buf)[:len(buf) - keep])
                    del buf[:len(buf) - keep]
                return False
            self._take(memoryview(buf)[:at])
            self._finish_part()
            del buf[:at + len(self._delimiter)]
            self._state = "after-delimiter"
            return True
        # "end": the epilogue is ignored.
        buf.clear()
        return False

    def _take(self, view: memoryview) -> None:
        part = self._part
        part.size += len(view)
        if part.too_large:
            return
        if part.size > self._limit:
            part.too_large = True
            self._data = bytearray()
            return
        self._data += view

    def _finish_part(self) -> None:
        # One copy of one image, the bytearray dropped at once: parts hold immutable bytes.
        self._part.data = bytes(self._data)
        self._data = bytearray()
        self._part = None

    def close(self) -> list[Part]:
        if self._state != "end":
            raise _malformed("the body ends before its closing boundary")
        return self.parts


def is_multipart(content_type: str | None) -> bool:
    return (content_type or "").lower().startswith("multipart/form-data")


def read_body(chunks: Iterable[bytes], limit: int) -> tuple[bytes, bool]:
    """Reads a body up to `limit` bytes; returns (bytes, too_large). Stops reading past limit."""
    kept: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            return b"", True
        kept.append(chunk)
    return b"".join(kept), False


def parse_multipart(body: bytes | Iterable[bytes], content_type: str, part_limit: int,
                    body_limit: int | None = None) -> list[Part]:
    """The file/field parts of a multipart body, as bytes, in body order.

    Args:
        body: the body, or its chunks (read once, as they come).
        part_limit: parts larger than this are flagged `too_large` and not kept.
        body_limit: the most bytes read in all; None: no limit.
    Returns:
        The parts; None only when the body exceeded `body_limit` (it is not read further).
    Raises:
        BadRequest (BadRequestImageStream): not a well-formed multipart body.
    """
    match = _BOUNDARY.search(content_type.encode("latin-1", "replace"))
    if not match:
        raise BadRequest("multipart body without a boundary", "BadRequestImageStream")
    parser = _Parser(match.group(1) or match.group(2), part_limit)
    if isinstance(body, (bytes, bytearray, memoryview)):
        view = memoryview(body)
        body = (view[start:start + CHUNK] for start in range(0, len(view), CHUNK))
    size = 0
    for chunk in body:
        size += len(chunk)
        if body_limit is not None and size > body_limit:
            return None
        parser.feed(chunk)
    return parser.close()


def stream_chunks(read: Callable[[int], bytes]) -> Iterable[bytes]:
    """Chunks from a file-like `read` until it is exhausted."""
    while True:
        chunk = read(CHUNK)
        if not chunk:
            return
        yield chunk
