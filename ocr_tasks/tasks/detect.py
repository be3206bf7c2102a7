"""``ocr.detect``: one task per document; becomes the chord that reads it."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery, chord, states
from celery.exceptions import Ignore

from .. import monitoring
from ..celery_app import AGGREGATE, DETECT, RECOGNIZE
from ..errors import InvalidImage, PageMissing
from ..workflow import build_document, crop_payloads, detect_and_crop, read_page
from .base import OCRTask, requeue_if_redis_is_down

__all__ = ["register", "detect", "DetectTask"]

log = logging.getLogger(__name__)


def detect(self: OCRTask, ref: dict[str, Any]) -> Any:
    """Read the page, detect and crop, then replace this task with ``chord(recognize..., aggregate)``.

    The chord body inherits this task's id, so the id the client holds resolves to the
    document. A page without boxes returns its (empty) document at once.
    """
    with requeue_if_redis_is_down(f"detect {ref.get('id')}"):
        return _detect(self, ref)


def _detect(self: OCRTask, ref: dict[str, Any]) -> Any:
    started = time.time()
    doc_id = str(ref["id"])
    if _already_handled(self, doc_id):
        raise Ignore()
    try:
        image = read_page(self.store.get_page(doc_id), self.settings)
    except (InvalidImage, PageMissing):
        self.store.delete_page(doc_id)  # retrying cannot help: fail the document now
        monitoring.count_failure()
        raise
    boxes, crops = detect_and_crop(image, self.detector)
    ref = {**ref, "width": int(image.shape[1]), "height": int(image.shape[0]), "boxes": len(boxes),
           "detect_started": started, "detect_finished": time.time()}
    self.store.set_total(doc_id, len(boxes))
    monitoring.observe_detect(len(boxes))
    if not boxes:
        self.store.delete_page(doc_id)
        document = build_document(ref, [])
        monitoring.observe_document(document["timings"])
        return document
    header = [
        # a short argsrepr: Celery would otherwise saferepr() every crop's bytes per message
        self.app.signature(
            RECOGNIZE, args=(payload,), task_id=f"{doc_id}.{payload['index']}", argsrepr=f"(crop {payload['index']},)"
        )
        for payload in crop_payloads(doc_id, boxes, crops)
    ]
    try:
        return self.replace(chord(header, self.app.signature(AGGREGATE, args=(ref,))))
    except Ignore:  # replace() published the chord: a redelivery of this message must not again
        self.store.mark_dispatched(doc_id)
        raise


class DetectTask(OCRTask):
    """``ocr.detect``'s base: publishes the replacing chord's crop messages in pipelined batches."""

    abstract = True

    def on_replace(self, sig: Any) -> Any:
        """Publish ``sig`` (the chord) through :meth:`OCRCelery.batched_publishing`.

        About 200 crop messages then cost a few Redis round trips instead of one client and
        one round trip each. If the batched publication fails, it is done again message by
        message (with Celery's publish retries); a crop published twice is recorded once.
        """
        if self.request.is_eager or not hasattr(self.app, "batched_publishing"):
            return super().on_replace(sig)
        try:
            with self.app.batched_publishing():
                sig.delay()
        except Exception:  # noqa: BLE001 - fall back to Celery's own publishing
            log.warning("batched publication of %s failed; publishing message by message", self.request.id, exc_info=True)
            sig.delay()
        raise Ignore("Replaced by new task")


def _already_handled(task: OCRTask, doc_id: str) -> bool:
    """True for a redelivered detect message whose document is done or whose chord was published.

    Late acknowledgement means a message comes back when its worker died after the work but
    before the acknowledgement; running it again would fail the document (its page is gone)
    or publish a second chord.
    """
    if task.store.dispatched(doc_id):
        log.warning("document %s: detect delivered again after its chord was published; skipped", doc_id)
        return True
    if task.backend.get_task_meta(doc_id).get("status") in states.READY_STATES:
        log.warning("document %s: detect delivered again after the document finished; skipped", doc_id)
        return True
    return False


def register(app: Celery) -> Any:
    """Register ``ocr.detect`` on ``app``."""
    return app.task(bind=True, base=DetectTask, name=DETECT, shared=False)(detect)
