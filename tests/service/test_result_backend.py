"""The workers' subscription-free result backend stays a normal, inspectable Redis backend."""

from __future__ import annotations

import uuid

from celery import states
from celery.app.utils import filter_hidden_settings

from ocr_tasks.celery_app import create_celery
from ocr_tasks.result_backend import WORKER_SCHEME, WorkerRedisBackend, use_worker_backend
from ocr_tasks.settings import Settings
from tests.service.stack import Stack


def test_worker_backend_keeps_the_redis_address_and_a_parseable_url():
    app = create_celery(Settings(redis_url="redis://127.0.0.1:6391/3"))
    assert use_worker_backend(app)
    assert app.conf.result_backend == f"{WORKER_SCHEME}://127.0.0.1:6391/3"
    backend = app.backend
    assert isinstance(backend, WorkerRedisBackend)
    assert (backend.connparams["host"], backend.connparams["port"], backend.connparams["db"]) == ("127.0.0.1", 6391, 3)
    # What the `conf` remote-control command (Flower's worker config page) does: must not raise.
    shown = filter_hidden_settings(app.conf.table(with_defaults=False, censored=True))
    assert "ocrredis://" in str(shown["result_backend"])


def test_non_redis_backends_are_left_alone():
    app = create_celery(Settings(redis_url="redis://127.0.0.1:6391/0", result_backend="rpc://"))
    assert not use_worker_backend(app)
    assert app.conf.result_backend == "rpc://"


def test_a_finished_task_never_goes_back_to_started(noop_stack: Stack) -> None:
    """A late delivery of a finished task (track_started) must not hide its FAILURE or SUCCESS."""
    app = create_celery(noop_stack.settings)
    assert use_worker_backend(app)
    backend = app.backend
    try:
        failed, done, running = (str(uuid.uuid4()) for _ in range(3))
        backend.mark_as_failure(failed, ValueError("stalled"))
        backend.store_result(failed, {"pid": 1}, states.STARTED)
        meta = backend.get_task_meta(failed)
        assert meta["status"] == states.FAILURE and "stalled" in str(meta["result"])
        backend.mark_as_done(done, {"words": []})
        backend.store_result(done, {"pid": 1}, states.STARTED)
        backend.store_result(done, {"pid": 1}, states.RETRY)
        assert backend.get_task_meta(done)["status"] == states.SUCCESS
        backend.store_result(running, {"pid": 1}, states.STARTED)  # unfinished states still move on
        assert backend.get_task_meta(running)["status"] == states.STARTED
        backend.mark_as_done(running, 42)
        assert backend.get_task_meta(running)["status"] == states.SUCCESS
        backend.mark_as_failure(running, ValueError("late"))  # Celery's rule: SUCCESS stays
        assert backend.get_task_meta(running)["status"] == states.SUCCESS
        for task_id in (failed, done, running):
            backend.forget(task_id)
    finally:
        app.close()


def test_each_store_reads_the_stored_state_once(noop_stack: Stack, monkeypatch) -> None:
    """The finished-state check and Celery's own SUCCESS check share one GET per store."""
    app = create_celery(noop_stack.settings)
    assert use_worker_backend(app)
    backend = app.backend
    reads: list[str] = []
    real_get = backend.get
    monkeypatch.setattr(backend, "get", lambda key: reads.append(key) or real_get(key))
    try:
        task_id = str(uuid.uuid4())
        for state in (states.STARTED, states.RETRY, states.FAILURE, states.SUCCESS):
            value = ValueError(state) if state in states.EXCEPTION_STATES else {"state": state}
            backend.store_result(task_id, value, state)
        assert len(reads) == 4 and set(reads) == {backend.get_key_for_task(task_id)}
        assert backend.get_task_meta(task_id)["status"] == states.SUCCESS  # FAILURE -> SUCCESS moves on
        backend.forget(task_id)
    finally:
        app.close()
