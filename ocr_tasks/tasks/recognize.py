"""``ocr.recognize``: the batched crop task. One recognizer call per flush."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from celery import Celery, states

from .. import monitoring
from ..batching import BatchRequest, RecognitionBatches
from ..celery_app import RECOGNIZE, batch_cap
from ..errors import RecognitionFailed
from ..storage import REDIS_ERRORS
from ..workflow import crop_from_payload, recognized_value
from .base import OCRTask

__all__ = ["RecognizeTask", "register", "recognize_batch", "predict_splitting", "is_out_of_memory"]

log = logging.getLogger(__name__)


class RecognizeTask(RecognitionBatches, OCRTask):
    """Batched task with a lazily loaded recognizer."""

    abstract = True

    @property
    def request_result_ttl(self) -> int:  # type: ignore[override]
        """Per-crop results live ``OCR_CROP_RESULT_TTL`` seconds (deleted at assembly anyway)."""
        return int(self.settings.crop_result_ttl)

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


def is_out_of_memory(exc: BaseException) -> bool:
    """True for ``torch.cuda.OutOfMemoryError``, MemoryError and RuntimeErrors that say "out of memory"."""
    return type(exc).__name__ == "OutOfMemoryError" or isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()
    )


def _free_accelerator_memory() -> None:
    import sys

    torch = sys.modules.get("torch")  # never imported here just for this
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def predict_splitting(recognizer: Any, crops: list[Any]) -> list[tuple[str, float]]:
    """``recognizer.predict(crops)``; on an out-of-memory error, retry in two halves, recursively.

    A batch that does not fit is split until it does (down to single crops); any other error,
    or an out-of-memory error on a single crop, propagates and fails the batch.
    """
    try:
        results = list(recognizer.predict(crops))
    except Exception as exc:
        if len(crops) < 2 or not is_out_of_memory(exc):
            raise
        half = len(crops) // 2
        log.warning("recognizer out of memory on %d crops; retrying as %d + %d", len(crops), half, len(crops) - half)
        _free_accelerator_memory()
        return predict_splitting(recognizer, crops[:half]) + predict_splitting(recognizer, crops[half:])
    if len(results) != len(crops):
        raise RecognitionFailed(f"the recognizer returned {len(results)} results for {len(crops)} crops")
    return results


def _predict(task: RecognizeTask, crops: list[Any]) -> list[tuple[str, float]]:
    return predict_splitting(task.recognizer, crops)


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
    try:
        task.record_many([(req, states.FAILURE, failure) for req, _ in valid])
    except REDIS_ERRORS:
        log.error("cannot record the failure of %d crops; they will be requeued", len(valid), exc_info=True)
        return []
    return [req.id for req, _ in valid]


def _complete_all(
    task: RecognizeTask, valid: list[tuple[BatchRequest, Any]], texts: list[tuple[str, float]], seconds: float
) -> list[str]:
    items = [
        (req, recognized_value(req.args[0], text, conf, {**req.batch, "seconds": seconds}))
        for (req, _), (text, conf) in zip(valid, texts)
    ]
    try:
        fresh = task.complete_many(items)
    except REDIS_ERRORS:
        log.error("cannot record %d crops; they will be requeued", len(items), exc_info=True)
        return []
    try:  # a redelivered crop (recorded before) is not counted twice
        first = {req.id: str(req.args[0]["doc"]) for req, _ in items if req.id in fresh}
        task.store.add_done(Counter(first.values()))
    except REDIS_ERRORS:
        log.warning("cannot update the progress of %d crops", len(items), exc_info=True)
    return [req.id for req, _ in items]


def _retry_by_document(
    task: RecognizeTask, valid: list[tuple[BatchRequest, Any]], exc: Exception, t0: float
) -> list[str]:
    """After a failed batch: fail it if it is one document's, else run each document alone."""
    by_doc: dict[str, list[tuple[BatchRequest, Any]]] = {}
    for item in valid:
        by_doc.setdefault(str(item[0].args[0]["doc"]), []).append(item)
    if len(by_doc) < 2:
        return _fail_all(task, valid, exc)
    log.warning("recognizer failed on a batch of %d documents (%s); retrying each document alone", len(by_doc), exc)
    recorded: list[str] = []
    for items in by_doc.values():
        try:
            texts = _predict(task, [crop for _, crop in items])
        except Exception as doc_exc:  # noqa: BLE001 - as in recognize_batch
            recorded += _fail_all(task, items, doc_exc)
        else:
            recorded += _complete_all(task, items, texts, time.perf_counter() - t0)
    return recorded


def recognize_batch(self: RecognizeTask, requests: list[BatchRequest]) -> list[str]:
    """Recognise every crop of the flush in one call and record one result per request.

    A malformed payload fails only its own request. An out-of-memory error is retried in
    smaller batches (:func:`predict_splitting`). Any other recognizer error in a batch that
    holds crops of several documents is retried document by document, so only the documents
    whose crops make the recognizer fail are failed: each of their requests is recorded as
    :class:`RecognitionFailed` (each chord then fails its document with a readable error).

    Returns:
        Ids of the requests recorded in the result backend (the others are requeued).
    """
    valid, recorded = _decode_all(self, requests)
    t0 = time.perf_counter()
    try:
        texts = _predict(self, [crop for _, crop in valid]) if valid else []
    except Exception as exc:  # noqa: BLE001 - any recognizer error must fail the requests, not lose them
        return recorded + _retry_by_document(self, valid, exc, t0)
    seconds = time.perf_counter() - t0
    recorded += _complete_all(self, valid, texts, seconds)
    batch = requests[0].batch if requests else {}
    monitoring.observe_batch(len(requests), str(batch.get("cause", "")), seconds)
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
