"""Fixtures for the web app: a fake task client, apps built with it, page images, model weights."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from ocr_tasks.errors import ServiceUnavailable
from tests.conftest import render_text_page
from web import create_app


class FakeClient:
    """Stands in for ``ocr_tasks.client.OCRClient``: records submissions, serves canned statuses."""

    def __init__(self) -> None:
        self.submitted: list[tuple[str, str, bytes]] = []
        self.statuses: dict[str, dict[str, Any]] = {}
        self.down = False
        #: Raise ServiceUnavailable on the submit after this many succeeded (None: never).
        self.fail_after: int | None = None
        self.pings = 0

    def ping(self) -> None:
        self.pings += 1
        if self.down:
            raise ServiceUnavailable("redis://127.0.0.1:1/0 does not answer")

    def submit(self, data: bytes, filename: str) -> str:
        if self.down or (self.fail_after is not None and len(self.submitted) >= self.fail_after):
            raise ServiceUnavailable("broker connection refused")
        task_id = str(uuid.uuid4())
        self.submitted.append((task_id, filename, data))
        self.statuses[task_id] = {
            "id": task_id,
            "state": "PENDING",
            "progress": {"done": 0, "total": 0},
            "result": None,
            "error": None,
        }
        return task_id

    def status(self, task_id: str) -> dict[str, Any] | None:
        if self.down:
            raise ServiceUnavailable("result backend connection refused")
        return self.statuses.get(task_id)


def png_bytes(image: np.ndarray | None = None, size: tuple[int, int] = (64, 48), fmt: str = "PNG") -> bytes:
    """Encode ``image`` (default: a blank white page of ``size``)."""
    img = Image.fromarray(image) if image is not None else Image.new("RGB", size, "white")
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inherited OCR_* / OCR_WEB_* variables (e.g. the shared Redis URL) never reach these apps."""
    for key in [k for k in os.environ if k.startswith("OCR_")]:
        monkeypatch.delenv(key)


@pytest.fixture
def fake() -> FakeClient:
    return FakeClient()


@pytest.fixture
def app(fake: FakeClient) -> Flask:
    return create_app({"TESTING": True, "OCR_CLIENT": fake})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def page_png() -> bytes:
    """A small rendered text page, PNG encoded."""
    return png_bytes(render_text_page(["Hello", "web", "OCR", "42"], size=(320, 240), font_px=26))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """OCR_MODEL_DIR with randomly initialised ``craft_light.pth`` and ``crnn_light.pth``.

    The detector's output layer is set to a constant score, so every page yields at least one
    box at the default thresholds and the whole pipeline (crop, recognise, assemble) runs.
    """
    import torch

    from ocr_tasks.models.factory import build_model, clear_cache
    from ocr_tasks.models.registry import get_spec
    from ocr_tasks.models.weights import save_state_dict

    path = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    detector = build_model(get_spec("craft_light"))
    head = [m for m in detector.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(0.9)
    save_state_dict(detector, path / "craft_light.pth")
    save_state_dict(build_model(get_spec("crnn_light")), path / "crnn_light.pth")
    yield path
    clear_cache()


@pytest.fixture(scope="module")
def model_client(model_dir: Path) -> FlaskClient:
    """A test client whose in-process models load from :func:`model_dir` (CPU)."""
    app = create_app(
        {
            "TESTING": True,
            "OCR_CLIENT": FakeClient(),
            "OCR_SETTINGS": {
                "model_dir": model_dir,
                "device": "cpu",
                "detector": "craft_light",
                "recognizer": "crnn_light",
                "refiner": "",
            },
        }
    )
    return app.test_client()
