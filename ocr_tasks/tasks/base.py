"""Task base class: settings, page store and predictors, each built lazily once per process.

Predictors load on first use inside the process that runs the task: a prefork child, the
solo worker, or a thread pool's process. They are never built in the parent of a forked pool
(nothing touches them there) and never per task. ``OCR_MODELS`` picks the real models
(:mod:`ocr_tasks.models.factory`, which imports torch) or the torch-free stand-ins of
:mod:`ocr_tasks.noop`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Task

from ..noop import EchoRecognizer, FailingRecognizer, GridDetector
from ..settings import Settings
from ..storage import PageStore

__all__ = ["OCRTask", "load_detector", "load_recognizer"]

log = logging.getLogger(__name__)


def load_detector(settings: Settings) -> Any:
    """The detector for ``settings.models`` ("real", "noop" or "noop-failing")."""
    if settings.models in ("noop", "noop-failing"):
        return GridDetector()
    from ..models.factory import detection_predictor

    return detection_predictor(settings=settings)


def load_recognizer(settings: Settings) -> Any:
    """The recognizer for ``settings.models``; "noop-failing" raises on every batch."""
    if settings.models == "noop":
        return EchoRecognizer()
    if settings.models == "noop-failing":
        return FailingRecognizer()
    from ..models.factory import recognition_predictor

    return recognition_predictor(settings=settings)


class OCRTask(Task):
    """Base of the ``ocr.*`` tasks: cached per-process resources as properties."""

    abstract = True
    _lock = threading.Lock()
    _detector: Any = None
    _recognizer: Any = None
    _store: PageStore | None = None

    @property
    def settings(self) -> Settings:
        """The settings the app was built from."""
        return self.app.settings  # type: ignore[attr-defined,no-any-return]

    @property
    def store(self) -> PageStore:
        """The Redis page and progress store."""
        if self._store is None:
            self._store = PageStore(self.settings)
        return self._store

    @property
    def detector(self) -> Any:
        """The detector, loaded on first use in this process."""
        if self._detector is None:
            with self._lock:
                if self._detector is None:
                    log.info("loading detector (OCR_MODELS=%s)", self.settings.models)
                    self._detector = load_detector(self.settings)
        return self._detector

    @property
    def recognizer(self) -> Any:
        """The recognizer, loaded on first use in this process."""
        if self._recognizer is None:
            with self._lock:
                if self._recognizer is None:
                    log.info("loading recognizer (OCR_MODELS=%s)", self.settings.models)
                    self._recognizer = load_recognizer(self.settings)
        return self._recognizer
