"""Reliability settings and mechanisms without a broker: config, OOM split-retry, requeue on Redis loss."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import redis

from ocr_tasks.celery_app import celery_config, create_celery, restore_interval
from ocr_tasks.errors import RecognitionFailed
from ocr_tasks.settings import Settings
from ocr_tasks.tasks.base import OCRRequest
from ocr_tasks.tasks.recognize import is_out_of_memory, predict_splitting
from tests.service.stack import ROOT


def test_delivery_settings() -> None:
    """Late acks, requeue on a lost worker, an explicit visibility timeout, a memory guard, no pickle."""
    conf = celery_config(Settings(visibility_timeout=7, worker_max_memory_kb=123_456))
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["broker_transport_options"] == {
        "visibility_timeout": 7, "unacked_restore_interval": 1, "unacked_restore_throttle": 1,
    }
    assert conf["worker_max_memory_per_child"] == 123_456
    assert conf["worker_cancel_long_running_tasks_on_connection_loss"] is False
    assert "pickle" not in conf["accept_content"] + conf["result_accept_content"]
    assert conf["task_serializer"] == conf["result_serializer"] == "msgpack"
    defaults = celery_config(Settings())
    assert defaults["broker_transport_options"]["visibility_timeout"] == 600
    assert restore_interval(Settings()) == 10 and restore_interval(Settings(visibility_timeout=2)) == 1
    assert celery_config(Settings(worker_max_memory_kb=0))["worker_max_memory_per_child"] is None


def test_reliability_settings_from_env() -> None:
    env = {"OCR_VISIBILITY_TIMEOUT": "30", "OCR_MAX_BACKLOG": "5", "OCR_CROP_RESULT_TTL": "60",
           "OCR_WORKER_MAX_MEMORY_KB": "0"}
    settings = Settings.from_env(env)
    assert (settings.visibility_timeout, settings.max_backlog, settings.crop_result_ttl,
            settings.worker_max_memory_kb) == (30, 5, 60, 0)
    with pytest.raises(ValueError, match="OCR_VISIBILITY_TIMEOUT"):
        create_celery(Settings(visibility_timeout=0), tasks=False)
    with pytest.raises(ValueError, match="OCR_MAX_BACKLOG"):
        create_celery(Settings(max_backlog=-1), tasks=False)


def test_crop_results_expire_sooner_than_documents() -> None:
    app = create_celery(Settings(models="noop", crop_result_ttl=120, result_ttl=86_400))
    assert app.tasks["ocr.recognize"].request_result_ttl == 120
    assert app.conf.result_expires == 86_400


class OutOfMemoryError(RuntimeError):
    """Named like ``torch.cuda.OutOfMemoryError``."""


class SmallGPU:
    """A recognizer that runs out of memory above ``fits`` crops."""

    def __init__(self, fits: int, error: type[BaseException] = OutOfMemoryError) -> None:
        self.fits, self.error, self.calls = fits, error, []

    def predict(self, crops: list[Any]) -> list[tuple[str, float]]:
        self.calls.append(len(crops))
        if len(crops) > self.fits:
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [(f"t{int(c[0, 0])}", 0.9) for c in crops]


def crops(n: int) -> list[np.ndarray]:
    return [np.full((4, 8), i, dtype=np.uint8) for i in range(n)]


def test_out_of_memory_splits_the_batch_until_it_fits() -> None:
    gpu = SmallGPU(fits=3)
    assert predict_splitting(gpu, crops(10)) == [(f"t{i}", 0.9) for i in range(10)]
    assert gpu.calls[0] == 10 and max(c for c in gpu.calls if c <= 3) <= 3
    assert sum(c for c in gpu.calls if c <= 3) == 10  # every crop recognised exactly once


def test_out_of_memory_as_runtime_error_text_and_torch_class() -> None:
    assert predict_splitting(SmallGPU(fits=2, error=RuntimeError), crops(5)) == [(f"t{i}", 0.9) for i in range(5)]
    torch = pytest.importorskip("torch")
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch")) and not is_out_of_memory(ValueError("out of memory"))


def test_other_errors_and_single_crop_oom_propagate() -> None:
    class Broken:
        calls = 0

        def predict(self, crops: list[Any]) -> list[tuple[str, float]]:
            Broken.calls += 1
            raise RuntimeError("weights are NaN")

    with pytest.raises(RuntimeError, match="NaN"):
        predict_splitting(Broken(), crops(8))
    assert Broken.calls == 1  # not retried: only out-of-memory errors are
    with pytest.raises(OutOfMemoryError):
        predict_splitting(SmallGPU(fits=0), crops(4))


def test_wrong_result_count_is_a_recognition_failure() -> None:
    class Short:
        def predict(self, crops: list[Any]) -> list[tuple[str, float]]:
            return [("x", 1.0)]

    with pytest.raises(RecognitionFailed, match="1 results for 3 crops"):
        predict_splitting(Short(), crops(3))


def test_redis_loss_outside_the_task_body_requeues_instead_of_failing() -> None:
    """Storing STARTED or the result failed because Redis is down: the message goes back."""
    rejected: list[bool] = []
    request = SimpleNamespace(name="ocr.detect", id="d-1", reject=lambda requeue: rejected.append(requeue))
    info = SimpleNamespace(exception=redis.exceptions.ConnectionError("Error 111 connecting"))
    OCRRequest.on_failure(request, info)  # type: ignore[arg-type]
    assert rejected == [True]


def test_compose_redis_never_evicts_and_persists() -> None:
    """docker-compose runs Redis append-only, fsync every second, noeviction."""
    text = (ROOT / "docker-compose.yml").read_text()
    redis_block = text.split("  redis:", 1)[1].split("\n  web:", 1)[0]
    items = [line.strip()[2:].strip('"') for line in redis_block.splitlines() if line.strip().startswith("- ")]
    flat = " ".join(items)
    for setting in ("--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"):
        assert setting in flat, setting


def test_no_pickle_anywhere_in_the_code() -> None:
    """Nothing unpickles or names pickle as a serializer (the weights loader only catches
    ``pickle.UnpicklingError`` from ``torch.load(weights_only=True)``; tests use pickle to attack)."""
    pattern = re.compile(r"pickle\.loads?\(|Unpickler\(|\bdill\b|cloudpickle|['\"]pickle['\"]|x-python-serialize")
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("ocr_tasks", "web", "workers")
        for path in (ROOT / folder).rglob("*.py")
        if pattern.search(path.read_text())
    ]
    assert offenders == []


def test_no_secrets_committed() -> None:
    """Tracked files hold no private keys or passwords in URLs; credentials come from the environment."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    # Documentation placeholders (user:password, guest:guest) are not secrets.
    suspicious = re.compile(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----|redis://:(?!password@)[^@\s*]+@"
        r"|amqp://(?!guest:guest@|user:password@)[^:\s/]+:[^@\s*]+@"
    )
    found = []
    for name in files:
        path = ROOT / name
        if path.suffix in {".pth", ".png", ".jpg", ".bin", ".pt"} or not path.is_file() or path == Path(__file__):
            continue
        try:
            text = path.read_text(errors="ignore")
        except OSError:
            continue
        if suspicious.search(text):
            found.append(name)
    assert found == []


def test_uploaded_file_names_are_never_paths() -> None:
    """No code builds a filesystem path from an upload's file name."""
    for path in [*Path(ROOT / "web").rglob("*.py"), ROOT / "ocr_tasks" / "client.py", ROOT / "ocr_tasks" / "storage.py"]:
        text = path.read_text()
        assert not re.search(r"(open|Path)\([^)]*filename", text), path
        assert ".save(" not in text or path.name == "openapi.py", path
