"""OCR_PRECISION: names, per-device choice, and that autocast really changes the arithmetic."""

from __future__ import annotations

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


def test_auto_on_cpu_is_fp32() -> None:
    # bf16 made the pipeline slower on CPU (a new oneDNN kernel per input shape): docs in the module
    assert resolve_precision("auto", CPU) is None
    assert isinstance(cpu_has_native_bf16(), bool)


@pytest.mark.parametrize(("name", "message"), [("int8", "OCR_PRECISION must be one of"), ("fp16", "needs a GPU")])
def test_bad_or_unsupported_names_are_refused(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_precision(name, CPU)


def test_settings_read_and_check_ocr_precision() -> None:
    assert Settings.from_env({"OCR_PRECISION": "BF16"}).precision == "bf16"
    assert Settings.from_env({}).precision == "auto"
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
