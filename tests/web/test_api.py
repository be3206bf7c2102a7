"""HTTP API of the web app: a fake task client for the queue paths, tiny random models in-process."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import types
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient

from ocr_tasks.schemas import DocumentResult
from tests.conftest import ROOT
from web import create_app

from .conftest import FakeClient, png_bytes

SECURITY_HEADERS = ("X-Content-Type-Options", "X-Frame-Options", "Content-Security-Policy", "Referrer-Policy")


def files(*items: tuple[bytes, str], field: str = "file") -> dict[str, Any]:
    """A multipart body with each (bytes, filename) under ``field``."""
    return {field: [(io.BytesIO(data), name) for data, name in items]}


def assert_error(response: Any, status: int, *words: str) -> str:
    """The response is a JSON error with ``status`` whose message contains every word."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) >= {"error"} and isinstance(body["error"], str) and body["error"]
    for word in words:
        assert word.lower() in body["error"].lower(), body["error"]
    return body["error"]


# --- factory and layering ---------------------------------------------------------------------


def test_config_order_defaults_env_then_test_config(monkeypatch):
    """Defaults, then OCR_WEB_* env vars, then test_config."""
    assert create_app({"OCR_CLIENT": FakeClient()}).config["MAX_FILES"] == 20
    monkeypatch.setenv("OCR_WEB_MAX_FILES", "3")
    monkeypatch.setenv("OCR_WEB_RETRY_AFTER", "9")
    app = create_app({"OCR_CLIENT": FakeClient(), "MAX_FILES": 5})
    assert app.config["MAX_FILES"] == 5
    assert app.config["RETRY_AFTER"] == 9
    assert app.config["MAX_CONTENT_LENGTH"] == 50 * 1024 * 1024


def test_settings_come_from_ocr_env(monkeypatch, tmp_path):
    """OCR_* variables reach the library settings; OCR_SETTINGS overrides amend them."""
    monkeypatch.setenv("OCR_MAX_PIXELS", "1234")
    app = create_app({"OCR_CLIENT": FakeClient(), "OCR_SETTINGS": {"model_dir": tmp_path}})
    settings = app.extensions["ocr_web"]["settings"]
    assert settings.max_pixels == 1234 and settings.model_dir == tmp_path


def test_web_imports_no_torch_or_celery():
    """Importing web, building the app and serving the form load neither torch nor celery."""
    code = (
        "import sys, web\n"
        "app = web.create_app({'OCR_CLIENT': object()})\n"
        "c = app.test_client()\n"
        "assert c.get('/').status_code == 200\n"
        "assert c.get('/openapi.json').status_code == 200\n"
        "assert c.get('/tasks/nope').status_code == 400\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'celery'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == ""


def test_noop_models_serve_ocr_without_torch():
    """With OCR_MODELS=noop the in-process endpoints use the torch-free stand-ins."""
    code = (
        "import io, sys, web\n"
        "from PIL import Image\n"
        "buf = io.BytesIO(); Image.new('RGB', (80, 60), 'black').save(buf, 'PNG')\n"
        "app = web.create_app({'OCR_CLIENT': object(), 'OCR_SETTINGS': {'models': 'noop'}})\n"
        "r = app.test_client().post('/ocr', data={'file': (io.BytesIO(buf.getvalue()), 'p.png')})\n"
        "assert r.status_code == 200 and r.get_json()['words'][0]['text'] == 'w0', r.get_json()\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


def test_client_is_built_lazily_from_settings(monkeypatch):
    """Without OCR_CLIENT, ocr_tasks.client.OCRClient(settings) is built on first use, once."""
    built: list[Any] = []

    class StubClient(FakeClient):
        def __init__(self, settings: Any = None) -> None:
            super().__init__()
            built.append(settings)

    module = types.ModuleType("ocr_tasks.client")
    module.OCRClient = StubClient  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ocr_tasks.client", module)
    app = create_app({"TESTING": True})
    assert built == []
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert len(built) == 1 and built[0] is app.extensions["ocr_web"]["settings"]


# --- /batch_ocr --------------------------------------------------------------------------------


def test_batch_ocr_queues_each_file_in_order(client: FlaskClient, fake: FakeClient, page_png: bytes):
    """202 with one task per file, in upload order; the exact bytes are submitted."""
    other = png_bytes(size=(30, 20), fmt="JPEG")
    response = client.post("/batch_ocr", data=files((page_png, "a.png"), (other, "b.jpg")))
    assert response.status_code == 202
    tasks = response.get_json()["tasks"]
    assert [t["filename"] for t in tasks] == ["a.png", "b.jpg"]
    assert [t["id"] for t in tasks] == [s[0] for s in fake.submitted]
    assert [s[2] for s in fake.submitted] == [page_png, other]
    for task in tasks:
        assert set(task) == {"id", "filename", "status_url"}
        assert task["status_url"] == f"/tasks/{task['id']}"
        assert client.get(task["status_url"]).status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({}, ["multipart/form-data", "file"]),
        ({"json": {"file": "x"}}, ["multipart/form-data", "application/json"]),
        ({"data": {"image": (io.BytesIO(b"x"), "a.png")}}, ["'image'", "'file'"]),
        ({"data": {"file": "just text"}, "content_type": "multipart/form-data"}, ["text, not a file"]),
        ({"data": {"other": "value"}, "content_type": "multipart/form-data"}, ["no file uploaded"]),
        ({"data": {"file": "just text"}}, ["multipart/form-data", "x-www-form-urlencoded"]),
        ({"data": {"file": (io.BytesIO(b""), "empty.png")}}, ["empty.png", "empty"]),
        ({"data": {"file": (io.BytesIO(b"\x89PNG\r\n\x1a\n garbage"), "bad.png")}}, ["bad.png"]),
        (
            {"data": {"file": (io.BytesIO(b"hello world"), "notes.txt")}},
            ["notes.txt", ".txt", "not supported"],
        ),
        ({"data": {"file": (io.BytesIO(b"%PDF-1.7 ..."), "scan")}}, ["pdf"]),
        ({"data": {"file": (io.BytesIO(b"not an image at all"), "noext")}}, ["not a recognised image"]),
    ],
    ids=[
        "no-body",
        "json",
        "wrong-field",
        "text-field",
        "no-file",
        "urlencoded",
        "empty",
        "corrupt",
        "txt",
        "pdf",
        "noise",
    ],
)
def test_batch_ocr_bad_uploads_are_400(client: FlaskClient, fake: FakeClient, kwargs, words):
    """Every bad upload is a 400 naming the problem, and nothing is queued."""
    assert_error(client.post("/batch_ocr", **kwargs), 400, *words)
    assert fake.submitted == []


