"""Fuzzing the page decoder: whatever the bytes, ``decode_image`` returns an RGB array or raises InvalidImage.

A seeded mutation loop (bit flips, byte overwrites, truncations, insertions, chunk
duplication, huge size fields, format splices) over small valid files of every supported
format; a few thousand cases in a few seconds. Any input that ever made the decoder raise
something else is kept in ``tests/data/decoder_regressions/`` and replayed by
:func:`test_regression_cases`. Run with ``OCR_FUZZ_CASES=50000`` for a longer search; inputs
that crash are written there (``OCR_FUZZ_SAVE=1``).
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ocr_tasks.errors import InvalidImage
from ocr_tasks.imaging import decode_image

REGRESSIONS = Path(__file__).parent / "data" / "decoder_regressions"
CASES = int(os.environ.get("OCR_FUZZ_CASES", "3000"))
#: Small caps so a mutated size field cannot make a case allocate much.
LIMITS = {"max_pixels": 2_000_000, "max_side": 4000, "max_bytes": 1_000_000}


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def seeds() -> list[bytes]:
    """Small valid files of every supported format and several modes."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8))
    frames = [rgb, rgb.rotate(90, expand=False)]
    return [
        _encode(rgb, "PNG"),
        _encode(rgb.convert("P"), "PNG", transparency=0),
        _encode(rgb.convert("LA"), "PNG"),
        _encode(Image.fromarray((np.arange(24 * 32).reshape(24, 32) * 50).astype(np.uint16)), "PNG"),
        _encode(rgb.convert("1"), "PNG"),
        _encode(rgb, "JPEG", quality=70),
        _encode(rgb, "JPEG", progressive=True),
        _encode(rgb.convert("CMYK"), "JPEG"),
        _encode(rgb, "GIF"),
        _encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        _encode(rgb, "BMP"),
        _encode(rgb, "TIFF"),
        _encode(rgb, "TIFF", compression="tiff_lzw"),
        _encode(rgb.convert("F"), "TIFF"),
        _encode(rgb, "WEBP"),
        _encode(rgb.convert("L"), "PPM"),
        _encode(rgb, "PPM"),
    ]


def mutate(data: bytes, rng: random.Random, pool: list[bytes]) -> bytes:
    """One to four random edits of ``data``."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(8)
        if not out:
            out = bytearray(rng.choice(pool))
        pos = rng.randrange(len(out))
        if kind == 0:  # flip a bit
            out[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:  # overwrite a few bytes
            for i in range(pos, min(len(out), pos + rng.randint(1, 8))):
                out[i] = rng.randrange(256)
        elif kind == 2:  # truncate
            del out[rng.randrange(1, len(out) + 1) :]
        elif kind == 3:  # insert junk
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
        elif kind == 4:  # duplicate a slice (chunks, markers)
            end = min(len(out), pos + rng.randint(4, 64))
            out[pos:pos] = out[pos:end]
        elif kind == 5:  # a size-like field set to an extreme
            value = rng.choice([0, 1, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF])
            fmt = rng.choice([">I", "<I", ">H", "<H"])
            packed = struct.pack(fmt, value & (0xFFFF if fmt.endswith("H") else 0xFFFFFFFF))
            out[pos : pos + len(packed)] = packed
        elif kind == 6:  # splice the head of one file onto the tail of another
            other = rng.choice(pool)
            cut = rng.randrange(1, max(2, min(len(out), len(other))))
            out = bytearray(other[:cut]) + out[cut:]
        else:  # zero a run
            for i in range(pos, min(len(out), pos + rng.randint(1, 64))):
                out[i] = 0
    return bytes(out)


def check(data: bytes) -> str | None:
    """None when the decoder behaved; else a description of the crash."""
    try:
        rgb = decode_image(data, **LIMITS)
    except InvalidImage:
        return None
    except Exception as exc:  # noqa: BLE001 - that is what this test looks for
        return f"{type(exc).__name__}: {exc}"
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or 0 in rgb.shape:
        return f"bad array {rgb.dtype} {rgb.shape}"
    return None


def test_seeds_decode() -> None:
    """The unmutated seeds are valid (except the animated GIF, which is refused cleanly)."""
    results = [check(s) for s in seeds()]
    assert results == [None] * len(results)


@pytest.mark.filterwarnings("ignore")
def test_mutated_files_only_raise_invalid_image() -> None:
    """A few thousand mutated files: RGB arrays or InvalidImage, never another exception."""
    pool = seeds()
    rng = random.Random(20261125)
    crashes: dict[str, str] = {}
    t0 = time.monotonic()
    for _ in range(CASES):
        case = mutate(rng.choice(pool), rng, pool)
        problem = check(case)
        if problem:
            name = hashlib.sha256(case).hexdigest()[:16]
            crashes[name] = problem
            if os.environ.get("OCR_FUZZ_SAVE"):
                REGRESSIONS.mkdir(parents=True, exist_ok=True)
                (REGRESSIONS / f"{name}.bin").write_bytes(case)
    assert not crashes, f"{len(crashes)} inputs crashed the decoder: {dict(list(crashes.items())[:5])}"
    assert time.monotonic() - t0 < 120


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize(
    "path", sorted(REGRESSIONS.glob("*.bin")) if REGRESSIONS.is_dir() else [], ids=lambda p: p.name
)
def test_regression_cases(path: Path) -> None:
    """Inputs that once crashed the decoder now raise InvalidImage (or decode)."""
    assert check(path.read_bytes()) is None
