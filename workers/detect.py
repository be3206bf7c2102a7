"""Detect worker (CPU, or a GPU for the real CRAFT): runs ``ocr.detect`` and ``ocr.aggregate``.

Run it as (the ``detect`` line of the Procfile)::

    celery -A workers.detect worker -Q detect,aggregate --pool prefork --concurrency 2 \
        --prefetch-multiplier 1 -E -n detect@%h

Each pool process loads the detector on its first document (never the parent process).
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready

from ocr_tasks import monitoring
from ocr_tasks.celery_app import get_app
from ocr_tasks.result_backend import use_worker_backend

__all__ = ["app"]

log = logging.getLogger(__name__)

app = get_app()
use_worker_backend(app)  # no result-channel subscriptions per crop (ocr_tasks/result_backend.py)
#: Prometheus endpoint (OCR_DETECT_METRICS_PORT or OCR_METRICS_PORT; docs/monitoring.md).
metrics_port = monitoring.setup_worker("detect", app.settings)


@worker_ready.connect(weak=False)
def _start_watchdog(sender: Any = None, **kwargs: Any) -> None:
    # documents without progress for OCR_STALL_TIMEOUT s are resent, then failed (ocr_tasks/recovery.py)
    from ocr_tasks.recovery import start_watchdog

    start_watchdog(app)


@worker_ready.connect(weak=False)
def _log_config(sender: Any = None, **kwargs: Any) -> None:
    settings = app.settings
    log.info(
        "ocr detect worker: queues=%s,%s models=%s detector=%s device=%s (predictors load lazily per process)",
        settings.detect_queue, settings.aggregate_queue, settings.models, settings.detector, settings.device,
    )
