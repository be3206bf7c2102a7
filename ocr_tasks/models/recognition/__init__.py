"""deep-text-recognition-benchmark recognizers: model, label converters, pre-processing.

Names are re-exported lazily, so importing this package does not import torch by itself.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "RecognizerOptions",
    "RecognitionModel",
    "CTCLabelConverter",
    "AttnLabelConverter",
    "make_converter",
    "CHARSET_CASE_INSENSITIVE",
    "CHARSET_CASE_SENSITIVE",
    "to_gray",
    "official_input",
    "keep_ratio_batches",
]

_WHERE = {
    "RecognizerOptions": "network",
    "RecognitionModel": "network",
    "CTCLabelConverter": "converter",
    "AttnLabelConverter": "converter",
    "make_converter": "converter",
    "CHARSET_CASE_INSENSITIVE": "converter",
    "CHARSET_CASE_SENSITIVE": "converter",
    "to_gray": "preprocess",
    "official_input": "preprocess",
    "keep_ratio_batches": "preprocess",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
