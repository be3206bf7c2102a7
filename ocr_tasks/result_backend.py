"""The workers' Redis result backend: Celery's, without result-channel subscriptions.

Celery's ``group``/``chord`` wrap the header's results in a ``GroupResult`` whose barrier calls
``AsyncResult.then`` on every member, and the Redis backend answers that by SUBSCRIBE-ing to
the member's result channel (and UNSUBSCRIBE-ing when the result object is dropped). For a
chord of ~200 crop tasks that is 2 SUBSCRIBE and 4 UNSUBSCRIBE commands per crop in the detect
worker (measured with ``INFO commandstats``: 6 of the ~27 Redis commands a crop cost), plus
the Python work around them, for results nobody in a worker ever waits for: the chord body
runs from the result backend's counter, and clients read the document by polling.

:func:`use_worker_backend` switches a worker's app to :class:`WorkerRedisBackend`, which
stores, reads and counts exactly as Celery's ``RedisBackend`` does but never subscribes.
Clients (the web app, tests) keep Celery's backend, so ``AsyncResult.get()`` still works there.

It also never lets a finished document go back to an unfinished state. Celery keeps a stored
SUCCESS from being overwritten, but not a FAILURE; with ``task_track_started`` a detect
message that runs after its document was failed (the stall watchdog's
:class:`~ocr_tasks.errors.DocumentStalled`, then a late delivery of the same id) would first
write STARTED over the FAILURE, so a client polling then would see the document running again,
and the task body could no longer tell that it had finished.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, states
from celery.backends.redis import RedisBackend
from celery.exceptions import BackendStoreError
from kombu.utils.encoding import bytes_to_str

__all__ = ["WorkerRedisBackend", "use_worker_backend", "WORKER_SCHEME"]

log = logging.getLogger(__name__)

#: URL scheme under which :class:`WorkerRedisBackend` is registered in a worker's app.
WORKER_SCHEME = "ocrredis"


class WorkerRedisBackend(RedisBackend):
    """``RedisBackend`` that never subscribes to result channels (workers never wait on results)."""

    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Do not subscribe to the result of a task this worker sends."""

    def add_pending_result(self, result: Any, weak: bool = False, start_drainer: bool = True) -> Any:
        """Do not subscribe: nothing in a worker waits for this result."""
        return result

    def remove_pending_result(self, result: Any) -> Any:
        """Nothing was subscribed, so nothing to cancel."""
        return result

    def _store_result(self, task_id: str, result: Any, state: str, traceback: Any = None,
                      request: Any = None, **kwargs: Any) -> Any:
        """Store as Celery 5's ``BaseKeyValueStoreBackend._store_result`` does (a stored SUCCESS
        is never overwritten), and also never an unfinished state over a finished one; one GET
        of the stored state decides both (Celery's own check would be a second GET)."""
        current = self._get_task_meta_for(task_id).get("status")
        if current == states.SUCCESS:
            return result
        if state not in states.READY_STATES and current in states.READY_STATES:
            log.warning("task %s is already %s; its late %s is not stored", task_id, current, state)
            return result
        meta = self._get_result_meta(result=result, state=state, traceback=traceback, request=request)
        meta["task_id"] = bytes_to_str(task_id)
        try:
            self._set_with_state(self.get_key_for_task(task_id), self.encode(meta), state)
        except BackendStoreError as ex:
            raise BackendStoreError(str(ex), state=state, task_id=task_id) from ex
        return result


def use_worker_backend(app: Celery) -> bool:
    """Make ``app`` (a worker's, before its backend is first used) use :class:`WorkerRedisBackend`.

    Only a ``redis://`` / ``rediss://`` result backend is switched; returns whether it was.
    """
    url = str(app.conf.result_backend or "")
    if not url.startswith("redis://"):
        return False
    # Registered as a backend alias with its own URL scheme rather than "module:Class+redis://",
    # which Celery's URL sanitiser (the `conf` remote-control command Flower calls) cannot parse.
    overrides = dict(getattr(app.loader, "override_backends", {}) or {})
    overrides[WORKER_SCHEME] = f"{__name__}:WorkerRedisBackend"
    app.loader.override_backends = overrides
    app.conf.result_backend = WORKER_SCHEME + url[len("redis") :]
    return True
