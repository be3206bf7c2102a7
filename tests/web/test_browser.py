"""The upload page in a real headless Chromium, and Flower against the same broker.

Chromium and chromedriver come from the Debian packages (``chromium``, ``chromium-driver``;
``scripts/install-system-deps.sh``); nothing is downloaded. The app is served on a free
loopback port by werkzeug in a thread. Screenshots go to ``artifacts/`` (git-ignored).

The first test runs the page against a scripted fake task client (always available); the
end-to-end and Flower tests need ``tests/service/stack.py`` (a throwaway redis-server plus real
workers with the noop models) and skip without it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from PIL import Image, ImageDraw, ImageFont

from tests.conftest import ROOT
from web import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = ROOT / "artifacts"

pytestmark = pytest.mark.slow

#: OCR_BATCH_TIMEOUT of the test stack (seconds); above the page's longest poll interval (2 s).
BATCH_TIMEOUT = 2.5

# The browser records every /tasks/<id> answer it gets, so the test can see the progress states.
RECORD_POLLS = """
window.__polls = [];
const realFetch = window.fetch.bind(window);
window.fetch = async function (url, options) {
  const response = await realFetch(url, options);
  if (String(url).includes("/tasks/")) {
    response.clone().json().then(function (body) { window.__polls.push(body); }, function () {});
  }
  return response;
};
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="web-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless Chromium driven through the system chromedriver."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("chromium / chromium-driver not installed (run scripts/install-system-deps.sh)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (test extra)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1100",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    downloads = tmp_path_factory.mktemp("downloads")
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    service = webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    driver.downloads = downloads  # where "Download JSON" files land
    try:
        yield driver
    finally:
        driver.quit()


def render_page(path: Path, words: list[str], size: tuple[int, int] = (640, 420)) -> list[list[list[float]]]:
    """Write a white page with ``words`` on it to ``path``; return each word's box as a quad."""
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 40)
    except OSError:
        font = ImageFont.load_default(size=40)
    quads = []
    x, y = 40, 50
    for word in words:
        left, top, right, bottom = draw.textbbox((x, y), word, font=font)
        if right > size[0] - 40:
            x, y = 40, y + 90
            left, top, right, bottom = draw.textbbox((x, y), word, font=font)
        draw.text((x, y), word, fill="black", font=font)
        quads.append(
            [[left - 4, top - 4], [right + 4, top - 4], [right + 4, bottom + 4], [left - 4, bottom + 4]]
        )
        x = right + 40
    img.save(path)
    return quads


class ScriptedClient:
    """A task client whose documents advance two words per poll, then succeed with ``document``."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.polls: dict[str, int] = {}
        self.lock = threading.Lock()

    def ping(self) -> None:
        return None

    def submit(self, data: bytes, filename: str) -> str:
        task_id = str(uuid.uuid4())
        with self.lock:
            self.polls[task_id] = 0
        return task_id

    def status(self, task_id: str) -> dict[str, Any] | None:
        with self.lock:
            if task_id not in self.polls:
                return None
            self.polls[task_id] += 1
            n = self.polls[task_id]
        total = len(self.document["words"])
        done = 2 * (n - 2)  # PENDING first, then STARTED without a total, then two words per poll
        if done > total:
            return {
                "id": task_id,
                "state": "SUCCESS",
                "progress": {"done": total, "total": total},
                "result": self.document,
                "error": None,
            }
        state = "PENDING" if n == 1 else "STARTED"
        progress = {"done": max(done, 0), "total": total if n > 2 else 0}
        return {"id": task_id, "state": state, "progress": progress, "result": None, "error": None}


def wait(driver: Any, condition: Any, timeout: float = 30.0) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def upload(driver: Any, base_url: str, *paths: Path) -> None:
    from selenium.webdriver.common.by import By

    driver.get(base_url + "/")
    driver.execute_script(RECORD_POLLS)
    driver.find_element(By.ID, "file-input").send_keys("\n".join(str(p) for p in paths))
    driver.find_element(By.ID, "submit-button").click()


def downloaded_json(driver: Any, card: Any, timeout: float = 15.0) -> Any:
    """Click a card's "Download JSON" link and read the file the browser saved."""
    from selenium.webdriver.common.by import By

    link = card.find_element(By.CSS_SELECTOR, ".doc-download")
    name = link.get_attribute("download")
    assert link.text == "Download JSON" and name.endswith(".ocr.json")
    assert link.get_attribute("href").startswith("blob:")
    target = Path(driver.downloads) / name
    target.unlink(missing_ok=True)
    link.click()
    deadline = time.monotonic() + timeout
    # Chromium may show the file under its final name before it has written it all (an empty
    # file was read once), so wait until it parses, not just until it exists.
    while time.monotonic() < deadline:
        if target.is_file():
            try:
                return json.loads(target.read_text())
            except ValueError:
                pass
        time.sleep(0.1)
    assert target.is_file(), f"{name} was not downloaded to {driver.downloads}"
    return json.loads(target.read_text())  # the parse error, if the file stayed incomplete


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    driver.execute_script("window.scrollTo(0, 0)")
    # Size the window to the whole page so the screenshot shows every card.
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(1280, min(max(height + 160, 600), 4000))
    path.write_bytes(base64.b64decode(driver.get_screenshot_as_base64()))
    return path


