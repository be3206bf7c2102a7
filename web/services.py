"""Per-app services, each created on first use: settings, the task client, the in-process models.

Nothing here imports torch or Celery at import time. The models are imported and loaded the
first time /ocr, /detection or /recognition needs them (once per process: the model factory
caches them), and ``ocr_tasks.client`` is imported the first time the task queue is used.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Protocol

from flask import Flask, current_app

from ocr_tasks.settings import Settings

__all__ = [
    "TaskClient",
    "init_services",
    "get_settings",
    "get_client",
    "detector",
    "recognizer",
    "inference_slot",
]

_EXT = "ocr_web"


class TaskClient(Protocol):
    """What the web app needs from ``ocr_tasks.client.OCRClient``."""

    def submit(self, data: bytes, filename: str) -> str: ...

    def status(self, task_id: str) -> dict[str, Any] | None: ...

    def ping(self) -> None: ...


def _build_settings(value: Any) -> Settings:
    if isinstance(value, Settings):
        return value
    base = Settings.from_env()
    if value is None:
        return base
    if isinstance(value, Mapping):
        return replace(base, **dict(value))
    raise TypeError(
        f"OCR_SETTINGS must be a Settings, a mapping of overrides or None, not {type(value).__name__}"
    )


def init_services(app: Flask) -> None:
    """Resolve the settings now (a bad ``OCR_*`` value fails at start-up) and set up the caches."""
    app.extensions[_EXT] = {
        "settings": _build_settings(app.config.get("OCR_SETTINGS")),
        "client": app.config.get("OCR_CLIENT"),
        "lock": threading.Lock(),
        "slots": threading.BoundedSemaphore(max(1, int(app.config.get("INFERENCE_SLOTS", 1)))),
    }


def _state() -> dict[str, Any]:
    return current_app.extensions[_EXT]  # type: ignore[no-any-return]


def get_settings() -> Settings:
    """The ``ocr_tasks`` settings this app runs with."""
    return _state()["settings"]  # type: ignore[no-any-return]


def get_client() -> TaskClient:
    """The task client: the injected ``OCR_CLIENT`` or an ``OCRClient`` built on first use."""
    state = _state()
    client = state["client"]
    if client is None:
        with state["lock"]:
            if state["client"] is None:
                from ocr_tasks.client import OCRClient

                state["client"] = OCRClient(get_settings())
            client = state["client"]
    return client  # type: ignore[no-any-return]


def detector() -> Any:
    """The configured detector, loaded on first call and cached by the model factory.

    ``OCR_MODELS=noop``/``noop-failing`` gives the torch-free grid stand-in, as in the workers.
    """
    settings = get_settings()
    if settings.models in ("noop", "noop-failing"):
        from ocr_tasks.noop import GridDetector

        return GridDetector()
    from ocr_tasks.models.factory import detection_predictor

    return detection_predictor(settings=settings)


def recognizer() -> Any:
    """The configured recognizer, loaded on first call and cached by the model factory.

    ``OCR_MODELS=noop`` gives the torch-free echo stand-in, ``noop-failing`` one that raises.
    """
    settings = get_settings()
    if settings.models == "noop":
        from ocr_tasks.noop import EchoRecognizer

        return EchoRecognizer()
    if settings.models == "noop-failing":
        from ocr_tasks.noop import FailingRecognizer

        return FailingRecognizer()
    from ocr_tasks.models.factory import recognition_predictor

    return recognition_predictor(settings=settings)


@contextmanager
def inference_slot() -> Iterator[None]:
    """Hold one of the ``INFERENCE_SLOTS`` while running a model in this process."""
    slots: threading.BoundedSemaphore = _state()["slots"]
    with slots:
        yield
