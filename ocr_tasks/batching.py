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

from .acks import acknowledge_all

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

    def Strategy(self, task: Any, app: Any, consumer: Any) -> Any:  # noqa: N802 - Celery's name
        """celery-batches' strategy, with its flush timer re-armed on every consumer (re)start.

        celery-batches arms its periodic flush timer once, on the first message, and keeps the
        handle forever. A lost broker connection restarts the consumer, which clears the
        worker's timer: the handle stays set, the timer is never armed again, and a partial
        batch then waits forever (seen after a Redis restart in tests/service/test_reliability.py).
        The strategy is rebuilt on every consumer start, so the handle is dropped here.
        """
        if self._tref is not None:
            try:
                self._tref.cancel()
            except Exception:  # noqa: BLE001 - an entry of a cleared timer
                pass
            self._tref = None
        return super().Strategy(task, app, consumer)

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
            # one Redis round trip for the recorded ones instead of one each (ocr_tasks/acks.py)
            acknowledge_all(req for req in chunk if req.task.acks_late and req.id in done)
            for req in chunk:
                if req.task.acks_late and req.id not in done:
                    req.reject(requeue=True)

        log.debug("batch %s: %d requests (%s)", batch["id"], len(chunk), cause)
        return self._pool.apply_async(
            apply_batches_task,
            (self, (simple,), 0, None),
            accept_callback=on_accepted,
            callback=on_return,
        )

    #: Seconds a per-request result is kept (None: the backend's ``result_expires``).
    request_result_ttl: int | None = None

    def complete(self, request: BatchRequest, value: Any) -> bool:
        """Store ``value`` as the request's result and count it in its chord (see :meth:`record_many`)."""
        return bool(self.record_many([(request, states.SUCCESS, value)]))

    def complete_many(self, items: Sequence[tuple[BatchRequest, Any]]) -> set[str]:
        """:meth:`complete` for a whole batch (see :meth:`record_many`)."""
        return self.record_many([(request, states.SUCCESS, value) for request, value in items])

    def fail(self, request: BatchRequest, exc: BaseException) -> bool:
        """Store ``exc`` as the request's failure and count it in its chord (the body then fails)."""
        return bool(self.record_many([(request, states.FAILURE, exc)]))

    def record_many(self, items: Sequence[tuple[BatchRequest, str, Any]]) -> set[str]:
        """Record ``(request, state, value or exception)`` items, idempotently per task id.

        A request is recorded at most once: the first record of a task id (the crop
        ``<document>.<box index>``) wins and is kept for ``request_result_ttl`` seconds. A
        redelivered message (its worker died before acknowledging it, or the Redis visibility
        timeout expired) is recorded again with that first value, so its chord part is the
        same zset member and the chord counts every crop exactly once, whatever the number of
        deliveries. With the Redis backend this costs three round trips per batch: one
        pipeline stores every result (each only if absent), one adds the chord parts but the
        last of each group, and the backend's own ``on_chord_part_return`` adds that last part,
        counts the parts and runs the chord body once the header is complete. Other backends
        get Celery's ``mark_as_done`` / ``mark_as_failure`` (not deduplicated).

        Returns:
            Ids recorded for the first time (duplicates are recorded but not returned).
        """
        backend = self.backend
        if not isinstance(backend, RedisBackend):
            for request, state, value in items:
                if state == states.SUCCESS:
                    backend.mark_as_done(request.id, value, request=request)
                else:
                    backend.mark_as_failure(request.id, value, traceback=_trace(value), request=request)
            return {request.id for request, _, _ in items}
        canonical, fresh = self._store_first(backend, items)
        last: dict[str, BatchRequest] = {r.group: r for r, _, _ in canonical if r.chord and r.group}
        with backend.client.pipeline() as pipe:
            for request, state, value in canonical:
                if request.chord and request.group and last[request.group] is not request:
                    self._add_chord_part(backend, pipe, request, value, state)
            pipe.execute()
        for request, state, value in canonical:
            if request.chord and request.group and last.get(request.group) is request:
                backend.on_chord_part_return(request, state, value)
        return fresh

    def _store_first(
        self, backend: RedisBackend, items: Sequence[tuple[BatchRequest, str, Any]]
    ) -> tuple[list[tuple[BatchRequest, str, Any]], set[str]]:
        ttl = int(self.request_result_ttl or backend.expires or 86_400)
        script = backend.client.register_script(_STORE_IF_ABSENT)
        encoded_items = []
        with backend.client.pipeline(transaction=False) as pipe:
            for request, state, value in items:
                meta = backend._get_result_meta(
                    result=backend.encode_result(value, state), state=state, traceback=_trace(value) if state != states.SUCCESS else None,
                    request=request,
                )
                meta["task_id"] = request.id
                encoded = backend.encode(meta)
                encoded_items.append(encoded)
                script(keys=[backend.get_key_for_task(request.id)], args=[encoded, ttl], client=pipe)
            previous = pipe.execute()
        canonical: list[tuple[BatchRequest, str, Any]] = []
        fresh: set[str] = set()
        again: list[str] = []
        with backend.client.pipeline(transaction=False) as pipe:
            for (request, state, value), encoded, old in zip(items, encoded_items, previous):
                if old or request.id in fresh:  # recorded before, or twice in this batch
                    again.append(request.id)
                if not old:
                    fresh.add(request.id)
                    canonical.append((request, state, value))
                    pipe.publish(backend.get_key_for_task(request.id), encoded)
                    continue
                meta = backend.decode_result(old)
                first_state = str(meta.get("status", state))
                first = meta.get("result")
                if first_state in states.EXCEPTION_STATES:
                    first = backend.exception_to_python(first)
                canonical.append((request, first_state, first))
            pipe.execute()
        if again:
            log.warning(
                "%d crop(s) were delivered again (e.g. %s); keeping their first results", len(again), again[0]
            )
        return canonical, fresh

    @staticmethod
    def _add_chord_part(
        backend: RedisBackend, pipe: Any, request: BatchRequest, value: Any, state: str = states.SUCCESS
    ) -> None:
        # The same record as RedisBackend.on_chord_part_return adds, without its count check.
        jkey = backend.get_key_for_group(request.group, ".j")
        encoded = backend.encode([1, request.id, state, backend.encode_result(value, state)])
        if backend._chord_zset:
            pipe.zadd(jkey, {encoded: "+inf" if request.group_index is None else request.group_index})
        else:
            pipe.rpush(jkey, encoded)
        if backend.expires:
            pipe.expire(jkey, backend.expires)


#: Store KEYS[1] = ARGV[1] with a TTL of ARGV[2] seconds unless it exists; return the old value.
_STORE_IF_ABSENT = """
local old = redis.call('GET', KEYS[1])
if old then return old end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
return false
"""


def _trace(value: Any) -> str | None:
    if isinstance(value, BaseException):
        return "".join(tb.format_exception(type(value), value, value.__traceback__))
    return None
