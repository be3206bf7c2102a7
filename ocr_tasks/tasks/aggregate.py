"""``ocr.aggregate``: the chord body that turns recognised crops into the document."""

from __future__ import annotations

import time
from typing import Any

from celery import Celery

from .. import monitoring
from ..celery_app import AGGREGATE
from ..errors import RecognitionFailed
from ..workflow import build_document
from .base import OCRTask, requeue_if_redis_is_down

__all__ = ["register", "aggregate"]


def aggregate(self: OCRTask, results: list[dict[str, Any]], ref: dict[str, Any]) -> dict[str, Any]:
    """Build the document (words by box index), then drop the page blob and per-crop results.

    Its return value is the document result stored under the id the client holds.
    """
    with requeue_if_redis_is_down(f"aggregate {ref.get('id')}"):
        return _aggregate(self, results, ref)


def _aggregate(self: OCRTask, results: list[dict[str, Any]], ref: dict[str, Any]) -> dict[str, Any]:
    started = time.time()
    doc_id = str(ref["id"])
    by_index = {int(r["index"]): r for r in reversed(results)}  # one result per box (first wins)
    missing = sorted(set(range(int(ref.get("boxes", 0)))) - set(by_index))
    if missing:
        raise RecognitionFailed(f"document {doc_id}: no result for crop(s) {missing[:10]} of {ref.get('boxes')}")
    document = build_document(ref, [by_index[i] for i in sorted(by_index)], started)
    self.store.delete_page(doc_id)
    self.store.delete_keys(
        self.backend.get_key_for_task(f"{doc_id}.{i}") for i in range(int(ref.get("boxes", 0)))
    )
    monitoring.observe_document(document.get("timings") or {})
    return document


def register(app: Celery) -> Any:
    """Register ``ocr.aggregate`` on ``app``."""
    return app.task(bind=True, base=OCRTask, name=AGGREGATE, shared=False)(aggregate)
