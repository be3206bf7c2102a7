"""Image decoding: every odd-but-valid mode converts, every bad input raises a named error."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from ocr_tasks.errors import ImageTooLarge, InvalidImage, UnsupportedFormat
from ocr_tasks.imaging import decode_image


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def gradient(w: int = 40, h: int = 30) -> np.ndarray:
    return (np.arange(w * h) % 256).astype(np.uint8).reshape(h, w)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.fromarray(gradient()).convert("RGB"),
        lambda: Image.fromarray(gradient()),
        lambda: Image.fromarray(gradient()).convert("1"),
        lambda: Image.fromarray(gradient()).convert("P"),
        lambda: Image.fromarray(gradient()).convert("LA"),
        lambda: Image.fromarray(gradient()).convert("RGBA"),
        lambda: Image.fromarray(gradient().astype(np.uint16) * 257),
    ],
    ids=["rgb", "gray", "1bit", "palette", "gray-alpha", "rgba", "16bit"],
)
def test_modes_convert_to_rgb(make):
    img = make()
    out = decode_image(encode(img))
    assert out.dtype == np.uint8 and out.shape == (30, 40, 3)


def test_16bit_png_keeps_contrast():
    arr = np.zeros((10, 10), dtype=np.uint16)
    arr[:, 5:] = 65535
    out = decode_image(encode(Image.fromarray(arr)))
    assert out[0, 0, 0] == 0 and out[0, 9, 0] == 255


def test_alpha_is_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    out = decode_image(encode(rgba))
    assert (out == 255).all()


def test_cmyk_jpeg_and_tiff():
    cmyk = Image.new("CMYK", (20, 10), (0, 0, 0, 255))
    out = decode_image(encode(cmyk, "JPEG"))
    assert out.shape == (10, 20, 3) and out.mean() < 40
    out = decode_image(encode(Image.fromarray(gradient()), "TIFF"))
    assert out.shape == (30, 40, 3)


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    data = encode(img, "JPEG", exif=exif)
    assert decode_image(data).shape == (40, 20, 3)


@pytest.mark.parametrize(
    ("data", "error", "words"),
    [
        (b"", InvalidImage, "empty"),
        (b"%PDF-1.4 ...", UnsupportedFormat, "PDF"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", UnsupportedFormat, "SVG"),
        (b"<!DOCTYPE html><html></html>", UnsupportedFormat, "HTML"),
        (b"hello, this is text\n", UnsupportedFormat, "not a recognised image"),
        (bytes(range(256)) * 4, UnsupportedFormat, "not a recognised image"),
    ],
)
def test_bad_inputs_are_refused(data, error, words):
    with pytest.raises(error, match=words):
        decode_image(data)


def test_truncated_png_and_jpeg():
    png = encode(Image.fromarray(gradient(200, 200)))
    jpg = encode(Image.fromarray(gradient(200, 200)), "JPEG")
    for data in (png[: len(png) // 2], jpg[: len(jpg) // 2]):
        with pytest.raises(InvalidImage):
            decode_image(data)


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that declares a huge canvas (a decompression bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_before_decoding():
    with pytest.raises(ImageTooLarge, match="pixels"):
        decode_image(_png_header_only(60000, 60000))


def test_pixel_and_side_caps():
    data = encode(Image.new("L", (300, 300), 255))
    with pytest.raises(ImageTooLarge, match="90000 pixels"):
        decode_image(data, max_pixels=50_000)
    with pytest.raises(ImageTooLarge, match="longest side"):
        decode_image(data, max_side=200)
    with pytest.raises(ImageTooLarge, match="bytes"):
        decode_image(data, max_bytes=10)


def test_animated_gif_refused():
    frames = [Image.new("L", (10, 10), c) for c in (0, 255)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(UnsupportedFormat, match="multi-frame"):
        decode_image(buf.getvalue())


def test_extreme_aspect_is_accepted():
    assert decode_image(encode(Image.new("L", (1, 1), 0))).shape == (1, 1, 3)
    assert decode_image(encode(Image.new("L", (5000, 1), 0))).shape == (1, 5000, 3)
