"""The decoding budget: huge images are decoded reduced, strip by strip, never whole.

The budget is lowered here so that small real images (scikit-image's) take the reduced path;
what is checked is that it gives exactly what decoding whole and reducing would, for every
PNG type and filter, and that what cannot be decoded within the budget is refused clearly.
The memory itself is measured by bench/decode_memory.py at full size.
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from loupe_model import preprocess
from loupe_model.pngstrips import PngStrips, StripError
from loupe_model.preprocess import InvalidImage, decode_image, image_info, preprocess_bytes

pytestmark = pytest.mark.unit

ASTRONAUT = Image.fromarray(skdata.astronaut())  # 512 x 512 RGB photograph
CAMERA = Image.fromarray(skdata.camera())  # 512 x 512 grey


def _png(img: Image.Image, **kw) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG", **kw)
    return out.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _png_with_every_filter(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG whose rows cycle through filter types 0-4 (Pillow's encoder never
    writes type 3, Average), so each of PNG's unfilter rules is exercised."""
    h, w, _ = rgb.shape
    rows = rgb.reshape(h, w * 3).astype(np.int32)
    prior = np.zeros(w * 3, dtype=np.int32)
    out = bytearray()
    for y in range(h):
        x = rows[y]
        left = np.concatenate([np.zeros(3, np.int32), x[:-3]])
        up_left = np.concatenate([np.zeros(3, np.int32), prior[:-3]])
        kind = y % 5
        pred = [0, left, prior, (left + prior) // 2, _paeth(left, prior, up_left)][kind]
        out += bytes([kind]) + ((x - pred) % 256).astype(np.uint8).tobytes()
        prior = x
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(bytes(out)))
            + _chunk(b"IEND", b""))


PNG_TYPES = {
    "rgb": (ASTRONAUT, {}),
    "rgba": (ASTRONAUT.convert("RGBA"), {}),
    "grey": (CAMERA, {}),
    "grey-alpha": (CAMERA.convert("LA"), {}),
    "palette": (ASTRONAUT.convert("P"), {}),
    "palette-transparent": (ASTRONAUT.convert("P"), {"transparency": 3}),
    "palette-4-bit": (ASTRONAUT.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), {"bits": 4}),
    "bilevel": (CAMERA.convert("1"), {}),
    "grey-16-bit": (Image.fromarray(np.asarray(CAMERA).astype(np.uint16) * 257), {}),
    "grey-colour-key": (CAMERA, {"transparency": 7}),
    "odd-size": (ASTRONAUT.crop((0, 0, 511, 333)), {}),
}


@pytest.mark.parametrize("name", PNG_TYPES)
@pytest.mark.parametrize("rows", [1, 7, 1000])
def test_png_strips_are_the_rows_pillow_decodes(name, rows):
    img, kw = PNG_TYPES[name]
    data = _png(img, **kw)
    whole = Image.open(io.BytesIO(data))
    whole.load()
    top = 0
    for strip in PngStrips(data).strips(rows):
        assert (strip.mode, strip.info.get("transparency")) == (whole.mode, whole.info.get("transparency"))
        assert strip.tobytes() == whole.crop((0, top, whole.width, top + strip.height)).tobytes()
        if whole.mode == "P":
            assert strip.getpalette() == whole.getpalette()
        top += strip.height
    assert top == whole.height


def test_every_png_filter_type_is_undone():
    pixels = np.asarray(ASTRONAUT.crop((0, 0, 300, 120)))
    data = _png_with_every_filter(pixels)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)  # the encoder is right
    got = np.concatenate([np.asarray(s) for s in PngStrips(data).strips(11)])
    assert np.array_equal(got, pixels)


@pytest.fixture
def small_budget(monkeypatch):
    """A budget that a 512-px image exceeds, so it takes the reduced path."""
    monkeypatch.setattr(preprocess, "DECODE_BUDGET_BYTES", 1 << 20)
    monkeypatch.setattr(preprocess, "REDUCED_BUDGET_BYTES", 64 << 10)
    monkeypatch.setattr(preprocess, "_STRIP_BYTES", 16 << 10)


@pytest.mark.parametrize("name", ["rgb", "rgba", "grey", "palette-transparent", "grey-16-bit", "odd-size"])
def test_over_the_budget_an_image_is_decoded_reduced_as_if_whole(small_budget, name):
    img, kw = PNG_TYPES[name]
    data = _png(img, **kw)
    got = decode_image(data, draft_size=100)
    factor = max(preprocess._reduce_factor(img.width, img.height, 100), 1)
    assert factor >= min(img.size) // 100 > 1  # at least the target's reduction
    whole = Image.open(io.BytesIO(data))
    whole.load()
    expected = preprocess._to_rgb(preprocess._reducible(whole).reduce(factor))
    assert got.mode == "RGB" and got.size == expected.size
    assert got.tobytes() == expected.tobytes()


def test_reduced_images_are_close_to_whole_ones(small_budget, monkeypatch):
    """What the network sees barely moves when an image takes the reduced path (reduced to
    about the input size: 512 // 224 = 2 here, as a 10240-px image is by 45)."""
    monkeypatch.setattr(preprocess, "REDUCED_BUDGET_BYTES", 1 << 20)
    data = _png(ASTRONAUT)
    reduced = preprocess_bytes(data, 224)
    monkeypatch.setattr(preprocess, "DECODE_BUDGET_BYTES", 1 << 30)
    whole = preprocess_bytes(data, 224)
    assert np.abs(reduced - whole).mean() < 0.02  # of a [-1, 1] range


def test_jpeg_over_the_budget_uses_dct_scaling(small_budget):
    out = io.BytesIO()
    ASTRONAUT.save(out, "JPEG", quality=90)
    got = decode_image(out.getvalue())
    assert got.size == (256, 256)  # the first DCT scale within the lowered budget
    assert image_info(out.getvalue()) == ("JPEG", 512, 512)


def test_exif_orientation_applies_on_the_reduced_path(small_budget):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    wide = ASTRONAUT.crop((0, 0, 512, 256))
    data = _png(wide, exif=exif.tobytes())
    got = decode_image(data, draft_size=50)
    assert got.width < got.height
    assert image_info(data) == ("PNG", 256, 512)


def test_formats_that_cannot_be_reduced_while_decoded_are_refused_clearly(small_budget):
    big = Image.new("RGB", (1024, 1024), (9, 9, 9))
    webp = io.BytesIO()
    big.save(webp, "WEBP")  # Pillow decodes WebP only whole
    with pytest.raises(InvalidImage, match="over the 1 MB decoding budget"):
        decode_image(webp.getvalue())
    with pytest.raises(InvalidImage, match="decoding budget"):
        image_info(webp.getvalue())
    # The same pixels as a PNG are decoded reduced (8 x: 128 px fit the 64 KB reduced budget).
    assert decode_image(_png(big)).size == (128, 128)


@pytest.mark.parametrize("cut", [0.3, 0.9])
def test_a_truncated_png_is_an_invalid_image_on_every_path(small_budget, cut):
    data = _png(ASTRONAUT)
    broken = data[: int(len(data) * cut)]
    with pytest.raises(InvalidImage):
        decode_image(broken)
    with pytest.raises(InvalidImage):
        image_info(broken)


def test_corrupt_image_data_is_an_invalid_image(small_budget):
    data = bytearray(_png(ASTRONAUT))
    start = data.index(b"IDAT") + 4
    data[start + 100:start + 200] = bytes(100)
    with pytest.raises(InvalidImage):
        decode_image(bytes(data))
    with pytest.raises(StripError):
        PngStrips(bytes(data)).validate()
