"""Pages for the load test: real pages from a folder, or rendered word grids.

A generated page is a white A4 page (1240 x 1754 px, 150 dpi) with ``boxes`` short words, one
per cell of a grid of 10 columns and at least 20 rows, top to bottom, left to right. With the
default 200 words the grid is exactly the ``OCR_MODELS=noop`` detector's 20 x 10 grid, so the
noop detector finds one box per word (it finds at most 200 on any page); a real detector finds
the words themselves (the gaps between cells are much wider than the letter spacing).
"""

from __future__ import annotations

import io
import math
import random
import string
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["PAGE_SIZE", "IMAGE_SUFFIXES", "word_grid_page", "generated_pages", "load_pages"]

#: Width and height of generated pages (A4 at 150 dpi).
PAGE_SIZE = (1240, 1754)
#: File suffixes read from a ``--pages`` folder.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".pnm", ".pgm", ".ppm"})

_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
)


@lru_cache(maxsize=4)
def _font(size: int) -> Any:
    from PIL import ImageFont

    for path in _FONT_CANDIDATES:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: bitmap font, fixed size
        return ImageFont.load_default()


def _word(rng: random.Random) -> str:
    letters = string.ascii_letters if rng.random() < 0.3 else string.ascii_lowercase
    word = "".join(rng.choice(letters) for _ in range(rng.randint(3, 8)))
    return word if rng.random() > 0.15 else str(rng.randint(1, 99999))


def word_grid_page(boxes: int = 200, seed: int = 0, size: tuple[int, int] = PAGE_SIZE, fmt: str = "PNG") -> bytes:
    """A page with ``boxes`` words on a 10-column grid, encoded as ``fmt`` (PNG by default).

    Args:
        boxes: words on the page (0 gives a blank page).
        seed: word choice.
        size: page width and height in pixels.
        fmt: Pillow format name.
    """
    from PIL import Image, ImageDraw

    if boxes < 0:
        raise ValueError(f"boxes must be >= 0, got {boxes}")
    width, height = size
    cols = 10
    rows = max(20, math.ceil(boxes / cols))
    cell_w, cell_h = width / cols, height / rows
    font = _font(max(8, min(26, int(cell_h * 0.45), int(cell_w / 6))))
    rng = random.Random(seed)
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    for i in range(boxes):
        r, c = divmod(i, cols)
        x = c * cell_w + cell_w * 0.12
        y = r * cell_h + cell_h * 0.3
        draw.text((x, y), _word(rng), fill=rng.randint(0, 60), font=font)
    buf = io.BytesIO()
    page.save(buf, format=fmt, optimize=False, compress_level=1) if fmt == "PNG" else page.save(buf, format=fmt)
    return buf.getvalue()


def generated_pages(boxes: int = 200, variants: int = 8) -> list[tuple[str, bytes]]:
    """``variants`` distinct generated pages as ``(file name, bytes)``, cycled by the runs."""
    return [(f"bench-{boxes}w-{i}.png", word_grid_page(boxes, seed=i)) for i in range(max(1, variants))]


def load_pages(directory: str | Path, limit: int = 1000) -> list[tuple[str, bytes]]:
    """Up to ``limit`` image files of ``directory`` (sorted by name) as ``(file name, bytes)``.

    Raises:
        FileNotFoundError: not a directory, or no image file in it.
    """
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not files:
        raise FileNotFoundError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {root}")
    return [(p.name, p.read_bytes()) for p in files]
