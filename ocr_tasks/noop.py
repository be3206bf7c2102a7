"""Orchestration-only stand-ins for the models (``OCR_MODELS=noop``), without torch.

They exercise the queue exactly as the real models do (same task code, same payloads) so the
service can be tested and load-tested on any machine:

- :class:`GridDetector` emits one box per cell of a 20 x 10 grid over the page (about 200
  boxes), skipping cells with no ink (every pixel near white), so a blank page has none.
- :class:`EchoRecognizer` "reads" ``w<mean gray value>`` from each crop: deterministic and
  tied to the crop's content, so tests can check that words come back in the right order.
- :class:`FailingRecognizer` (``OCR_MODELS=noop-failing``) raises on every batch, to prove
  that a recognizer failure turns into a failed document instead of a hang.

Two test hooks, for the reliability tests: a crop whose pixels are all :data:`POISON_GRAY`
makes :class:`EchoRecognizer` raise for its whole batch (a recognizer failure inside one
batch of an otherwise healthy worker), and ``OCR_NOOP_DETECT_SECONDS`` /
``OCR_NOOP_RECOGNIZE_SECONDS`` make each detect call / each recognizer call take that long
(so a worker can be killed in the middle of one).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .schemas import DetectedBox

__all__ = ["GridDetector", "EchoRecognizer", "FailingRecognizer", "NOOP_MODES", "POISON_GRAY"]

#: Values of ``OCR_MODELS`` served by this module.
NOOP_MODES = ("noop", "noop-failing")

#: A crop whose every pixel has this gray value makes :class:`EchoRecognizer` fail its batch.
POISON_GRAY = 3


def _delay(var: str) -> float:
    try:
        return max(0.0, float(os.environ.get(var, "0") or 0))
    except ValueError:
        return 0.0


class GridDetector:
    """A detector that boxes every inked cell of a ``rows x cols`` grid.

    Args:
        rows: grid rows (fewer on pages shorter than ``8 * rows`` pixels).
        cols: grid columns (fewer on pages narrower than ``8 * cols`` pixels).
        margin: fraction of a cell left empty on each side of its box.
        white: a cell whose darkest pixel is brighter than this is blank (no box).

    >>> boxes = GridDetector().detect(np.zeros((400, 300, 3), np.uint8))
    """

    def __init__(self, rows: int = 20, cols: int = 10, margin: float = 0.1, white: int = 245) -> None:
        self.rows = rows
        self.cols = cols
        self.margin = margin
        self.white = white

    def detect(self, image: np.ndarray, thresholds: Mapping[str, Any] | None = None) -> list[DetectedBox]:
        """Boxes of the inked grid cells, row by row (``thresholds`` is accepted and ignored)."""
        time.sleep(_delay("OCR_NOOP_DETECT_SECONDS"))
        h, w = image.shape[:2]
        # darkest channel per pixel; np.minimum over channel planes is ~10x faster than
        # image.min(axis=2) (a reduction over a short last axis), which dominated noop detection
        if image.ndim == 3 and image.shape[2] == 3:
            gray = np.minimum(np.minimum(image[..., 0], image[..., 1]), image[..., 2])
        else:
            gray = image.min(axis=2) if image.ndim == 3 else image
        rows, cols = max(1, min(self.rows, h // 8)), max(1, min(self.cols, w // 8))
        ys, xs = np.linspace(0, h, rows + 1), np.linspace(0, w, cols + 1)
        boxes: list[DetectedBox] = []
        for r in range(rows):
            for c in range(cols):
                y0, y1, x0, x1 = ys[r], ys[r + 1], xs[c], xs[c + 1]
                cell = gray[int(y0) : max(int(y1), int(y0) + 1), int(x0) : max(int(x1), int(x0) + 1)]
                if cell.size == 0 or int(cell.min()) > self.white:
                    continue
                dx, dy = (x1 - x0) * self.margin, (y1 - y0) * self.margin
                left, right = x0 + dx, max(x1 - dx - 1, x0 + dx + 1)
                top, bottom = y0 + dy, max(y1 - dy - 1, y0 + dy + 1)
                quad = [[left, top], [right, top], [right, bottom], [left, bottom]]
                boxes.append(DetectedBox(quad=[[round(x, 1), round(y, 1)] for x, y in quad], score=1.0))
        return boxes


class EchoRecognizer:
    """A recognizer that answers ``w<rounded mean gray value>`` for each crop, confidence 1."""

    def predict(self, crops: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """One ``(text, confidence)`` per crop, in order; a :data:`POISON_GRAY` crop fails the call."""
        time.sleep(_delay("OCR_NOOP_RECOGNIZE_SECONDS"))
        for crop in crops:
            if crop.size and int(crop.min()) == int(crop.max()) == POISON_GRAY:
                raise RuntimeError(f"simulated recognizer failure: poison crop (gray {POISON_GRAY}) in a batch of {len(crops)}")
        return [(f"w{int(round(float(np.mean(crop))))}", 1.0) for crop in crops]


class FailingRecognizer:
    """A recognizer that always raises (the test-only ``OCR_MODELS=noop-failing`` mode)."""

    def predict(self, crops: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """Raise RuntimeError, naming the mode."""
        raise RuntimeError(
            f"simulated recognizer failure on {len(crops)} crops (OCR_MODELS=noop-failing)"
        )
