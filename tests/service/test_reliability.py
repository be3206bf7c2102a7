"""Delivery guarantee: workers killed or restarted, Redis restarted, a recognizer failing.

Every accepted document must end SUCCESS or FAILURE, never stay PENDING/STARTED forever, and
never be silently dropped (docs/reliability.md states the guarantee and the bounds measured
here). The stacks run the Procfile's worker command lines with the noop models slowed down
(``OCR_NOOP_DETECT_SECONDS``, ``OCR_NOOP_RECOGNIZE_SECONDS``) so a worker can be killed in
the middle of a document or a batch, and with a short ``OCR_VISIBILITY_TIMEOUT`` so the Redis
broker hands abandoned messages out again within seconds instead of an hour.

Only processes a test's own :class:`Stack` started are ever signalled.
"""

from __future__ import annotations

import json
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from celery import chord

from ocr_tasks.client import OCRClient, document_ref
from ocr_tasks.crops import encode_crop
from ocr_tasks.noop import POISON_GRAY
from tests.service.conftest import grid_page, png_bytes
from tests.service.stack import Stack

pytestmark = pytest.mark.slow

CROPS_PER_PAGE = 200
#: OCR_VISIBILITY_TIMEOUT of the kill tests (seconds).
VISIBILITY = 4
#: Seconds within which every accepted document must be finished after a replacement worker
#: is ready (documented in docs/reliability.md: visibility timeout + one sweep + the work).
RECOVERY_BOUND = 45.0
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"

#: Slow noop models: a detect call takes 0.6 s, a recognizer call 0.3 s.
SLOW = {
    "OCR_VISIBILITY_TIMEOUT": str(VISIBILITY),
    "OCR_STALL_TIMEOUT": "20",
    "OCR_NOOP_DETECT_SECONDS": "0.6",
    "OCR_NOOP_RECOGNIZE_SECONDS": "0.3",
}


def expected_words() -> list[str]:
    return [f"w{10 + i}" for i in range(CROPS_PER_PAGE)]


