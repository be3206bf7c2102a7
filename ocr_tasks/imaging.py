"""Decode and validate page images: bytes in, RGB ``uint8`` array out, or a clear error.

Reads PNG, JPEG, TIFF, BMP, WebP, GIF (single frame) and PNM through Pillow. Odd but valid
images are converted: grayscale, 1-bit, palette, alpha (composited on white), 16-bit and
32-bit integer/float, CMYK, and EXIF-rotated JPEGs. Pixel counts are checked from the header
*before* the pixels are decoded, so a decompression bomb costs nothing.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageTooLarge, InvalidImage, UnsupportedFormat

__all__ = ["SUPPORTED_FORMATS", "decode_image", "load_image", "sniff_unsupported"]

SUPPORTED_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP", "GIF", "PPM", "MPO")

_MAGIC = (
    (b"%PDF", "PDF documents are not supported; convert each page to PNG or JPEG first"),
    (b"<svg", "SVG vector images are not supported; rasterise to PNG first"),
    (b"<?xml", "XML/SVG files are not supported; upload a PNG, JPEG or TIFF image"),
    (b"<!doctype html", "HTML is not an image; upload a PNG, JPEG or TIFF image"),
    (b"<html", "HTML is not an image; upload a PNG, JPEG or TIFF image"),
    (b"PK\x03\x04", "ZIP archives (and DOCX/XLSX) are not supported; upload an image"),
)


def sniff_unsupported(data: bytes) -> str | None:
    """Return a message when ``data`` is clearly a known non-image format, else None."""
    head = data[:512].lstrip().lower()
    for magic, message in _MAGIC:
        if head.startswith(magic.lower()):
            return message
    return None


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale a high-bit-depth single-channel array to 0..255."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind == "f":
        arr = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(arr.min(initial=0.0)), float(arr.max(initial=0.0))
        if hi <= 1.0 and lo >= 0.0:
            return np.clip(arr * 255.0 + 0.5, 0, 255).astype(np.uint8)
        span = hi - lo if hi > lo else 1.0
        return np.clip((arr - lo) * 255.0 / span + 0.5, 0, 255).astype(np.uint8)
    arr = arr.astype(np.int64)
    hi = int(arr.max(initial=0))
    if hi <= 255 and int(arr.min(initial=0)) >= 0:
        return arr.astype(np.uint8)
    # 16-bit content (PNG "I;16"/"I" modes): keep the top 8 bits.
    scale = 65535 if hi <= 65535 else max(hi, 1)
    return np.clip(arr * 255 // scale, 0, 255).astype(np.uint8)


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("RGB",):
        return np.asarray(img, dtype=np.uint8)
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        gray = _to_uint8(np.asarray(img))
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def decode_image(
    data: bytes,
    *,
    max_pixels: int = 40_000_000,
    max_side: int = 20_000,
    max_bytes: int = 50 * 1024 * 1024,
) -> np.ndarray:
    """Decode image bytes into an ``H x W x 3`` RGB ``uint8`` array.

    Args:
        data: the encoded file.
        max_pixels: refuse images with more than this many pixels (checked before decoding).
        max_side: refuse images with a side longer than this.
        max_bytes: refuse encoded files larger than this.

    Returns:
        The RGB pixels.

    Raises:
        InvalidImage: empty, corrupt, truncated or zero-size data.
        UnsupportedFormat: a PDF, SVG, HTML, text or other non-image file, or a multi-frame image.
        ImageTooLarge: over one of the caps.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidImage(f"expected image bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) == 0:
        raise InvalidImage("the file is empty (0 bytes)")
    if len(data) > max_bytes:
        raise ImageTooLarge(f"the file is {len(data)} bytes; the limit is {max_bytes} bytes")
    message = sniff_unsupported(data)
    if message:
        raise UnsupportedFormat(message)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"the image declares too many pixels: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise UnsupportedFormat(
            "not a recognised image; supported formats: PNG, JPEG, TIFF, BMP, WebP, GIF"
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage(f"cannot read the image: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - any other parser error on untrusted bytes
        raise InvalidImage(f"cannot read the image: {type(exc).__name__}: {exc}") from exc
    with img:
        if img.format not in SUPPORTED_FORMATS:
            raise UnsupportedFormat(
                f"{img.format} images are not supported; use PNG, JPEG, TIFF, BMP, WebP or GIF"
            )
        width, height = img.size
        if width <= 0 or height <= 0:
            raise InvalidImage(f"the image has zero size ({width}x{height})")
        if width * height > max_pixels:
            raise ImageTooLarge(
                f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}"
            )
        if max(width, height) > max_side:
            raise ImageTooLarge(f"the image is {width}x{height}; the longest side allowed is {max_side} px")
        try:  # counting frames parses the whole file: a broken one fails here
            frames = int(getattr(img, "n_frames", 1))
        except Exception as exc:  # noqa: BLE001 - any parser error on untrusted bytes means "corrupt"
            raise InvalidImage(f"corrupt image: {type(exc).__name__}: {exc}") from exc
        if frames > 1 and img.format in ("GIF", "TIFF", "WEBP", "PNG"):
            raise UnsupportedFormat(
                f"multi-frame {img.format} images ({frames} frames) are not supported; "
                "send one page per image"
            )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img.load()
                if img.format in ("JPEG", "MPO", "TIFF", "WEBP"):
                    img = ImageOps.exif_transpose(img) or img
                rgb = _to_rgb_array(img)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning) as exc:
            raise InvalidImage(f"corrupt or truncated image: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - Pillow raises TypeError, IndexError, ... on broken files
            raise InvalidImage(f"corrupt image: {type(exc).__name__}: {exc}") from exc
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise InvalidImage(f"decoded to an unexpected shape {rgb.shape}")
    return np.ascontiguousarray(rgb)


def load_image(path: str | Path, **limits: int) -> np.ndarray:
    """Read a file and :func:`decode_image` it; a missing file raises InvalidImage naming it."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError as exc:
        raise InvalidImage(f"{p}: no such file") from exc
    except IsADirectoryError as exc:
        raise InvalidImage(f"{p}: is a directory, not an image") from exc
    except OSError as exc:
        raise InvalidImage(f"{p}: cannot read: {exc}") from exc
    try:
        return decode_image(data, **limits)
    except InvalidImage as exc:
        raise type(exc)(f"{p.name}: {exc}") from exc
