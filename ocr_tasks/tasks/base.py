"""Task base class: settings, page store and predictors, each built lazily once per process.

Predictors load on first use inside the process that runs the task: a prefork child, the
solo worker, or a thread pool's process. They are never built in the parent of a forked pool
(nothing touches them there) and never per task. ``OCR_MODELS`` picks them
(:mod:`ocr_tasks.predictors`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Task
from celery.exceptions import Reject
from celery.worker.request import Request
from kombu.exceptions import OperationalError

from ..predictors import load_detector, load_recognizer
from ..settings import Settings
from ..storage import REDIS_ERRORS, PageStore

__all__ = ["OCRTask", "load_detector", "load_recognizer", "requeue_if_redis_is_down"]

log = logging.getLogger(__name__)


@contextmanager
def requeue_if_redis_is_down(what: str, pause: float = 1.0) -> Iterator[None]:
    """Turn a lost Redis connection inside a task into a requeue instead of a failed document.

    The message is rejected with ``requeue=True``: RabbitMQ hands it out again (after
    ``pause`` seconds, so an outage does not spin the worker); with the Redis broker down the
    rejection cannot reach it either, the message stays unacknowledged and comes back after
    ``OCR_VISIBILITY_TIMEOUT``. The task's work is idempotent, so running it again is safe.
    """
    try:
        yield
    except (*REDIS_ERRORS, OperationalError) as exc:
        log.warning("%s: Redis is unreachable (%s); the message goes back to the queue", what, exc)
        time.sleep(pause)
        raise Reject(f"Redis unreachable: {exc}", requeue=True) from exc


class OCRRequest(Request):
    """A task request that goes back to the queue, instead of failing its document, when the
    task could not run or report because Redis was unreachable.

    Celery stores the ``STARTED`` state before the task body and the result after it; when
    Redis is down either raises outside the body, and Celery would record that connection
    error as the document's failure once Redis is back. The message is requeued instead
    (rejected with ``requeue=True``; with the Redis broker down it simply stays
    unacknowledged and comes back after ``OCR_VISIBILITY_TIMEOUT``).
    """

    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False) -> None:
        exc = getattr(exc_info, "exception", None)
        if isinstance(exc, (*REDIS_ERRORS, OperationalError)):
            log.warning("task %s[%s]: Redis is unreachable (%s); requeued", self.name, self.id, exc)
            self.reject(requeue=True)
            return
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)


class OCRTask(Task):
    """Base of the ``ocr.*`` tasks: cached per-process resources as properties."""

    abstract = True
    Request = OCRRequest
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
