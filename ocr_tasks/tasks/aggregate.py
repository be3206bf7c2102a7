"""``ocr.aggregate``: the chord body that turns recognised crops into the document."""

from __future__ import annotations

import time
from typing import Any

from celery import Celery

from ..celery_app import AGGREGATE
from ..workflow import build_document
from .base import OCRTask

__all__ = ["register", "aggregate"]


def aggregate(self: OCRTask, results: list[dict[str, Any]], ref: dict[str, Any]) -> dict[str, Any]:
    """Build the document (words by box index), then drop the page blob and per-crop results.

    Its return value is the document result stored under the id the client holds.
    """
    started = time.time()
    doc_id = str(ref["id"])
    document = build_document(ref, results, started)
    self.store.delete_page(doc_id)
    self.store.delete_keys(
        self.backend.get_key_for_task(f"{doc_id}.{i}") for i in range(int(ref.get("boxes", 0)))
    )
    return document


def register(app: Celery) -> Any:
    """Register ``ocr.aggregate`` on ``app``."""
    return app.task(bind=True, base=OCRTask, name=AGGREGATE, shared=False)(aggregate)
