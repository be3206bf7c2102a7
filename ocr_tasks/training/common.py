"""Pieces both trainers share: device names, the learning-rate schedule, atomic checkpoints."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["resolve_device_name", "warmup_cosine_lr", "atomic_save"]


def resolve_device_name(name: str) -> str:
    """"auto" -> "cuda" when available, else "cpu"; other names pass through."""
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def warmup_cosine_lr(step: int, lr: float, warmup: int, steps: int, fresh_from: int = 0) -> float:
    """Linear warmup to ``lr``, then cosine decay to 2% of it at ``steps``.

    ``fresh_from``: the step at which the optimiser started from empty moments (a resume from a
    slim checkpoint, which carries no optimiser state). The rate is warmed up again from there,
    so fresh Adam moments do not take full-size steps on trained weights.
    """
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    rate = lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))
    if fresh_from > 0 and step - fresh_from < warmup:
        rate *= (step - fresh_from + 1) / warmup
    return rate


def atomic_save(path: Path, **state: Any) -> None:
    """``torch.save`` to a temporary file, then rename: a crash never leaves a half checkpoint."""
    import torch

    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