def test_batch_ocr_one_bad_file_queues_nothing(client: FlaskClient, fake: FakeClient, page_png: bytes):
    """Files are all validated before any is queued; the message names the bad one."""
    body = files((page_png, "good.png"), (page_png[:60], "cut.png"), (page_png, "good2.png"))
    assert_error(client.post("/batch_ocr", data=body), 400, "file 2", "cut.png")
    assert fake.submitted == []


def test_batch_ocr_too_many_files(fake: FakeClient, page_png: bytes):
    """More files than MAX_FILES is a 400 stating the limit."""
    client = create_app({"OCR_CLIENT": fake, "MAX_FILES": 2}).test_client()
    body = files(*[(page_png, f"p{i}.png") for i in range(3)])
    assert_error(client.post("/batch_ocr", data=body), 400, "too many files", "3", "at most 2")
    assert fake.submitted == []


def test_batch_ocr_unknown_parameter(client: FlaskClient, page_png: bytes):
    """Unknown query/form parameters are refused by name."""
    assert_error(client.post("/batch_ocr?lang=fr", data=files((page_png, "a.png"))), 400, "'lang'")


def test_request_over_max_content_length_is_413(fake: FakeClient):
    """A body over MAX_CONTENT_LENGTH is a JSON 413."""
    client = create_app({"OCR_CLIENT": fake, "MAX_CONTENT_LENGTH": 2000}).test_client()
    big = png_bytes(size=(400, 400), fmt="BMP")
    response = client.post("/batch_ocr", data=files((big, "big.bmp")))
    assert_error(response, 413, "2000 bytes")
    assert fake.submitted == []


def test_too_many_pixels_is_413(fake: FakeClient):
    """An image over OCR_MAX_PIXELS is refused (before decoding) with 413 naming the size."""
    app = create_app({"OCR_CLIENT": fake, "OCR_SETTINGS": {"max_pixels": 10_000}})
    response = app.test_client().post("/batch_ocr", data=files((png_bytes(size=(200, 100)), "wide.png")))
    assert_error(response, 413, "wide.png", "200x100", "10000")
    assert fake.submitted == []


def test_broker_down_is_503_with_retry_after(client: FlaskClient, fake: FakeClient, page_png: bytes):
    """Broker unreachable: 503 JSON with Retry-After, for submit and for polling."""
    fake.down = True
    response = client.post("/batch_ocr", data=files((page_png, "a.png")))
    assert_error(response, 503, "unavailable")
    assert int(response.headers["Retry-After"]) > 0
    response = client.get(f"/tasks/{uuid.uuid4()}")
    assert_error(response, 503, "unavailable")
    assert "Retry-After" in response.headers


