"""loupe_model.preprocess: decoding every accepted format to the same network input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from loupe_model.preprocess import (
    MEAN,
    STD,
    InvalidImage,
    decode_image,
    image_info,
    preprocess,
    preprocess_bytes,
)

SIZE = 224


def encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def norm(value: float) -> float:
    return (value - MEAN) / STD


def test_png_rgb_shape_and_exact_values():
    data = encode(Image.new("RGB", (50, 30), (255, 127, 0)), "PNG")
    x = preprocess_bytes(data, SIZE)
    assert x.shape == (3, SIZE, SIZE)
    assert x.dtype == np.float32
    assert x.flags["C_CONTIGUOUS"]
    # (255 - 127) / 128 = 1, (127 - 127) / 128 = 0, (0 - 127) / 128 = -0.9921875
    np.testing.assert_allclose(x[0], 1.0)
    np.testing.assert_allclose(x[1], 0.0)
    np.testing.assert_allclose(x[2], -127.0 / 128.0)


def test_jpeg_close_to_source_colour():
    data = encode(Image.new("RGB", (640, 480), (200, 100, 50)), "JPEG", quality=95)
    x = preprocess_bytes(data, SIZE)
    assert x.shape == (3, SIZE, SIZE)
    for channel, value in enumerate((200, 100, 50)):
        assert abs(float(x[channel].mean()) - norm(value)) < 3 / STD


def test_grey_image_gives_equal_channels():
    grey = Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1)), mode="L")
    x = preprocess_bytes(encode(grey, "PNG"), SIZE)
    assert x.shape == (3, SIZE, SIZE)
    np.testing.assert_array_equal(x[0], x[1])
    np.testing.assert_array_equal(x[0], x[2])
    # A left-to-right ramp stays a ramp.
    assert x[0, :, 0].mean() < x[0, :, -1].mean()


def test_16bit_grey_png_is_scaled_not_clipped():
    arr = np.full((8, 8), 32768, dtype=np.uint16)
    data = encode(Image.fromarray(arr), "PNG")
    x = preprocess_bytes(data, 32)
    # 32768 / 65535 * 255 ~= 127.5 -> about 0, not white (1.0) as clipping would give.
    assert abs(float(x.mean())) < 2 / STD


def test_rgba_transparency_composited_on_white():
    img = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
    img.paste((255, 0, 0, 255), (0, 0, 10, 10))  # left half opaque red
    x = preprocess_bytes(encode(img, "PNG"), 20)
    left, right = x[:, :, :8], x[:, :, 12:]
    np.testing.assert_allclose(left[0], norm(255))
    np.testing.assert_allclose(left[1], norm(0))
    np.testing.assert_allclose(right, norm(255))  # transparent -> white, not black


def test_animated_palette_gif_uses_first_frame():
    frames = [Image.new("P", (16, 16), i) for i in range(2)]
    for frame in frames:
        frame.putpalette([0, 0, 255] + [0, 255, 0] + [0] * 762)
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)
    assert image_info(data) == ("GIF", 16, 16)
    x = preprocess_bytes(data, 16)
    np.testing.assert_allclose(x[2], norm(255))  # first frame is blue
    np.testing.assert_allclose(x[1], norm(0))


def test_tiny_image_upscaled():
    data = encode(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG")
    x = preprocess_bytes(data, SIZE)
    assert x.shape == (3, SIZE, SIZE)
    np.testing.assert_allclose(x[:, 0, 0], [norm(10), norm(20), norm(30)], atol=1e-6)
    assert float(x.std(axis=(1, 2)).max()) == 0.0


def test_resize_filter_is_bilinear_unless_asked():
    pixels = (np.random.default_rng(3).random((28, 28, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(pixels)
    bilinear = np.asarray(img.resize((SIZE, SIZE), Image.Resampling.BILINEAR), dtype=np.float32)
    np.testing.assert_allclose(preprocess(img, SIZE), norm(bilinear).transpose(2, 0, 1), atol=1e-6)
    bicubic = preprocess(img, SIZE, Image.Resampling.BICUBIC)
    expected = np.asarray(img.resize((SIZE, SIZE), Image.Resampling.BICUBIC), dtype=np.float32)
    np.testing.assert_allclose(bicubic, norm(expected).transpose(2, 0, 1), atol=1e-6)
    assert not np.allclose(bicubic, preprocess(img, SIZE))


@pytest.mark.parametrize("fmt", ["BMP", "WEBP"])
def test_other_supported_formats(fmt):
    img = Image.new("RGB", (30, 30), (0, 255, 0))
    data = encode(img, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    assert image_info(data)[0] == fmt
    x = preprocess_bytes(data, 32)
    np.testing.assert_allclose(x[1], norm(255))


def test_squash_keeps_whole_image():
    img = Image.new("RGB", (200, 100), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 100, 100))  # left half red
    x = preprocess(decode_image(encode(img, "PNG")), 64)
    assert x.shape == (3, 64, 64)
    # No crop: the red half fills the left half of the input, blue the right half.
    np.testing.assert_allclose(x[0, :, :30], norm(255))
    np.testing.assert_allclose(x[2, :, 34:], norm(255))


def test_exif_orientation_applied():
    img = Image.new("RGB", (40, 20), (255, 255, 255))
    img.paste((0, 0, 0), (0, 0, 20, 20))  # left half black as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be rotated 90 degrees clockwise for display
    data = encode(img, "JPEG", exif=exif.tobytes(), quality=95)
    assert image_info(data) == ("JPEG", 20, 40)
    upright = decode_image(data)
    assert upright.size == (20, 40)
    arr = np.asarray(upright, dtype=np.float32).mean(axis=2)
    assert arr[:15].mean() < 40 and arr[25:].mean() > 215  # black on top after rotation


def test_preprocess_bytes_is_decode_then_preprocess_and_close_to_full_decode():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    photo = Image.fromarray(base).resize((1600, 1200), Image.Resampling.BICUBIC)
    data = encode(photo, "JPEG", quality=92)
    drafted = preprocess_bytes(data, SIZE)
    np.testing.assert_array_equal(drafted, preprocess(decode_image(data, draft_size=SIZE), SIZE))
    full = preprocess(decode_image(data), SIZE)
    # The JPEG draft (DCT downscale) is an approximation of decoding fully and resizing.
    assert float(np.abs(drafted - full).mean()) < 0.05


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20],
    ids=["empty", "text", "png-garbage"],
)
def test_invalid_bytes_raise_invalid_image(data):
    with pytest.raises(InvalidImage):
        image_info(data)
    with pytest.raises(InvalidImage):
        preprocess_bytes(data, SIZE)


def test_truncated_jpeg_is_invalid():
    rng = np.random.default_rng(1)
    data = encode(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "JPEG")
    with pytest.raises(InvalidImage):
        image_info(data[: len(data) // 2])


def test_unsupported_format_is_invalid_and_a_value_error():
    data = encode(Image.new("RGB", (8, 8)), "TIFF")
    with pytest.raises(ValueError):
        image_info(data)
    assert issubclass(InvalidImage, ValueError)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP", "WEBP"])
def test_corrupted_bytes_give_an_image_or_invalid_image(fmt):
    # The TorchServe handler answers 400 for InvalidImage; any other exception would fail
    # every request batched with the bad one.
    rng = np.random.default_rng(7)
    img = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    good = bytearray(encode(img, fmt))
    for _ in range(40):
        bad = bytearray(good)
        for pos in rng.integers(0, len(bad), size=int(rng.integers(1, 8))):
            bad[pos] = int(rng.integers(0, 256))
        cut = int(rng.integers(len(bad) // 2, len(bad) + 1))
        try:
            x = preprocess_bytes(bytes(bad[:cut]), 32)
        except InvalidImage:
            continue
        assert x.shape == (3, 32, 32) and np.isfinite(x).all()
