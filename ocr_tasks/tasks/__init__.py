"""The service's Celery tasks: ``ocr.detect``, ``ocr.recognize`` (batched), ``ocr.aggregate``.

Tasks are registered on an explicit app by :func:`register_tasks` (called by
:func:`ocr_tasks.celery_app.create_celery`), never on a global one, and not as "shared"
tasks: each app keeps the options (batch cap, timeout) of its own settings.
"""

from __future__ import annotations

from celery import Celery

__all__ = ["register_tasks"]


def register_tasks(app: Celery) -> None:
    """Register the three ``ocr.*`` tasks on ``app``."""
    from . import aggregate, detect, recognize

    detect.register(app)
    recognize.register(app)
    aggregate.register(app)
