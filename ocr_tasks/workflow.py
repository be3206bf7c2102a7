"""Plain functions behind the service's tasks: no Celery, no Redis, easy to test.

A document moves through the queue as a small *reference* dict (``ref``) that grows as the
stages run: the client sets ``id``, ``filename`` and ``submitted_at``; detect adds ``width``,
``height``, ``boxes``, ``detect_started`` and ``detect_finished``. Each box becomes one crop
payload ``{"doc", "index", "quad", "crop"}`` (``crop`` in the compact form of
:mod:`ocr_tasks.crops`), each recognised crop one value ``{"index", "quad", "text",
"confidence", "batch"}``, and the aggregate turns those into the document schema.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from .crops import decode_crop, encode_crop
from .imaging import decode_image
from .pipeline import assemble_document, crop_boxes, sort_boxes
from .schemas import DetectedBox
from .settings import Settings

__all__ = [
    "Detector",
    "read_page",
    "detect_and_crop",
    "crop_payloads",
    "crop_from_payload",
    "recognized_value",
    "summarize_batches",
    "build_document",
]


class Detector(Protocol):
    """What the detect stage needs from a detector (real or noop)."""

    def detect(self, image: np.ndarray, thresholds: Mapping[str, Any] | None = None) -> list[DetectedBox]:
        """Boxes on an RGB page, in any order."""
        ...


def read_page(data: bytes, settings: Settings) -> np.ndarray:
    """Decode and validate uploaded bytes with the configured limits (raises InvalidImage)."""
    return decode_image(
        data,
        max_pixels=settings.max_pixels,
        max_side=settings.max_side,
        max_bytes=settings.max_image_bytes,
    )


def detect_and_crop(image: np.ndarray, detector: Detector) -> tuple[list[DetectedBox], list[np.ndarray]]:
    """Detect, sort into reading order and cut one upright grayscale crop per box."""
    boxes = sort_boxes(detector.detect(image))
    return boxes, crop_boxes(image, boxes)


def crop_payloads(
    doc_id: str, boxes: Sequence[DetectedBox], crops: Sequence[np.ndarray]
) -> list[dict[str, Any]]:
    """One ``ocr.recognize`` payload per box, indexed in reading order."""
    return [
        {"doc": doc_id, "index": i, "quad": box.quad, "crop": encode_crop(crop)}
        for i, (box, crop) in enumerate(zip(boxes, crops))
    ]


def crop_from_payload(payload: Mapping[str, Any]) -> np.ndarray:
    """The crop pixels of a payload; a malformed payload raises ValueError saying why."""
    try:
        int(payload["index"])
        str(payload["doc"])
        crop = payload["crop"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed recognition payload: {exc!r}") from exc
    return decode_crop(crop)


def recognized_value(
    payload: Mapping[str, Any], text: str, confidence: float, batch: Mapping[str, Any]
) -> dict[str, Any]:
    """The stored result of one crop: its place, its text and the batch it ran in."""
    return {
        "index": int(payload["index"]),
        "quad": payload["quad"],
        "text": str(text),
        "confidence": float(confidence),
        "batch": dict(batch),
    }


def summarize_batches(results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Distinct batches the crops ran in, in order of first use.

    Each entry: ``{"id": the flush's id (the same in every document that shared it),
    "size": crops in the whole batch, "crops": crops of this document,
    "cause": "size" | "timeout", "seconds": recognizer time}``.
    """
    seen: dict[str, dict[str, Any]] = {}
    for res in results:
        batch = res.get("batch") or {}
        key = str(batch.get("id", ""))
        if key not in seen:
            seen[key] = {
                "id": key,
                "size": int(batch.get("size", 0)),
                "crops": 0,
                "cause": str(batch.get("cause", "")),
                "seconds": round(float(batch.get("seconds", 0.0)), 4),
            }
        seen[key]["crops"] += 1
    return list(seen.values())


def build_document(
    ref: Mapping[str, Any], results: Sequence[Mapping[str, Any]], started: float | None = None
) -> dict[str, Any]:
    """The document of ``ref`` from its recognised crops (any arrival order).

    Words are ordered by box index (reading order from detect), never by arrival; lines and
    the full text come from :func:`~ocr_tasks.pipeline.assemble_document`.

    Args:
        ref: the document reference, completed by detect.
        results: one :func:`recognized_value` per box.
        started: when aggregation started (epoch seconds; default now).

    Returns:
        The document schema plus ``batches`` (:func:`summarize_batches`). ``timings`` holds
        ``queue_wait`` (upload to detect start), ``detect`` (decode, detect, crop),
        ``recognize`` (end of detect to start of aggregation: queueing, batching,
        recognition), ``aggregate`` and ``total`` (upload to document), in seconds.
    """
    started = time.time() if started is None else started
    ordered = sorted(results, key=lambda r: int(r["index"]))
    doc = assemble_document(
        [r["quad"] for r in ordered],
        [(str(r["text"]), float(r["confidence"])) for r in ordered],
        int(ref["width"]),
        int(ref["height"]),
    )
    submitted = float(ref["submitted_at"])
    detect_started = float(ref["detect_started"])
    detect_finished = float(ref["detect_finished"])
    finished = time.time()
    doc.timings = {
        "queue_wait": max(0.0, detect_started - submitted),
        "detect": detect_finished - detect_started,
        "recognize": max(0.0, started - detect_finished) if ordered else 0.0,
        "aggregate": finished - started,
        "total": max(0.0, finished - submitted),
    }
    out = doc.to_dict()
    out["batches"] = summarize_batches(ordered)
    return out
