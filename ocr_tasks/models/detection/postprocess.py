"""CRAFT post-processing: score maps -> word boxes, polygons and scores (SPEC §2.7).

Pure numpy/OpenCV; works on the half-resolution maps the detector returns. Coordinates are in
heatmap pixels until :func:`adjust_result_coordinates` maps them back to the original image.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

__all__ = ["CraftThresholds", "get_det_boxes", "adjust_result_coordinates"]

# getPoly_core constants (SPEC §2.7 item 4).
_NUM_CP = 5
_MAX_LEN_RATIO = 0.7
_EXPAND_RATIO = 1.45
_MAX_R = 2.0
_STEP_R = 0.2
_DIAMOND_TOLERANCE = 0.1
#: align_short_words: a box whose long side is under this many times its short side is "short"
#: (its own rotated rectangle is unreliable: one descender or accent tilts it).
_SHORT_WORD_RATIO = 2.5
#: align_short_words: long, roughly horizontal words needed to trust the page's text angle.
_MIN_LINE_WORDS = 3
#: align_short_words: a word whose box at the line angle is at most this much larger than its
#: own minimum-area box is refitted at the line angle too (its own angle is within the noise).
_LEVEL_AREA_SLACK = 0.08
#: Neighbouring words (same line: vertical offset under half the smaller height, gap under this
#: many heights) whose centres give the line angle.
_NEIGHBOUR_GAP = 3.0


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


@dataclass(frozen=True)
class CraftThresholds:
    """Detection thresholds and resize settings (official test.py defaults).

    Attributes:
        text_threshold: A component is kept only if its max region score is >= this.
        link_threshold: Affinity pixels with score > this join characters into words.
        low_text: Region pixels with score > this belong to text.
        canvas_size: Upper bound of the long image side after resizing.
        mag_ratio: Magnification of the long side before clamping to ``canvas_size``.
        poly: Also compute curved-text polygons.
        min_area: Components with fewer pixels (heatmap scale) are dropped.
        align_short_words: Fit short words' boxes (long side < 2.5 x short side), and any word
            whose box at the line angle is at most 8% larger than its own, at the page's line
            angle (from neighbouring words' centres) instead of their own minimum-area angle
            (off in the official algorithm; on for the bundled light detector).
        split_link: Cut a word component at every pixel column where it has no text pixels
            (region score <= ``low_text``) and all its link scores stay below this: two words
            held together only by a weak affinity bridge across a text-free gap become two.
            Values <= ``link_threshold`` change nothing (0: off, the official algorithm).
    """

    text_threshold: float = 0.7
    link_threshold: float = 0.4
    low_text: float = 0.4
    canvas_size: int = 1280
    mag_ratio: float = 1.5
    poly: bool = False
    min_area: int = 10
    align_short_words: bool = False
    split_link: float = 0.0

    def __post_init__(self) -> None:
        for name in ("text_threshold", "link_threshold", "low_text", "split_link"):
            value = getattr(self, name)
            if not _is_real(value) or not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
            object.__setattr__(self, name, float(value))
        if not _is_int(self.canvas_size) or int(self.canvas_size) < 32:
            raise ValueError(f"canvas_size must be an integer >= 32, got {self.canvas_size!r}")
        object.__setattr__(self, "canvas_size", int(self.canvas_size))
        if not _is_real(self.mag_ratio) or not math.isfinite(self.mag_ratio) or self.mag_ratio <= 0:
            raise ValueError(f"mag_ratio must be a finite number > 0, got {self.mag_ratio!r}")
        object.__setattr__(self, "mag_ratio", float(self.mag_ratio))
        if not isinstance(self.poly, bool | np.bool_):
            raise ValueError(f"poly must be a bool, got {self.poly!r}")
        object.__setattr__(self, "poly", bool(self.poly))
        if not isinstance(self.align_short_words, bool | np.bool_):
            raise ValueError(f"align_short_words must be a bool, got {self.align_short_words!r}")
        object.__setattr__(self, "align_short_words", bool(self.align_short_words))
        if not _is_int(self.min_area) or int(self.min_area) < 0:
            raise ValueError(f"min_area must be an integer >= 0, got {self.min_area!r}")
        object.__setattr__(self, "min_area", int(self.min_area))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], base: CraftThresholds | None = None) -> CraftThresholds:
        """Build from a mapping of field overrides on top of ``base`` (defaults if None).

        Raises:
            ValueError: If the mapping has unknown keys (all are named) or a value is invalid.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in mapping if k not in known)
        if unknown:
            raise ValueError(
                f"unknown CraftThresholds key(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return dataclasses.replace(base if base is not None else cls(), **dict(mapping))

    def replace(self, **overrides: Any) -> CraftThresholds:
        """Return a copy with ``overrides`` applied (validated like :meth:`from_mapping`)."""
        return type(self).from_mapping(overrides, base=self)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain dict."""
        return dataclasses.asdict(self)


def _order_box(box: np.ndarray) -> np.ndarray:
    """Roll the 4 points so the one with the smallest x + y comes first (cyclic order kept)."""
    start = int(np.argmin(box.sum(axis=1)))
    return np.roll(box, -start, axis=0)


def _long_side(box: np.ndarray) -> tuple[float, float]:
    """``(angle, ratio)`` of a 4-point box: its long side's angle in radians, in (-pi/2, pi/2],
    and long side / short side."""
    first, second = box[1] - box[0], box[2] - box[1]
    len_first, len_second = float(np.hypot(*first)), float(np.hypot(*second))
    edge = first if len_first >= len_second else second
    angle = math.atan2(float(edge[1]), float(edge[0]))
    if angle <= -math.pi / 2:
        angle += math.pi
    elif angle > math.pi / 2:
        angle -= math.pi
    return angle, max(len_first, len_second) / (min(len_first, len_second) + 1e-5)


def _box_at_angle(points: np.ndarray, angle: float) -> np.ndarray:
    """The smallest box at ``angle`` (radians) holding ``points`` (``n x 2``), 4 x 2 float32."""
    cos, sin = math.cos(angle), math.sin(angle)
    pts = points.astype(np.float64)
    u = pts[:, 0] * cos + pts[:, 1] * sin
    v = -pts[:, 0] * sin + pts[:, 1] * cos
    corners = np.array(
        [[u.min(), v.min()], [u.max(), v.min()], [u.max(), v.max()], [u.min(), v.max()]]
    )
    x = corners[:, 0] * cos - corners[:, 1] * sin
    y = corners[:, 0] * sin + corners[:, 1] * cos
    return np.stack([x, y], axis=1).astype(np.float32)


def _neighbour_angles(boxes: list[np.ndarray], shape: list[tuple[float, float]]) -> list[float]:
    """Angles (radians) from each near-horizontal word's centre to its nearest right neighbour's
    on the same line: long baselines, so far less noisy than a short word's own rectangle."""
    items = []
    for box, (angle, _) in zip(boxes, shape):
        if abs(angle) >= math.pi / 4:
            continue
        sides = sorted([float(np.linalg.norm(box[0] - box[1])), float(np.linalg.norm(box[1] - box[2]))])
        centre = box.mean(axis=0)
        items.append((float(centre[0]), float(centre[1]), sides[0], sides[1]))
    items.sort()
    angles = []
    for i, (x, y, h, w) in enumerate(items):
        for x2, y2, h2, w2 in items[i + 1 :]:
            dx, dy = x2 - x, y2 - y
            gap = dx - (w + w2) / 2
            if gap > _NEIGHBOUR_GAP * max(h, h2):
                break  # sorted by x: every later word is farther
            if gap > -0.25 * min(h, h2) and abs(dy) < 0.5 * min(h, h2) and dx > 0:
                angles.append(math.atan2(dy, dx))
                break
    return angles


def _align_short_words(boxes: list[np.ndarray], points: list[np.ndarray]) -> None:
    """Refit words' boxes in place at the page's line angle.

    A two-letter word with a descender ("by", "py") has a minimum-area rectangle tilted by
    10-20 degrees, which cuts its crop askew, and even longer words' rectangles lean a few
    degrees towards an ascender ("form"). The line angle is the median angle between
    neighbouring words' centres on the same line when at least ``_MIN_LINE_WORDS`` such pairs
    exist, else the median angle of the long, near-horizontal words (nothing changes when fewer
    than ``_MIN_LINE_WORDS`` of those either). Short words are always refitted; other words when
    their box at the line angle is at most ``_LEVEL_AREA_SLACK`` larger than their own (a word
    that really lies at another angle has a much larger box at the line's).
    """
    shape = [_long_side(box) for box in boxes]
    line_angles = [a for a, r in shape if r >= _SHORT_WORD_RATIO and abs(a) < math.pi / 4]
    if len(line_angles) < _MIN_LINE_WORDS:
        return
    pairs = _neighbour_angles(boxes, shape)
    angle = float(np.median(pairs if len(pairs) >= _MIN_LINE_WORDS else line_angles))
    for i, (own, ratio) in enumerate(shape):
        if ratio < _SHORT_WORD_RATIO:
            boxes[i] = _order_box(_box_at_angle(points[i], angle))
        elif abs(own - angle) > 1e-6 and abs(own) < math.pi / 4:
            levelled = _box_at_angle(points[i], angle)
            own_area = float(cv2.contourArea(boxes[i]))
            if own_area > 0 and float(cv2.contourArea(levelled)) <= own_area * (1.0 + _LEVEL_AREA_SLACK):
                boxes[i] = _order_box(levelled)


def _warp_point(matrix: np.ndarray, x: float, y: float) -> tuple[float, float]:
    px, py, pw = matrix @ np.array([x, y, 1.0])
    return float(px / pw), float(py / pw)


def _column_extents(word: np.ndarray) -> tuple[list[tuple[int, int, int]], int]:
    """Per column with >= 2 mask pixels: ``(x, top, bottom)``; plus the tallest extent."""
    columns: list[tuple[int, int, int]] = []
    max_len = -1
    for x in range(word.shape[1]):
        rows = np.flatnonzero(word[:, x])
        if rows.size < 2:
            continue
        top, bottom = int(rows[0]), int(rows[-1])
        columns.append((x, top, bottom))
        max_len = max(max_len, bottom - top + 1)
    return columns, max_len


def _polygon_from_box(box: np.ndarray, component: np.ndarray) -> np.ndarray | None:
    """Fit a 14-point polygon to a (possibly curved) word; None when the fit is not possible.

    Args:
        box: 4 x 2 float32 box (TL, TR, BR, BL) in heatmap coordinates.
        component: uint8 mask (heatmap size) of the component that produced the box.
    """
    width = int(np.linalg.norm(box[0] - box[1]) + 1)
    height = int(np.linalg.norm(box[1] - box[2]) + 1)
    if width < 10 or height < 10:
        return None
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    warp = cv2.getPerspectiveTransform(box.astype(np.float32), target)
    try:
        inverse = np.linalg.inv(warp)
    except np.linalg.LinAlgError:
        return None
    word = cv2.warpPerspective(component, warp, (width, height), flags=cv2.INTER_NEAREST) > 0

    columns, max_len = _column_extents(word)
    if max_len > height * _MAX_LEN_RATIO:
        return None

    # Split the width into 11 segments; odd segments hold pivots (tallest column), all segments
    # record the centroid of their column centres (used for the local slope).
    num_seg = 2 * _NUM_CP + 1
    seg_w = width / num_seg
    pivots: list[tuple[float, float] | None] = [None] * _NUM_CP
    pivot_heights = [0] * _NUM_CP
    sections = [[0.0, 0.0] for _ in range(num_seg)]
    seg, count, prev_h = 0, 0, -1
    for x, top, bottom in columns:
        if (seg + 1) * seg_w <= x and seg <= num_seg:
            if count == 0:
                break
            sections[seg] = [sections[seg][0] / count, sections[seg][1] / count]
            count, prev_h = 0, -1
            seg += 1  # advances one segment per column, as upstream does
        cy = (top + bottom) * 0.5
        cur_h = bottom - top + 1
        sections[seg] = [sections[seg][0] + x, sections[seg][1] + cy]
        count += 1
        if seg % 2 == 0:
            continue
        if prev_h < cur_h:
            pivots[(seg - 1) // 2] = (float(x), cy)
            pivot_heights[(seg - 1) // 2] = cur_h
            prev_h = cur_h
    if count != 0:
        # Upstream averages the *last* section here (whichever segment the loop ended in).
        sections[-1] = [sections[-1][0] / count, sections[-1][1] / count]
    if any(p is None for p in pivots) or seg_w < max(pivot_heights) * 0.25:
        return None
    pts: list[tuple[float, float]] = [p for p in pivots if p is not None]

    half_h = float(np.median(pivot_heights)) * _EXPAND_RATIO / 2
    spans: list[list[float]] = []  # per pivot: top x, top y, bottom x, bottom y
    for i, (x, cy) in enumerate(pts):
        dx = sections[2 * i + 2][0] - sections[2 * i][0]
        dy = sections[2 * i + 2][1] - sections[2 * i][1]
        if dx == 0:
            spans.append([x, cy - half_h, x, cy + half_h])
            continue
        angle = -math.atan2(dy, dx)
        c, s = half_h * math.cos(angle), half_h * math.sin(angle)
        spans.append([x - s, cy - c, x + s, cy + c])

    def slope(a: tuple[float, float], b: tuple[float, float]) -> float:
        return (b[1] - a[1]) / (b[0] - a[0])

    grad_start = slope(pts[0], pts[1]) + slope(pts[1], pts[2])
    grad_end = slope(pts[-1], pts[-2]) + slope(pts[-2], pts[-3])

    def touches(span: np.ndarray) -> bool:
        line = np.zeros(word.shape, dtype=np.uint8)
        p1 = (int(span[0]), int(span[1]))
        p2 = (int(span[2]), int(span[3]))
        cv2.line(line, p1, p2, 1, thickness=1)
        return bool(np.any(word & (line > 0)))

    start_span: np.ndarray | None = None
    end_span: np.ndarray | None = None
    for r in np.arange(0.5, _MAX_R, _STEP_R):
        dx = 2 * half_h * r
        last = r + 2 * _STEP_R >= _MAX_R
        if start_span is None:
            cand = np.array(spans[0]) - np.array([dx, grad_start * dx, dx, grad_start * dx])
            if last or not touches(cand):
                start_span = cand
        if end_span is None:
            cand = np.array(spans[-1]) + np.array([dx, grad_end * dx, dx, grad_end * dx])
            if last or not touches(cand):
                end_span = cand
        if start_span is not None and end_span is not None:
            break
    if start_span is None or end_span is None:
        return None

    poly = [_warp_point(inverse, start_span[0], start_span[1])]
    poly += [_warp_point(inverse, sp[0], sp[1]) for sp in spans]
    poly.append(_warp_point(inverse, end_span[0], end_span[1]))
    poly.append(_warp_point(inverse, end_span[2], end_span[3]))
    poly += [_warp_point(inverse, sp[2], sp[3]) for sp in reversed(spans)]
    poly.append(_warp_point(inverse, start_span[2], start_span[3]))
    return np.array(poly, dtype=np.float32)


def _weak_bridge_pixels(
    text_on: np.ndarray, link: np.ndarray, labels: np.ndarray, stats: np.ndarray, th: CraftThresholds
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(rows, cols)`` of the pixels of weak bridges between words (``CraftThresholds.split_link``).

    Returns None when there are none. A bridge is a run of pixel columns of one component,
    between its first and last text column, with no text pixels, whose link scores all stay
    below ``th.split_link``; clearing its pixels makes the component fall apart there when the
    components are labelled again. Vectorised over (component, column) pairs: a page has
    hundreds of components, and a Python loop over them cost 40 ms.
    """
    width = labels.shape[1]
    keep = stats[:, cv2.CC_STAT_AREA] >= th.min_area
    keep[0] = False
    rows, cols = np.nonzero(keep[labels])
    if rows.size == 0:
        return None
    lab = labels[rows, cols].astype(np.int64)
    key = lab * width + cols  # one key per (component, column)
    order = np.argsort(key, kind="stable")
    keys, first = np.unique(key[order], return_index=True)
    rows_sorted, cols_sorted = rows[order], cols[order]
    link_max = np.maximum.reduceat(link[rows_sorted, cols_sorted], first)
    text_any = np.logical_or.reduceat(text_on[rows_sorted, cols_sorted], first)
    comp, col = keys // width, keys % width
    # Text span of each component: columns outside its first..last text column never count.
    text_keys = keys[text_any]
    lo = np.full(stats.shape[0], np.iinfo(np.int64).max)
    hi = np.full(stats.shape[0], -1)
    np.minimum.at(lo, text_keys // width, text_keys % width)
    np.maximum.at(hi, text_keys // width, text_keys % width)
    gap = ~text_any & (col > lo[comp]) & (col < hi[comp])
    if not gap.any():
        return None
    # Runs of consecutive gap columns of one component: a new run starts where the previous
    # key is not a gap column of the same component one column to the left.
    g_keys, g_link = keys[gap], link_max[gap]
    starts = np.ones(g_keys.size, bool)
    starts[1:] = np.diff(g_keys) != 1
    run_id = np.cumsum(starts) - 1
    run_max = np.maximum.reduceat(g_link, np.flatnonzero(starts))
    cut_keys = g_keys[run_max[run_id] < np.float32(th.split_link)]
    if cut_keys.size == 0:
        return None
    hit = np.isin(key, cut_keys)
    return rows[hit], cols[hit]


def get_det_boxes(
    textmap: np.ndarray,
    linkmap: np.ndarray,
    thresholds: CraftThresholds | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray | None], list[float]]:
    """Group region/affinity score maps into word boxes (official getDetBoxes algorithm).

    Args:
        textmap: ``h x w`` region scores (raw detector output, heatmap scale).
        linkmap: ``h x w`` affinity (or refined link) scores.
        thresholds: Thresholds; defaults to :class:`CraftThresholds()`.

    Returns:
        ``(boxes, polys, scores)``, one entry per word: 4 x 2 float32 boxes ordered clockwise
        from the top-left-most point; 14 x 2 float32 polygons when ``thresholds.poly`` is set and
        the fit succeeds, else None (callers fall back to the box); mean region score of the
        word's text pixels, clipped to [0, 1].

    Raises:
        ValueError: If the maps are not 2-D arrays of the same shape.
    """
    th = thresholds if thresholds is not None else CraftThresholds()
    text = np.asarray(textmap, dtype=np.float32)
    link = np.asarray(linkmap, dtype=np.float32)
    if text.ndim != 2 or text.shape != link.shape:
        raise ValueError(f"textmap and linkmap must be 2-D with equal shapes, got {text.shape}, {link.shape}")
    img_h, img_w = text.shape

    text_on = text > np.float32(th.low_text)  # strict, like cv2.THRESH_BINARY
    link_on = link > np.float32(th.link_threshold)
    combined = (text_on | link_on).astype(np.uint8)
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(combined, connectivity=4)
    if th.split_link > th.link_threshold:
        bridges = _weak_bridge_pixels(text_on, link, labels, stats, th)
        if bridges is not None:  # bridges are pure-link pixels: clearing them is the whole cut
            combined[bridges] = 0
            n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(combined, connectivity=4)

    boxes: list[np.ndarray] = []
    polys: list[np.ndarray | None] = []
    scores: list[float] = []
    word_points: list[np.ndarray] = []
    for k in range(1, n_labels):
        x, y, w, h, area = (int(v) for v in stats[k, :5])
        if area < th.min_area:
            continue
        in_box = labels[y : y + h, x : x + w] == k
        if text[y : y + h, x : x + w][in_box].max() < np.float32(th.text_threshold):
            continue

        # Work inside the dilation window: the component lies in its bounding box, and the
        # dilation only acts inside the window, so this equals processing the full map.
        niter = int(math.sqrt(area * min(w, h) / (w * h)) * 2)
        sx, sy = max(x - niter, 0), max(y - niter, 0)
        ex, ey = min(x + w + niter + 1, img_w), min(y + h + niter + 1, img_h)
        in_comp = labels[sy:ey, sx:ex] == k
        # The component minus its pure-link pixels (link on, text off) = its text pixels.
        text_px = in_comp & text_on[sy:ey, sx:ex]
        if not text_px.any():
            continue
        score = float(np.clip(text[sy:ey, sx:ex][text_px].mean(), 0.0, 1.0))

        segmap = text_px.astype(np.uint8) * np.uint8(255)
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (1 + niter, 1 + niter))
        segmap = cv2.dilate(segmap, kernel)
        rows, cols = np.nonzero(segmap)
        points = np.stack([cols + sx, rows + sy], axis=1).astype(np.int32)

        box = cv2.boxPoints(cv2.minAreaRect(points)).astype(np.float32)
        side_a = float(np.linalg.norm(box[0] - box[1]))
        side_b = float(np.linalg.norm(box[1] - box[2]))
        if abs(1 - max(side_a, side_b) / (min(side_a, side_b) + 1e-5)) <= _DIAMOND_TOLERANCE:
            left, right = float(points[:, 0].min()), float(points[:, 0].max())
            top, bottom = float(points[:, 1].min()), float(points[:, 1].max())
            box = np.array([[left, top], [right, top], [right, bottom], [left, bottom]], dtype=np.float32)
        box = _order_box(box)

        poly = None
        if th.poly:
            poly = _polygon_from_box(box, (labels == k).astype(np.uint8))
        boxes.append(box)
        polys.append(poly)
        scores.append(score)
        if th.align_short_words:
            word_points.append(points)
    if th.align_short_words:
        _align_short_words(boxes, word_points)
    return boxes, polys, scores


def adjust_result_coordinates(
    points: np.ndarray | Sequence[np.ndarray | None],
    ratio_w: float,
    ratio_h: float,
    ratio_net: float = 2,
) -> Any:
    """Map heatmap coordinates to original-image coordinates.

    x is multiplied by ``ratio_w * ratio_net`` and y by ``ratio_h * ratio_net`` (with
    ``ratio_w = ratio_h = 1 / resize ratio`` and ``ratio_net = 2`` for CRAFT's half-size maps).

    Args:
        points: One array ``(..., 2)`` or a sequence of such arrays / None.

    Returns:
        The same structure with new, scaled arrays (None entries kept; float dtypes kept,
        integer inputs become float64).
    """
    sx, sy = ratio_w * ratio_net, ratio_h * ratio_net

    def scale(arr: np.ndarray) -> np.ndarray:
        arr = np.asarray(arr)
        dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float64
        return arr.astype(dtype) * np.array([sx, sy], dtype=dtype)

    if isinstance(points, np.ndarray):
        return scale(points)
    return [None if p is None else scale(p) for p in points]
