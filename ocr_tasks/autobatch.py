"""``OCR_BATCH_SIZE=auto``: pick the recognition batch cap by timing the recognizer on this device.

The recognize worker calls :func:`choose_batch_size` once at start-up, before it takes
messages. It times ``recognizer.predict`` on synthetic word crops at growing batch sizes and
keeps the smallest size (at least ``minimum``) whose throughput (crops/s) is within
``tolerance`` of the best seen:
past that point a bigger batch only adds latency (a flush waits for more crops and takes
longer) without reading more crops per second. Growth stops early when one call takes longer
than ``max_call_seconds`` (latency), when the time budget is spent, when throughput has stopped
improving for two sizes in a row, or, on CUDA, when the measured peak memory per crop says
the next size would not fit in ``memory_fraction`` of the free memory (or it runs out of
memory). Every measurement and the choice are logged and returned.

Only the recognizer is imported here (through the object passed in); torch is imported for
the CUDA memory figures only when the recognizer lives on a CUDA device.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["CANDIDATES", "AutoBatch", "choose_batch_size", "synthetic_crops"]

log = logging.getLogger(__name__)

#: Batch sizes tried, in order.
CANDIDATES = (32, 64, 128, 200, 256, 350, 512, 768, 1024)


@dataclass
class AutoBatch:
    """The outcome of :func:`choose_batch_size`."""

    size: int
    reason: str
    #: ``[{"size", "seconds", "crops_per_s"[, "peak_mb"]}]`` per size measured
    measurements: list[dict[str, float]] = field(default_factory=list)
    free_mb: float | None = None


def synthetic_crops(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` word-like grayscale crops (32 px high, 60-180 px wide: dark strokes on light paper)."""
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(n):
        w = int(rng.integers(60, 181))
        crop = np.full((32, w), 235, np.uint8)
        for x in range(4, w - 6, int(rng.integers(7, 12))):
            crop[6:26, x : x + 2] = int(rng.integers(10, 60))
            crop[int(rng.integers(8, 24)), x : x + 6] = int(rng.integers(10, 60))
        crops.append(crop)
    return crops


def _cuda_device(recognizer: Any) -> Any:
    device = getattr(recognizer, "device", None)
    return device if getattr(device, "type", None) == "cuda" else None


def choose_batch_size(
    recognizer: Any,
    candidates: tuple[int, ...] = CANDIDATES,
    tolerance: float = 0.10,
    max_call_seconds: float = 2.0,
    budget_seconds: float = 30.0,
    memory_fraction: float = 0.5,
    default: int = 350,
    minimum: int = 64,
) -> AutoBatch:
    """Time ``recognizer.predict`` at growing batch sizes; see the module docstring."""
    device = _cuda_device(recognizer)
    torch = None
    free_mb = None
    if device is not None:
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        free_mb = free / 2**20
    crops = synthetic_crops(max(candidates))
    recognizer.predict(crops[:8])  # warm-up (kernels, allocator)
    started = time.perf_counter()
    rows: list[dict[str, float]] = []
    best = 0.0
    stalled = 0
    reason = "all candidates measured"
    for size in candidates:
        if device is not None and rows and "peak_mb_per_crop" in rows[-1] and free_mb is not None:
            if rows[-1]["peak_mb_per_crop"] * size > memory_fraction * free_mb:
                reason = f"{size} crops would need more than {memory_fraction:.0%} of {free_mb:.0f} MiB free"
                break
        if torch is not None:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
        try:
            seconds = float("inf")
            for _ in range(2):  # best of two
                t0 = time.perf_counter()
                recognizer.predict(crops[:size])
                if torch is not None:
                    torch.cuda.synchronize(device)
                seconds = min(seconds, time.perf_counter() - t0)
        except RuntimeError as exc:  # CUDA out of memory
            if "out of memory" not in str(exc).lower():
                raise
            if torch is not None:
                torch.cuda.empty_cache()
            reason = f"out of memory at {size} crops"
            break
        row = {"size": size, "seconds": round(seconds, 4), "crops_per_s": round(size / max(seconds, 1e-9), 1)}
        if torch is not None:
            peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20
            row["peak_mb"] = round(peak, 1)
            row["peak_mb_per_crop"] = round(peak / size, 3)
        rows.append(row)
        log.info("auto batch size: %d crops in %.4f s = %.0f crops/s", size, seconds, row["crops_per_s"])
        if row["crops_per_s"] > best * (1 + tolerance / 2):
            stalled = 0
        else:
            stalled += 1
        best = max(best, row["crops_per_s"])
        if seconds > max_call_seconds:
            reason = f"one call of {size} crops took {seconds:.2f} s (> {max_call_seconds} s)"
            break
        if stalled >= 2:
            reason = "throughput stopped improving"
            break
        if time.perf_counter() - started > budget_seconds:
            reason = f"time budget of {budget_seconds} s spent"
            break
    if not rows:
        return AutoBatch(default, f"nothing measured ({reason}); default", rows, free_mb)
    good = [r for r in rows if r["crops_per_s"] >= (1 - tolerance) * best]
    # never below ``minimum``: every flush also costs a few Redis round trips and a log line
    size = max(int(min(good, key=lambda r: r["size"])["size"]), min(minimum, int(rows[-1]["size"])))
    return AutoBatch(size, f"smallest size within {tolerance:.0%} of the best {best:.0f} crops/s; stopped: {reason}", rows, free_mb)
