"""Non-interlaced PNGs read in horizontal strips, so a huge image never has a full-size raster.

Pillow decodes a PNG only whole: a 10240 x 10240 RGB PNG of a few hundred KB becomes a 400 MB
raster. Here the compressed stream is inflated a strip at a time and each strip is handed to
Pillow as a small PNG of its own, so what comes out (modes, palettes, transparency, 16-bit
samples) is exactly what Pillow would make of those rows:

1. unfiltering: the strip's rows, still filtered, behind one unfiltered row (the previous
   strip's last, filter type None), in a PNG whose colour type has the same bytes per pixel
   (filters work on bytes, with that pixel stride), decoded by Pillow; its raw bytes are the
   strip's samples and give the next strip its first row;
2. interpretation: those samples unpacked as Pillow unpacks that PNG type, with the palette
   and transparency Pillow read from the file's own header chunks.

16-bit RGB and RGBA (6 and 8 bytes per pixel, which no 8-bit colour type shares) and
interlaced PNGs cannot be read this way: `strippable` says so and callers decode them whole.
"""
from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from PIL import Image, PngImagePlugin

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
#: Bytes per pixel -> (colour type, bit depth) of an 8/16-bit type with that pixel stride, and
#: how Pillow's image of it gives back the raw bytes.
_SAME_STRIDE = {1: (0, 8, "L"), 2: (0, 16, "I;16B"), 3: (2, 8, "RGB"), 4: (6, 8, "RGBA")}
#: Chunks the interpretation needs besides IHDR (palette, transparency).
_KEEP = (b"PLTE", b"tRNS")


class StripError(ValueError):
    """The PNG stream is corrupt or truncated."""


