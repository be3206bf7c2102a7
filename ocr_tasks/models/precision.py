"""Inference precision: float32, or autocast to bfloat16 / float16 (``OCR_PRECISION``).

Both networks are convolution stacks whose outputs go through a threshold (detection score
maps) or an argmax (CTC/attention decoding), so 16-bit activations change almost nothing they
produce while halving the memory traffic and, on hardware with 16-bit dot products, the
arithmetic. The weights stay float32; ``torch.autocast`` runs convolutions, matrix products
and LSTMs in the 16-bit type and keeps reductions and softmax in float32.

``auto`` chooses per device and model:

* CUDA: bfloat16 where the GPU supports it (Ampere and later), else float16.
* CPU, detectors: bfloat16 when the CPU computes it natively, else float32. Measured on this
  repo's Zen 4 development CPU (native bf16), two torch threads, the 50 FUNSD pages: detect
  0.53 s -> 0.30 s per page with the same detection and end-to-end scores (within 0.001).
  A detector runs once per page on a few canvas shapes.
* CPU, recognizers: bfloat16 too, since session 8. bf16 runs a fixed-shape batch 2.2x faster,
  but the pipeline's crop batches change shape with every group of widths and oneDNN builds a
  kernel per shape: recognition went from 0.51 s to 0.77 s per 200-word page when first
  measured, with an unbounded kernel cache. With the cache bounded (below) it is 0.294 s ->
  0.233 s per FUNSD page (1.7 -> 1.2 ms per crop) with the same word accuracy (step 48,000:
  synthetic 0.929 exact in both, FUNSD 0.686 fp32 vs 0.685 bf16 caseless), and over 200 more
  pages of random crop shapes (``benchmarks/bench_pipeline.py --varied-crops 200``) the bf16
  process plateaued lower than the fp32 one (1,443 vs 1,788 MiB; docs/BENCHMARKS.md).
  ``OCR_PRECISION=fp32`` keeps float32.
``OCR_PRECISION=bf16`` forces bf16 for both.

oneDNN keeps every kernel it builds (up to ``ONEDNN_PRIMITIVE_CACHE_CAPACITY``, 1024 by
default); :func:`limit_kernel_cache` lowers that to :data:`KERNEL_CACHE_CAPACITY` for the
serving processes unless the variable is set.

:func:`cpu_has_native_bf16` tells whether a CPU computes bf16 natively (``avx512_bf16`` /
``amx_bf16``); the trainers use it (their batches repeat shapes, so bf16 autocast pays there).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from ..errors import ConfigError
from ..settings import PRECISIONS

__all__ = [
    "PRECISIONS",
    "KERNEL_CACHE_CAPACITY",
    "RECOGNIZER_KERNEL_CACHE_CAPACITY",
    "cpu_has_native_bf16",
    "cpu_has_int8_dot",
    "limit_kernel_cache",
    "resolve_precision",
    "autocast",
    "precision_name",
]

#: Default ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` of the serving processes that load a detector
#: (oneDNN's own default is 1024). oneDNN keeps one compiled kernel per layer and input shape;
#: every page size is a new shape, so with the default a process's memory grew by ~9 MiB per new
#: page shape with a bf16 detector (1.1 -> 2.6 GiB over 150 page sizes). With 128 it stayed
#: within the fp32 process's footprint and the FUNSD pages ran as fast (see docs/BENCHMARKS.md).
KERNEL_CACHE_CAPACITY = 128

#: ... and of processes that load a recognizer. Its batches take a fixed set of shapes
#: (``RecognitionPredictor(fixed_shapes=True)``), whose kernels need more than 512 entries: with
#: 128 every batch rebuilt its kernels (2.3-2.8 ms per FUNSD crop instead of 1.1-1.35, session
#: 10). The set is finite, so the cache stops growing once it has seen every shape.
RECOGNIZER_KERNEL_CACHE_CAPACITY = 1024

_ours: list[int] = []  # the capacity this module put into the environment, if it did


def limit_kernel_cache(capacity: int = KERNEL_CACHE_CAPACITY) -> None:
    """Bound oneDNN's kernel cache unless ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` is set already.

    A value this function set itself is raised to a larger ``capacity`` (a process that loads a
    detector and then a recognizer gets the recognizer's); a value set by the user is kept.
    oneDNN reads the variable when it first builds a kernel, so call this before the first
    forward pass (the model factory does, for each predictor it builds).
    """
    name = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
    current = os.environ.get(name)
    ours = current is not None and bool(_ours) and current == str(_ours[-1])
    if current is None or (ours and int(capacity) > _ours[-1]):
        os.environ[name] = str(int(capacity))
        _ours.append(int(capacity))

_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    """The first ``flags`` line of Linux ``/proc/cpuinfo`` (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """True when this CPU computes bfloat16 dot products natively (Linux ``/proc/cpuinfo`` flags)."""
    return bool(_cpu_flags() & {"avx512_bf16", "amx_bf16"})


def cpu_has_int8_dot() -> bool:
    """True when this CPU has VNNI int8 dot products (``avx512_vnni``, ``avx_vnni`` or AMX int8).

    ONNX Runtime's int8 convolutions use them; without them its unsigned-by-signed kernels can
    saturate intermediate sums, so ``OCR_PRECISION=auto`` picks int8 only on such CPUs.
    """
    return bool(_cpu_flags() & {"avx512_vnni", "avx_vnni", "amx_int8"})


def resolve_precision(name: str, device: torch.device, task: str = "recognizer") -> torch.dtype | None:
    """The autocast dtype for ``OCR_PRECISION=name`` on ``device`` (None: plain float32).

    Args:
        name: ``auto``, ``fp32``, ``bf16``, ``fp16`` or ``int8``.
        device: Where the model runs.
        task: ``"detector"`` or ``"recognizer"``. ``auto`` on a CPU with native bf16 picks bf16
            for both (until session 7, fp32 for recognizers: see the module docstring).
            ``int8`` leaves a detector in float32 (detectors have no int8 export).

    Raises:
        ValueError: an unknown name, float16 asked for on a CPU, or int8 for a recognizer on
            torch (int8 is the recognizer's ONNX Runtime export).
    """
    name = (name or "auto").strip().lower()
    if name not in PRECISIONS:
        raise ConfigError(f"OCR_PRECISION must be one of {', '.join(PRECISIONS)}; got {name!r}")
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and task in ("detector", "recognizer") and cpu_has_native_bf16():
            return torch.bfloat16
        return None
    if name == "int8":
        if task == "detector":  # detectors have no int8 export: they stay float32
            return None
        raise ConfigError(
            "OCR_PRECISION=int8 runs the recognizer's int8 export on ONNX Runtime (CPU, OCR_RUNTIME=auto or "
            "onnx); this model runs on torch"
        )
    if name == "fp16" and device.type == "cpu":
        raise ConfigError("OCR_PRECISION=fp16 needs a GPU; on a CPU use bf16 or fp32")
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
