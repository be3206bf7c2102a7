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
    """The configured detector (``OCR_MODELS``, as in the workers), loaded on first call and
    cached by the model factory."""
    from ocr_tasks.predictors import load_detector

    return load_detector(get_settings())


def recognizer() -> Any:
    """The configured recognizer (``OCR_MODELS``, as in the workers), loaded on first call and
    cached by the model factory."""
    from ocr_tasks.predictors import load_recognizer

    return load_recognizer(get_settings())


@contextmanager
def inference_slot() -> Iterator[None]:
    """Hold one of the ``INFERENCE_SLOTS`` while running a model in this process."""
    slots: threading.BoundedSemaphore = _state()["slots"]
    with slots:
        yield
