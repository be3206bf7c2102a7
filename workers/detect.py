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

from ocr_tasks.celery_app import get_app

__all__ = ["app"]

log = logging.getLogger(__name__)

app = get_app()


@worker_ready.connect(weak=False)
def _log_config(sender: Any = None, **kwargs: Any) -> None:
    settings = app.settings
    log.info(
        "ocr detect worker: queues=%s,%s models=%s detector=%s device=%s (predictors load lazily per process)",
        settings.detect_queue, settings.aggregate_queue, settings.models, settings.detector, settings.device,
    )
