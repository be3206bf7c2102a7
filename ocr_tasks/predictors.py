"""The configured detector and recognizer, for any process that runs them (workers, web app).

``OCR_MODELS`` picks the real models (:mod:`ocr_tasks.models.factory`, which imports torch and
caches each loaded model per process) or the torch-free stand-ins of :mod:`ocr_tasks.noop`
("noop": a grid detector and an echoing recognizer; "noop-failing": a recognizer that raises
on every batch). Nothing here imports torch until a real model is asked for.
"""

from __future__ import annotations

from typing import Any

from .noop import EchoRecognizer, FailingRecognizer, GridDetector
from .settings import Settings

__all__ = ["load_detector", "load_recognizer"]


def load_detector(settings: Settings) -> Any:
    """The detector for ``settings.models`` ("real", "noop" or "noop-failing")."""
    if settings.models in ("noop", "noop-failing"):
        return GridDetector()
    from .models.factory import detection_predictor

    return detection_predictor(settings=settings)


def load_recognizer(settings: Settings) -> Any:
    """The recognizer for ``settings.models``; "noop-failing" raises on every batch."""
    if settings.models == "noop":
        return EchoRecognizer()
    if settings.models == "noop-failing":
        return FailingRecognizer()
    from .models.factory import recognition_predictor

    return recognition_predictor(settings=settings)
