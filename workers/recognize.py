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

from ocr_tasks import monitoring
from ocr_tasks.autobatch import CANDIDATES
from ocr_tasks.celery_app import RECOGNIZE, batch_cap, get_app
from ocr_tasks.result_backend import use_worker_backend

__all__ = ["app", "prefetch_multiplier"]

log = logging.getLogger(__name__)

#: Pools that run tasks in the worker's own process, where warming the model is safe.
_IN_PROCESS_POOLS = ("celery.concurrency.solo", "celery.concurrency.thread")


def prefetch_multiplier(cap: int) -> int:
    """Messages to prefetch per pool slot: two batches, so the next fills while one runs."""
    return max(1, 2 * cap)


def is_auto(settings: Any) -> bool:
    """``OCR_BATCH_SIZE=auto``: the cap is measured on this device when the worker is ready."""
    return str(settings.batch_size).strip().lower() in ("", "auto")


app = get_app()
use_worker_backend(app)  # no result-channel subscriptions (ocr_tasks/result_backend.py)
# with "auto" the cap is only known once measured: prefetch enough for the largest candidate
app.conf.worker_prefetch_multiplier = prefetch_multiplier(
    max(CANDIDATES) if is_auto(app.settings) else batch_cap(app.settings)
)
#: Prometheus endpoint (OCR_RECOGNIZE_METRICS_PORT or OCR_METRICS_PORT; docs/monitoring.md).
metrics_port = monitoring.setup_worker("recognize", app.settings)


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
    if is_auto(settings):
        _auto_batch_size(task, recognizer, settings)


def _auto_batch_size(task: Any, recognizer: Any, settings: Any) -> None:
    """``OCR_BATCH_SIZE=auto``: time the recognizer at growing batch sizes and set the cap."""
    if settings.models != "real":
        log.info("OCR_BATCH_SIZE=auto: %s models have nothing to measure; batch cap %d", settings.models, task.flush_every)
        return
    from ocr_tasks.autobatch import choose_batch_size

    t0 = time.perf_counter()
    choice = choose_batch_size(recognizer, default=int(task.flush_every))
    task.flush_every = choice.size
    log.info(
        "OCR_BATCH_SIZE=auto: batch cap %d on %s (%s; measured in %.1f s: %s)",
        choice.size, getattr(recognizer, "device", "?"), choice.reason, time.perf_counter() - t0,
        ", ".join(f"{m['size']}: {m['crops_per_s']:.0f}/s" for m in choice.measurements),
    )
