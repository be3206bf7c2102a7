"""End to end through real workers and a real redis-server: upload, batch, chord, poll."""

from __future__ import annotations

import pickle
import time
import uuid

import pytest
from celery import chord
from celery.result import AsyncResult
from kombu import Connection

from ocr_tasks.client import OCRClient, document_ref
from ocr_tasks.crops import encode_crop
from ocr_tasks.errors import InvalidImage, UnsupportedFormat
from tests.service.conftest import NOOP_BATCH_SIZE, grid_page
from tests.service.stack import Stack

CROPS_PER_PAGE = 200


def expected_words() -> list[str]:
    return [f"w{10 + i}" for i in range(CROPS_PER_PAGE)]


def all_batches(statuses: list[dict]) -> list[dict]:
    return [b for s in statuses for b in s["result"]["batches"]]


def test_upload_poll_and_get_words(noop_stack: Stack, page_png: bytes) -> None:
    """A page goes through detect, batched recognition and aggregation; words come back in reading order."""
    client = noop_stack.client()
    doc_id = client.submit(page_png, "grid.png")
    status = noop_stack.wait(doc_id)
    assert status["state"] == "SUCCESS", status
    doc = status["result"]
    assert [w["text"] for w in doc["words"]] == expected_words()
    assert len(doc["lines"]) == 20 and doc["lines"][0]["text"] == " ".join(expected_words()[:10])
    assert doc["text"].splitlines()[1].startswith("w20 w21")
    assert (doc["width"], doc["height"]) == (600, 800)
    assert set(doc["timings"]) >= {"queue_wait", "detect", "recognize", "total"}
    assert status["progress"] == {"done": CROPS_PER_PAGE, "total": CROPS_PER_PAGE}
    assert status["error"] is None
    assert sum(b["crops"] for b in doc["batches"]) == CROPS_PER_PAGE
    # the page blob and the per-crop results are cleaned up
    r = noop_stack.redis()
    assert r.exists(f"ocr:page:{doc_id}") == 0
    assert r.exists(f"celery-task-meta-{doc_id}.0") == 0


def test_replace_with_chord_keeps_the_task_id(noop_stack: Stack, page_png: bytes) -> None:
    """The id submit() returned (the detect task's) resolves to the aggregate's document."""
    client = noop_stack.client()
    doc_id = client.submit(page_png, "grid.png")
    result = AsyncResult(doc_id, app=client.app).get(timeout=60)
    assert [w["text"] for w in result["words"]] == expected_words()
    meta = client.app.backend.get_task_meta(doc_id)
    assert meta["status"] == "SUCCESS" and meta["task_id"] == doc_id


def test_page_without_text_returns_an_empty_document_at_once(noop_stack: Stack, blank_png: bytes) -> None:
    """Zero boxes: no recognition task at all, an empty document immediately."""
    client = noop_stack.client()
    status = noop_stack.wait(client.submit(blank_png, "blank.png"), timeout=20)
    assert status["state"] == "SUCCESS"
    doc = status["result"]
    assert doc["words"] == [] and doc["lines"] == [] and doc["text"] == ""
    assert doc["batches"] == [] and doc["timings"]["recognize"] == 0.0
    assert status["progress"] == {"done": 0, "total": 0}


def test_partial_batch_flushes_on_timeout(noop_stack: Stack, page_png: bytes) -> None:
    """200 crops wait for fewer than the 300 cap: they run after the timeout, not never."""
    client = noop_stack.client()
    status = noop_stack.wait(client.submit(page_png, "grid.png"))
    batches = status["result"]["batches"]
    assert batches and all(b["cause"] == "timeout" and b["size"] < NOOP_BATCH_SIZE for b in batches)


