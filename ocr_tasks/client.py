"""What the web app uses to talk to the service: submit a page, poll a document, check health.

No torch and no task code is imported here: tasks are sent by name (``ocr.detect``) and
results are read from the result backend.

>>> client = OCRClient()                                  # settings from OCR_* variables
>>> doc_id = client.submit(png_bytes, "page.png")         # doctest: +SKIP
>>> client.status(doc_id)                                 # doctest: +SKIP
{'id': ..., 'state': 'STARTED', 'progress': {'done': 120, 'total': 200}, 'result': None, 'error': None}
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from celery import states
from celery.exceptions import ChordError
from kombu.exceptions import OperationalError

from .celery_app import DETECT, create_celery
from .errors import ImageTooLarge, InvalidImage, Overloaded, ServiceUnavailable, UnsupportedFormat
from .imaging import sniff_unsupported
from .settings import Settings, get_settings
from .storage import REDIS_ERRORS, PageStore, redact_url

__all__ = ["OCRClient", "STATES", "public_state", "document_ref"]

log = logging.getLogger(__name__)

#: The states :meth:`OCRClient.status` reports.
STATES = ("PENDING", "STARTED", "SUCCESS", "FAILURE")

_STARTED = frozenset({states.STARTED, states.RETRY, states.RECEIVED, "PROGRESS"})
_FAILED = frozenset({states.FAILURE, states.REVOKED, states.REJECTED, "IGNORED"})
_ID = re.compile(r"^[0-9a-fA-F-]{8,64}$")
_DEPENDENCY = re.compile(r"^Dependency (\S+) raised (.*)$", re.S)


def _priority_lists(queue: str) -> list[str]:
    """The Redis lists kombu keeps a queue in (one per priority step; no suffix for priority 0)."""
    return [queue] + [f"{queue}\x06\x16{step}" for step in (3, 6, 9)]


def _amqp_errors() -> tuple[type[Exception], ...]:
    try:
        from amqp.exceptions import AMQPError

        return (AMQPError, OSError)
    except ImportError:  # pragma: no cover - amqp comes with kombu
        return (OSError,)


def document_ref(doc_id: str, filename: str, submitted_at: float) -> dict[str, Any]:
    """The reference sent to ``ocr.detect``; detect and aggregate add to it (see :mod:`ocr_tasks.workflow`)."""
    return {"id": doc_id, "filename": filename, "submitted_at": float(submitted_at)}


def public_state(celery_state: str) -> str:
    """Map any Celery state onto PENDING, STARTED, SUCCESS or FAILURE."""
    if celery_state == states.SUCCESS:
        return "SUCCESS"
    if celery_state in _FAILED:
        return "FAILURE"
    if celery_state in _STARTED:
        return "STARTED"
    return "PENDING"


def _error_text(exc: Any) -> str:
    """A readable one-line error from a stored task failure."""
    if isinstance(exc, ChordError):
        match = _DEPENDENCY.match(str(exc))
        if match:
            return f"recognition of crop {match.group(1)} failed: {match.group(2)}"
    if isinstance(exc, BaseException):
        message = str(exc) or repr(exc)
        return f"{type(exc).__name__}: {message}"
    return str(exc) if exc else "the document failed"


class OCRClient:
    """Submit pages to the OCR service and read their status.

    Args:
        settings: service settings; by default read from the ``OCR_*`` environment variables.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.store = PageStore(self.settings)
        self.app = create_celery(self.settings, tasks=False)
        self._broker_client: Any = None

    def submit(self, data: bytes, filename: str) -> str:
        """Store the page in Redis and queue ``ocr.detect``; returns the document id.

        Raises:
            InvalidImage: empty upload. UnsupportedFormat: clearly not an image (PDF, HTML,
                ZIP...). ImageTooLarge: more bytes than ``OCR_MAX_IMAGE_BYTES``. Full
                validation happens in the detect task; its errors fail the document.
            ServiceUnavailable: Redis or the broker cannot be reached.
        """
        data = bytes(data)
        if not data:
            raise InvalidImage("the file is empty (0 bytes)")
        if len(data) > self.settings.max_image_bytes:
            raise ImageTooLarge(f"the file is {len(data)} bytes; the limit is {self.settings.max_image_bytes} bytes")
        message = sniff_unsupported(data)
        if message:
            raise UnsupportedFormat(message)
        doc_id = str(uuid.uuid4())
        filename = str(filename or "upload")[:255]
        submitted = self.store.put_page(doc_id, data, filename)
        try:
            self.app.send_task(
                DETECT, args=(document_ref(doc_id, filename, submitted),), task_id=doc_id,
                queue=self.settings.detect_queue,
            )
        except (OperationalError, *REDIS_ERRORS) as exc:
            self.store.forget(doc_id)
            raise ServiceUnavailable(f"cannot reach the broker: {exc}") from exc
        log.info("submitted %s (%s, %d bytes)", doc_id, filename, len(data))
        return doc_id

    def status(self, task_id: str) -> dict[str, Any] | None:
        """The document's state, progress and result; None for an id this service never issued.

        Returns:
            ``{"id", "state", "progress": {"done", "total"}, "result", "error"}``: ``state``
            is one of :data:`STATES`; ``result`` is the document on SUCCESS; ``error`` a
            readable message on FAILURE; ``total`` is 0 until detection has run.

        Raises:
            ServiceUnavailable: Redis cannot be reached.
        """
        if not isinstance(task_id, str) or not _ID.match(task_id):
            return None
        info = self.store.info(task_id)
        if info is None:
            return None
        try:
            meta = self.app.backend.get_task_meta(task_id)
        except REDIS_ERRORS as exc:
            raise ServiceUnavailable(f"cannot read the result backend: {exc}") from exc
        state = public_state(str(meta.get("status", states.PENDING)))
        value = meta.get("result") if state in ("SUCCESS", "FAILURE") else None
        total, done = max(0, info["total"]), max(0, info["done"])
        if state == "PENDING" and info["total"] >= 0:
            state = "STARTED"  # detection ran; the id's own state is set when aggregation starts
        if state == "SUCCESS":
            done = total
        return {
            "id": task_id,
            "state": state,
            "progress": {"done": min(done, total), "total": total},
            "result": value if state == "SUCCESS" else None,
            "error": _error_text(value) if state == "FAILURE" else None,
        }

    def backlog(self) -> int:
        """Documents waiting in the detect queue (accepted, not yet taken by a detect worker).

        Raises:
            ServiceUnavailable: the broker cannot be reached.
        """
        queue = self.settings.detect_queue
        try:
            if self.settings.broker.startswith(("redis://", "rediss://", "unix://")):
                client = self.store.client if self.settings.broker == self.settings.redis_url else self._broker_redis()
                with client.pipeline(transaction=False) as pipe:
                    for name in _priority_lists(queue):
                        pipe.llen(name)
                    return sum(int(n) for n in pipe.execute())
            return self._amqp_queue_length(queue)
        except (OperationalError, *REDIS_ERRORS, *_amqp_errors()) as exc:
            raise ServiceUnavailable(f"cannot read the detect queue: {exc}") from exc

    def check_capacity(self, incoming: int = 1) -> None:
        """Refuse new documents when the detect backlog would pass ``OCR_MAX_BACKLOG`` (0: no limit).

        Raises:
            Overloaded: the queue is full. ServiceUnavailable: the broker cannot be reached.
        """
        limit = self.settings.max_backlog
        if limit <= 0:
            return
        waiting = self.backlog()
        if waiting + incoming > limit:
            raise Overloaded(
                f"the service is busy: {waiting} documents are waiting for detection and this request "
                f"adds {incoming}, over the limit of {limit} (OCR_MAX_BACKLOG); retry later"
            )

    def _amqp_queue_length(self, queue: str) -> int:
        from amqp.exceptions import NotFound

        with self.app.pool.acquire(block=True, timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
            channel = conn.channel()
            try:
                return int(channel.queue_declare(queue=queue, passive=True).message_count)
            except NotFound:  # no worker declared it yet: nothing waits in it
                return 0
            finally:
                try:
                    channel.close()
                except Exception:  # noqa: BLE001 - a channel closed by the broker after NotFound
                    pass

    def _broker_redis(self) -> Any:
        if self._broker_client is None:
            import redis

            self._broker_client = redis.Redis.from_url(self.settings.broker, socket_connect_timeout=3, socket_timeout=10)
        return self._broker_client

    def ping(self) -> None:
        """Check that Redis (page store and result backend) answers.

        Raises:
            ServiceUnavailable: it does not.
        """
        self.store.ping()

    def close(self) -> None:
        """Release connections."""
        try:
            self.store.client.close()
        finally:
            self.app.close()

    def __repr__(self) -> str:
        return f"OCRClient(redis={redact_url(self.settings.redis_url)!r})"
