"""Quad geometry: point order, perspective crops, reading order. numpy/cv2 only."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = [
    "order_quad",
    "quad_size",
    "quad_bounds",
    "is_vertical",
    "crop_quad",
    "reading_order",
    "VERTICAL_RATIO",
]

#: A crop whose height exceeds this many times its width is treated as vertical text and
#: turned upright (rotated 90 degrees clockwise: text written bottom-to-top reads left-to-right).
VERTICAL_RATIO = 3.0


def order_quad(points: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Order 4 points clockwise on screen (y down), starting with the top-left one.

    "Top-left" is the point with the smallest ``x + y``, as CRAFT's post-processing defines it.
    """
    pts = np.asarray(points, dtype=np.float32).reshape(4, 2)
    center = pts.mean(axis=0)
    angles = np.arctan2(pts[:, 1] - center[1], pts[:, 0] - center[0])
    pts = pts[np.argsort(angles)]  # increasing angle == clockwise on screen (y down)
    start = int(np.argmin(pts.sum(axis=1)))
    return np.roll(pts, -start, axis=0)


def quad_size(quad: np.ndarray) -> tuple[float, float]:
    """(width, height) of an ordered quad: the longer of each pair of opposite sides."""
    q = np.asarray(quad, dtype=np.float32).reshape(4, 2)
    width = max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[3] - q[2]))
    height = max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2]))
    return float(width), float(height)


def quad_bounds(quad: np.ndarray) -> tuple[float, float, float, float]:
    """Axis-aligned bounds ``(x0, y0, x1, y1)`` of a quad."""
    q = np.asarray(quad, dtype=np.float32).reshape(4, 2)
    return float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 0].max()), float(q[:, 1].max())


def is_vertical(quad: np.ndarray) -> bool:
    """True when a box is taller than ``VERTICAL_RATIO`` x its width (vertical text)."""
    width, height = quad_size(order_quad(quad))
    return height > VERTICAL_RATIO * max(width, 1e-6)


def _is_axis_aligned(q: np.ndarray, tol: float = 0.5) -> bool:
    return (
        abs(q[0, 1] - q[1, 1]) <= tol
        and abs(q[3, 1] - q[2, 1]) <= tol
        and abs(q[0, 0] - q[3, 0]) <= tol
        and abs(q[1, 0] - q[2, 0]) <= tol
    )


def crop_quad(image: np.ndarray, quad: np.ndarray, *, upright: bool = True) -> np.ndarray:
    """Cut the region inside ``quad`` out of ``image`` as a straight rectangle.

    Axis-aligned quads are sliced (exact pixels); others are warped with a perspective
    transform onto a ``width x height`` rectangle (sides as in :func:`quad_size`).

    Args:
        image: ``H x W`` or ``H x W x C`` uint8 page.
        quad: 4 points, any order (re-ordered clockwise from top-left).
        upright: rotate crops taller than ``VERTICAL_RATIO`` x their width by 90 degrees clockwise.

    Returns:
        The crop, at least 1 x 1 pixel.
    """
    q = order_quad(quad)
    h_img, w_img = image.shape[:2]
    if _is_axis_aligned(q):
        x0, y0, x1, y1 = quad_bounds(q)
        xa, ya = int(np.clip(np.floor(x0), 0, w_img - 1)), int(np.clip(np.floor(y0), 0, h_img - 1))
        xb, yb = int(np.clip(np.ceil(x1), xa + 1, w_img)), int(np.clip(np.ceil(y1), ya + 1, h_img))
        crop = image[ya:yb, xa:xb].copy()
    else:
        width, height = quad_size(q)
        w, h = max(int(round(width)), 1), max(int(round(height)), 1)
        dst = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], dtype=np.float32)
        matrix = cv2.getPerspectiveTransform(q.astype(np.float32), dst)
        crop = cv2.warpPerspective(
            image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    if upright and crop.shape[0] > VERTICAL_RATIO * crop.shape[1]:
        crop = cv2.rotate(crop, cv2.ROTATE_90_CLOCKWISE)
    return np.ascontiguousarray(crop)


def reading_order(quads: Sequence[np.ndarray], gap_factor: float = 3.0) -> list[list[int]]:
    """Group boxes into lines and sort them into reading order.

    Boxes whose vertical centres fall inside each other's vertical extent (overlap of at least
    half the smaller height) form a line; lines are sorted top to bottom, words left to right.
    A horizontal gap larger than ``gap_factor`` x the line height splits a line (table cells,
    columns), and the pieces keep their left-to-right order.

    Returns:
        Lines in reading order, each a list of indices into ``quads``.
    """
    if len(quads) == 0:
        return []
    bounds = np.array([quad_bounds(q) for q in quads], dtype=np.float64)
    heights = np.maximum(bounds[:, 3] - bounds[:, 1], 1.0)
    centers_y = (bounds[:, 1] + bounds[:, 3]) / 2
    lines: list[dict[str, object]] = []
    for i in np.argsort(centers_y, kind="stable"):
        best, best_overlap = None, 0.0
        for line in lines:
            top, bottom = line["top"], line["bottom"]  # type: ignore[assignment]
            overlap = min(bounds[i, 3], bottom) - max(bounds[i, 1], top)  # type: ignore[operator]
            ratio = overlap / min(heights[i], bottom - top)  # type: ignore[operator]
            if ratio >= 0.5 and ratio > best_overlap:
                best, best_overlap = line, ratio
        if best is None:
            lines.append({"top": bounds[i, 1], "bottom": bounds[i, 3], "items": [int(i)]})
        else:
            best["items"].append(int(i))  # type: ignore[union-attr]
            # Keep the band near the first word's so a line cannot drift down a slanted page.
            n = len(best["items"])  # type: ignore[arg-type]
            best["top"] = (best["top"] * (n - 1) + bounds[i, 1]) / n  # type: ignore[operator]
            best["bottom"] = (best["bottom"] * (n - 1) + bounds[i, 3]) / n  # type: ignore[operator]
    pieces: list[tuple[float, float, list[int]]] = []
    for line in lines:
        items = sorted(line["items"], key=lambda k: bounds[k, 0])  # type: ignore[arg-type]
        line_h = float(np.median(heights[items]))
        current = [items[0]]
        for prev, k in zip(items, items[1:]):
            if bounds[k, 0] - bounds[prev, 2] > gap_factor * line_h:
                pieces.append((float(line["top"]), bounds[current[0], 0], current))  # type: ignore[arg-type]
                current = [k]
            else:
                current.append(k)
        pieces.append((float(line["top"]), bounds[current[0], 0], current))  # type: ignore[arg-type]
    pieces.sort(key=lambda p: (p[0], p[1]))
    return [p[2] for p in pieces]