def test_documents_share_batches_and_never_exceed_the_cap(noop_stack: Stack, page_png: bytes) -> None:
    """Crops of several documents fill one batch up to the cap, never beyond."""
    client = noop_stack.client()
    control = client.app.control
    node = [noop_stack.node("recognize")]
    control.cancel_consumer(noop_stack.settings.recognize_queue, destination=node, reply=True, timeout=5)
    try:
        ids = [client.submit(page_png, f"p{i}.png") for i in range(5)]
        deadline = time.monotonic() + 30
        while not all(client.status(i)["progress"]["total"] == CROPS_PER_PAGE for i in ids):
            assert time.monotonic() < deadline, "detection did not finish"
            time.sleep(0.05)
        waiting = client.status(ids[0])
        assert waiting["state"] == "STARTED" and waiting["progress"] == {"done": 0, "total": CROPS_PER_PAGE}
    finally:
        control.add_consumer(noop_stack.settings.recognize_queue, destination=node, reply=True, timeout=5)
    statuses = [noop_stack.wait(i) for i in ids]
    assert {s["state"] for s in statuses} == {"SUCCESS"}
    sizes = [b["size"] for b in all_batches(statuses)]
    assert max(sizes) == NOOP_BATCH_SIZE > CROPS_PER_PAGE  # a batch held crops of several documents
    assert all(size <= NOOP_BATCH_SIZE for size in sizes)
    assert any(b["cause"] == "size" for b in all_batches(statuses))
    for status in statuses:
        assert [w["text"] for w in status["result"]["words"]] == expected_words()


def test_chord_with_batched_header_runs_its_body(noop_stack: Stack) -> None:
    """The celery-batches gap: a chord whose header tasks are batched still calls its body."""
    client = noop_stack.client()
    page = grid_page()
    doc_id = str(uuid.uuid4())
    quads = [[[0, 0], [59, 0], [59, 39], [0, 39]]] * 5
    header = [
        client.app.signature(
            "ocr.recognize",
            args=({"doc": doc_id, "index": i, "quad": quads[i], "crop": encode_crop(page[40 * i : 40 * i + 30, :50, 0])},),
        )
        for i in range(5)
    ]
    ref = {**document_ref(doc_id, "x.png", time.time()), "width": 600, "height": 800, "boxes": 5,
           "detect_started": time.time(), "detect_finished": time.time()}
    result = chord(header, client.app.signature("ocr.aggregate", args=(ref,))).apply_async()
    doc = result.get(timeout=30)
    assert [w["text"] for w in doc["words"]] == ["w10", "w20", "w30", "w40", "w50"]


def test_malformed_crop_fails_only_itself_and_its_chord(noop_stack: Stack) -> None:
    """A bad payload in a batch fails its own request; the others are stored; the chord errors."""
    client = noop_stack.client()
    doc_id = str(uuid.uuid4())
    good = encode_crop(grid_page()[:30, :50, 0])
    payloads = [{"doc": doc_id, "index": i, "quad": [[0, 0]] * 4, "crop": good} for i in range(3)]
    payloads.append({"doc": doc_id, "index": 3, "quad": [[0, 0]] * 4, "crop": {"shape": [9, 9], "data": b"x"}})
    header = [client.app.signature("ocr.recognize", args=(p,), task_id=f"{doc_id}.{p['index']}") for p in payloads]
    ref = {**document_ref(doc_id, "x.png", time.time()), "width": 600, "height": 800, "boxes": 4,
           "detect_started": time.time(), "detect_finished": time.time()}
    result = chord(header, client.app.signature("ocr.aggregate", args=(ref,))).apply_async()
    with pytest.raises(Exception, match="crop data has 1 bytes"):
        result.get(timeout=30)
    states = [AsyncResult(f"{doc_id}.{i}", app=client.app).state for i in range(4)]
    assert states == ["SUCCESS", "SUCCESS", "SUCCESS", "FAILURE"]


def test_corrupt_upload_fails_clearly_and_workers_keep_serving(noop_stack: Stack, page_png: bytes) -> None:
    """A truncated PNG fails its document with a readable error; the next document succeeds."""
    client = noop_stack.client()
    bad = client.submit(page_png[:200], "broken.png")
    status = noop_stack.wait(bad, timeout=20)
    assert status["state"] == "FAILURE" and status["result"] is None
    assert "InvalidImage" in status["error"] and "image" in status["error"]
    assert noop_stack.redis().exists(f"ocr:page:{bad}") == 0
    assert noop_stack.wait(client.submit(page_png, "good.png"))["state"] == "SUCCESS"


def test_client_refuses_obvious_non_images(noop_stack: Stack) -> None:
    """Empty uploads and PDFs are refused before anything is queued."""
    client = noop_stack.client()
    with pytest.raises(InvalidImage):
        client.submit(b"", "empty.png")
    with pytest.raises(UnsupportedFormat, match="PDF"):
        client.submit(b"%PDF-1.7\n...", "doc.pdf")


