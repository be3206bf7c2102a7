"""The Celery application: configuration from :class:`~ocr_tasks.settings.Settings`, task names, routes.

``celery -A ocr_tasks.celery_app ...`` (Flower, ``inspect``) and the worker modules in
``workers/`` use the module-level :data:`app`, built from the ``OCR_*`` environment variables.
The web app's :class:`~ocr_tasks.client.OCRClient` builds its own app with
``create_celery(settings, tasks=False)``: it sends tasks by name and never imports task code.

Importing this module loads Celery and kombu but never torch; models load lazily inside the
worker process that first needs them (:mod:`ocr_tasks.tasks.base`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery
from celery.utils.objects import FallbackContext

from .noop import NOOP_MODES
from .settings import Settings, get_settings

__all__ = [
    "OCRCelery",
    "create_celery",
    "celery_config",
    "batch_cap",
    "restore_interval",
    "get_app",
    "DETECT",
    "RECOGNIZE",
    "AGGREGATE",
    "DEFAULT_BATCH_SIZE",
]

#: Stable task names: routing and ``send_task`` never depend on module paths.
DETECT = "ocr.detect"
RECOGNIZE = "ocr.recognize"
AGGREGATE = "ocr.aggregate"

#: Batch cap used for ``OCR_BATCH_SIZE=auto``.
DEFAULT_BATCH_SIZE = 350

_MODEL_MODES = ("real", *NOOP_MODES)


class OCRCelery(Celery):
    """A Celery app that carries the service :class:`Settings` it was built from.

    It can also publish many messages in a few Redis round trips (:meth:`batched_publishing`).
    """

    settings: Settings
    _publishing = threading.local()

    @contextmanager
    def batched_publishing(self, max_size: int = 1000) -> Iterator[Any]:
        """Every message this thread publishes inside the block goes out in pipelined batches.

        kombu's ``Producer.batch`` buffers the publishes of one producer (Redis: one pipeline
        per ``max_size`` commands instead of a client and a round trip per message); Celery's
        ``group``/``chord`` acquire their producer through :meth:`producer_or_acquire`, which
        hands out this producer while the block runs. Messages are sent when the block exits
        normally and dropped when it raises (kombu's semantics), so callers publish again
        unbatched on failure. Transports without batching publish at once.
        """
        with self.producer_pool.acquire(block=True) as producer:
            with producer.batch(max_size):
                self._publishing.current = (self, producer)
                try:
                    yield producer
                finally:
                    self._publishing.current = None

    def producer_or_acquire(self, producer: Any = None) -> Any:
        """Celery's, but inside :meth:`batched_publishing` the batching producer of this thread."""
        if producer is None:
            current = getattr(self._publishing, "current", None)
            if current is not None and current[0] is self:
                return FallbackContext(current[1], None)
        return super().producer_or_acquire(producer)


def batch_cap(settings: Settings) -> int:
    """The recognition batch cap from ``OCR_BATCH_SIZE`` ("auto" -> :data:`DEFAULT_BATCH_SIZE`).

    Raises:
        ValueError: not a positive integer (or "auto").
    """
    raw = str(settings.batch_size).strip().lower()
    if raw in ("", "auto"):
        return DEFAULT_BATCH_SIZE
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValueError(f"OCR_BATCH_SIZE={settings.batch_size!r} is not an integer or 'auto'") from exc
    if value < 1:
        raise ValueError(f"OCR_BATCH_SIZE={value} must be at least 1")
    return value


def restore_interval(settings: Settings) -> int:
    """Seconds between two sweeps for abandoned (unacknowledged, timed-out) Redis messages."""
    return max(1, min(10, settings.visibility_timeout // 4))


def _check(settings: Settings) -> None:
    if settings.models not in _MODEL_MODES:
        raise ValueError(f"OCR_MODELS={settings.models!r}: expected one of {', '.join(_MODEL_MODES)}")
    if settings.batch_timeout <= 0:
        raise ValueError(f"OCR_BATCH_TIMEOUT={settings.batch_timeout} must be positive (seconds)")
    if settings.visibility_timeout < 1:
        raise ValueError(f"OCR_VISIBILITY_TIMEOUT={settings.visibility_timeout} must be at least 1 (seconds)")
    if settings.max_backlog < 0 or settings.worker_max_memory_kb < 0:
        raise ValueError("OCR_MAX_BACKLOG and OCR_WORKER_MAX_MEMORY_KB must be 0 (no limit) or positive")
    if settings.recognize_queue in (settings.detect_queue, settings.aggregate_queue):
        raise ValueError("OCR_RECOGNIZE_QUEUE must differ from OCR_DETECT_QUEUE and OCR_AGGREGATE_QUEUE")
    batch_cap(settings)


def celery_config(settings: Settings) -> dict[str, Any]:
    """Lowercase Celery settings derived from ``settings``.

    Messages are msgpack (crops travel as raw bytes), JSON is also accepted, pickle never.
    The chord body (``ocr.aggregate``) has its own queue, consumed by the detect worker.
    """
    return {
        "broker_url": settings.broker,
        "result_backend": settings.backend,
        "task_serializer": "msgpack",
        "result_serializer": "msgpack",
        "accept_content": ["msgpack", "json"],
        "result_accept_content": ["msgpack", "json"],
        "event_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_track_started": True,
        "worker_send_task_events": True,
        # No "task-sent" events: each document publishes ~200 crop tasks and the sent events
        # would double that (Flower still sees received/started/succeeded from the workers).
        "task_send_sent_event": False,
        "result_expires": settings.result_ttl,
        "task_default_queue": settings.detect_queue,
        "task_routes": {
            DETECT: {"queue": settings.detect_queue},
            AGGREGATE: {"queue": settings.aggregate_queue},
            RECOGNIZE: {"queue": settings.recognize_queue},
        },
        # One document at a time per detect process; the recognize worker raises this so a
        # batch can fill (workers/recognize.py).
        "worker_prefetch_multiplier": 1,
        "broker_connection_retry_on_startup": True,
        # Not True: on a lost Redis connection Celery would cancel the running late-ack tasks and
        # record them as retried in the result backend, which is the same unreachable Redis, and
        # the worker dies of that error ("Unrecoverable error"; tests/service/test_reliability.py).
        # A running task finishes instead; its message, never acknowledged, is delivered again
        # after the visibility timeout and the repeated work is idempotent (docs/reliability.md).
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # Redis broker: a delivered message unacknowledged for visibility_timeout seconds (its
        # worker died) goes back to its queue; every worker sweeps for such messages every
        # restore_interval seconds (kombu's default would be 10 x 10 s). RabbitMQ requeues the
        # unacknowledged messages of a lost connection at once and ignores these options.
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout,
            "unacked_restore_interval": restore_interval(settings),
            "unacked_restore_throttle": 1,
        },
        # A detect pool process that grew past this (KiB) after a task is replaced (0 = off).
        "worker_max_memory_per_child": settings.worker_max_memory_kb or None,
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 1,
        },
        "redis_socket_connect_timeout": 5,
        "redis_socket_timeout": 30,
    }


def create_celery(settings: Settings | None = None, *, tasks: bool = True) -> OCRCelery:
    """Build the Celery app.

    Args:
        settings: service settings; by default read from the ``OCR_*`` environment variables.
        tasks: register the ``ocr.*`` tasks (workers, Flower). The web client passes False:
            it only sends tasks by name and reads results.

    Returns:
        The configured app, with ``app.settings`` set.

    Raises:
        ValueError: a setting is invalid (unknown ``OCR_MODELS``, bad batch size, ...).

    >>> app = create_celery(Settings(models="noop"))
    """
    settings = settings or get_settings()
    _check(settings)
    app = OCRCelery("ocr_tasks", set_as_current=tasks)
    app.settings = settings
    app.conf.update(celery_config(settings))
    if tasks:
        from .tasks import register_tasks

        register_tasks(app)
    return app


_app: OCRCelery | None = None


def get_app() -> OCRCelery:
    """The process-wide app, built from the environment on first use."""
    global _app
    if _app is None:
        _app = create_celery()
    return _app


def __getattr__(name: str) -> Any:
    # ``app`` is built on first access, not at import: ``celery -A ocr_tasks.celery_app`` and
    # ``from ocr_tasks.celery_app import app`` get it, while the web client importing
    # ``create_celery`` builds no task-registering app.
    if name == "app":
        return get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
