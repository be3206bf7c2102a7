"""Drawing surface for synthetic pages: text and line-art ink layers plus exact word geometry.

Coordinates are page pixels of the flat (not yet scanned) page, x right and y down. Words are
rendered one at a time into a small buffer, so each word's box is the exact bounding box of its
own ink; character boxes come from per-glyph ink boxes placed at the glyph's pen position.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .fonts import FontInfo, load_font

__all__ = [
    "INK_THRESHOLD",
    "Canvas",
    "Face",
    "PlacedWord",
    "Rendered",
    "get_face",
    "render_hand",
    "render_word",
]

#: Coverage (0-255) from which a pixel counts as ink when measuring boxes.
INK_THRESHOLD = 48


class Face:
    """A font at one pixel size, with cached advances and exact glyph ink boxes.

    Args:
        info: The font file.
        size: Em size in pixels.
        stroke: Extra stroke width in pixels (0 = the font's own weight; 0.3-0.7 = heavier,
            like a typewriter ribbon or toner spread).
    """

    def __init__(self, info: FontInfo, size: int, stroke: float = 0.0) -> None:
        self.info = info
        self.size = int(size)
        self.stroke = float(stroke)
        self.font: ImageFont.FreeTypeFont = load_font(info.path, self.size)
        ascent, descent = self.font.getmetrics()
        self.ascent, self.descent = int(ascent), int(descent)
        self._length: dict[str, float] = {}
        self._glyph: dict[str, tuple[int, int, int, int]] = {}

    def length(self, text: str) -> float:
        """Advance width of ``text`` (cached for 1- and 2-character strings)."""
        if len(text) > 2:
            return float(self.font.getlength(text))
        value = self._length.get(text)
        if value is None:
            value = self._length[text] = float(self.font.getlength(text))
        return value

    def pens(self, text: str) -> list[float]:
        """Pen x position of each character, kerning included."""
        pens = [0.0]
        for i in range(1, len(text)):
            pens.append(pens[-1] + self.length(text[i - 1 : i + 1]) - self.length(text[i]))
        return pens

    def glyph_box(self, ch: str) -> tuple[int, int, int, int]:
        """Exact ink box ``(x0, y0, x1, y1)`` of one glyph drawn with its pen at (0, 0) on the baseline."""
        box = self._glyph.get(ch)
        if box is None:
            s = self.size
            img = Image.new("L", (4 * s, 3 * s))
            ImageDraw.Draw(img).text(
                (s, 2 * s),
                ch,
                font=self.font,
                fill=255,
                anchor="ls",
                stroke_width=self.stroke,
                stroke_fill=255,
            )
            a = np.asarray(img)
            cols, rows = np.flatnonzero(a.max(0) >= INK_THRESHOLD), np.flatnonzero(a.max(1) >= INK_THRESHOLD)
            if cols.size:
                box = (
                    int(cols[0]) - s,
                    int(rows[0]) - 2 * s,
                    int(cols[-1]) + 1 - s,
                    int(rows[-1]) + 1 - 2 * s,
                )
            else:
                box = (0, -1, max(1, round(self.length(ch))), 0)
            self._glyph[ch] = box
        return box


def get_face(info: FontInfo, size: float, stroke: float = 0.0) -> Face:
    """Shared :class:`Face` for a font, size (whole pixels, at least 6) and stroke (0.1 px steps).

    Faces are cached per process, so their glyph boxes are measured once.
    """
    return _cached_face(info, max(6, int(size)), round(float(stroke), 1))


@functools.lru_cache(maxsize=2048)
def _cached_face(info: FontInfo, size: int, stroke: float) -> Face:
    return Face(info, size, stroke)


@dataclass
class PlacedWord:
    """A word on the flat page: text-frame corners (TL, TR, BR, BL) of its ink and of each glyph."""

    text: str
    quad: np.ndarray
    chars: np.ndarray
    vertical: bool = False
    flat_box: tuple[int, int, int, int] = (0, 0, 0, 0)


def _ink_bounds(a: np.ndarray) -> tuple[int, int, int, int] | None:
    cols = np.flatnonzero(a.max(0) >= INK_THRESHOLD)
    if not cols.size:
        return None
    rows = np.flatnonzero(a.max(1) >= INK_THRESHOLD)
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)


class Rendered(NamedTuple):
    """A word drawn into its own buffer; all points in buffer pixels.

    Attributes:
        buffer: Coverage, uint8 ``h x w``.
        origin: Pen origin of the first glyph on the baseline.
        quad: Ink box of the word, corners TL, TR, BR, BL.
        chars: One ink box per character, ``N x 4 x 2``.
    """

    buffer: np.ndarray
    origin: np.ndarray
    quad: np.ndarray
    chars: np.ndarray


def render_word(face: Face, text: str) -> Rendered | None:
    """Render a word; None when it has no ink."""
    x0, y0, x1, y1 = face.font.getbbox(text, anchor="ls")
    pad = 3 + face.size // 6
    ox, oy = pad - int(x0), pad - int(y0)
    img = Image.new("L", (int(x1 - x0) + 2 * pad, int(y1 - y0) + 2 * pad))
    draw = ImageDraw.Draw(img)
    draw.text(
        (ox, oy), text, font=face.font, fill=255, anchor="ls", stroke_width=face.stroke, stroke_fill=255
    )
    a = np.asarray(img)
    ink = _ink_bounds(a)
    if ink is None:
        return None
    chars = []
    for ch, pen in zip(text, face.pens(text)):
        g = face.glyph_box(ch)
        gx = ox + round(pen)
        cx0, cx1 = min(max(gx + g[0], ink[0]), ink[2] - 1), min(max(gx + g[2], ink[0] + 1), ink[2])
        cy0, cy1 = min(max(oy + g[1], ink[1]), ink[3] - 1), min(max(oy + g[3], ink[1] + 1), ink[3])
        chars.append(_rect(cx0, cy0, max(cx1, cx0 + 1), max(cy1, cy0 + 1)))
    return Rendered(a, np.array([ox, oy], np.float32), _rect(*ink), np.stack(chars))


def render_hand(face: Face, text: str, rng: random.Random) -> Rendered | None:
    """Render a word glyph by glyph with uneven size, spacing and baseline (handwriting-ish)."""
    glyphs, pen = [], 0.0
    for ch in text:
        sub = get_face(face.info, round(face.size * rng.uniform(0.93, 1.08)), face.stroke)
        out = render_word(sub, ch)
        if out is not None and rng.random() < 0.6:
            out = _tilt(out, rng.gauss(0, 5))
        if out is None:
            return None
        offset = np.array([round(pen), round(rng.gauss(0, face.size * 0.03))], np.float32) - out.origin
        glyphs.append((out, offset))
        pen += sub.length(ch) * rng.uniform(0.97, 1.18)
    lo = np.min([off for _, off in glyphs], axis=0)
    hi = np.max([off + out.buffer.shape[::-1] for out, off in glyphs], axis=0)
    buf = np.zeros((int(hi[1] - lo[1]), int(hi[0] - lo[0])), np.uint8)
    chars = []
    for out, off in glyphs:
        tx, ty = (off - lo).astype(int)
        region = buf[ty : ty + out.buffer.shape[0], tx : tx + out.buffer.shape[1]]
        np.maximum(region, out.buffer, out=region)
        chars.append(out.quad + (off - lo))
    ink = _ink_bounds(buf)
    if ink is None:
        return None
    return Rendered(buf, -lo, _rect(*ink), np.stack(chars))


@dataclass
class Canvas:
    """Ink layers of one flat page.

    Attributes:
        width: Page width in pixels.
        height: Page height in pixels.
        text: Text coverage, uint8 ``H x W`` (255 = full ink).
        art: Line art, boxes, scribbles and stamps, uint8 ``H x W``.
        paper: Where the paper is (1) versus scanner background (0), uint8 ``H x W``.
        words: Words drawn so far.
    """

    width: int
    height: int
    text: np.ndarray = field(init=False)
    art: np.ndarray = field(init=False)
    paper: np.ndarray = field(init=False)
    words: list[PlacedWord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.text = np.zeros((self.height, self.width), np.uint8)
        self.art = np.zeros((self.height, self.width), np.uint8)
        self.paper = np.ones((self.height, self.width), np.uint8)

    # -- words -------------------------------------------------------------------------------
    def place(
        self,
        rendered: Rendered,
        text: str,
        x: float,
        baseline: float,
        darkness: float = 1.0,
        rotate: float = 0.0,
    ) -> PlacedWord | None:
        """Put a rendered word with its pen origin at ``(x, baseline)``.

        Args:
            rendered: Output of :func:`render_word` / :func:`render_hand`.
            text: The word's text.
            x: Pen x of the first glyph.
            baseline: Baseline y.
            darkness: Ink strength, 0-1.
            rotate: Counter-clockwise rotation in degrees about the pen origin (90: bottom-to-top).

        Returns:
            The placed word, or None (nothing drawn) when it would leave the page.
        """
        a, origin, quad, chars = rendered
        if rotate:
            a, matrix = _rotate_buffer(a, rotate)
            pts = np.concatenate([origin[None], quad, chars.reshape(-1, 2)])
            pts = (pts @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)
            origin, quad, chars = pts[0], pts[1:5], pts[5:].reshape(-1, 4, 2)
        left, top = int(round(x - origin[0])), int(round(baseline - origin[1]))
        h, w = a.shape
        if left < 0 or top < 0 or left + w > self.width or top + h > self.height:
            return None
        if darkness < 1.0:
            a = (a * np.float32(darkness)).astype(np.uint8)
        region = self.text[top : top + h, left : left + w]
        np.maximum(region, a, out=region)
        shift = np.array([left, top], np.float32)
        word = PlacedWord(text, quad + shift, chars + shift, abs(rotate) > 45, (left, top, left + w, top + h))
        self.words.append(word)
        return word

    # -- line art ----------------------------------------------------------------------------
    def line(
        self, p0: tuple[float, float], p1: tuple[float, float], thickness: int = 1, darkness: float = 1.0
    ) -> None:
        """Straight rule from ``p0`` to ``p1``."""
        pt0 = (int(round(p0[0])), int(round(p0[1])))
        pt1 = (int(round(p1[0])), int(round(p1[1])))
        cv2.line(self.art, pt0, pt1, int(255 * darkness), max(1, int(thickness)), cv2.LINE_8)

    def dashed(
        self, p0: tuple[float, float], p1: tuple[float, float], dash: int, gap: int, thickness: int = 1
    ) -> None:
        """Dashed or dotted horizontal/vertical rule."""
        length = float(np.hypot(p1[0] - p0[0], p1[1] - p0[1]))
        ux, uy = (p1[0] - p0[0]) / max(length, 1e-6), (p1[1] - p0[1]) / max(length, 1e-6)
        pos = 0.0
        while pos < length:
            end = min(pos + dash, length)
            self.line((p0[0] + ux * pos, p0[1] + uy * pos), (p0[0] + ux * end, p0[1] + uy * end), thickness)
            pos = end + gap

    def rect(
        self, x0: float, y0: float, x1: float, y1: float, thickness: int = 1, darkness: float = 1.0
    ) -> None:
        """Rectangle outline."""
        cv2.rectangle(
            self.art,
            (int(x0), int(y0)),
            (int(x1), int(y1)),
            int(255 * darkness),
            max(1, int(thickness)),
            cv2.LINE_8,
        )

    def polyline(self, points: np.ndarray, thickness: int = 1, darkness: float = 1.0) -> None:
        """Open anti-aliased polyline (scribbles, check marks, signatures)."""
        pts = np.round(points * 4).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(
            self.art, [pts], False, int(255 * darkness), max(1, int(thickness)), cv2.LINE_AA, shift=2
        )


def _tilt(glyph: Rendered, degrees: float) -> Rendered | None:
    """Rotate a single-glyph rendering; its box becomes the rotated ink's exact bounds."""
    a, m = _rotate_buffer(glyph.buffer, degrees)
    ink = _ink_bounds(a)
    if ink is None:
        return None
    origin = np.round(m[:, :2] @ glyph.origin + m[:, 2]).astype(np.float32)
    return Rendered(a, origin, _rect(*ink), _rect(*ink)[None])


def _rotate_buffer(a: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate a buffer counter-clockwise, expanding it; returns it and the 2x3 point matrix."""
    h, w = a.shape
    if degrees == 90:
        return np.ascontiguousarray(np.rot90(a)), np.array([[0, 1, 0], [-1, 0, w]], np.float64)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(np.ceil(h * sin + w * cos)), int(np.ceil(h * cos + w * sin))
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(a, m, (nw, nh), flags=cv2.INTER_LINEAR), m