def test_unknown_id_is_none(noop_stack: Stack) -> None:
    """Ids never issued (or malformed) read as None, not PENDING."""
    client = noop_stack.client()
    assert client.status(str(uuid.uuid4())) is None
    assert client.status("../../etc/passwd") is None
    assert client.status("") is None


def test_pickle_message_is_refused(noop_stack: Stack, page_png: bytes) -> None:
    """A pickle-serialised task message is never executed."""
    client = noop_stack.client()
    doc_id = str(uuid.uuid4())
    submitted = client.store.put_page(doc_id, page_png, "evil.png")
    body = pickle.dumps(((document_ref(doc_id, "evil.png", submitted),), {}, {}))
    headers = {"lang": "py", "task": "ocr.detect", "id": doc_id, "root_id": doc_id, "parent_id": None,
               "group": None, "retries": 0, "eta": None, "expires": None, "timelimit": [None, None]}
    with Connection(noop_stack.redis_url) as conn:
        conn.Producer().publish(
            body, exchange="detect", routing_key="detect", headers=headers,
            content_type="application/x-python-serialize", content_encoding="binary",
        )
    deadline = time.monotonic() + 15
    while "untrusted content" not in noop_stack.logs("detect"):
        assert time.monotonic() < deadline, noop_stack.tail()
        time.sleep(0.1)
    time.sleep(0.5)
    status = client.status(doc_id)
    assert status is not None and status["state"] == "PENDING" and status["progress"]["total"] == 0
    assert client.store.info(doc_id)["total"] == -1  # detection never ran
    # The page was stored by hand, not accepted through submit(): drop it, or the stall watchdog
    # of a later test in this session would find it in flight and send it to detection.
    client.store.forget(doc_id)


def test_recognizer_failure_fails_the_document() -> None:
    """A recognizer that raises turns into FAILURE with a readable error, not a hang."""
    with Stack(models="noop-failing", batch_size=100, batch_timeout=0.1) as stack:
        client = stack.client()
        from tests.service.conftest import png_bytes

        status = stack.wait(client.submit(png_bytes(grid_page()), "page.png"), timeout=30)
        assert status["state"] == "FAILURE" and status["result"] is None
        assert "simulated recognizer failure" in status["error"]
        assert status["error"].startswith("recognition of crop")
        # the worker is still alive and answers the next document (which fails the same way)
        assert stack.wait(client.submit(png_bytes(grid_page()), "again.png"), timeout=30)["state"] == "FAILURE"


def test_real_models_round_trip(real_model_dir, page_png: bytes) -> None:  # type: ignore[no-untyped-def]
    """The real (randomly initialised) detector and recognizer run behind the same queue."""
    from tests.conftest import render_text_page
    from tests.service.conftest import png_bytes

    env = {"OCR_MODEL_DIR": str(real_model_dir)}
    with Stack(models="real", env=env, batch_size=64, batch_timeout=0.2) as stack:
        client = stack.client()
        status = stack.wait(client.submit(png_bytes(render_text_page(["hello", "world"] * 6)), "p.png"), timeout=90)
        assert status["state"] == "SUCCESS", status
        doc = status["result"]
        assert set(doc) >= {"words", "lines", "text", "width", "height", "timings", "batches"}
        assert (doc["width"], doc["height"]) == (640, 480)
        assert status["progress"]["done"] == status["progress"]["total"] >= 1
        assert all(isinstance(w["text"], str) and w["text"] for w in doc["words"])
        assert sum(b["crops"] for b in doc["batches"]) == status["progress"]["total"]
        assert "recognizer ready" in stack.logs("recognize")


def test_ping_raises_when_redis_is_down() -> None:
    """ServiceUnavailable, not a raw connection error, when nothing answers."""
    from ocr_tasks.errors import ServiceUnavailable
    from ocr_tasks.settings import Settings
    from tests.service.stack import free_port

    client = OCRClient(Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    with pytest.raises(ServiceUnavailable):
        client.ping()
    with pytest.raises(ServiceUnavailable):
        client.submit(b"\x89PNG\r\n\x1a\n....", "x.png")
    with pytest.raises(ServiceUnavailable):
        client.status(str(uuid.uuid4()))
