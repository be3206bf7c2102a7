"""A compact, pickle-free serialisable form of a crop: uint8 bytes (zlib-compressed) plus shape.

Crops travel through the message broker one per task (msgpack carries ``bytes`` natively),
so the form is a plain dict of ``bytes`` and ints. The pixels are compressed with zlib at
level 1 (``"z": 1``) when that makes them smaller: a word crop from a scanned page is mostly
background, so a 200-word page's crops shrink about 13 times (1.4 MB -> 0.1 MB, measured on
the bench pages), and every copy of the message (publish, Redis list, the worker's unacked
record, base64 in kombu's envelope, JSON) gets cheaper for a few milliseconds of compression
per page. Uncompressed payloads (no ``"z"``) are still read.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["encode_crop", "decode_crop", "MAX_CROP_PIXELS"]

#: Largest crop accepted by :func:`decode_crop` (guards against hostile payloads).
MAX_CROP_PIXELS = 4_000_000


#: zlib level of crop payloads (1: fastest; higher levels gain little on crops).
COMPRESS_LEVEL = 1


def encode_crop(crop: np.ndarray, compress: bool = True) -> dict[str, Any]:
    """``H x W`` (gray) or ``H x W x 3`` uint8 array -> ``{"shape": [...], "data": bytes[, "z": 1]}``.

    ``compress``: zlib the pixels (``"z": 1``) when that makes them smaller.
    """
    arr = np.ascontiguousarray(crop)
    if arr.dtype != np.uint8:
        raise ValueError(f"crops must be uint8, got {arr.dtype}")
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3)):
        raise ValueError(f"crops must be HxW or HxWx3, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"crop has zero size: {arr.shape}")
    raw = arr.tobytes()
    if compress:
        packed = zlib.compress(raw, COMPRESS_LEVEL)
        if len(packed) < len(raw):
            return {"shape": [int(s) for s in arr.shape], "data": packed, "z": 1}
    return {"shape": [int(s) for s in arr.shape], "data": raw}


def decode_crop(payload: Mapping[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_crop`; a malformed payload raises ValueError saying why."""
    try:
        shape = [int(s) for s in payload["shape"]]
        data = payload["data"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed crop payload: {exc!r}") from exc
    if len(shape) not in (2, 3) or any(s <= 0 for s in shape) or (len(shape) == 3 and shape[2] not in (1, 3)):
        raise ValueError(f"malformed crop shape {shape}")
    if shape[0] * shape[1] > MAX_CROP_PIXELS:
        raise ValueError(f"crop of {shape[0]}x{shape[1]} pixels exceeds {MAX_CROP_PIXELS}")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"crop data must be bytes, got {type(data).__name__}")
    expected = int(np.prod(shape))
    if payload.get("z"):
        data = _inflate(bytes(data), expected)
    if len(data) != expected:
        raise ValueError(f"crop data has {len(data)} bytes, shape {shape} needs {expected}")
    return np.frombuffer(bytes(data), dtype=np.uint8).reshape(shape).copy()


def _inflate(data: bytes, expected: int) -> bytes:
    """zlib-decompress at most ``expected`` bytes (a hostile payload cannot inflate further)."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, expected)
    except zlib.error as exc:
        raise ValueError(f"crop data is not valid zlib: {exc}") from exc
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValueError(f"compressed crop data does not inflate to exactly {expected} bytes")
    return out
