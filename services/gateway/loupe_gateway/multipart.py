"""Reading image bytes from request bodies.

The official SDK sends images as a `multipart/form-data` part named `imageData` with no
filename; Werkzeug then decodes such a part into `request.form` as text, mangling binary bytes.
So image parts are read here, as bytes, from the raw body with `streaming-form-data`. A body
that is not multipart (`application/octet-stream`, `image/*`, ...) is one image.

Parts may have any name (Custom Vision accepts several files in one request); they are kept in
body order. A part over the size limit is not kept in memory: it is returned with
`too_large=True` and its size so far.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from streaming_form_data import StreamingFormDataParser
from streaming_form_data.parser import ParseFailedException
from streaming_form_data.targets import BaseTarget

from loupe_common.errors import BadRequest

CHUNK = 64 * 1024


@dataclass
class Part:
    name: str
    filename: str | None = None
    content_type: str | None = None
    data: bytearray = field(default_factory=bytearray)
    size: int = 0
    too_large: bool = False


class _PartsTarget(BaseTarget):
    """Collects every part of one field name into the shared, body-ordered `parts` list."""

    def __init__(self, name: str, parts: list[Part], limit: int):
        super().__init__()
        self._name, self._parts, self._limit = name, parts, limit
        self._filename: str | None = None
        self._content_type: str | None = None
        self._current: Part | None = None

    def set_multipart_filename(self, filename: str):
        self._filename = filename

    def set_multipart_content_type(self, content_type: str):
        self._content_type = content_type

    def on_start(self):
        self._current = Part(self._name, self._filename, self._content_type)
        self._filename = self._content_type = None
        self._parts.append(self._current)

    def on_data_received(self, chunk: bytes):
        part = self._current
        if part is None:  # pragma: no cover - the parser always starts a part first
            return
        part.size += len(chunk)
        if part.too_large:
            return
        if part.size > self._limit:
            part.too_large = True
            part.data = bytearray()
            return
        part.data += chunk

    def on_finish(self):
        self._current = None


_BOUNDARY = re.compile(rb'boundary="?([^";,]+)"?', re.IGNORECASE)
_NAME = re.compile(rb'(?i)content-disposition:[^\r\n]*?[;\s]name="([^"]*)"')


def _part_names(body: bytes, boundary: bytes) -> list[str]:
    """The field names of the parts, from each part's header block (right after a delimiter)."""
    names: dict[str, None] = {}
    delimiter = b"--" + boundary
    for section in body.split(delimiter)[1:]:
        head, sep, _ = section.partition(b"\r\n\r\n")
        if not sep:
            continue
        match = _NAME.search(head)
        if match:
            names[match.group(1).decode("utf-8", "replace")] = None
    return list(names)


def is_multipart(content_type: str | None) -> bool:
    return (content_type or "").lower().startswith("multipart/form-data")


def read_body(chunks: Iterable[bytes], limit: int) -> tuple[bytes, bool]:
    """Reads a body up to `limit` bytes; returns (bytes, too_large). Stops reading past limit."""
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if len(out) > limit:
            return bytes(), True
    return bytes(out), False


def parse_multipart(body: bytes, content_type: str, part_limit: int) -> list[Part]:
    """The file/field parts of a multipart body, as bytes, in body order.

    Raises:
        BadRequest (BadRequestImageStream): not a well-formed multipart body.
    """
    match = _BOUNDARY.search(content_type.encode("latin-1", "replace"))
    if not match:
        raise BadRequest("multipart body without a boundary", "BadRequestImageStream")
    parts: list[Part] = []
    try:
        parser = StreamingFormDataParser(headers={"Content-Type": content_type})
        for name in _part_names(body, match.group(1)):
            parser.register(name, _PartsTarget(name, parts, part_limit))
        view = memoryview(body)
        for start in range(0, len(body), CHUNK):
            parser.data_received(bytes(view[start:start + CHUNK]))
    except ParseFailedException as exc:
        raise BadRequest(f"malformed multipart body: {exc}", "BadRequestImageStream") from None
    return parts


def stream_chunks(read: Callable[[int], bytes]) -> Iterable[bytes]:
    """Chunks from a file-like `read` until it is exhausted."""
    while True:
        chunk = read(CHUNK)
        if not chunk:
            return
        yield chunk