def test_upload_form_shows_progress_boxes_and_text(browser: Any, tmp_path: Path):
    """Upload a page: a progress bar fills word by word, then the page, its boxes and text appear."""
    from selenium.webdriver.common.by import By

    words = ["Invoice", "2024-06", "Total", "42.50", "EUR"]
    page = tmp_path / "invoice.png"
    quads = render_page(page, words)
    document = {
        "words": [{"quad": q, "text": w, "confidence": 0.97} for q, w in zip(quads, words)],
        "lines": [{"text": " ".join(words), "word_indices": list(range(len(words)))}],
        "text": " ".join(words),
        "width": 640,
        "height": 420,
        "timings": {"total": 0.5},
    }
    app = create_app({"OCR_CLIENT": ScriptedClient(document)})
    with serve(app) as base_url:
        upload(browser, base_url, page)
        card = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#results .doc"))
        assert card.find_element(By.CSS_SELECTOR, ".doc-name").text == "invoice.png"
        # Text and bar read in one round trip, while part of the page is recognised.
        read_progress = (
            "const bar = arguments[0].querySelector('.doc-progress');"
            "return [arguments[0].querySelector('.doc-progress-text').textContent, bar.max, bar.value];"
        )

        def partial(driver: Any) -> Any:
            text, bar_max, bar_value = driver.execute_script(read_progress, card)
            return (text, bar_max, bar_value) if re.fullmatch(r"[1-4] / 5 words recognised", text) else None

        text, bar_max, bar_value = wait(browser, partial)
        assert bar_max == 5 and str(bar_value) == text.split(" ")[0]
        wait(browser, lambda d: card.find_element(By.CSS_SELECTOR, ".doc-result").is_displayed())
        assert card.find_element(By.CSS_SELECTOR, ".doc-state").text == "done"
        assert card.find_element(By.CSS_SELECTOR, ".doc-text").text == " ".join(words)
        polygons = card.find_elements(By.CSS_SELECTOR, "svg.overlay polygon.box")
        assert len(polygons) == len(words)
        overlay = card.find_element(By.CSS_SELECTOR, "svg.overlay")
        assert browser.execute_script("return arguments[0].getAttribute('viewBox')", overlay) == "0 0 640 420"
        image = card.find_element(By.CSS_SELECTOR, ".page-image")
        wait(browser, lambda d: d.execute_script("return arguments[0].naturalWidth", image) == 640)
        assert downloaded_json(browser, card) == document
        states = [p["state"] for p in browser.execute_script("return window.__polls")]
        assert states[0] == "PENDING" and "STARTED" in states and states[-1] == "SUCCESS"
        shot = screenshot(browser, "web-upload-fake-backend.png")

        # A corrupt file is refused synchronously and the message is shown on the page.
        bad = tmp_path / "broken.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
        upload(browser, base_url, bad)
        error = wait(
            browser,
            lambda d: (
                d.find_element(By.ID, "form-error")
                if d.find_element(By.ID, "form-error").is_displayed()
                else None
            ),
        )
        assert "broken.png" in error.text and "Upload refused" in error.text
        assert browser.find_elements(By.CSS_SELECTOR, "#results .doc") == []
    assert shot.stat().st_size > 10_000


# --- against the real service (tests/service/stack.py) -----------------------------------------


@pytest.fixture(scope="module")
def stack() -> Iterator[Any]:
    """A throwaway redis-server plus real workers with the noop models."""
    if not (ROOT / "tests" / "service" / "stack.py").is_file():
        pytest.skip("tests/service/stack.py (the Celery test stack) does not exist yet")
    from tests.service.stack import Stack

    # A recognition batch waits up to 2.5 s to fill: progress stays visible between polls.
    with Stack(models="noop", batch_timeout=BATCH_TIMEOUT, web=True) as running:
        yield running


