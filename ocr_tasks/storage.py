"""Redis-side state of a document, outside Celery's own keys.

The web app and the workers may run on different hosts, so an uploaded page travels through
Redis, not through a shared disk or the task message:

- ``ocr:page:<id>``: the uploaded bytes, with a TTL of ``OCR_PAGE_TTL`` seconds. The client
  writes it; the detect task reads it; the aggregate task deletes it.
- ``ocr:doc:<id>``: a small hash, with a TTL of ``OCR_RESULT_TTL`` seconds. Its existence
  records that the client issued this id (an unknown id otherwise reads as ``PENDING`` in
  Celery). Fields: ``filename``, ``submitted_at``, ``total`` (boxes found, set by detect;
  ``-1`` before), ``done`` (crops recognised so far, incremented by the batch task).
- ``ocr:inflight``: a sorted set of the ids whose page is held (score: upload time), added
  with the page and removed with it; its size is the ``ocr_documents_in_flight`` gauge.

Only :mod:`redis` is imported here (no torch, no celery): the web app uses this module.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from .errors import PageMissing, ServiceUnavailable
from .settings import Settings

__all__ = ["PageStore", "page_key", "doc_key", "redact_url", "inflight_count", "INFLIGHT_KEY", "REDIS_ERRORS"]

#: redis-py errors that mean "Redis cannot be reached" (mapped to ServiceUnavailable).
REDIS_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
)


def redact_url(url: str) -> str:
    """``url`` without its password (for log lines and error messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


#: Sorted set of the documents whose page is held (uploaded, not yet assembled), scored by
#: upload time: the ``ocr_documents_in_flight`` gauge (:mod:`ocr_tasks.monitoring`).
INFLIGHT_KEY = "ocr:inflight"


def inflight_count(client: redis.Redis, page_ttl: int, now: float | None = None) -> int:
    """Documents in flight: marks younger than ``page_ttl`` (older ones, left by documents whose
    recognition failed, are dropped here, as their pages expire)."""
    now = time.time() if now is None else now
    with client.pipeline(transaction=False) as pipe:
        pipe.zremrangebyscore(INFLIGHT_KEY, "-inf", now - page_ttl)
        pipe.zcard(INFLIGHT_KEY)
        return int(pipe.execute()[1])


def page_key(doc_id: str) -> str:
    """Redis key of a document's uploaded page."""
    return f"ocr:page:{doc_id}"


def doc_key(doc_id: str) -> str:
    """Redis key of a document's issued-id and progress hash."""
    return f"ocr:doc:{doc_id}"


class PageStore:
    """Pages and progress of documents in Redis.

    Args:
        settings: service settings (``redis_url``, ``page_ttl``, ``result_ttl``).
        client: an existing redis client (tests); by default one is built from
            ``settings.redis_url`` with short timeouts.

    >>> store = PageStore(Settings(redis_url="redis://localhost:6379/0"))
    """

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.client = client or redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=3, socket_timeout=10, health_check_interval=30
        )

    def put_page(self, doc_id: str, data: bytes, filename: str) -> float:
        """Store the page and record the issued id; returns the submission time (epoch seconds).

        Raises:
            ServiceUnavailable: Redis cannot be reached.
        """
        now = time.time()
        try:
            with self.client.pipeline() as pipe:
                pipe.set(page_key(doc_id), data, ex=self.settings.page_ttl)
                pipe.hset(
                    doc_key(doc_id),
                    mapping={"filename": filename, "submitted_at": repr(now), "total": -1, "done": 0},
                )
                pipe.expire(doc_key(doc_id), self.settings.result_ttl)
                pipe.zadd(INFLIGHT_KEY, {doc_id: now})
                # marks older than a page's life belong to documents whose page expired (their
                # recognition failed): drop them here too, so the set stays bounded unscraped
                pipe.zremrangebyscore(INFLIGHT_KEY, "-inf", now - self.settings.page_ttl)
                pipe.execute()
        except REDIS_ERRORS as exc:
            raise ServiceUnavailable(f"cannot store the page in Redis: {exc}") from exc
        return now

    def get_page(self, doc_id: str) -> bytes:
        """The page bytes.

        Raises:
            PageMissing: the page expired or was never stored.
        """
        data = self.client.get(page_key(doc_id))
        if data is None:
            raise PageMissing(
                f"the uploaded page of document {doc_id} is gone (expired after "
                f"{self.settings.page_ttl} s, OCR_PAGE_TTL, or never stored)"
            )
        return bytes(data)

    def delete_page(self, doc_id: str) -> None:
        """Remove the page blob and the document's in-flight mark (idempotent)."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.delete(page_key(doc_id))
            pipe.zrem(INFLIGHT_KEY, doc_id)
            pipe.execute()

    def forget(self, doc_id: str) -> None:
        """Drop the page and the issued-id record (the task could not be queued); never raises."""
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.delete(page_key(doc_id), doc_key(doc_id))
                pipe.zrem(INFLIGHT_KEY, doc_id)
                pipe.execute()
        except REDIS_ERRORS:
            pass

    def set_total(self, doc_id: str, total: int) -> None:
        """Record how many boxes detection found (the denominator of progress)."""
        with self.client.pipeline() as pipe:
            pipe.hset(doc_key(doc_id), mapping={"total": int(total), "done": 0, "updated": repr(time.time())})
            pipe.expire(doc_key(doc_id), self.settings.result_ttl)
            pipe.execute()

    def mark_dispatched(self, doc_id: str) -> None:
        """Record that the document's recognition chord was published (detect ran to the end)."""
        self.client.hset(doc_key(doc_id), "dispatched", 1)

    def dispatched(self, doc_id: str) -> bool:
        """Whether :meth:`mark_dispatched` ran for this document."""
        return bool(self.client.hexists(doc_key(doc_id), "dispatched"))

    def add_done(self, counts: Mapping[str, int]) -> None:
        """Add recognised-crop counts per document id, in one round trip."""
        if not counts:
            return
        now = repr(time.time())
        with self.client.pipeline(transaction=False) as pipe:
            for doc_id, n in counts.items():
                pipe.hincrby(doc_key(doc_id), "done", int(n))
                pipe.hset(doc_key(doc_id), "updated", now)  # progress seen by ocr_tasks.recovery
            pipe.execute()

    def info(self, doc_id: str) -> dict[str, Any] | None:
        """The document's hash (``filename``, ``submitted_at``, ``total``, ``done``), or None if unknown.

        Raises:
            ServiceUnavailable: Redis cannot be reached.
        """
        try:
            raw = self.client.hgetall(doc_key(doc_id))
        except REDIS_ERRORS as exc:
            raise ServiceUnavailable(f"cannot read from Redis: {exc}") from exc
        if not raw:
            return None
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        return {
            "filename": fields.get("filename", ""),
            "submitted_at": float(fields.get("submitted_at", 0.0)),
            "total": int(fields.get("total", -1)),
            "done": int(fields.get("done", 0)),
        }

    def delete_keys(self, keys: Iterable[str]) -> None:
        """Delete arbitrary keys in chunks (used to drop per-crop results once aggregated)."""
        batch: list[str] = []
        for key in keys:
            batch.append(key)
            if len(batch) >= 500:
                self.client.delete(*batch)
                batch = []
        if batch:
            self.client.delete(*batch)

    def ping(self) -> None:
        """Check that Redis answers.

        Raises:
            ServiceUnavailable: it does not.
        """
        try:
            self.client.ping()
        except REDIS_ERRORS as exc:
            raise ServiceUnavailable(f"Redis at {redact_url(self.settings.redis_url)} does not answer: {exc}") from exc
