"""``ocr.recognize``: the batched crop task. One recognizer call per flush."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from celery import Celery

from ..batching import BatchRequest, RecognitionBatches
from ..celery_app import RECOGNIZE, batch_cap
from ..errors import RecognitionFailed
from ..storage import REDIS_ERRORS
from ..workflow import crop_from_payload, recognized_value
from .base import OCRTask

__all__ = ["RecognizeTask", "register", "recognize_batch"]

log = logging.getLogger(__name__)


class RecognizeTask(RecognitionBatches, OCRTask):
    """Batched task with a lazily loaded recognizer."""

    abstract = True

    def record(self, request: BatchRequest, value: Any = None, exc: BaseException | None = None) -> bool:
        """Complete or fail one request; False when the backend cannot be reached (requeue it)."""
        try:
            if exc is None:
                self.complete(request, value)
            else:
                self.fail(request, exc)
        except REDIS_ERRORS:
            log.error("cannot record crop %s; it will be requeued", request.id, exc_info=True)
            return False
        return True


def _predict(task: RecognizeTask, crops: list[Any]) -> list[tuple[str, float]]:
    results = task.recognizer.predict(crops)
    if len(results) != len(crops):
        raise RecognitionFailed(f"the recognizer returned {len(results)} results for {len(crops)} crops")
    return list(results)


def _decode_all(task: RecognizeTask, requests: list[BatchRequest]) -> tuple[list[tuple[BatchRequest, Any]], list[str]]:
    """Crops of the well-formed requests; each malformed one is failed on its own."""
    valid: list[tuple[BatchRequest, Any]] = []
    recorded: list[str] = []
    for req in requests:
        try:
            valid.append((req, crop_from_payload(req.args[0])))
        except (ValueError, IndexError, TypeError) as exc:
            if task.record(req, exc=ValueError(f"crop {req.id}: {exc}")):
                recorded.append(req.id)
    return valid, recorded


def _fail_all(task: RecognizeTask, valid: list[tuple[BatchRequest, Any]], exc: Exception) -> list[str]:
    log.error("recognizer failed on a batch of %d crops", len(valid), exc_info=exc)
    failure = RecognitionFailed(f"recognizer failed on a batch of {len(valid)} crops: {type(exc).__name__}: {exc}")
    return [req.id for req, _ in valid if task.record(req, exc=failure)]


def _complete_all(
    task: RecognizeTask, valid: list[tuple[BatchRequest, Any]], texts: list[tuple[str, float]], seconds: float
) -> list[str]:
    items = [
        (req, recognized_value(req.args[0], text, conf, {**req.batch, "seconds": seconds}))
        for (req, _), (text, conf) in zip(valid, texts)
    ]
    try:
        task.complete_many(items)
    except REDIS_ERRORS:
        log.error("cannot record %d crops; they will be requeued", len(items), exc_info=True)
        return []
    try:
        task.store.add_done(Counter(str(req.args[0]["doc"]) for req, _ in items))
    except REDIS_ERRORS:
        log.warning("cannot update the progress of %d crops", len(items), exc_info=True)
    return [req.id for req, _ in items]


def recognize_batch(self: RecognizeTask, requests: list[BatchRequest]) -> list[str]:
    """Recognise every crop of the flush in one call and record one result per request.

    A malformed payload fails only its own request; a recognizer error fails every request
    of the batch with :class:`RecognitionFailed` (each chord then fails its document).

    Returns:
        Ids of the requests recorded in the result backend (the others are requeued).
    """
    valid, recorded = _decode_all(self, requests)
    t0 = time.perf_counter()
    try:
        texts = _predict(self, [crop for _, crop in valid]) if valid else []
    except Exception as exc:  # noqa: BLE001 - any recognizer error must fail the requests, not lose them
        return recorded + _fail_all(self, valid, exc)
    seconds = time.perf_counter() - t0
    recorded += _complete_all(self, valid, texts, seconds)
    batch = requests[0].batch if requests else {}
    log.info("batch %s: %d crops (%s) in %.3f s", batch.get("id"), len(requests), batch.get("cause"), seconds)
    return recorded


def register(app: Celery) -> Any:
    """Register ``ocr.recognize`` on ``app`` with the configured batch cap and timeout."""
    settings = app.settings  # type: ignore[attr-defined]
    return app.task(
        bind=True,
        base=RecognizeTask,
        name=RECOGNIZE,
        shared=False,
        flush_every=batch_cap(settings),
        flush_interval=settings.batch_timeout,
    )(recognize_batch)
