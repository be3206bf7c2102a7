"""celery-batches, made safe for chord headers and for failures.

celery-batches (``Batches``) buffers task messages in the worker and runs the task once per
flush with a list of ``SimpleRequest``. Two gaps matter here:

1. ``SimpleRequest`` drops the message's ``chord`` (marked TODO upstream) and exposes neither
   ``group`` nor ``group_index`` (they survive only in ``request_dict``). The result
   backend's ``mark_as_done`` reports a chord part only when ``request.chord`` is set, and
   the Redis backend's ``on_chord_part_return`` counts the part by ``request.group`` and
   orders it by ``request.group_index``. Without them a chord whose header holds batched
   tasks never runs its body. :class:`BatchRequest` copies all of them (plus ``root_id``,
   ``parent_id``, ``errbacks``, ``chain``) from the worker's request.
2. ``Batches`` acknowledges every message of a flush once the task returns, whatever
   happened. :class:`RecognitionBatches` acknowledges only the requests the task reports as
   recorded (done or failed in the result backend) and requeues the others, so a request is
   never silently lost; and it never hands the task more than ``flush_every`` requests.

Each request also carries ``batch``: ``{"id", "size", "cause"}`` where ``cause`` is
``"size"`` (the buffer reached ``flush_every``) or ``"timeout"`` (``flush_interval``
elapsed with fewer waiting).
"""

from __future__ import annotations

import logging
import traceback as tb
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from celery import states
from celery.backends.redis import RedisBackend
from celery.worker.request import Request
from celery_batches import Batches, SimpleRequest
from celery_batches.trace import apply_batches_task
from kombu.utils.uuid import uuid

__all__ = ["BatchRequest", "RecognitionBatches", "SIZE", "TIMEOUT"]

log = logging.getLogger(__name__)

#: Flush causes.
SIZE = "size"
TIMEOUT = "timeout"


class BatchRequest(SimpleRequest):
    """A ``SimpleRequest`` that keeps what the result backend needs to advance a chord."""

    #: the chord body signature (dict) when this task is part of a chord header
    chord: dict[str, Any] | None = None
    #: id of the group (chord header) this task belongs to
    group: str | None = None
    #: position of this task in its group (keeps header order in the Redis backend)
    group_index: int | None = None
    root_id: str | None = None
    parent_id: str | None = None
    errbacks: list[Any] | None = None
    chain: list[Any] | None = None
    #: the task name (``_get_result_meta`` reads ``request.task``)
    task: str | None = None
    #: ``{"id", "size", "cause"}`` of the flush this request ran in
    batch: dict[str, Any] = {}

    @classmethod
    def from_request(cls, request: Request, batch: dict[str, Any] | None = None) -> BatchRequest:  # type: ignore[override]
        """Copy a worker request, including chord, group and group_index."""
        new: BatchRequest = super().from_request(request)  # type: ignore[assignment]
        embed = request._payload[2] or {}
        new.chord = embed.get("chord")
        new.errbacks = embed.get("errbacks")
        new.chain = embed.get("chain")
        new.group = request.group
        new.group_index = request.group_index
        new.root_id = request.root_id
        new.parent_id = request.parent_id
        new.task = (request.request_dict or {}).get("task", request.name)
        new.batch = dict(batch or {})
        return new


