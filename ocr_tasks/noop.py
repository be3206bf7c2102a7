"""Orchestration-only stand-ins for the models (``OCR_MODELS=noop``), without torch.

They exercise the queue exactly as the real models do (same task code, same payloads) so the
service can be tested and load-tested on any machine:

- :class:`GridDetector` emits one box per cell of a 20 x 10 grid over the page (about 200
  boxes), skipping cells with no ink (every pixel near white), so a blank page has none.
- :class:`EchoRecognizer` "reads" ``w<mean gray value>`` from each crop: deterministic and
  tied to the crop's content, so tests can check that words come back in the right order.
- :class:`FailingRecognizer` (``OCR_MODELS=noop-failing``) raises on every batch, to prove
  that a recognizer failure turns into a failed document instead of a hang.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .schemas import DetectedBox

__all__ = ["GridDetector", "EchoRecognizer", "FailingRecognizer", "NOOP_MODES"]

#: Values of ``OCR_MODELS`` served by this module.
NOOP_MODES = ("noop", "noop-failing")


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
        h, w = image.shape[:2]
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
        """One ``(text, confidence)`` per crop, in order."""
        return [(f"w{int(round(float(np.mean(crop))))}", 1.0) for crop in crops]


class FailingRecognizer:
    """A recognizer that always raises (the test-only ``OCR_MODELS=noop-failing`` mode)."""

    def predict(self, crops: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """Raise RuntimeError, naming the mode."""
        raise RuntimeError(
            f"simulated recognizer failure on {len(crops)} crops (OCR_MODELS=noop-failing)"
        )
