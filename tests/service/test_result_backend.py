"""The workers' subscription-free result backend stays a normal, inspectable Redis backend."""

from __future__ import annotations

from celery.app.utils import filter_hidden_settings

from ocr_tasks.celery_app import create_celery
from ocr_tasks.result_backend import WORKER_SCHEME, WorkerRedisBackend, use_worker_backend
from ocr_tasks.settings import Settings


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