def test_broker_lost_mid_batch_reports_accepted_tasks(client: FlaskClient, fake: FakeClient, page_png: bytes):
    """If the broker fails after some files were queued, the 503 lists those tasks so none is lost."""
    fake.fail_after = 1
    response = client.post("/batch_ocr", data=files((page_png, "a.png"), (page_png, "b.png")))
    assert_error(response, 503, "1 of 2")
    body = response.get_json()
    assert [t["id"] for t in body["tasks"]] == [fake.submitted[0][0]]
    assert body["tasks"][0]["filename"] == "a.png"


def test_real_client_with_redis_down_is_503(page_png: bytes):
    """The real OCRClient against a port where nothing listens: 503 + Retry-After everywhere."""
    pytest.importorskip("celery", reason="the service extra is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app({"OCR_SETTINGS": {"redis_url": f"redis://127.0.0.1:{port}/0"}})
    client = app.test_client()
    for response in (
        client.post("/batch_ocr", data=files((page_png, "a.png"))),
        client.get(f"/tasks/{uuid.uuid4()}"),
        client.get("/healthz"),
    ):
        assert response.status_code == 503 and response.get_json()["error"]
        assert int(response.headers["Retry-After"]) > 0


# --- /tasks/<id> -------------------------------------------------------------------------------


def _queued(client: FlaskClient, png: bytes) -> str:
    return client.post("/batch_ocr", data=files((png, "a.png"))).get_json()["tasks"][0]["id"]


def test_task_pending_then_success(client: FlaskClient, fake: FakeClient, page_png: bytes):
    """A task goes PENDING -> STARTED (with progress) -> SUCCESS (with the document)."""
    task_id = _queued(client, page_png)
    body = client.get(f"/tasks/{task_id}").get_json()
    assert body == {
        "id": task_id,
        "state": "PENDING",
        "progress": {"done": 0, "total": 0},
        "result": None,
        "error": None,
    }
    fake.statuses[task_id].update(state="STARTED", progress={"done": 2, "total": 5})
    body = client.get(f"/tasks/{task_id}").get_json()
    assert body["state"] == "STARTED" and body["progress"] == {"done": 2, "total": 5}
    document = {
        "words": [{"quad": [[1, 2], [30, 2], [30, 12], [1, 12]], "text": "Hello", "confidence": 0.9}],
        "lines": [{"text": "Hello", "word_indices": [0]}],
        "text": "Hello",
        "width": 320,
        "height": 240,
        "timings": {"total": 0.1},
    }
    fake.statuses[task_id].update(state="SUCCESS", progress={"done": 5, "total": 5}, result=document)
    response = client.get(f"/tasks/{task_id}")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["state"] == "SUCCESS" and body["error"] is None
    assert DocumentResult.from_dict(body["result"]).to_dict()["text"] == "Hello"


def test_task_failure_has_error(client: FlaskClient, fake: FakeClient, page_png: bytes):
    """A failed task reports FAILURE, a null result and the error text."""
    task_id = _queued(client, page_png)
    fake.statuses[task_id].update(state="FAILURE", error="PageMissing: page expired")
    body = client.get(f"/tasks/{task_id}").get_json()
    assert body["state"] == "FAILURE" and body["result"] is None and "expired" in body["error"]


def test_unknown_task_is_404_not_pending(client: FlaskClient):
    """An id that was never issued is 404."""
    task_id = str(uuid.uuid4())
    assert_error(client.get(f"/tasks/{task_id}"), 404, task_id)


@pytest.mark.parametrize("bad", ["nope", "1234", "not-a-uuid-at-all-0000-000000000000", "%00"])
def test_malformed_task_id_is_400(client: FlaskClient, bad: str):
    """A task id that is not a UUID is 400."""
    assert_error(client.get(f"/tasks/{bad}"), 400, "uuid")


def test_task_id_is_canonicalised(client: FlaskClient, page_png: bytes):
    """Upper-case ids find the same task."""
    task_id = _queued(client, page_png)
    body = client.get(f"/tasks/{task_id.upper()}").get_json()
    assert body["id"] == task_id


# --- meta, page, headers ----------------------------------------------------------------------


def test_healthz(client: FlaskClient, fake: FakeClient):
    """200 when the broker answers, 503 with Retry-After when it does not."""
    assert client.get("/healthz").get_json() == {"status": "ok", "broker": "ok"}
    fake.down = True
    response = client.get("/healthz")
    assert response.status_code == 503 and response.get_json()["broker"] == "unavailable"
    assert "Retry-After" in response.headers


def test_openapi_documents_every_route(app, client: FlaskClient):
    """/openapi.json is OpenAPI 3 and describes every API route with its methods."""
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    routes = {
        rule.rule.replace("<task_id>", "{task_id}"): rule.methods - {"HEAD", "OPTIONS"}
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith(("api.", "meta.")) and rule.rule != "/openapi.json"
    }
    assert set(routes) == set(spec["paths"])
    for path, methods in routes.items():
        assert {m.lower() for m in methods} == set(spec["paths"][path])
    text = json.dumps(spec)
    for ref in {part.split('"')[0] for part in text.split("#/components/schemas/")[1:]}:
        assert ref in spec["components"]["schemas"]


@pytest.mark.parametrize("path", ["/", "/openapi.json", "/tasks/nope", "/static/app.js", "/missing"])
def test_security_headers(client: FlaskClient, path: str):
    """Every response carries nosniff, DENY framing, a self-only CSP and a referrer policy."""
    response = client.get(path)
    for header in SECURITY_HEADERS:
        assert header in response.headers, (path, header)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_unknown_route_and_method_are_json(client: FlaskClient):
    """404 and 405 are JSON errors too."""
    assert_error(client.get("/missing"), 404, "not found")
    response = client.get("/batch_ocr")
    assert_error(response, 405, "method")
    assert "POST" in response.headers["Allow"]


def test_upload_page_uses_only_local_assets(client: FlaskClient):
    """GET / is the upload form with the app's own JS/CSS and no external URLs."""
    response = client.get("/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert 'type="file"' in html and "multiple" in html and 'name="file"' in html
    assert "/static/app.js" in html and "/static/style.css" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "javascript" in js.mimetype
    assert "/batch_ocr" in html and "status_url" in js.get_data(as_text=True)


# --- in-process models: /detection, /recognition, /ocr ----------------------------------------


def test_detection_returns_boxes(model_client: FlaskClient, page_png: bytes):
    """/detection: 200 with quads (4 points) and scores."""
    response = model_client.post("/detection?canvas_size=320&mag_ratio=1", data=files((page_png, "p.png")))
    assert response.status_code == 200, response.get_json()
    boxes = response.get_json()["boxes"]
    assert boxes, "the constant-score detector finds the page"
    for box in boxes:
        assert set(box) == {"quad", "score"} and 0.0 <= box["score"] <= 1.0
        assert len(box["quad"]) == 4 and all(len(p) == 2 for p in box["quad"])
        assert all(0 <= x <= 320 and 0 <= y <= 240 for x, y in box["quad"])


def test_detection_threshold_override_changes_result(model_client: FlaskClient, page_png: bytes):
    """A form override is applied: text_threshold above the constant score finds nothing."""
    body = {**files((page_png, "p.png")), "text_threshold": "0.95", "canvas_size": "256"}
    response = model_client.post("/detection", data=body)
    assert response.status_code == 200 and response.get_json() == {"boxes": []}


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("text_threshold=abc", ["text_threshold", "number", "abc"]),
        ("link_threshold=1.5", ["link_threshold", "between 0 and 1"]),
        ("low_text=-0.1", ["low_text"]),
        ("canvas_size=10", ["canvas_size", "32"]),
        ("canvas_size=999999", ["canvas_size", "4096"]),
        ("canvas_size=3.5", ["canvas_size", "integer"]),
        ("mag_ratio=0", ["mag_ratio", "> 0"]),
        ("mag_ratio=nan", ["mag_ratio", "finite"]),
        ("mag_ratio=inf", ["mag_ratio", "finite"]),
        ("low_text=0.1&low_text=0.2", ["low_text", "once"]),
        ("align_short_words=maybe", ["align_short_words", "true or false", "maybe"]),
        ("split_link=1.2", ["split_link", "between 0 and 1"]),
        ("split_link=weak", ["split_link", "number", "weak"]),
        ("text_treshold=0.5", ["text_treshold", "accepted"]),
    ],
)
@pytest.mark.parametrize("endpoint", ["/detection", "/ocr"])
def test_bad_thresholds_are_400(model_client: FlaskClient, page_png: bytes, endpoint: str, query: str, words):
    """Bad detection overrides are 400 naming the parameter."""
    assert_error(model_client.post(f"{endpoint}?{query}", data=files((page_png, "p.png"))), 400, *words)