@dataclass(frozen=True)
class Header:
    width: int
    height: int
    bit_depth: int
    colour_type: int
    interlaced: bool

    @property
    def row_bytes(self) -> int:
        return (self.width * _CHANNELS[self.colour_type] * self.bit_depth + 7) // 8

    @property
    def pixel_stride(self) -> int:
        """Bytes per complete pixel, at least 1: the distance PNG's filters look back."""
        return max(1, _CHANNELS[self.colour_type] * self.bit_depth // 8)


def _chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    pos = len(SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if len(body) < length:
            raise StripError(f"truncated {kind.decode('latin-1')} chunk")
        yield kind, body
        if kind == b"IEND":
            return
        pos += 12 + length


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(header: Header, rows: int, extra: bytes, raw: bytes, *, colour_type: int | None = None,
         bit_depth: int | None = None, width: int | None = None) -> Image.Image:
    ihdr = struct.pack(">IIBBBBB", width or header.width, rows, bit_depth or header.bit_depth,
                       header.colour_type if colour_type is None else colour_type, 0, 0, 0)
    stream = SIGNATURE + _chunk(b"IHDR", ihdr) + extra + _chunk(b"IDAT", zlib.compress(raw, 0)) + _chunk(b"IEND", b"")
    img = Image.open(io.BytesIO(stream), formats=["PNG"])
    img.load()
    return img


class PngStrips:
    """The rows of one PNG, a strip at a time.

    Args:
        data: the PNG file's bytes.
    """

    def __init__(self, data: bytes):
        if not data.startswith(SIGNATURE):
            raise StripError("not a PNG")
        self.header: Header | None = None
        self.exif: bytes | None = None
        self._extra = b""
        self._idat: list[bytes] = []
        for kind, body in _chunks(data):
            if kind == b"IHDR":
                if len(body) != 13:
                    raise StripError("bad IHDR")
                w, h, depth, ctype, _comp, _filt, interlace = struct.unpack(">IIBBBBB", body)
                if ctype not in _CHANNELS or w < 1 or h < 1:
                    raise StripError("bad IHDR")
                self.header = Header(w, h, depth, ctype, bool(interlace))
            elif kind in _KEEP:
                self._extra += _chunk(kind, body)
            elif kind == b"IDAT":
                self._idat.append(body)
            elif kind == b"eXIf":
                self.exif = body
        if self.header is None:
            raise StripError("no IHDR")
        h = self.header
        if (h.bit_depth, h.colour_type) not in PngImagePlugin._MODES:
            raise StripError(f"unsupported bit depth {h.bit_depth} for colour type {h.colour_type}")
        # Pillow's (mode, unpacker) for this PNG type, and what it reads from the header chunks
        # (palette, transparency): a one-row PNG of the same type is opened for them once.
        self._mode, self._rawmode = PngImagePlugin._MODES[(h.bit_depth, h.colour_type)]
        self._template = _png(h, 1, self._extra, b"\0" * (1 + h.row_bytes))

    @property
    def strippable(self) -> bool:
        h = self.header
        return not h.interlaced and (h.bit_depth < 8 or h.pixel_stride in _SAME_STRIDE)

    def _filtered_rows(self, rows_per_strip: int) -> Iterator[bytes]:
        """Yields the inflated, still filtered bytes of each strip (1 + row_bytes per row)."""
        h = self.header
        line = 1 + h.row_bytes
        want = rows_per_strip * line
        inflater = zlib.decompressobj()
        pending = b""
        left = h.height
        idat = iter(self._idat)
        tail = b""
        while left > 0:
            need = min(rows_per_strip, left) * line
            while len(pending) < need:
                try:
                    out = inflater.decompress(tail, want)
                except zlib.error as exc:
                    raise StripError(f"corrupt image data: {exc}") from None
                tail = inflater.unconsumed_tail
                pending += out
                if len(pending) >= need:
                    break
                if inflater.eof:
                    raise StripError("image data is truncated")
                if not tail and not out:  # zlib holds nothing more: the next chunk
                    tail = next(idat, None)
                    if tail is None:
                        raise StripError("image data is truncated")
            yield pending[:need]
            pending = pending[need:]
            left -= need // line

    def strips(self, rows_per_strip: int) -> Iterator[Image.Image]:
        """Yields each strip as Pillow would decode those rows of the whole image.

        Args:
            rows_per_strip: rows in every strip but the last.

        Raises:
            StripError: the stream is corrupt or truncated.
        """
        h = self.header
        if not self.strippable:
            raise ValueError("interlaced and 16-bit RGB(A) PNGs cannot be read in strips")
        stride = h.pixel_stride
        ctype, depth, rawmode = _SAME_STRIDE[stride]
        lane_width = h.row_bytes // stride  # pixels of the same-stride type per row
        previous = None
        for filtered in self._filtered_rows(rows_per_strip):
            rows = len(filtered) // (1 + h.row_bytes)
            head = b"" if previous is None else b"\0" + previous
            if any(filtered[i * (1 + h.row_bytes)] > 4 for i in range(rows)):
                raise StripError("corrupt image data: unknown filter type")
            unfiltered = _png(h, rows + (previous is not None), b"", head + filtered,
                              colour_type=ctype, bit_depth=depth, width=lane_width)
            raw = unfiltered.tobytes("raw", rawmode)
            unfiltered.close()
            if previous is not None:
                raw = raw[h.row_bytes:]
            previous = raw[-h.row_bytes:]
            yield self._interpret(raw, rows)

    def _interpret(self, raw: bytes, rows: int) -> Image.Image:
        img = Image.frombytes(self._mode, (self.header.width, rows), raw, "raw", self._rawmode)
        if self._mode == "P":
            img.putpalette(self._template.palette)
        if "transparency" in self._template.info:
            img.info["transparency"] = self._template.info["transparency"]
        return img

    def validate(self) -> None:
        """Inflates the whole stream (bounded, nothing decoded) and checks it holds every row.

        Raises:
            StripError: the stream is corrupt or truncated.
        """
        rows = max(1, (4 << 20) // (1 + self.header.row_bytes))
        for _ in self._filtered_rows(rows):
            pass