def _chunks(items: Sequence[Request], size: int) -> Iterable[Sequence[Request]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class RecognitionBatches(Batches):
    """``Batches`` base for chord-header tasks: capped flushes, per-request bookkeeping.

    The task's ``run(requests)`` receives :class:`BatchRequest` objects, must record each one
    with :meth:`complete`, :meth:`complete_many` or :meth:`fail`, and must return the ids it
    recorded; the rest are requeued.
    """

    abstract = True

    def flush(self, requests: Collection[Request]) -> Any:
        """Run the buffered requests in batches of at most ``flush_every``."""
        pending = list(requests)
        cap = max(1, int(self.flush_every))
        cause = SIZE if len(pending) >= cap else TIMEOUT
        result = None
        for chunk in _chunks(pending, cap):
            result = self._flush_chunk(list(chunk), cause)
        return result

    def _flush_chunk(self, chunk: list[Request], cause: str) -> Any:
        batch = {"id": uuid()[:12], "size": len(chunk), "cause": cause}
        simple = [BatchRequest.from_request(r, batch) for r in chunk]
        early = [r for r in chunk if not r.task.acks_late]

        def on_accepted(pid: int, time_accepted: float) -> None:
            for req in early:
                req.acknowledge()

        def on_return(recorded: Any) -> None:
            done = set(recorded) if isinstance(recorded, (list, tuple, set)) else set()
            lost = [r for r in chunk if r.id not in done and r.task.acks_late]
            if lost:
                log.error(
                    "batch %s: %d of %d requests were not recorded; requeueing them",
                    batch["id"], len(lost), len(chunk),
                )
            for req in chunk:
                if not req.task.acks_late:
                    continue
                if req.id in done:
                    req.acknowledge()
                else:
                    req.reject(requeue=True)

        log.debug("batch %s: %d requests (%s)", batch["id"], len(chunk), cause)
        return self._pool.apply_async(
            apply_batches_task,
            (self, (simple,), 0, None),
            accept_callback=on_accepted,
            callback=on_return,
        )

    def complete(self, request: BatchRequest, value: Any) -> None:
        """Store ``value`` as the request's result and count it in its chord."""
        self.backend.mark_as_done(request.id, value, request=request)

    def complete_many(self, items: Sequence[tuple[BatchRequest, Any]]) -> None:
        """:meth:`complete` for a whole batch in a few Redis round trips instead of three per request.

        With the Redis backend, every result is stored in one pipeline, and every chord part
        but the last of each group in this batch is added in a second one; the last part of
        each group goes through the backend's own ``on_chord_part_return``, which counts the
        parts (atomically with its own add) and runs the chord body once the header is
        complete. The part that completes a header is therefore always followed by that
        check, whichever batch it is in. Other backends get one :meth:`complete` per request.
        """
        backend = self.backend
        if not isinstance(backend, RedisBackend):
            for request, value in items:
                self.complete(request, value)
            return
        self._store_many(backend, items)
        last: dict[str, BatchRequest] = {r.group: r for r, _ in items if r.chord and r.group}
        with backend.client.pipeline() as pipe:
            for request, value in items:
                if request.chord and request.group and last[request.group] is not request:
                    self._add_chord_part(backend, pipe, request, value)
            pipe.execute()
        for request, value in items:
            if request.group and last.get(request.group) is request:
                backend.on_chord_part_return(request, states.SUCCESS, value)

    @staticmethod
    def _store_many(backend: RedisBackend, items: Sequence[tuple[BatchRequest, Any]]) -> None:
        with backend.client.pipeline(transaction=False) as pipe:
            for request, value in items:
                meta = backend._get_result_meta(result=value, state=states.SUCCESS, traceback=None, request=request)
                meta["task_id"] = request.id
                encoded = backend.encode(meta)
                key = backend.get_key_for_task(request.id)
                if backend.expires:
                    pipe.setex(key, backend.expires, encoded)
                else:
                    pipe.set(key, encoded)
                pipe.publish(key, encoded)
            pipe.execute()

    @staticmethod
    def _add_chord_part(backend: RedisBackend, pipe: Any, request: BatchRequest, value: Any) -> None:
        # The same record as RedisBackend.on_chord_part_return adds, without its count check.
        jkey = backend.get_key_for_group(request.group, ".j")
        encoded = backend.encode([1, request.id, states.SUCCESS, backend.encode_result(value, states.SUCCESS)])
        if backend._chord_zset:
            pipe.zadd(jkey, {encoded: "+inf" if request.group_index is None else request.group_index})
        else:
            pipe.rpush(jkey, encoded)
        if backend.expires:
            pipe.expire(jkey, backend.expires)

    def fail(self, request: BatchRequest, exc: BaseException) -> None:
        """Store ``exc`` as the request's failure and count it in its chord (the body then fails)."""
        trace = "".join(tb.format_exception(type(exc), exc, exc.__traceback__))
        self.backend.mark_as_failure(request.id, exc, traceback=trace, request=request)