def wait_all(stack: Stack, client: OCRClient, ids: list[str], timeout: float) -> list[dict[str, Any]]:
    """Statuses of every document once all are SUCCESS or FAILURE (fails after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = [client.status(i) for i in ids]
        if all(s is not None and s["state"] in ("SUCCESS", "FAILURE") for s in statuses):
            return statuses  # type: ignore[return-value]
        if time.monotonic() > deadline:
            stuck = [(i, s and s["state"], s and s["progress"]) for i, s in zip(ids, statuses)
                     if not s or s["state"] not in ("SUCCESS", "FAILURE")]
            raise AssertionError(f"not finished after {timeout} s: {stuck}\n{stack.tail(40)}")
        stack.check_alive()
        time.sleep(0.1)


def assert_all_read(statuses: list[dict[str, Any]]) -> None:
    """Every document succeeded with exactly its 200 words, in order, each once."""
    for status in statuses:
        assert status["state"] == "SUCCESS", status
        assert [w["text"] for w in status["result"]["words"]] == expected_words()
        assert status["progress"] == {"done": CROPS_PER_PAGE, "total": CROPS_PER_PAGE}


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def amqp_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def slow_stack() -> Iterator[Stack]:
    with Stack(models="noop", batch_size=100, batch_timeout=0.2, env=SLOW) as stack:
        yield stack


def test_kill_9_recognize_worker_mid_batch_under_load(slow_stack: Stack, page_png: bytes) -> None:
    """SIGKILL of the recognition worker while batches run: a replacement finishes every document."""
    stack, client = slow_stack, slow_stack.client()
    ids = [client.submit(page_png, f"load{i}.png") for i in range(6)]
    # some crops are recognised, most are not: the worker is busy with the next batches
    wait_for(lambda: client.status(ids[0])["progress"]["done"] > 0, 60, "a first batch")
    time.sleep(0.15)  # the next batch (0.3 s) is running: hundreds of crops are buffered
    done_before = sum(client.status(i)["progress"]["done"] for i in ids)
    stack.kill("recognize", signal.SIGKILL)
    assert done_before < 6 * CROPS_PER_PAGE
    stack.respawn("recognize")
    t0 = time.monotonic()
    assert_all_read(wait_all(stack, client, ids, RECOVERY_BOUND))
    print(f"recognize kill -9: all done {time.monotonic() - t0:.1f} s after the replacement was ready")


def test_kill_9_detect_worker_mid_document(slow_stack: Stack, page_png: bytes) -> None:
    """SIGKILL of the detect worker (and its pool) while it detects: the document is detected again."""
    stack, client = slow_stack, slow_stack.client()
    ids = [client.submit(page_png, f"det{i}.png") for i in range(3)]
    wait_for(lambda: f"ocr.detect[{ids[0]}] received" in stack.logs("detect"), 30, "detect to start")
    time.sleep(0.1)  # inside the 0.6 s detect call
    assert client.status(ids[0])["progress"]["total"] == 0  # not detected yet
    stack.kill("detect", signal.SIGKILL)
    stack.respawn("detect")
    t0 = time.monotonic()
    assert_all_read(wait_all(stack, client, ids, RECOVERY_BOUND))
    print(f"detect kill -9: all done {time.monotonic() - t0:.1f} s after the replacement was ready")


def test_warm_shutdown_of_both_workers_mid_run(slow_stack: Stack, page_png: bytes) -> None:
    """SIGTERM (Celery's warm shutdown) of both workers mid-run, then new ones: nothing is lost."""
    stack, client = slow_stack, slow_stack.client()
    ids = [client.submit(page_png, f"term{i}.png") for i in range(4)]
    wait_for(lambda: client.status(ids[0])["progress"]["done"] > 0, 60, "a first batch")
    took = stack.kill("recognize", signal.SIGTERM) + stack.kill("detect", signal.SIGTERM)
    assert took < 25, "warm shutdown should finish the running task and exit"
    stack.respawn("detect")
    stack.respawn("recognize")
    t0 = time.monotonic()
    assert_all_read(wait_all(stack, client, ids, RECOVERY_BOUND))
    print(f"SIGTERM: all done {time.monotonic() - t0:.1f} s after the replacements were ready")


def test_redelivered_crops_are_counted_once(noop_stack: Stack) -> None:
    """Duplicate crop messages (a redelivery) neither complete a chord early nor repeat a word."""
    client = noop_stack.client()
    control, node = client.app.control, [noop_stack.node("recognize")]
    queue = noop_stack.settings.recognize_queue
    page, doc_id, n = grid_page(), str(uuid.uuid4()), 6
    quads = [[[0, 0], [59, 0], [59, 39], [0, 39]]] * n
    header = [
        client.app.signature(
            "ocr.recognize",
            args=({"doc": doc_id, "index": i, "quad": quads[i], "crop": encode_crop(page[40 * i : 40 * i + 30, :50, 0])},),
            task_id=f"{doc_id}.{i}",
        )
        for i in range(n)
    ]
    ref = {**document_ref(doc_id, "dup.png", time.time()), "width": 600, "height": 800, "boxes": n,
           "detect_started": time.time(), "detect_finished": time.time()}
    control.cancel_consumer(queue, destination=node, reply=True, timeout=5)
    try:
        result = chord(header, client.app.signature("ocr.aggregate", args=(ref,))).apply_async()
        r = noop_stack.redis()
        wait_for(lambda: r.llen(queue) == n, 10, "the crop messages")
        messages = r.lrange(queue, 0, -1)
        # deliver three of the crops twice, as a Redis visibility-timeout restore would
        r.rpush(queue, *messages[:3])
    finally:
        control.add_consumer(queue, destination=node, reply=True, timeout=5)
    doc = result.get(timeout=30)
    assert [w["text"] for w in doc["words"]] == [f"w{10 + 10 * i}" for i in range(n)]
    wait_for(lambda: noop_stack.redis().llen(queue) == 0, 10, "the duplicates to be consumed")
    time.sleep(0.5)
    assert "were delivered again" in noop_stack.logs("recognize")


def test_redelivered_detect_message_is_skipped(noop_stack: Stack, page_png: bytes) -> None:
    """A detect message delivered twice publishes one chord and never turns a success into a
    failure (its page is deleted once the document is assembled)."""
    client = noop_stack.client()
    control, node = client.app.control, [noop_stack.node("detect")]
    queue = noop_stack.settings.detect_queue
    r = noop_stack.redis()
    control.cancel_consumer(queue, destination=node, reply=True, timeout=5)
    try:
        doc_id = client.submit(page_png, "twice.png")
        wait_for(lambda: r.llen(queue) == 1, 10, "the detect message")
        r.rpush(queue, *r.lrange(queue, 0, -1))  # the same message twice
    finally:
        control.add_consumer(queue, destination=node, reply=True, timeout=5)
    status = noop_stack.wait(doc_id)
    wait_for(lambda: r.llen(queue) == 0, 10, "both deliveries")
    time.sleep(1.0)
    again = client.status(doc_id)
    assert status["state"] == again["state"] == "SUCCESS", again
    assert [w["text"] for w in again["result"]["words"]] == expected_words()
    assert "detect delivered again" in noop_stack.logs("detect")


def test_stall_watchdog_resends_a_document_whose_message_was_lost(noop_stack: Stack, page_png: bytes) -> None:
    """A crop message lost by the broker (kombu's Redis BRPOP window) leaves its document at
    199/200; the watchdog sends it to detection again, the 199 recorded crops keep their
    results, and the document succeeds. A document that stalls again and again is failed
    with a readable error."""
    from ocr_tasks.celery_app import create_celery
    from ocr_tasks.recovery import MAX_RECOVERIES, recover_stalled

    client = noop_stack.client()
    control, node = client.app.control, [noop_stack.node("recognize")]
    queue = noop_stack.settings.recognize_queue
    r = noop_stack.redis()
    control.cancel_consumer(queue, destination=node, reply=True, timeout=5)
    try:
        doc_id = client.submit(page_png, "lost.png")
        wait_for(lambda: r.llen(queue) == CROPS_PER_PAGE, 20, "the crop messages")
        assert r.lrem(queue, 1, r.lindex(queue, 57)) == 1  # the broker loses one crop
    finally:
        control.add_consumer(queue, destination=node, reply=True, timeout=5)
    wait_for(lambda: client.status(doc_id)["progress"]["done"] == CROPS_PER_PAGE - 1, 30, "199 crops")
    time.sleep(1.0)
    assert client.status(doc_id)["state"] == "STARTED"  # stuck: nothing would ever finish it
    app = create_celery(replace(noop_stack.settings, stall_timeout=5), tasks=False)
    r.delete("ocr:recovery:lock")
    actions = recover_stalled(app, now=time.time() + 10)
    assert actions["resent"] == [doc_id]
    status = noop_stack.wait(doc_id)
    assert status["state"] == "SUCCESS" and [w["text"] for w in status["result"]["words"]] == expected_words()
    assert "were delivered again" in noop_stack.logs("recognize")  # the 199 kept their first results

    # a document that never progresses: resent MAX_RECOVERIES times, then failed clearly
    control.cancel_consumer(noop_stack.settings.detect_queue, destination=[noop_stack.node("detect")], reply=True, timeout=5)
    try:
        stuck = client.submit(page_png, "stuck.png")
        r.hset(f"ocr:doc:{stuck}", "recoveries", MAX_RECOVERIES)
        r.delete("ocr:recovery:lock")
        assert recover_stalled(app, now=time.time() + 10)["failed"] == [stuck]
        # The FAILURE is written by the watchdog; a client reading at the same instant can still
        # see the submitted state (seen once in three clean CI runs), so read until it lands.
        wait_for(lambda: client.status(stuck)["state"] == "FAILURE", 10, "the stalled document's FAILURE")
        failed = client.status(stuck)
        assert failed["state"] == "FAILURE" and "DocumentStalled" in failed["error"]
        assert "OCR_STALL_TIMEOUT" in failed["error"] and r.exists(f"ocr:page:{stuck}") == 0
    finally:
        control.add_consumer(noop_stack.settings.detect_queue, destination=[noop_stack.node("detect")], reply=True, timeout=5)
    # its queued detect message finds the document finished and is skipped: the document never
    # shows STARTED again (task_track_started would write it over the FAILURE) and keeps its error
    deadline = time.time() + 1.5
    while time.time() < deadline:
        seen = client.status(stuck)
        assert seen["state"] == "FAILURE" and "DocumentStalled" in seen["error"], seen
        time.sleep(0.02)
    wait_for(lambda: "after the document finished; skipped" in noop_stack.logs("detect"), 10, "the skipped detect")
    assert "DocumentStalled" in client.status(stuck)["error"]
    app.close()


def test_failing_batch_fails_only_its_document_and_the_worker_goes_on(noop_stack: Stack, page_png: bytes) -> None:
    """A recognizer exception inside a shared batch fails the document that caused it, with a
    readable error; the other document of the batch and the next one succeed."""
    client = noop_stack.client()
    control, node = client.app.control, [noop_stack.node("recognize")]
    queue = noop_stack.settings.recognize_queue
    poisoned = grid_page()
    poisoned[:40, :60] = POISON_GRAY  # cell (0, 0): a crop that makes the noop recognizer raise
    control.cancel_consumer(queue, destination=node, reply=True, timeout=5)
    try:
        bad = client.submit(png_bytes(poisoned), "poison.png")
        good = client.submit(page_png, "good.png")
        wait_for(lambda: all(client.status(i)["progress"]["total"] == CROPS_PER_PAGE for i in (bad, good)),
                 30, "detection")
    finally:
        control.add_consumer(queue, destination=node, reply=True, timeout=5)
    bad_status, good_status = noop_stack.wait(bad), noop_stack.wait(good)
    assert bad_status["state"] == "FAILURE" and bad_status["result"] is None
    assert bad_status["error"].startswith("recognition of crop") and "poison crop" in bad_status["error"]
    assert good_status["state"] == "SUCCESS"
    assert [w["text"] for w in good_status["result"]["words"]] == expected_words()
    assert "retrying each document alone" in noop_stack.logs("recognize")
    after = noop_stack.wait(client.submit(page_png, "after.png"))
    assert after["state"] == "SUCCESS" and len(after["result"]["words"]) == CROPS_PER_PAGE


def test_backlog_limit_answers_503_with_retry_after(noop_stack: Stack, page_png: bytes) -> None:
    """Past OCR_MAX_BACKLOG documents waiting for detection, /batch_ocr says 503 + Retry-After."""
    from web import create_app

    settings = replace(noop_stack.settings, max_backlog=3)
    app = create_app({"TESTING": True, "OCR_SETTINGS": settings, "METRICS": False})
    http = app.test_client()
    client = noop_stack.client()
    control, node = client.app.control, [noop_stack.node("detect")]
    queue = noop_stack.settings.detect_queue
    control.cancel_consumer(queue, destination=node, reply=True, timeout=5)
    try:
        files = {"file": [(_bytes_io(page_png), "a.png"), (_bytes_io(page_png), "b.png")]}
        accepted = http.post("/batch_ocr", data=files, content_type="multipart/form-data")
        assert accepted.status_code == 202, accepted.get_json()
        files = {"file": [(_bytes_io(page_png), "c.png"), (_bytes_io(page_png), "d.png")]}
        refused = http.post("/batch_ocr", data=files, content_type="multipart/form-data")
        assert refused.status_code == 503 and refused.headers["Retry-After"].isdigit()
        assert "OCR_MAX_BACKLOG" in refused.get_json()["error"] and "2 documents are waiting" in refused.get_json()["error"]
        assert noop_stack.redis().llen(queue) == 2  # nothing of the refused request was queued
    finally:
        control.add_consumer(queue, destination=node, reply=True, timeout=5)
    ids = [t["id"] for t in accepted.get_json()["tasks"]]
    assert all(noop_stack.wait(i)["state"] == "SUCCESS" for i in ids)
    again = http.post("/batch_ocr", data={"file": [(_bytes_io(page_png), "e.png")]}, content_type="multipart/form-data")
    assert again.status_code == 202


def _bytes_io(data: bytes) -> Any:
    import io

    return io.BytesIO(data)


def test_redis_restart_during_a_run(page_png: bytes) -> None:
    """Redis (append-only, as in docker-compose) restarts while documents run: the web app
    answers 503 with a JSON message meanwhile and recovers by itself; every accepted document
    ends SUCCESS (none lost, none stuck)."""
    from web import create_app

    env = {**SLOW, "OCR_NOOP_DETECT_SECONDS": "0.1", "OCR_STALL_TIMEOUT": "8"}
    with Stack(models="noop", batch_size=100, batch_timeout=0.2, env=env, persistent=True) as stack:
        client = stack.client()
        app = create_app({"TESTING": True, "OCR_SETTINGS": stack.settings, "METRICS": False})
        http = app.test_client()
        ids = [client.submit(page_png, f"r{i}.png") for i in range(4)]
        wait_for(lambda: client.status(ids[0])["progress"]["done"] > 0, 60, "a first batch")
        stack.kill("redis", signal.SIGTERM)  # SHUTDOWN: the append-only file is flushed
        health = http.get("/healthz")
        assert health.status_code == 503 and health.get_json()["broker"] == "unavailable"
        upload = http.post("/batch_ocr", data={"file": [(_bytes_io(page_png), "x.png")]},
                           content_type="multipart/form-data")
        assert upload.status_code == 503 and upload.headers["Retry-After"]
        assert "unavailable" in upload.get_json()["error"]
        poll = http.get(f"/tasks/{ids[0]}")
        assert poll.status_code == 503 and "error" in json.loads(poll.data)
        time.sleep(2)  # the workers notice the loss
        stack.respawn("redis")
        t0 = time.monotonic()
        wait_for(lambda: http.get("/healthz").status_code == 200, 30, "the web app to recover")
        statuses = wait_all(stack, client, ids, RECOVERY_BOUND)
        print(f"redis restart: all done {time.monotonic() - t0:.1f} s after redis was back")
        assert_all_read(statuses)
        fresh = http.post("/batch_ocr", data={"file": [(_bytes_io(page_png), "after.png")]},
                          content_type="multipart/form-data")
        assert fresh.status_code == 202
        assert stack.wait(fresh.get_json()["tasks"][0]["id"], timeout=60)["state"] == "SUCCESS"


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_end_to_end_on_each_broker(broker: str, noop_stack: Stack, page_png: bytes) -> None:
    """The same documents go through Redis or RabbitMQ (durable queues); on RabbitMQ a killed
    recognition worker's messages come back at once."""
    if broker == "redis":
        client = noop_stack.client()
        statuses = [noop_stack.wait(client.submit(page_png, f"b{i}.png")) for i in range(2)]
        assert_all_read(statuses)
        return
    if not amqp_available():
        pytest.skip("no RabbitMQ broker answers on 127.0.0.1:5672")
    suffix = uuid.uuid4().hex[:10]
    queues = {"OCR_DETECT_QUEUE": f"detect-{suffix}", "OCR_RECOGNIZE_QUEUE": f"recognize-{suffix}",
              "OCR_AGGREGATE_QUEUE": f"aggregate-{suffix}"}
    env = {**queues, "OCR_NOOP_RECOGNIZE_SECONDS": "0.3"}
    try:
        with Stack(models="noop", batch_size=100, batch_timeout=0.2, env=env, broker_url=AMQP_URL) as stack:
            assert "amqp://" in stack.logs("detect")
            client = stack.client()
            ids = [client.submit(page_png, f"q{i}.png") for i in range(3)]
            wait_for(lambda: client.status(ids[0])["progress"]["done"] > 0, 60, "a first batch")
            stack.kill("recognize", signal.SIGKILL)
            stack.respawn("recognize")
            assert_all_read(wait_all(stack, client, ids, RECOVERY_BOUND))
            durable = _queue_is_durable(queues["OCR_RECOGNIZE_QUEUE"])
            assert durable
    finally:
        _delete_amqp(list(queues.values()))


def _queue_is_durable(name: str) -> bool:
    """Redeclaring a durable queue as durable succeeds; as transient the broker refuses it."""
    from kombu import Connection

    with Connection(AMQP_URL) as conn:
        channel = conn.channel()
        try:
            channel.queue_declare(queue=name, durable=True, passive=False, auto_delete=False)
            return True
        except Exception:  # noqa: BLE001 - PRECONDITION_FAILED: declared otherwise
            return False


def _delete_amqp(names: list[str]) -> None:
    from kombu import Connection

    with Connection(AMQP_URL, connect_timeout=2) as conn:
        for name in names:
            try:
                channel = conn.channel()
                channel.queue_delete(queue=name)
                channel.exchange_delete(exchange=name)
                channel.close()
            except Exception:  # noqa: BLE001 - best-effort cleanup
                pass
