"""``ocr.detect``: one task per document; becomes the chord that reads it."""

from __future__ import annotations

import time
from typing import Any

from celery import Celery, chord

from ..celery_app import AGGREGATE, DETECT, RECOGNIZE
from ..errors import InvalidImage, PageMissing
from ..workflow import build_document, crop_payloads, detect_and_crop, read_page
from .base import OCRTask

__all__ = ["register", "detect"]


def detect(self: OCRTask, ref: dict[str, Any]) -> Any:
    """Read the page, detect and crop, then replace this task with ``chord(recognize..., aggregate)``.

    The chord body inherits this task's id, so the id the client holds resolves to the
    document. A page without boxes returns its (empty) document at once.
    """
    started = time.time()
    doc_id = str(ref["id"])
    try:
        image = read_page(self.store.get_page(doc_id), self.settings)
    except (InvalidImage, PageMissing):
        self.store.delete_page(doc_id)  # retrying cannot help: fail the document now
        raise
    boxes, crops = detect_and_crop(image, self.detector)
    ref = {**ref, "width": int(image.shape[1]), "height": int(image.shape[0]), "boxes": len(boxes),
           "detect_started": started, "detect_finished": time.time()}
    self.store.set_total(doc_id, len(boxes))
    if not boxes:
        self.store.delete_page(doc_id)
        return build_document(ref, [])
    header = [
        self.app.signature(RECOGNIZE, args=(payload,), task_id=f"{doc_id}.{payload['index']}")
        for payload in crop_payloads(doc_id, boxes, crops)
    ]
    return self.replace(chord(header, self.app.signature(AGGREGATE, args=(ref,))))


def register(app: Celery) -> Any:
    """Register ``ocr.detect`` on ``app``."""
    return app.task(bind=True, base=OCRTask, name=DETECT, shared=False)(detect)
