"""Inference precision: float32, or autocast to bfloat16 / float16 (``OCR_PRECISION``).

Both networks are convolution stacks whose outputs go through a threshold (detection score
maps) or an argmax (CTC/attention decoding), so 16-bit activations change almost nothing they
produce while halving the memory traffic and, on hardware with 16-bit dot products, the
arithmetic. The weights stay float32; ``torch.autocast`` runs convolutions, matrix products
and LSTMs in the 16-bit type and keeps reductions and softmax in float32.

``auto`` chooses per device:

* CUDA: bfloat16 where the GPU supports it (Ampere and later), else float16.
* CPU: bfloat16 only where the processor has native bfloat16 dot products (``avx512_bf16``
  or ``amx_bf16`` in ``/proc/cpuinfo``: AMD Zen 4, Intel Cooper Lake / Sapphire Rapids and
  later); elsewhere oneDNN would emulate it, slower than float32, so float32.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path

import torch

from ..settings import PRECISIONS

__all__ = ["PRECISIONS", "cpu_has_native_bf16", "resolve_precision", "autocast", "precision_name"]

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bfloat16 dot products natively (Linux ``/proc/cpuinfo`` flags)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``OCR_PRECISION=name`` on ``device`` (None: plain float32).

    Raises:
        ValueError: an unknown name, or float16 asked for on a CPU.
    """
    name = (name or "auto").strip().lower()
    if name not in PRECISIONS:
        raise ValueError(f"OCR_PRECISION must be one of {', '.join(PRECISIONS)}; got {name!r}")
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return None
    if name == "fp16" and device.type == "cpu":
        raise ValueError("OCR_PRECISION=fp16 needs a GPU; on a CPU use bf16 or fp32")
    return _DTYPES[name]


def precision_name(dtype: torch.dtype | None) -> str:
    """``"fp32"``, ``"bf16"`` or ``"fp16"``."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` to ``dtype`` on ``device``'s type; nothing when ``dtype`` is None."""
    if dtype is None:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield
