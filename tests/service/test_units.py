"""The service's plain parts, without a broker: config, states, batching requests, documents."""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest
from celery.worker.request import Request
from kombu import Message

from ocr_tasks.batching import BatchRequest
from ocr_tasks.celery_app import batch_cap, celery_config, create_celery
from ocr_tasks.client import public_state
from ocr_tasks.noop import EchoRecognizer, GridDetector
from ocr_tasks.settings import Settings
from ocr_tasks.workflow import build_document, summarize_batches
from tests.service.stack import ROOT, procfile_commands


def test_config_never_accepts_pickle() -> None:
    """msgpack and JSON only; stable routes; late acks."""
    conf = celery_config(Settings())
    assert conf["accept_content"] == ["msgpack", "json"] and conf["task_serializer"] == "msgpack"
    assert "pickle" not in conf["result_accept_content"]
    assert conf["task_routes"]["ocr.recognize"] == {"queue": "recognize"}
    assert conf["task_routes"]["ocr.detect"] == {"queue": "detect"}
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"] and conf["worker_send_task_events"]
    assert conf["broker_url"] == conf["result_backend"] == "redis://localhost:6379/0"


def test_bad_settings_fail_at_start() -> None:
    """Unknown OCR_MODELS, bad batch sizes and clashing queues are refused when the app is built."""
    with pytest.raises(ValueError, match="OCR_MODELS"):
        create_celery(Settings(models="fast"), tasks=False)
    with pytest.raises(ValueError, match="OCR_BATCH_SIZE"):
        batch_cap(Settings(batch_size="many"))
    with pytest.raises(ValueError, match="at least 1"):
        batch_cap(Settings(batch_size="0"))
    with pytest.raises(ValueError, match="OCR_RECOGNIZE_QUEUE"):
        create_celery(Settings(recognize_queue="detect"), tasks=False)
    assert batch_cap(Settings(batch_size="auto")) == 350 and batch_cap(Settings(batch_size="64")) == 64


@pytest.mark.parametrize(
    ("celery_state", "state"),
    [("PENDING", "PENDING"), ("RECEIVED", "STARTED"), ("STARTED", "STARTED"), ("RETRY", "STARTED"),
     ("SUCCESS", "SUCCESS"), ("FAILURE", "FAILURE"), ("REVOKED", "FAILURE"), ("REJECTED", "FAILURE")],
)
def test_states_map_onto_four(celery_state: str, state: str) -> None:
    """Every Celery state reads as one of PENDING, STARTED, SUCCESS, FAILURE."""
    assert public_state(celery_state) == state


def test_batch_request_keeps_chord_group_and_index() -> None:
    """What celery-batches' SimpleRequest drops is copied onto the batch request."""
    app = create_celery(Settings(models="noop"))
    task = app.tasks["ocr.recognize"]
    body_sig = {"task": "ocr.aggregate", "args": [], "kwargs": {}, "options": {}}
    headers, properties, body, _ = app.amqp.as_task_v2(
        "t-1", "ocr.recognize", args=({"doc": "d", "index": 3},), chord=body_sig,
        group_id="g-1", group_index=3, root_id="r-1", parent_id="p-1",
    )
    message = Message(body=body, headers=headers, properties=properties, delivery_info={"routing_key": "recognize"})
    request = Request(message, app=app, task=task, body=body, headers=headers, decoded=True)
    simple = BatchRequest.from_request(request, {"id": "b", "size": 1, "cause": "timeout"})
    assert simple.chord == body_sig and simple.group == "g-1" and simple.group_index == 3
    assert (simple.root_id, simple.parent_id, simple.task) == ("r-1", "p-1", "ocr.recognize")
    assert simple.args == ({"doc": "d", "index": 3},) and simple.batch["cause"] == "timeout"


