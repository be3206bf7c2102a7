"""Sequential OCR: detect, crop, recognise, assemble. Plain functions, no queue.

This is what the CLI and the ``/ocr`` endpoint run, and the building blocks (``crop_boxes``,
``assemble_document``) are what the Celery tasks reuse.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from .geometry import crop_quad, is_vertical, reading_order
from .schemas import DetectedBox, DocumentResult, Line, Word

__all__ = [
    "OCRPipeline",
    "sort_boxes",
    "crop_boxes",
    "read_crops",
    "assemble_document",
    "ocr_image",
]


def sort_boxes(boxes: Sequence[DetectedBox]) -> list[DetectedBox]:
    """Boxes in reading order (lines top to bottom, words left to right)."""
    lines = reading_order([np.asarray(b.quad, dtype=np.float32) for b in boxes])
    return [boxes[i] for line in lines for i in line]


def crop_boxes(image: np.ndarray, boxes: Sequence[DetectedBox], gray: bool = True) -> list[np.ndarray]:
    """Cut one upright crop per box (grayscale by default: the recognizers read grayscale)."""
    source = image
    if gray and image.ndim == 3:
        # ITU-R 601 luma (the weights PIL's convert("L") uses).
        source = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return [crop_quad(source, np.asarray(b.quad, dtype=np.float32)) for b in boxes]


def read_crops(
    recognizer: Any, crops: Sequence[np.ndarray], vertical: Sequence[bool] | None = None
) -> list[tuple[str, float]]:
    """Recognise crops; vertical ones are read both ways up and the more confident reading wins.

    Vertical text may run top-to-bottom or bottom-to-top, and :func:`crop_quad` turns it upright
    one way (90 degrees clockwise); the 180-degree turn of that crop is the other way.
    """
    flags = list(vertical) if vertical is not None else [False] * len(crops)
    if len(flags) != len(crops):
        raise ValueError(f"{len(crops)} crops but {len(flags)} vertical flags")
    extra = [np.ascontiguousarray(np.rot90(c, 2)) for c, v in zip(crops, flags) if v]
    out = recognizer.predict(list(crops) + extra)
    flipped = iter(out[len(crops) :])
    return [max(r, next(flipped), key=lambda x: x[1]) if v else r for r, v in zip(out[: len(crops)], flags)]


def assemble_document(
    quads: Sequence[Any],
    recognized: Sequence[tuple[str, float]],
    width: int,
    height: int,
    timings: Mapping[str, float] | None = None,
) -> DocumentResult:
    """Build the document from boxes already in reading order and their recognised text.

    Words whose text came out empty are dropped; lines are re-derived from the kept words.
    """
    if len(quads) != len(recognized):
        raise ValueError(f"{len(quads)} boxes but {len(recognized)} recognition results")
    words = [
        Word(quad=[list(map(float, p)) for p in q], text=text, confidence=float(conf))
        for q, (text, conf) in zip(quads, recognized)
        if text
    ]
    groups = reading_order([np.asarray(w.quad, dtype=np.float32) for w in words])
    order = [i for g in groups for i in g]
    words = [words[i] for i in order]
    lines: list[Line] = []
    k = 0
    for g in groups:
        idx = list(range(k, k + len(g)))
        k += len(g)
        lines.append(Line(text=" ".join(words[i].text for i in idx), word_indices=idx))
    return DocumentResult(
        words=words,
        lines=lines,
        text="\n".join(ln.text for ln in lines),
        width=int(width),
        height=int(height),
        timings=dict(timings or {}),
    )


class OCRPipeline:
    """Detector + recognizer, run one after the other in this process."""

    def __init__(self, detector: Any, recognizer: Any) -> None:
        self.detector = detector
        self.recognizer = recognizer

    @classmethod
    def from_names(
        cls,
        detector: str | None = None,
        recognizer: str | None = None,
        refiner: str | None = None,
        settings: Any = None,
    ) -> OCRPipeline:
        """Load (cached) predictors by registry name; None means the settings' default."""
        from .models.factory import detection_predictor, recognition_predictor

        return cls(
            detection_predictor(detector, refiner=refiner, settings=settings),
            recognition_predictor(recognizer, settings=settings),
        )

    def ocr_image(self, image: np.ndarray, thresholds: Mapping[str, Any] | None = None) -> DocumentResult:
        """Read a whole page (``H x W x 3`` RGB uint8)."""
        t0 = time.perf_counter()
        boxes = sort_boxes(self.detector.detect(image, thresholds))
        t1 = time.perf_counter()
        crops = crop_boxes(image, boxes)
        vertical = [is_vertical(np.asarray(b.quad, dtype=np.float32)) for b in boxes]
        t2 = time.perf_counter()
        recognized = read_crops(self.recognizer, crops, vertical)
        t3 = time.perf_counter()
        doc = assemble_document(
            [b.quad for b in boxes], recognized, image.shape[1], image.shape[0]
        )
        t4 = time.perf_counter()
        doc.timings = {
            "detect": t1 - t0,
            "crop": t2 - t1,
            "recognize": t3 - t2,
            "assemble": t4 - t3,
            "total": t4 - t0,
        }
        return doc


def ocr_image(image: np.ndarray, pipeline: OCRPipeline | None = None) -> DocumentResult:
    """Read a page with ``pipeline`` (default: the configured default models)."""
    return (pipeline or OCRPipeline.from_names()).ocr_image(image)
