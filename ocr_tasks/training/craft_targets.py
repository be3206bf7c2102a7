"""CRAFT training targets (region and affinity score maps) from character boxes.

As defined in the CRAFT paper (Baek et al., 2019, section 3.1):

* **Region score**: for every character box, an isotropic 2-D Gaussian heatmap (drawn on a
  square template, value 1 at the centre) is warped by the perspective transform that maps
  the template square onto the character quad.
* **Affinity score**: between each pair of neighbouring characters of a word, an *affinity
  box* is formed: draw both diagonals of each character box, which splits it into four
  triangles; the centroids of the top and bottom triangles of character ``i`` and of
  character ``i + 1`` are the affinity box's corners. The same Gaussian is warped into it.
* Overlapping Gaussians combine by ``max``.

The maps are produced at the detector's output resolution (half the network input): pass the
input-resolution scale of the page times 0.5 as ``scale``. Values are sampled at pixel centres
(map pixel ``(j, i)`` covers ``[j, j + 1) x [i, i + 1)`` in map coordinates, as
:func:`~ocr_tasks.models.detection.postprocess.adjust_result_coordinates` assumes when it maps
map pixels back with a factor of 2).

Warping is evaluated analytically: each pixel centre is mapped through the inverse of the
square-to-quad homography and the template Gaussian is evaluated there, which is the template
warp with exact (not bilinear) interpolation. All quads of a page are processed together in
numpy, so a page with several thousand characters takes a few milliseconds.

The "top" of a character is its first edge in text-frame order (TL -> TR) after the corners
are rolled so that this edge points along the word's reading direction (from the first to the
last character centre). Vertical words (written bottom-to-top or top-to-bottom) therefore
get affinity boxes that bridge consecutive characters along the vertical direction, whatever
corner order their character quads come in.

>>> region, affinity = word_targets([chars], (256, 256), scale=0.5)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = [
    "GAUSSIAN_RANGE",
    "POSITIVE_THRESHOLD",
    "CharWord",
    "CraftTargets",
    "affinity_quads",
    "align_char_quads",
    "craft_targets",
    "gaussian_template",
    "render_gaussians",
    "word_targets",
]

#: Distance from the template centre to its edge midpoint, in standard deviations: the Gaussian
#: is ``exp(-0.5 * (GAUSSIAN_RANGE * d)^2)`` with ``d`` the distance from the centre in units of
#: the template's half size. 2.2 gives about 0.09 at an edge midpoint and 0.008 at a corner, and
#: puts the 0.4 contour (the default ``low_text``) at about 62 % of the half size.
GAUSSIAN_RANGE = 2.2

#: Target values above this count as text in the loss's hard-negative mining (as in CRAFT).
POSITIVE_THRESHOLD = 0.1

# Quads whose area (map pixels^2) is below this are skipped (degenerate homography).
_MIN_AREA = 1e-3


class CharWord(Protocol):
    """A word with character boxes (e.g. :class:`~ocr_tasks.training.synth.SynthWord`)."""

    quad: np.ndarray
    chars: np.ndarray


@dataclass
class CraftTargets:
    """Targets of one page (or crop) at the detector's output resolution.

    Attributes:
        region: ``h x w`` float32 region score in 0..1.
        affinity: ``h x w`` float32 affinity score in 0..1.
        word_quads: ``M x 4 x 2`` float32 word quads in map coordinates (for evaluation).
    """

    region: np.ndarray
    affinity: np.ndarray
    word_quads: np.ndarray


def gaussian_template(size: int = 64, spread: float = GAUSSIAN_RANGE) -> np.ndarray:
    """The square Gaussian template (values 0..1, 1 at the centre), sampled at pixel centres.

    Only for inspection: :func:`render_gaussians` evaluates the same function analytically.

    Args:
        size: Template side in pixels.
        spread: Distance centre -> edge midpoint in standard deviations.

    Returns:
        ``size x size`` float32 array.
    """
    t = (np.arange(size, dtype=np.float64) + 0.5) / size * 2.0 - 1.0
    d2 = t[None, :] ** 2 + t[:, None] ** 2
    return np.exp(-0.5 * spread * spread * d2).astype(np.float32)


def _square_to_quad(quads: np.ndarray) -> np.ndarray:
    """Homographies mapping the unit square (0,0),(1,0),(1,1),(0,1) onto each quad (Heckbert).

    Args:
        quads: ``N x 4 x 2`` corners.

    Returns:
        ``N x 3 x 3`` matrices (rows: x, y, w); degenerate quads give ill-conditioned matrices
        and must be filtered out by the caller.
    """
    x = quads[:, :, 0].astype(np.float64)
    y = quads[:, :, 1].astype(np.float64)
    dx1, dx2, dx3 = x[:, 1] - x[:, 2], x[:, 3] - x[:, 2], x[:, 0] - x[:, 1] + x[:, 2] - x[:, 3]
    dy1, dy2, dy3 = y[:, 1] - y[:, 2], y[:, 3] - y[:, 2], y[:, 0] - y[:, 1] + y[:, 2] - y[:, 3]
    det = dx1 * dy2 - dx2 * dy1
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    g = (dx3 * dy2 - dx2 * dy3) / det
    h = (dx1 * dy3 - dx3 * dy1) / det
    m = np.empty((len(quads), 3, 3), dtype=np.float64)
    m[:, 0, 0] = x[:, 1] - x[:, 0] + g * x[:, 1]
    m[:, 0, 1] = x[:, 3] - x[:, 0] + h * x[:, 3]
    m[:, 0, 2] = x[:, 0]
    m[:, 1, 0] = y[:, 1] - y[:, 0] + g * y[:, 1]
    m[:, 1, 1] = y[:, 3] - y[:, 0] + h * y[:, 3]
    m[:, 1, 2] = y[:, 0]
    m[:, 2, 0] = g
    m[:, 2, 1] = h
    m[:, 2, 2] = 1.0
    return m


def _adjugate(m: np.ndarray) -> np.ndarray:
    """Adjugate of ``N x 3 x 3`` matrices (the inverse up to scale, which is all a homography needs)."""
    a, b, c = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    d, e, f = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    g, h, i = m[:, 2, 0], m[:, 2, 1], m[:, 2, 2]
    out = np.empty_like(m)
    out[:, 0, 0] = e * i - f * h
    out[:, 0, 1] = c * h - b * i
    out[:, 0, 2] = b * f - c * e
    out[:, 1, 0] = f * g - d * i
    out[:, 1, 1] = a * i - c * g
    out[:, 1, 2] = c * d - a * f
    out[:, 2, 0] = d * h - e * g
    out[:, 2, 1] = b * g - a * h
    out[:, 2, 2] = a * e - b * d
    return out


def _quad_area(quads: np.ndarray) -> np.ndarray:
    """Absolute shoelace area of ``N x 4 x 2`` quads."""
    x, y = quads[:, :, 0], quads[:, :, 1]
    return 0.5 * np.abs(np.sum(x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y, axis=1))


def render_gaussians(
    quads: np.ndarray,
    shape: tuple[int, int],
    out: np.ndarray | None = None,
    spread: float = GAUSSIAN_RANGE,
) -> np.ndarray:
    """Max-combine the template Gaussian warped into every quad.

    Args:
        quads: ``N x 4 x 2`` quads in map coordinates, corners in cyclic order starting at any
            corner (the Gaussian is isotropic in template space, so the start does not matter).
        shape: ``(h, w)`` of the map.
        out: Optional float32 map to draw into (max-combined with its content).
        spread: Distance centre -> edge midpoint in standard deviations.

    Returns:
        The ``h x w`` float32 map (``out`` when given).
    """
    h, w = int(shape[0]), int(shape[1])
    canvas = np.zeros((h, w), np.float32) if out is None else out
    quads = np.asarray(quads, dtype=np.float64).reshape(-1, 4, 2)
    if not len(quads) or h <= 0 or w <= 0:
        return canvas
    # Pixels whose centres (j + 0.5) fall inside each quad's bounding box, clipped to the map.
    lo = np.ceil(quads.min(axis=1) - 0.5)
    hi = np.floor(quads.max(axis=1) - 0.5)
    x0 = np.clip(lo[:, 0], 0, w).astype(np.int64)
    y0 = np.clip(lo[:, 1], 0, h).astype(np.int64)
    x1 = np.clip(hi[:, 0] + 1, 0, w).astype(np.int64)
    y1 = np.clip(hi[:, 1] + 1, 0, h).astype(np.int64)
    bw, bh = np.maximum(x1 - x0, 0), np.maximum(y1 - y0, 0)
    keep = (bw > 0) & (bh > 0) & (_quad_area(quads) > _MIN_AREA)
    if not keep.any():
        return canvas
    quads, x0, y0, bw, bh = quads[keep], x0[keep], y0[keep], bw[keep], bh[keep]
    inv = _adjugate(_square_to_quad(quads))

    counts = bw * bh
    owner = np.repeat(np.arange(len(quads)), counts)
    starts = np.cumsum(counts) - counts
    local = np.arange(int(counts.sum()), dtype=np.int64) - starts[owner]
    bw_o = bw[owner]
    px = x0[owner] + local % bw_o
    py = y0[owner] + local // bw_o
    cx, cy = px + 0.5, py + 0.5
    m = inv[owner]
    den = m[:, 2, 0] * cx + m[:, 2, 1] * cy + m[:, 2, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = (m[:, 0, 0] * cx + m[:, 0, 1] * cy + m[:, 0, 2]) / den
        v = (m[:, 1, 0] * cx + m[:, 1, 1] * cy + m[:, 1, 2]) / den
    inside = (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
    u, v = u[inside] * 2.0 - 1.0, v[inside] * 2.0 - 1.0
    values = np.exp(-0.5 * spread * spread * (u * u + v * v)).astype(np.float32)
    flat = canvas.reshape(-1)
    np.maximum.at(flat, py[inside] * w + px[inside], values)
    return canvas


def align_char_quads(chars: np.ndarray) -> np.ndarray:
    """Roll each character quad so its first edge (TL -> TR) runs along the reading direction.

    The reading direction is the vector from the first to the last character centre (for a
    single character: the quad's own first edge). Cyclic order is kept; only the start moves.

    Args:
        chars: ``N x 4 x 2`` character quads of one word, in reading order.

    Returns:
        ``N x 4 x 2`` float64 quads.
    """
    chars = np.asarray(chars, dtype=np.float64).reshape(-1, 4, 2)
    if len(chars) < 2:
        return chars
    centres = chars.mean(axis=1)
    direction = centres[-1] - centres[0]
    norm = float(np.hypot(*direction))
    if norm < 1e-9:
        return chars
    direction /= norm
    edges = np.roll(chars, -1, axis=1) - chars  # edge k: corner k -> corner k + 1
    lengths = np.maximum(np.linalg.norm(edges, axis=2), 1e-9)
    start = np.argmax((edges @ direction) / lengths, axis=1)
    idx = (start[:, None] + np.arange(4)[None, :]) % 4
    return np.take_along_axis(chars, idx[:, :, None], axis=1)


def affinity_quads(chars: np.ndarray) -> np.ndarray:
    """Affinity boxes between neighbouring characters of one word (CRAFT paper, Fig. 3).

    For each character, with corners TL, TR, BR, BL (after :func:`align_char_quads`) and
    centre ``c``: the top triangle centroid is ``(TL + TR + c) / 3`` and the bottom one
    ``(BR + BL + c) / 3``. The box between characters ``i`` and ``i + 1`` is
    ``(top_i, top_i+1, bottom_i+1, bottom_i)``.

    Args:
        chars: ``N x 4 x 2`` character quads of one word, in reading order.

    Returns:
        ``(N - 1) x 4 x 2`` float64 affinity quads (empty for fewer than two characters).
    """
    chars = align_char_quads(chars)
    if len(chars) < 2:
        return np.zeros((0, 4, 2), np.float64)
    centre = chars.mean(axis=1)
    top = (chars[:, 0] + chars[:, 1] + centre) / 3.0
    bottom = (chars[:, 2] + chars[:, 3] + centre) / 3.0
    return np.stack([top[:-1], top[1:], bottom[1:], bottom[:-1]], axis=1)


def word_targets(
    words_chars: Sequence[np.ndarray],
    shape: tuple[int, int],
    scale: float = 0.5,
    offset: tuple[float, float] = (0.0, 0.0),
    spread: float = GAUSSIAN_RANGE,
) -> tuple[np.ndarray, np.ndarray]:
    """Region and affinity maps from per-word character quads.

    Args:
        words_chars: One ``N x 4 x 2`` array of character quads (reading order) per word, in
            page pixels.
        shape: ``(h, w)`` of the output maps.
        scale: Page pixels -> map pixels (``0.5 * resize ratio`` for the detector output).
        offset: ``(x, y)`` of the map's top-left corner in map coordinates (for crops): map
            coordinates are ``quad * scale - offset``.
        spread: Gaussian spread (see :data:`GAUSSIAN_RANGE`).

    Returns:
        ``(region, affinity)``, two ``h x w`` float32 maps in 0..1.
    """
    shift = np.asarray(offset, dtype=np.float64)
    chars_all: list[np.ndarray] = []
    links: list[np.ndarray] = []
    for chars in words_chars:
        c = np.asarray(chars, dtype=np.float64).reshape(-1, 4, 2)
        if not len(c):
            continue
        chars_all.append(c)
        if len(c) > 1:
            links.append(affinity_quads(c))
    h, w = shape
    region = np.zeros((h, w), np.float32)
    affinity = np.zeros((h, w), np.float32)
    if chars_all:
        render_gaussians(np.concatenate(chars_all) * scale - shift, shape, region, spread)
    if links:
        render_gaussians(np.concatenate(links) * scale - shift, shape, affinity, spread)
    return region, affinity


def craft_targets(
    words: Sequence[CharWord],
    shape: tuple[int, int],
    scale: float = 0.5,
    offset: tuple[float, float] = (0.0, 0.0),
    spread: float = GAUSSIAN_RANGE,
) -> CraftTargets:
    """Targets for synthetic words (objects with ``.chars`` ``N x 4 x 2`` and ``.quad`` ``4 x 2``).

    Args:
        words: e.g. :class:`~ocr_tasks.training.synth.SynthWord` objects, in page pixels.
        shape: ``(h, w)`` of the output maps.
        scale: Page pixels -> map pixels.
        offset: Map-coordinate ``(x, y)`` of the map's top-left corner.
        spread: Gaussian spread.

    Returns:
        The region and affinity maps plus the word quads in map coordinates.
    """
    region, affinity = word_targets([w.chars for w in words], shape, scale, offset, spread)
    shift = np.asarray(offset, dtype=np.float32)
    quads = [np.asarray(w.quad, np.float32) * np.float32(scale) - shift for w in words]
    word_quads = np.stack(quads).astype(np.float32) if quads else np.zeros((0, 4, 2), np.float32)
    return CraftTargets(region=region, affinity=affinity, word_quads=word_quads)