def test_upload_form_end_to_end(browser: Any, stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Two pages through the real queue: each card gets its boxes, text and JSON."""
    from selenium.webdriver.common.by import By

    for key in [k for k in os.environ if k.startswith(("OCR_", "CELERY_"))]:
        monkeypatch.delenv(key)  # never reach the shared Redis through an inherited variable
    for key, value in stack.env.items():
        monkeypatch.setenv(key, str(value))
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    render_page(first, ["Queue", "through", "Celery", "and", "Redis"])
    render_page(second, ["Second", "page"], size=(500, 300))
    app = create_app()  # the OCRClient is built from the stack's OCR_* variables
    with serve(app) as base_url:
        upload(browser, base_url, first, second)
        cards = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#results .doc") or None)
        assert [c.find_element(By.CSS_SELECTOR, ".doc-name").text for c in cards] == [
            "first.png",
            "second.png",
        ]
        for card in cards:
            wait(browser, lambda d, c=card: c.find_element(By.CSS_SELECTOR, ".doc-result").is_displayed(), 90)
            document = downloaded_json(browser, card)
            assert document["words"], "the noop detector boxes every inked cell"
            polygons = card.find_elements(By.CSS_SELECTOR, "svg.overlay polygon.box")
            assert len(polygons) == len(document["words"])
            assert card.find_element(By.CSS_SELECTOR, ".doc-text").text == document["text"].strip()
        polls = browser.execute_script("return window.__polls")
        assert {p["state"] for p in polls} <= {"PENDING", "STARTED", "SUCCESS"}
        # The recognizer holds its batch for BATCH_TIMEOUT, longer than the page's longest poll
        # interval, so the page sees a started document with its word count before the result.
        assert any(p["state"] == "STARTED" and p["progress"]["total"] > 0 for p in polls), polls
        assert all(p["progress"]["done"] <= p["progress"]["total"] for p in polls)
        assert sum(p["state"] == "SUCCESS" for p in polls) == 2
        screenshot(browser, "web-upload-stack.png")


def _multipart(files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """Encode ``[(filename, data)]`` as multipart/form-data in the field ``file``."""
    boundary = uuid.uuid4().hex
    body = b""
    for name, data in files:
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_gunicorn_web_process(stack: Any, tmp_path: Path):
    """The Procfile's web line (gunicorn, configured by OCR_* variables) queues and serves a page."""
    base = stack.web_url
    assert _get(base + "/healthz") == (200, {"status": "ok", "broker": "ok"})
    page = tmp_path / "gunicorn.png"
    render_page(page, ["served", "by", "gunicorn"], size=(400, 200))
    body, content_type = _multipart([("gunicorn.png", page.read_bytes())])
    request = urllib.request.Request(base + "/batch_ocr", data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback only)
        assert response.status == 202
        (task,) = json.loads(response.read())["tasks"]
    deadline = time.monotonic() + 60
    status: Any = None
    while time.monotonic() < deadline:
        code, status = _get(base + task["status_url"])
        assert code == 200
        if status["state"] in ("SUCCESS", "FAILURE"):
            break
        time.sleep(0.2)
    assert status["state"] == "SUCCESS", status
    assert (status["result"]["width"], status["result"]["height"]) == (400, 200) and status["result"]["words"]
    assert _get(f"{base}/tasks/{uuid.uuid4()}")[0] == 404
    assert _get(f"{base}/tasks/not-an-id")[0] == 400
    bad, content_type = _multipart([("bad.png", b"\x89PNG\r\n\x1a\nbroken")])
    request = urllib.request.Request(base + "/batch_ocr", data=bad, headers={"Content-Type": content_type})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310 (loopback only)
    assert err.value.code == 400 and "bad.png" in json.loads(err.value.read())["error"]


def _get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback only)
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def test_flower_lists_the_workers(stack: Any, tmp_path: Path):
    """Flower on the stack's broker lists its workers, and its API refuses requests without auth."""
    celery = shutil.which("celery") or str(Path(sys.executable).with_name("celery"))
    port = free_port()
    env = stack.process_env()  # the workers' environment: inherited OCR_/CELERY_/FLOWER_ vars dropped
    cmd = [
        celery,
        "-A",
        "ocr_tasks.celery_app:app",
        "flower",
        f"--port={port}",
        "--address=127.0.0.1",
        "--basic-auth=u:p",
        f"--db={tmp_path / 'flower.db'}",
        "--persistent=False",
    ]
    log = (tmp_path / "flower.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/api/workers"
        workers: Any = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, workers = _get(url + "?refresh=1", auth=("u", "p"))
            except (ConnectionError, urllib.error.URLError, TimeoutError):
                status, workers = 0, None
            if status == 200 and workers:
                break
            time.sleep(0.5)
        output = (tmp_path / "flower.log").read_text(errors="replace")[-2000:]
        assert proc.poll() is None, f"flower exited: {output}"
        assert isinstance(workers, dict) and workers, f"flower listed no workers: {output}"
        assert all("@" in name for name in workers)
        assert _get(url)[0] == 401
        assert _get(url, auth=("u", "wrong"))[0] == 401
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
