"""The product's document schema, shared by the CLI, the HTTP API and the task results.

JSON form of a document::

    {"words": [{"quad": [[x, y] x4], "text": str, "confidence": float}],
     "lines": [{"text": str, "word_indices": [int]}],
     "text": str, "width": int, "height": int, "timings": {stage: seconds}}

Quads are clockwise from the top-left corner, in page pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Quad", "DetectedBox", "Word", "Line", "DocumentResult", "quad_to_list"]

Quad = list[list[float]]


def quad_to_list(quad: np.ndarray | Sequence[Sequence[float]]) -> Quad:
    """4x2 array-like -> JSON-friendly ``[[x, y] x4]`` rounded to 0.1 px."""
    arr = np.asarray(quad, dtype=np.float64).reshape(4, 2)
    return [[round(float(x), 1), round(float(y), 1)] for x, y in arr]


@dataclass(frozen=True)
class DetectedBox:
    """One text region found by the detector."""

    quad: Quad
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"quad": self.quad, "score": round(float(self.score), 4)}


@dataclass(frozen=True)
class Word:
    """A recognised word: where it is, what it says, how sure we are."""

    quad: Quad
    text: str
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {"quad": self.quad, "text": self.text, "confidence": round(float(self.confidence), 4)}


@dataclass(frozen=True)
class Line:
    """Words of one text line, left to right, by index into ``DocumentResult.words``."""

    text: str
    word_indices: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "word_indices": list(self.word_indices)}


@dataclass
class DocumentResult:
    """Everything we read from one page."""

    words: list[Word]
    lines: list[Line]
    text: str
    width: int
    height: int
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "words": [w.to_dict() for w in self.words],
            "lines": [ln.to_dict() for ln in self.lines],
            "text": self.text,
            "width": int(self.width),
            "height": int(self.height),
            "timings": {k: round(float(v), 4) for k, v in self.timings.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DocumentResult:
        """Inverse of :meth:`to_dict`; raises KeyError/TypeError on a malformed mapping."""
        return cls(
            words=[Word(quad=w["quad"], text=w["text"], confidence=w["confidence"]) for w in data["words"]],
            lines=[Line(text=ln["text"], word_indices=list(ln["word_indices"])) for ln in data["lines"]],
            text=data["text"],
            width=int(data["width"]),
            height=int(data["height"]),
            timings=dict(data.get("timings", {})),
        )
