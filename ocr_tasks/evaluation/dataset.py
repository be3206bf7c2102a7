"""Read an evaluation folder in the ``words.jsonl`` format.

Layout (as ``/work/shared/eval/funsd_test``)::

    DATASET_DIR/words.jsonl     one JSON object per line, one line per image
    DATASET_DIR/images/*.png    the pages (paths in words.jsonl are relative to DATASET_DIR)

Each line::

    {"image": "images/a.png", "width": 754, "height": 1000,
     "words": [{"box": [x0, y0, x1, y1], "text": "TO:"}, ...]}

Boxes are integer pixels, ``x1``/``y1`` exclusive when cutting crops. Words with empty or
whitespace-only text are skipped (the FUNSD file has none left, but other folders might).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import OCRError
from ..geometry import crop_quad

__all__ = ["DatasetError", "GTWord", "Page", "read_dataset", "count_pages", "to_gray", "crop_word"]

WORDS_FILE = "words.jsonl"


class DatasetError(OCRError, ValueError):
    """The evaluation folder is missing or a line of its words.jsonl is malformed."""


@dataclass(frozen=True)
class GTWord:
    """One ground-truth word.

    Attributes:
        box: ``(x0, y0, x1, y1)`` integer pixels.
        text: The transcription (stripped).
    """

    box: tuple[int, int, int, int]
    text: str


@dataclass(frozen=True)
class Page:
    """One page of the evaluation folder.

    Attributes:
        image_path: Absolute path of the page image.
        width: Width declared in words.jsonl.
        height: Height declared in words.jsonl.
        words: Ground-truth words, in file order (not reading order).
    """

    image_path: Path
    width: int
    height: int
    words: tuple[GTWord, ...]

    def load_rgb(self) -> np.ndarray:
        """Decode the page as ``H x W x 3`` RGB uint8 (validated like every other input).

        Raises:
            DatasetError: If the decoded size differs from the declared one.
            InvalidImage: If the file is not a readable image.
        """
        from ..imaging import load_image

        image = load_image(self.image_path)
        if image.shape[:2] != (self.height, self.width):
            raise DatasetError(
                f"{self.image_path}: image is {image.shape[1]}x{image.shape[0]} but words.jsonl "
                f"says {self.width}x{self.height}"
            )
        return image

    def gt_crops(self, gray: np.ndarray | None = None, *, upright: bool = True) -> list[np.ndarray]:
        """Cut every ground-truth word out of the grayscale page, exactly at its box.

        Args:
            gray: The page in grayscale (computed from :meth:`load_rgb` when omitted).
            upright: Turn tall crops upright as the pipeline does (see :func:`crop_word`).

        Returns:
            One 2-D uint8 crop per word, in :attr:`words` order.
        """
        if gray is None:
            gray = to_gray(self.load_rgb())
        return [crop_word(gray, w.box, upright=upright) for w in self.words]


def to_gray(image: np.ndarray) -> np.ndarray:
    """RGB -> grayscale with ITU-R 601 luma, as :func:`ocr_tasks.pipeline.crop_boxes` computes it."""
    if image.ndim == 2:
        return image
    return cv2.cvtColor(np.ascontiguousarray(image, dtype=np.uint8), cv2.COLOR_RGB2GRAY)


def crop_word(gray: np.ndarray, box: tuple[int, int, int, int], *, upright: bool = True) -> np.ndarray:
    """The pixels ``gray[y0:y1, x0:x1]`` of a word box: no padding, clipped to the page.

    Args:
        gray: ``H x W`` page.
        box: ``(x0, y0, x1, y1)``; an empty box still yields a 1 x 1 crop.
        upright: Like the pipeline (:func:`ocr_tasks.geometry.crop_quad`), rotate a crop taller
            than ``VERTICAL_RATIO`` x its width 90 degrees clockwise (vertical serial numbers).
            The pixels are the same either way.

    Returns:
        A contiguous uint8 crop.
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    quad = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)
    return crop_quad(gray, quad, upright=upright)


def _parse_line(root: Path, line: str, lineno: int) -> Page:
    where = f"{root / WORDS_FILE}:{lineno}"
    try:
        data = json.loads(line)
        words = []
        for w in data["words"]:
            text = str(w["text"]).strip()
            if not text:
                continue
            x0, y0, x1, y1 = (int(v) for v in w["box"])
            words.append(GTWord((x0, y0, x1, y1), text))
        return Page(
            image_path=(root / data["image"]).resolve(),
            width=int(data["width"]),
            height=int(data["height"]),
            words=tuple(words),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{where}: malformed line ({exc.__class__.__name__}: {exc})") from exc


def _words_file(root: str | Path) -> tuple[Path, Path]:
    base = Path(root)
    path = base / WORDS_FILE
    if not path.is_file():
        raise DatasetError(f"{base} is not an evaluation folder: {path} not found")
    return base, path


def read_dataset(root: str | Path, limit: int | None = None) -> Iterator[Page]:
    """Yield the pages of an evaluation folder in file order.

    Args:
        root: The folder holding ``words.jsonl``.
        limit: Stop after this many pages (None: all).

    Raises:
        DatasetError: If the folder has no words.jsonl or a line is malformed.
    """
    base, path = _words_file(root)
    count = 0
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if limit is not None and count >= limit:
                return
            if not line.strip():
                continue
            yield _parse_line(base, line, lineno)
            count += 1


def count_pages(root: str | Path, limit: int | None = None) -> int:
    """Number of pages :func:`read_dataset` will yield (for progress bars)."""
    _, path = _words_file(root)
    with path.open(encoding="utf-8") as fh:
        n = sum(1 for line in fh if line.strip())
    return n if limit is None else min(n, limit)