def test_document_words_follow_box_index_not_arrival() -> None:
    """Results arriving shuffled still come out in reading order."""
    quads = [[[x * 50, 10], [x * 50 + 40, 10], [x * 50 + 40, 30], [x * 50, 30]] for x in range(6)]
    results = [
        {"index": i, "quad": q, "text": f"t{i}", "confidence": 0.9, "batch": {"id": "a" if i < 4 else "b", "size": 8, "cause": "size"}}
        for i, q in enumerate(quads)
    ]
    random.Random(1).shuffle(results)
    ref = {"id": "x", "width": 400, "height": 50, "submitted_at": 1.0, "detect_started": 2.0, "detect_finished": 3.0}
    doc = build_document(ref, results, started=4.0)
    assert [w["text"] for w in doc["words"]] == [f"t{i}" for i in range(6)]
    assert doc["text"] == "t0 t1 t2 t3 t4 t5"
    assert doc["timings"]["queue_wait"] == 1.0 and doc["timings"]["detect"] == 1.0
    assert sorted((b["crops"], b["size"]) for b in doc["batches"]) == [(2, 8), (4, 8)]


def test_summarize_batches_counts_crops_per_batch() -> None:
    """One entry per distinct batch, with this document's share of it."""
    rows = [{"batch": {"id": "a", "size": 5, "cause": "size"}}] * 3 + [{"batch": {"id": "b", "size": 2, "cause": "timeout"}}]
    assert summarize_batches(rows) == [
        {"id": "a", "size": 5, "crops": 3, "cause": "size", "seconds": 0.0},
        {"id": "b", "size": 2, "crops": 1, "cause": "timeout", "seconds": 0.0},
    ]


def test_noop_models() -> None:
    """About 200 boxes on an inked page, none on a blank one; one text per crop."""
    page = np.random.default_rng(0).integers(0, 200, (800, 600, 3), dtype=np.uint8)
    assert len(GridDetector().detect(page)) == 200
    assert GridDetector().detect(np.full((300, 300, 3), 255, np.uint8)) == []
    assert len(GridDetector().detect(np.zeros((5, 5, 3), np.uint8))) == 1
    assert EchoRecognizer().predict([np.full((4, 4), 7, np.uint8), np.zeros((2, 9), np.uint8)]) == [("w7", 1.0), ("w0", 1.0)]


def test_procfile_runs_the_documented_workers() -> None:
    """The Procfile starts every process; the recognize worker uses an in-process pool."""
    commands = procfile_commands()
    assert set(commands) == {"web", "detect", "recognize", "flower"}
    assert "-A workers.recognize" in commands["recognize"] and "--pool solo" in commands["recognize"]
    assert "-A workers.detect" in commands["detect"] and "aggregate" in commands["detect"]
    assert "web:create_app()" in commands["web"]


@pytest.mark.parametrize("module", ["ocr_tasks.client", "ocr_tasks.celery_app", "workers.detect", "workers.recognize"])
def test_service_modules_import_no_torch(module: str) -> None:
    """The web-facing client and the worker entry points load torch only when a model is needed."""
    code = f"import sys, {module}; print('torch' in sys.modules)"
    env = {"PATH": "/usr/bin:/bin", "OCR_MODELS": "real"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, check=True)
    assert out.stdout.strip() == "False"


def test_flush_never_hands_the_task_more_than_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    """However many requests are ready, each batch holds at most flush_every of them."""
    task = create_celery(Settings(models="noop", batch_size="4")).tasks["ocr.recognize"]
    calls: list[tuple[int, str]] = []
    monkeypatch.setattr(task, "_flush_chunk", lambda chunk, cause: calls.append((len(chunk), cause)))
    task.flush(list(range(10)))
    task.flush(list(range(3)))
    assert calls == [(4, "size"), (4, "size"), (2, "size"), (3, "timeout")]


def test_each_app_keeps_its_own_batch_settings() -> None:
    """Apps built in one process do not share task options (tasks are not 'shared')."""
    first = create_celery(Settings(models="noop", batch_size="7", batch_timeout=0.3))
    second = create_celery(Settings(models="noop", batch_size="9", batch_timeout=0.6))
    assert (first.tasks["ocr.recognize"].flush_every, first.tasks["ocr.recognize"].flush_interval) == (7, 0.3)
    assert (second.tasks["ocr.recognize"].flush_every, second.tasks["ocr.recognize"].flush_interval) == (9, 0.6)
