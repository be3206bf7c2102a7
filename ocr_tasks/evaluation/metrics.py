"""Word-level OCR scores: box IoU, one-to-one matching, detection / end-to-end / recognition.

The protocol is the usual word-level one (ICDAR robust-reading end-to-end), as described in
the FUNSD dev-set README:

1. Predicted quads are first reduced to their axis-aligned bounding box (the ground truth is
   axis-aligned).
2. Per image, predictions and ground-truth boxes are matched one-to-one, greedily on the
   highest IoU; a pair can match only if its IoU is at least 0.5.
3. Detection: TP = matched pairs. End-to-end: a matched pair is a TP only if the predicted
   text equals the ground truth exactly (case-sensitive, punctuation included); a caseless
   variant (``str.casefold``) is reported as well, labelled as such.
4. TP, #pred and #GT are **summed over images** before any ratio is computed; per-image scores
   are never averaged. The count dataclasses add with ``+`` for that purpose.

Boxes are ``(x0, y0, x1, y1)`` in continuous pixel coordinates (area ``(x1-x0)*(y1-y0)``, no
``+1``). Everything here is pure Python/numpy: no model, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "Box",
    "IOU_THRESHOLD",
    "to_box",
    "iou",
    "match_boxes",
    "DetectionCounts",
    "EndToEndCounts",
    "RecognitionCounts",
    "evaluate_detection",
    "evaluate_end_to_end",
    "evaluate_recognition",
    "DETECTION_ERROR_KINDS",
    "detection_errors",
    "total",
]

#: ``(x0, y0, x1, y1)``, x to the right, y down.
Box = tuple[float, float, float, float]

#: A predicted box and a ground-truth box can be matched only at or above this IoU.
IOU_THRESHOLD = 0.5

_C = TypeVar("_C", "DetectionCounts", "EndToEndCounts", "RecognitionCounts")


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def _harmonic(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def to_box(shape: Any) -> Box:
    """Axis-aligned bounding box of a box or a polygon.

    Args:
        shape: Either 4 numbers ``(x0, y0, x1, y1)`` or a polygon of N >= 3 points
            ``[[x, y], ...]`` (e.g. a detector's quad, possibly rotated).

    Returns:
        ``(x0, y0, x1, y1)`` with ``x0 <= x1`` and ``y0 <= y1``.

    Raises:
        ValueError: If ``shape`` is neither form.
    """
    arr = np.asarray(shape, dtype=np.float64)
    if arr.shape == (4,):
        x0, y0, x1, y1 = (float(v) for v in arr)
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)
    if arr.ndim == 2 and arr.shape[1] == 2 and arr.shape[0] >= 3:
        return (
            float(arr[:, 0].min()),
            float(arr[:, 1].min()),
            float(arr[:, 0].max()),
            float(arr[:, 1].max()),
        )
    raise ValueError(f"expected (x0, y0, x1, y1) or a polygon of [x, y] points, got shape {arr.shape}")


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two axis-aligned boxes ``(x0, y0, x1, y1)``.

    Degenerate boxes (zero area) have IoU 0 with everything, themselves included.
    """
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _overlaps(preds: Sequence[Box], gts: Sequence[Box]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise intersection areas (``P x G``) and the boxes' areas (``P x 1``, ``1 x G``)."""
    p = np.asarray(preds, dtype=np.float64).reshape(-1, 4)[:, None, :]
    g = np.asarray(gts, dtype=np.float64).reshape(-1, 4)[None, :, :]
    ix = np.clip(np.minimum(p[..., 2], g[..., 2]) - np.maximum(p[..., 0], g[..., 0]), 0, None)
    iy = np.clip(np.minimum(p[..., 3], g[..., 3]) - np.maximum(p[..., 1], g[..., 1]), 0, None)
    area_p = (p[..., 2] - p[..., 0]) * (p[..., 3] - p[..., 1])
    area_g = (g[..., 2] - g[..., 0]) * (g[..., 3] - g[..., 1])
    return ix * iy, area_p, area_g


def _iou_matrix(preds: Sequence[Box], gts: Sequence[Box]) -> np.ndarray:
    if not preds or not gts:
        return np.zeros((len(preds), len(gts)), dtype=np.float64)
    inter, area_p, area_g = _overlaps(preds, gts)
    union = area_p + area_g - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where((union > 0) & (inter > 0), inter / np.where(union > 0, union, 1.0), 0.0)
    return out


def match_boxes(
    preds: Sequence[Any], gts: Sequence[Any], threshold: float = IOU_THRESHOLD
) -> list[tuple[int, int]]:
    """One-to-one greedy matching on highest IoU.

    All pairs with ``IoU >= threshold`` are taken in decreasing IoU order (ties: lower
    prediction index, then lower ground-truth index) and a pair is kept when neither side is
    matched yet.

    Args:
        preds: Predicted boxes or quads (quads are reduced with :func:`to_box`).
        gts: Ground-truth boxes or quads.
        threshold: Smallest IoU a matched pair may have.

    Returns:
        ``(pred_index, gt_index)`` pairs, in the order they were matched.
    """
    pboxes = [to_box(p) for p in preds]
    gboxes = [to_box(g) for g in gts]
    ious = _iou_matrix(pboxes, gboxes)
    pi, gi = np.nonzero(ious >= threshold)
    if len(pi) == 0:
        return []
    order = np.lexsort((gi, pi, -ious[pi, gi]))
    used_p: set[int] = set()
    used_g: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for k in order:
        a, b = int(pi[k]), int(gi[k])
        if a in used_p or b in used_g:
            continue
        used_p.add(a)
        used_g.add(b)
        pairs.append((a, b))
    return pairs


@dataclass(frozen=True)
class DetectionCounts:
    """Detection counts; ratios are computed from the (summed) counts.

    Attributes:
        tp: Matched (prediction, ground truth) pairs.
        n_pred: Predicted boxes.
        n_gt: Ground-truth boxes.
    """

    tp: int = 0
    n_pred: int = 0
    n_gt: int = 0

    def __add__(self, other: DetectionCounts) -> DetectionCounts:
        return DetectionCounts(self.tp + other.tp, self.n_pred + other.n_pred, self.n_gt + other.n_gt)

    @property
    def precision(self) -> float:
        """TP / #pred (0 when nothing was predicted)."""
        return _ratio(self.tp, self.n_pred)

    @property
    def recall(self) -> float:
        """TP / #GT (0 when there is no ground truth)."""
        return _ratio(self.tp, self.n_gt)

    @property
    def hmean(self) -> float:
        """Harmonic mean of precision and recall."""
        return _harmonic(self.precision, self.recall)

    def to_dict(self) -> dict[str, Any]:
        """Counts and ratios as a JSON-friendly dict."""
        return {
            "tp": self.tp,
            "n_pred": self.n_pred,
            "n_gt": self.n_gt,
            "precision": self.precision,
            "recall": self.recall,
            "hmean": self.hmean,
        }


@dataclass(frozen=True)
class EndToEndCounts:
    """End-to-end counts: a matched pair is a TP only if its text is right.

    Attributes:
        tp: Matched pairs whose text is exactly the ground truth (case-sensitive).
        tp_caseless: Matched pairs whose text equals the ground truth ignoring case
            (``str.casefold``).
        matched: Matched pairs regardless of text (the detection TP).
        n_pred: Predicted words.
        n_gt: Ground-truth words.
    """

    tp: int = 0
    tp_caseless: int = 0
    matched: int = 0
    n_pred: int = 0
    n_gt: int = 0

    def __add__(self, other: EndToEndCounts) -> EndToEndCounts:
        return EndToEndCounts(
            self.tp + other.tp,
            self.tp_caseless + other.tp_caseless,
            self.matched + other.matched,
            self.n_pred + other.n_pred,
            self.n_gt + other.n_gt,
        )

    @property
    def precision(self) -> float:
        """Exact-text TP / #pred."""
        return _ratio(self.tp, self.n_pred)

    @property
    def recall(self) -> float:
        """Exact-text TP / #GT."""
        return _ratio(self.tp, self.n_gt)

    @property
    def f1(self) -> float:
        """Harmonic mean of :attr:`precision` and :attr:`recall`."""
        return _harmonic(self.precision, self.recall)

    @property
    def precision_caseless(self) -> float:
        """Caseless TP / #pred."""
        return _ratio(self.tp_caseless, self.n_pred)

    @property
    def recall_caseless(self) -> float:
        """Caseless TP / #GT."""
        return _ratio(self.tp_caseless, self.n_gt)

    @property
    def f1_caseless(self) -> float:
        """Harmonic mean of the caseless precision and recall."""
        return _harmonic(self.precision_caseless, self.recall_caseless)

    @property
    def detection(self) -> DetectionCounts:
        """The detection counts of the same predictions (text ignored)."""
        return DetectionCounts(self.matched, self.n_pred, self.n_gt)

    def to_dict(self) -> dict[str, Any]:
        """Counts and ratios as a JSON-friendly dict."""
        return {
            "tp": self.tp,
            "tp_caseless": self.tp_caseless,
            "matched": self.matched,
            "n_pred": self.n_pred,
            "n_gt": self.n_gt,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "precision_caseless": self.precision_caseless,
            "recall_caseless": self.recall_caseless,
            "f1_caseless": self.f1_caseless,
        }


@dataclass(frozen=True)
class RecognitionCounts:
    """Word recognition on ground-truth crops.

    Attributes:
        n: Crops read.
        correct: Crops read exactly as the ground truth (case-sensitive).
        correct_caseless: Crops read as the ground truth ignoring case.
    """

    n: int = 0
    correct: int = 0
    correct_caseless: int = 0

    def __add__(self, other: RecognitionCounts) -> RecognitionCounts:
        return RecognitionCounts(
            self.n + other.n, self.correct + other.correct, self.correct_caseless + other.correct_caseless
        )

    @property
    def accuracy(self) -> float:
        """Exact word accuracy: correct / n."""
        return _ratio(self.correct, self.n)

    @property
    def accuracy_caseless(self) -> float:
        """Case-insensitive word accuracy: correct_caseless / n."""
        return _ratio(self.correct_caseless, self.n)

    def to_dict(self) -> dict[str, Any]:
        """Counts and ratios as a JSON-friendly dict."""
        return {
            "n": self.n,
            "correct": self.correct,
            "correct_caseless": self.correct_caseless,
            "accuracy": self.accuracy,
            "accuracy_caseless": self.accuracy_caseless,
        }


def evaluate_detection(
    pred_shapes: Sequence[Any], gt_boxes: Sequence[Any], threshold: float = IOU_THRESHOLD
) -> DetectionCounts:
    """Detection counts of one image.

    Args:
        pred_shapes: Predicted quads or boxes.
        gt_boxes: Ground-truth boxes ``(x0, y0, x1, y1)``.
        threshold: IoU needed for a match.

    Returns:
        The image's counts; add them over images before reading ratios.
    """
    pairs = match_boxes(pred_shapes, gt_boxes, threshold)
    return DetectionCounts(tp=len(pairs), n_pred=len(pred_shapes), n_gt=len(gt_boxes))


#: What :func:`detection_errors` calls each ground-truth word, in the order of its checks.
DETECTION_ERROR_KINDS = ("matched", "merged", "split", "misaligned", "missed")


def detection_errors(
    pred_shapes: Sequence[Any], gt_boxes: Sequence[Any], threshold: float = IOU_THRESHOLD
) -> dict[str, int]:
    """Why ground-truth words go unmatched: a count per kind of :data:`DETECTION_ERROR_KINDS`.

    Each ground-truth word is, in this order of checks:

    - ``matched``: matched one-to-one as :func:`evaluate_detection` matches (IoU >= threshold);
    - ``merged``: covered (>= 60% of its area) by a prediction that covers another word too;
    - ``split``: cut into pieces, at least two predictions each lying mostly (>= 50%) inside it;
    - ``misaligned``: a prediction overlaps it, but no match (IoU 0.2-0.5, or covered alone);
    - ``missed``: nothing overlaps it at IoU >= 0.2.

    Args:
        pred_shapes: Predicted quads or boxes of one image.
        gt_boxes: Its ground-truth boxes.
        threshold: IoU of a match.
    """
    preds = [to_box(p) for p in pred_shapes]
    gts = [to_box(g) for g in gt_boxes]
    out = dict.fromkeys(DETECTION_ERROR_KINDS, 0)
    matched = {j for _, j in match_boxes(preds, gts, threshold)}
    iou_m = _iou_matrix(preds, gts)
    inter, area_p, area_g = _overlaps(preds, gts)
    of_gt = inter / np.maximum(area_g, 1e-9)  # share of each word inside each prediction
    of_pred = inter / np.maximum(area_p, 1e-9)  # share of each prediction inside each word
    covers = of_gt >= 0.6  # covers[i, j]: prediction i covers most of word j
    words_covered = covers.sum(axis=1)
    for j in range(len(gts)):
        if j in matched:
            kind = "matched"
        elif np.any(covers[:, j] & (words_covered >= 2)):
            kind = "merged"
        elif np.count_nonzero((of_pred[:, j] >= 0.5) & ~covers[:, j]) >= 2:
            kind = "split"
        elif np.any(covers[:, j]) or (len(preds) and iou_m[:, j].max() >= 0.2):
            kind = "misaligned"
        else:
            kind = "missed"
        out[kind] += 1
    return out


def evaluate_end_to_end(
    preds: Sequence[tuple[Any, str]], gts: Sequence[tuple[Any, str]], threshold: float = IOU_THRESHOLD
) -> EndToEndCounts:
    """End-to-end counts of one image.

    Args:
        preds: ``(quad_or_box, text)`` per predicted word.
        gts: ``(box, text)`` per ground-truth word.
        threshold: IoU needed for a match.

    Returns:
        The image's counts (detection counts are in ``.detection``).
    """
    pairs = match_boxes([p[0] for p in preds], [g[0] for g in gts], threshold)
    tp = sum(1 for a, b in pairs if preds[a][1] == gts[b][1])
    tp_caseless = sum(1 for a, b in pairs if preds[a][1].casefold() == gts[b][1].casefold())
    return EndToEndCounts(
        tp=tp, tp_caseless=tp_caseless, matched=len(pairs), n_pred=len(preds), n_gt=len(gts)
    )


def evaluate_recognition(predicted: Sequence[str], expected: Sequence[str]) -> RecognitionCounts:
    """Word accuracy counts of a batch of crops.

    Args:
        predicted: Text read from each crop.
        expected: Ground-truth text of each crop, same order.

    Raises:
        ValueError: If the two lengths differ.
    """
    if len(predicted) != len(expected):
        raise ValueError(f"{len(predicted)} predictions for {len(expected)} ground-truth words")
    correct = sum(1 for p, e in zip(predicted, expected) if p == e)
    caseless = sum(1 for p, e in zip(predicted, expected) if p.casefold() == e.casefold())
    return RecognitionCounts(n=len(expected), correct=correct, correct_caseless=caseless)


def total(counts: Iterable[_C], start: _C) -> _C:
    """Sum per-image counts (``start`` is the zero of the type, e.g. ``DetectionCounts()``)."""
    out = start
    for c in counts:
        out = out + c
    return out