@pytest.mark.parametrize("value", ["true", "False", "1", "off"])
def test_align_short_words_parameter_is_accepted(model_client: FlaskClient, page_png: bytes, value: str):
    """align_short_words takes the usual spellings of a boolean."""
    response = model_client.post(f"/detection?canvas_size=320&align_short_words={value}", data=files((page_png, "p.png")))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["boxes"]


def test_split_link_parameter_is_accepted(model_client: FlaskClient, page_png: bytes):
    """split_link is a detection override like the thresholds (0 turns the cut off)."""
    for value in ("0", "0.35"):
        response = model_client.post(f"/detection?canvas_size=320&split_link={value}", data=files((page_png, "p.png")))
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["boxes"]


def test_ocr_returns_a_document(model_client: FlaskClient, page_png: bytes):
    """/ocr: 200 with the document schema, round-tripping through DocumentResult."""
    response = model_client.post("/ocr?canvas_size=320", data=files((page_png, "p.png")))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"words", "lines", "text", "width", "height", "timings"}
    assert (body["width"], body["height"]) == (320, 240)
    assert DocumentResult.from_dict(body).to_dict() == body
    for word in body["words"]:
        assert len(word["quad"]) == 4 and isinstance(word["text"], str) and 0 <= word["confidence"] <= 1
    assert body["text"] == "\n".join(line["text"] for line in body["lines"])
    assert "total" in body["timings"]


