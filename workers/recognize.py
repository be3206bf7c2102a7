"""Recognize worker (the GPU worker): runs the batched ``ocr.recognize`` crop task.

Run it as (the ``recognize`` line of the Procfile)::

    celery -A workers.recognize worker -Q recognize --pool solo -E -n recognize@%h

One process owns the GPU: ``--pool solo`` (or ``--pool threads --concurrency 1``). A batch
only fills from prefetched messages, so this module raises the prefetch multiplier to twice
the batch cap (prefetch = multiplier x concurrency >= ``OCR_BATCH_SIZE``). The recognizer is
loaded (and warmed with one dummy crop) when the worker is ready, before it takes messages.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from celery.signals import worker_ready

from ocr_tasks.celery_app import RECOGNIZE, batch_cap, get_app

__all__ = ["app", "prefetch_multiplier"]

log = logging.getLogger(__name__)

#: Pools that run tasks in the worker's own process, where warming the model is safe.
_IN_PROCESS_POOLS = ("celery.concurrency.solo", "celery.concurrency.thread")


def prefetch_multiplier(cap: int) -> int:
    """Messages to prefetch per pool slot: two batches, so the next fills while one runs."""
    return max(1, 2 * cap)


app = get_app()
app.conf.worker_prefetch_multiplier = prefetch_multiplier(batch_cap(app.settings))


@worker_ready.connect(weak=False)
def _warm(sender: Any = None, **kwargs: Any) -> None:
    settings = app.settings
    pool = type(getattr(sender, "pool", None)).__module__
    log.info(
        "ocr recognize worker: queue=%s models=%s batch cap=%d timeout=%.3fs prefetch multiplier=%d pool=%s",
        settings.recognize_queue, settings.models, batch_cap(settings), settings.batch_timeout,
        app.conf.worker_prefetch_multiplier, pool,
    )
    if pool not in _IN_PROCESS_POOLS:
        log.warning("pool %s forks: the recognizer will load lazily in each child; use --pool solo", pool)
        return
    task = app.tasks[RECOGNIZE]
    t0 = time.perf_counter()
    recognizer = task.recognizer
    if settings.models == "real":
        recognizer.predict([np.full((32, 100), 255, dtype=np.uint8)])
    log.info("recognizer ready in %.2f s", time.perf_counter() - t0)
