"""The stall watchdog: no accepted document waits forever, whatever the broker lost.

Late acknowledgement, the Redis visibility timeout and idempotent tasks bring back every
message a worker held when it died. One loss they cannot cover: kombu's Redis transport
pops a message (``BRPOP``) and records it as unacknowledged in a *second* command, so a
message popped in the instant Redis goes down is gone (observed in
``tests/service/test_reliability.py::test_redis_restart_during_a_run``, about one restart in
eight under load). Its document would stay STARTED forever.

The detect worker runs :func:`recover_stalled` every few seconds (one worker at a time, under a
Redis lock). It looks at the documents whose page is still held (``ocr:inflight``, see
:mod:`ocr_tasks.storage`) and, for each one that made no progress (no detection, no crop
recognised: the ``updated`` field of its hash) for ``OCR_STALL_TIMEOUT`` seconds:

- if its result is already stored (SUCCESS/FAILURE), it only drops the leftovers;
- else it sends ``ocr.detect`` again under the same id, up to ``MAX_RECOVERIES`` times: the
  document is detected again and its chord republished, and every crop already recognised
  keeps its first result (:meth:`ocr_tasks.batching.RecognitionBatches.record_many`), so only
  the lost work is redone;
- after that it fails the document with :class:`~ocr_tasks.errors.DocumentStalled`, a
  readable error, and deletes its page.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import states

from .errors import DocumentStalled
from .settings import Settings
from .storage import INFLIGHT_KEY, REDIS_ERRORS, PageStore, doc_key

__all__ = ["recover_stalled", "start_watchdog", "MAX_RECOVERIES", "LOCK_KEY"]

log = logging.getLogger(__name__)

#: Times a stalled document is sent to detection again before it is failed.
MAX_RECOVERIES = 2
#: Redis lock held by the worker that runs a sweep (so several detect workers do not all act).
LOCK_KEY = "ocr:recovery:lock"


def sweep_interval(settings: Settings) -> float:
    """Seconds between two sweeps: a quarter of the stall timeout, at most 30 s."""
    return max(1.0, min(30.0, settings.stall_timeout / 4))


def recover_stalled(app: Any, store: PageStore | None = None, now: float | None = None) -> dict[str, list[str]]:
    """One sweep over the documents in flight; returns the ids it ``resent``, ``failed`` and ``cleaned``."""
    from .celery_app import DETECT
    from .client import document_ref

    settings: Settings = app.settings
    store = store or PageStore(settings)
    client = store.client
    now = time.time() if now is None else now
    done: dict[str, list[str]] = {"resent": [], "failed": [], "cleaned": []}
    if not client.set(LOCK_KEY, "1", nx=True, ex=max(1, int(sweep_interval(settings)))):
        return done  # another worker sweeps now
    candidates = [m.decode() if isinstance(m, bytes) else str(m)
                  for m in client.zrangebyscore(INFLIGHT_KEY, "-inf", now - settings.stall_timeout)]
    for doc_id in candidates:
        fields = {k.decode(): v.decode() for k, v in client.hgetall(doc_key(doc_id)).items()}
        status = app.backend.get_task_meta(doc_id).get("status")
        if not fields or status in states.READY_STATES:
            store.delete_page(doc_id)  # finished (e.g. a failed chord leaves its page) or expired
            done["cleaned"].append(doc_id)
            continue
        updated = float(fields.get("updated") or fields.get("submitted_at") or 0.0)
        if now - updated < settings.stall_timeout:
            continue
        recoveries = int(fields.get("recoveries") or 0)
        if recoveries >= MAX_RECOVERIES:
            error = DocumentStalled(
                f"document {doc_id} made no progress for {settings.stall_timeout} s, even after being "
                f"sent to detection {recoveries} more times (OCR_STALL_TIMEOUT); please submit it again"
            )
            app.backend.mark_as_failure(doc_id, error)
            store.delete_page(doc_id)
            log.error("%s", error)
            done["failed"].append(doc_id)
            continue
        with client.pipeline() as pipe:
            pipe.hincrby(doc_key(doc_id), "recoveries", 1)
            pipe.hdel(doc_key(doc_id), "dispatched")
            pipe.hset(doc_key(doc_id), "updated", repr(now))
            pipe.execute()
        ref = document_ref(doc_id, fields.get("filename", ""), float(fields.get("submitted_at") or now))
        app.send_task(DETECT, args=(ref,), task_id=doc_id, queue=settings.detect_queue)
        log.warning(
            "document %s made no progress for %.0f s (state %s, %s of %s crops); sent to detection again",
            doc_id, now - updated, status, fields.get("done"), fields.get("total"),
        )
        done["resent"].append(doc_id)
    return done


def start_watchdog(app: Any) -> threading.Thread | None:
    """Run :func:`recover_stalled` in a daemon thread every :func:`sweep_interval` seconds."""
    settings: Settings = app.settings
    if settings.stall_timeout <= 0:
        return None
    interval = sweep_interval(settings)

    def loop() -> None:
        store = PageStore(settings)
        while True:
            time.sleep(interval)
            try:
                recover_stalled(app, store)
            except REDIS_ERRORS as exc:
                log.debug("stall watchdog: Redis unreachable (%s)", exc)
            except Exception:  # noqa: BLE001 - the watchdog must outlive any single failure
                log.exception("stall watchdog sweep failed")

    thread = threading.Thread(target=loop, name="ocr-stall-watchdog", daemon=True)
    thread.start()
    log.info("stall watchdog: documents without progress for %d s are resent (every %.0f s)",
             settings.stall_timeout, interval)
    return thread