def test_recognition_one_result_per_file_in_order(model_client: FlaskClient):
    """/recognition: one {text, confidence} per crop, in upload order."""
    crops = [png_bytes(size=(w, 32)) for w in (40, 120, 80)]
    response = model_client.post("/recognition", data=files(*[(c, f"c{i}.png") for i, c in enumerate(crops)]))
    assert response.status_code == 200, response.get_json()
    results = response.get_json()["results"]
    assert len(results) == 3
    for result in results:
        assert set(result) == {"text", "confidence"} and isinstance(result["text"], str)
        assert 0.0 <= result["confidence"] <= 1.0


@pytest.mark.parametrize("endpoint", ["/detection", "/ocr"])
def test_single_page_endpoints_refuse_several_files(
    model_client: FlaskClient, page_png: bytes, endpoint: str
):
    """/detection and /ocr take exactly one file and point to /batch_ocr."""
    body = files((page_png, "a.png"), (page_png, "b.png"))
    assert_error(model_client.post(endpoint, data=body), 400, "too many files", "/batch_ocr")


@pytest.mark.parametrize("endpoint", ["/detection", "/recognition", "/ocr"])
def test_sync_endpoints_bad_uploads(model_client: FlaskClient, endpoint: str):
    """The in-process endpoints validate uploads like /batch_ocr."""
    assert_error(model_client.post(endpoint), 400, "multipart")
    assert_error(model_client.post(endpoint, data=files((b"", "e.png"))), 400, "empty")
    assert_error(model_client.post(endpoint, data=files((b"GIF89a broken", "x.gif"))), 400, "x.gif")


def test_missing_weights_is_503(tmp_path, page_png: bytes):
    """A detector whose weights are not on disk: 503 without leaking paths."""
    app = create_app(
        {"OCR_CLIENT": FakeClient(), "OCR_SETTINGS": {"model_dir": tmp_path, "detector": "craft_mlt_25k"}}
    )
    response = app.test_client().post("/ocr", data=files((page_png, "p.png")))
    message = assert_error(response, 503, "not available")
    assert str(tmp_path) not in message


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"detector": "craft_mlt_25k"}, ("not available", "weights missing")),  # official weights absent
        ({"runtime": "onnx", "precision": "bf16"}, ("cannot run", "settings")),  # a combination that cannot run
    ],
    ids=["weights-missing", "bad-runtime-settings"],
)
def test_models_that_cannot_load_are_503_json(settings, words, page_png: bytes, tmp_path):
    """A server whose models cannot load answers 503 with a JSON message (details go to the log)."""
    from ocr_tasks.models.factory import clear_cache

    clear_cache()
    app = create_app({"TESTING": True, "OCR_CLIENT": FakeClient(), "OCR_SETTINGS": {
        "model_dir": tmp_path, "device": "cpu", "recognizer": "crnn_light", "refiner": "",
        "detector": "craft_light", "cache_dir": tmp_path / "cache", **settings}})
    try:
        response = app.test_client().post("/ocr", data=files((page_png, "p.png")), content_type="multipart/form-data")
        assert_error(response, 503, *words)
    finally:
        clear_cache()
