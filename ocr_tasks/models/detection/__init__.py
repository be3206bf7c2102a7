"""CRAFT-style text detection: networks, pre-processing and box extraction.

Importing this package is cheap: the public names below are resolved lazily, so e.g.
``from ocr_tasks.models.detection.postprocess import CraftThresholds`` never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "CRAFT": "craft",
    "RefineNet": "craft",
    "init_weights": "craft",
    "LightCRAFT": "light",
    "resize_aspect_ratio": "preprocess",
    "normalize_mean_variance": "preprocess",
    "to_tensor": "preprocess",
    "CraftThresholds": "postprocess",
    "get_det_boxes": "postprocess",
    "adjust_result_coordinates": "postprocess",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
