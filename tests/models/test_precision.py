"""OCR_PRECISION: names, per-device choice, and that autocast really changes the arithmetic."""

from __future__ import annotations

import os

import pytest
import torch

from ocr_tasks.models.precision import autocast, cpu_has_native_bf16, precision_name, resolve_precision
from ocr_tasks.settings import Settings

CPU = torch.device("cpu")


def test_explicit_names_resolve_to_their_dtype() -> None:
    assert resolve_precision("fp32", CPU) is None
    assert resolve_precision("bf16", CPU) is torch.bfloat16
    assert resolve_precision(" BF16 ", CPU) is torch.bfloat16
    assert precision_name(None) == "fp32" and precision_name(torch.bfloat16) == "bf16"


def test_auto_on_cpu_is_bf16_where_native_and_fp32_elsewhere(monkeypatch) -> None:
    # both models: bf16 where the CPU computes it natively (detector 1.75x, recognizer 1.4x faster)
    assert isinstance(cpu_has_native_bf16(), bool)
    import ocr_tasks.models.precision as precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", CPU, task="detector") is torch.bfloat16
    assert resolve_precision("auto", CPU, task="recognizer") is torch.bfloat16
    assert resolve_precision("auto", CPU) is torch.bfloat16
    assert resolve_precision("fp32", CPU, task="detector") is None
    assert resolve_precision("fp32", CPU, task="recognizer") is None
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", CPU, task="detector") is None
    assert resolve_precision("auto", CPU, task="recognizer") is None


def test_kernel_cache_is_bounded_unless_the_user_chose(monkeypatch) -> None:
    from ocr_tasks.models.precision import KERNEL_CACHE_CAPACITY, limit_kernel_cache

    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    limit_kernel_cache()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(KERNEL_CACHE_CAPACITY)
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "7")
    limit_kernel_cache()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "7"
    limit_kernel_cache(4096)  # the user's value wins over a recognizer's larger default too
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "7"


def test_kernel_cache_grows_to_the_recognizers_bound(monkeypatch) -> None:
    from ocr_tasks.models.precision import (
        KERNEL_CACHE_CAPACITY,
        RECOGNIZER_KERNEL_CACHE_CAPACITY,
        limit_kernel_cache,
    )

    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    limit_kernel_cache(KERNEL_CACHE_CAPACITY)  # a detector first ...
    limit_kernel_cache(RECOGNIZER_KERNEL_CACHE_CAPACITY)  # ... then a recognizer: its bound
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(RECOGNIZER_KERNEL_CACHE_CAPACITY)
    limit_kernel_cache(KERNEL_CACHE_CAPACITY)  # never lowered again
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == str(RECOGNIZER_KERNEL_CACHE_CAPACITY)


def test_factory_predictors_use_the_resolved_choice(monkeypatch) -> None:
    import ocr_tasks.models.precision as precision
    from ocr_tasks.models.factory import clear_cache, detection_predictor, recognition_predictor

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    clear_cache()
    try:
        # torch's autocast (under OCR_RUNTIME=auto, CPU models run on ONNX Runtime in fp32)
        settings = Settings.from_env({"OCR_PRECISION": "auto", "OCR_DEVICE": "cpu", "OCR_RUNTIME": "torch"})
        assert detection_predictor(settings=settings).precision is torch.bfloat16
        assert recognition_predictor(settings=settings).precision is torch.bfloat16
        fp32 = Settings.from_env({"OCR_PRECISION": "fp32", "OCR_DEVICE": "cpu", "OCR_RUNTIME": "torch"})
        assert detection_predictor(settings=fp32).precision is None
        assert recognition_predictor(settings=fp32).precision is None
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
        clear_cache()
        assert recognition_predictor(settings=settings).precision is None
    finally:
        clear_cache()


@pytest.mark.parametrize(("name", "message"), [
    ("int4", "OCR_PRECISION must be one of"), ("fp16", "needs a GPU"), ("int8", "runs on torch"),
])
def test_bad_or_unsupported_names_are_refused(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_precision(name, CPU)


def test_settings_read_and_check_ocr_precision() -> None:
    assert Settings.from_env({"OCR_PRECISION": "BF16"}).precision == "bf16"
    assert Settings.from_env({}).precision == "auto"
    assert Settings.from_env({"OCR_PRECISION": "INT8"}).precision == "int8"
    with pytest.raises(ValueError, match="OCR_PRECISION='half'"):
        Settings.from_env({"OCR_PRECISION": "half"})


def test_autocast_runs_convolutions_in_bfloat16_and_nothing_in_fp32() -> None:
    conv = torch.nn.Conv2d(1, 4, 3)
    x = torch.randn(1, 1, 8, 8)
    with torch.inference_mode():
        with autocast(CPU, torch.bfloat16):
            low = conv(x)
        with autocast(CPU, None):
            full = conv(x)
    assert low.dtype is torch.bfloat16 and full.dtype is torch.float32
    assert torch.allclose(low.float(), full, atol=0.05)
