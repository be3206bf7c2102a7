"""Synthetic scanned business documents with exact word and character boxes.

A page is laid out flat (:mod:`.synth_layout`), degraded like print (faint, broken or bleeding
ink), placed on a scanner with a small rotation/perspective and degraded like a scan (paper
shading, speckle, blur, noise, fax-like binarisation, JPEG). Every word and character corner is
mapped with the same 3x3 matrix as the pixels, so boxes stay exact.

Quads are ``4 x 2`` float32 points in page pixels, clockwise in the text's own frame starting
at the text's top-left corner: (top-left, top-right, bottom-right, bottom-left). For horizontal
text that is clockwise from the page top-left; for vertical words (written bottom-to-top) the
first point is the page bottom-left corner of the word.

>>> page = render_page(np.random.default_rng(0))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from . import synth_effects as fx
from .fonts import available_fonts
from .synth_canvas import Canvas, PlacedWord
from .synth_layout import PAGE_KINDS, add_extras, compose_page
from .synth_writer import make_style
from .text import WordSampler

__all__ = [
    "SynthConfig",
    "SynthPage",
    "SynthWord",
    "cut_word_crops",
    "page_rng",
    "render_page",
    "write_dataset",
]


@dataclass
class SynthWord:
    """One word on a synthetic page.

    Attributes:
        text: The word (printable ASCII, never a space).
        quad: ``4 x 2`` float32 corners of the word's ink, text frame, clockwise from top-left.
        chars: ``N x 4 x 2`` float32, one quad per character of ``text``, in reading order.
        vertical: Written bottom-to-top (rotated 90 degrees counter-clockwise).
    """

    text: str
    quad: np.ndarray
    chars: np.ndarray
    vertical: bool = False


@dataclass
class SynthPage:
    """A rendered page.

    Attributes:
        image: ``H x W`` uint8 grey image.
        words: All words on the page.
        kind: Layout kind (see :data:`PAGE_KINDS`).
        text_mask: ``H x W`` uint8 coverage of the words' ink only (before print and scan
            effects), when requested with :attr:`SynthConfig.text_mask`.
    """

    image: np.ndarray
    words: list[SynthWord]
    kind: str
    text_mask: np.ndarray | None = None


@dataclass(frozen=True)
class SynthConfig:
    """Options for :func:`render_page`.

    Attributes:
        geometry: Apply the scanner rotation/perspective.
        max_angle: Largest page rotation in degrees.
        text_mask: Also return the words' own ink coverage (for tests and debugging).
        kinds: Layout kinds to draw from (None: all, with their default weights).
    """

    geometry: bool = True
    max_angle: float = 2.0
    text_mask: bool = False
    kinds: tuple[str, ...] | None = None


def page_rng(seed: int, index: int) -> np.random.Generator:
    """Independent generator for page ``index`` of a dataset seeded with ``seed``."""
    return np.random.default_rng([int(seed), int(index)])


def _page_size(r: random.Random) -> tuple[int, int]:
    width = r.randrange(754, 1241)
    return width, int(np.clip(width * r.uniform(1.28, 1.42), 1000, 1754))


def _choose_kind(r: random.Random, kinds: tuple[str, ...] | None) -> str:
    kinds = kinds or tuple(PAGE_KINDS)
    unknown = sorted(set(kinds) - set(PAGE_KINDS))
    if unknown:
        raise ValueError(f"unknown page kinds {unknown}; choose from {sorted(PAGE_KINDS)}")
    return r.choices(kinds, [PAGE_KINDS[k] for k in kinds])[0]


def _scan(
    canvas: Canvas, rng: np.random.Generator, r: random.Random, matrix: np.ndarray, clean: bool, size: float
) -> np.ndarray:
    """Print effects, scanner warp, paper and scan effects -> uint8 image."""
    text, art = canvas.text, canvas.art
    if not clean:
        fx.add_speckle(art, rng, r.choice((0.0, 0.0, 0.3, 1.0, 3.0)))
        mode = r.choices(("none", "faint", "broken", "bleed", "thin"), (0.45, 0.15, 0.18, 0.14, 0.08))[0]
        text, art = (
            fx.degrade_ink(text, rng, mode, size),
            fx.degrade_ink(art, rng, "none" if mode == "thin" else mode, size),
        )
    coverage = np.maximum(text, art)
    h, w = coverage.shape
    identity = bool(np.allclose(matrix, np.eye(3)))
    if not identity:
        coverage = fx.warp_layer(coverage, matrix)
    if canvas.paper.all():
        paper = np.zeros((h, w), np.uint8)
        corners = cv2.perspectiveTransform(np.array([[[0, 0], [w, 0], [w, h], [0, h]]], np.float32), matrix)
        cv2.fillPoly(paper, [np.round(corners[0]).astype(np.int32)], 1)
    else:
        paper = canvas.paper if identity else fx.warp_layer(canvas.paper, matrix)
    low_contrast = not clean and r.random() < 0.2
    tone = np.float32(248.0) if clean else fx.paper_background(rng, h, w, low_contrast)
    bed = np.float32(248.0 if clean else r.choices((250.0, 235.0, 90.0, 40.0), (0.5, 0.25, 0.12, 0.13))[0])
    background = np.where(paper > 0, tone, bed)
    image = fx.compose(coverage, background, r.uniform(60, 130) if low_contrast else r.uniform(0, 55))
    if clean:
        return np.clip(image, 0, 255).astype(np.uint8)
    # the words' stroke cores before print defects (their coverage peaks below 255 on pages
    # whose ink is a grey, so the cut is relative)
    text_ink = canvas.text if identity else fx.warp_layer(canvas.text, matrix)
    strokes = text_ink >= max(1, int(0.8 * int(text_ink.max())))
    image = fx.ensure_text_contrast(image, background, strokes)
    return fx.scan_effects(image, rng, fax=r.random() < 0.12, text_size=size, text_mask=strokes)


def _finish_words(canvas: Canvas, placed: list[PlacedWord], matrix: np.ndarray) -> list[SynthWord]:
    """Map word/char corners through the scanner matrix; drop (and erase) words leaving the image."""
    if not placed:
        return []
    pts = np.concatenate([np.concatenate([p.quad, p.chars.reshape(-1, 2)]) for p in placed]).astype(
        np.float32
    )
    mapped = cv2.perspectiveTransform(pts[None], matrix)[0]
    words, pos = [], 0
    for p in placed:
        n = 4 + 4 * len(p.text)
        q = mapped[pos : pos + n]
        pos += n
        if (
            q[:4, 0].min() < 0
            or q[:4, 1].min() < 0
            or q[:4, 0].max() > canvas.width
            or q[:4, 1].max() > canvas.height
        ):
            x0, y0 = np.floor(p.quad.min(0)).astype(int) - 1
            x1, y1 = np.ceil(p.quad.max(0)).astype(int) + 1
            canvas.text[max(y0, 0) : y1, max(x0, 0) : x1] = 0
            continue
        words.append(SynthWord(p.text, q[:4].copy(), q[4:].reshape(-1, 4, 2).copy(), p.vertical))
    return words


def render_page(
    rng: np.random.Generator,
    width: int | None = None,
    height: int | None = None,
    clean: bool = False,
    config: SynthConfig | None = None,
) -> SynthPage:
    """Render one synthetic scanned document page.

    Args:
        rng: Random generator; the page is a pure function of its state.
        width: Page width in pixels (default: random, 754-1240).
        height: Page height in pixels (default: about 1.28-1.42 x the width, 1000-1754).
        clean: No print or scan degradations and no stamps, margin notes, pen strokes or speckle:
            dark ink on a flat white page (the scanner geometry still applies).
        config: Further options.

    Returns:
        The page.

    Raises:
        ValueError: When ``config.kinds`` names an unknown layout.

    >>> page = render_page(np.random.default_rng(1), 1000, 1300)  # doctest: +SKIP
    """
    config = config or SynthConfig()
    r = random.Random(int(rng.integers(0, 2**63 - 1)))
    size = _page_size(r)
    width, height = int(width or size[0]), int(height or size[1])
    fonts = available_fonts()
    kind = _choose_kind(r, config.kinds)
    canvas = Canvas(width, height)
    writer = compose_page(canvas, r, WordSampler(r), make_style(r, fonts), fonts, kind)
    if not clean:
        add_extras(writer, fonts)
    matrix = fx.scan_homography(rng, width, height, config.max_angle) if config.geometry else np.eye(3)
    words = _finish_words(canvas, canvas.words, matrix)
    mask = None
    if config.text_mask:
        mask = canvas.text.copy() if not config.geometry else fx.warp_layer(canvas.text, matrix)
    image = _scan(canvas, rng, r, matrix, clean, writer.style.body.size)
    return SynthPage(image=image, words=words, kind=kind, text_mask=mask)


def _jittered(quad: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Move each side of a text-frame quad out (or slightly in) by -10%..+25% of the text height."""
    u = quad[1] - quad[0]
    v = quad[3] - quad[0]
    length, height = float(np.linalg.norm(u)), float(np.linalg.norm(v))
    u, v = u / max(length, 1e-6), v / max(height, 1e-6)
    kind = rng.choice(3, size=4, p=[0.55, 0.3, 0.15])
    amount = np.where(
        kind == 0,
        rng.uniform(0, 0.1, 4),
        np.where(kind == 1, rng.uniform(0.1, 0.25, 4), rng.uniform(-0.1, 0, 4)),
    )
    left, top, right, bottom = (amount * height).tolist()
    return np.array(
        [
            quad[0] - u * left - v * top,
            quad[1] + u * right - v * top,
            quad[2] + u * right + v * bottom,
            quad[3] - u * left + v * bottom,
        ],
        np.float32,
    )


def _crop(image: np.ndarray, quad: np.ndarray, vertical: bool, axis_aligned: bool) -> np.ndarray:
    h_img, w_img = image.shape[:2]
    if axis_aligned:
        x0, y0 = np.floor(quad.min(0)).astype(int)
        x1, y1 = np.ceil(quad.max(0)).astype(int)
        crop = image[max(y0, 0) : min(y1, h_img), max(x0, 0) : min(x1, w_img)]
        return np.ascontiguousarray(np.rot90(crop, -1) if vertical else crop)
    width = max(1, round(float(np.linalg.norm(quad[1] - quad[0]))))
    height = max(1, round(float(np.linalg.norm(quad[3] - quad[0]))))
    dst = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), dst)
    return cv2.warpPerspective(
        image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def cut_word_crops(
    page: SynthPage, rng: np.random.Generator, jitter: bool = True
) -> list[tuple[np.ndarray, str]]:
    """Cut every word out of a page as a detector would, upright, for recognizer training.

    Straight words are cut with an axis-aligned box or a perspective warp of their quad; rotated
    and vertical words always with the warp (vertical ones come out upright). With ``jitter``
    each side moves by -10%..+25% of the text height (mostly slightly loose, sometimes clipping
    a pixel of ink).

    Args:
        page: A rendered page.
        rng: Random generator.
        jitter: Misalign the boxes like a detector does.

    Returns:
        ``(crop, text)`` pairs; crops are uint8 like the page image and at least 2 x 2 pixels.
    """
    crops = []
    for word in page.words:
        quad = _jittered(word.quad, rng) if jitter else word.quad
        top = word.quad[1] - word.quad[0]
        angle = math.degrees(math.atan2(float(top[1]), float(top[0])))
        straight = abs(angle) < 3 or abs(angle + 90) < 3
        crop = _crop(page.image, quad, word.vertical, axis_aligned=straight and rng.random() < 0.6)
        if crop.shape[0] >= 2 and crop.shape[1] >= 2:
            crops.append((crop, word.text))
    return crops


def _record(page: SynthPage, name: str) -> dict[str, Any]:
    h, w = page.image.shape[:2]
    words = []
    for word in page.words:
        x0, y0 = np.floor(word.quad.min(0)).astype(int)
        x1, y1 = np.ceil(word.quad.max(0)).astype(int)
        box = [int(max(x0, 0)), int(max(y0, 0)), int(min(x1, w)), int(min(y1, h))]
        quad = [[round(float(x), 2), round(float(y), 2)] for x, y in word.quad]
        chars = [[[round(float(x), 2), round(float(y), 2)] for x, y in c] for c in word.chars]
        words.append({"box": box, "text": word.text, "quad": quad, "chars": chars})
    return {"image": name, "width": int(w), "height": int(h), "words": words}


def write_dataset(
    out_dir: str | Path,
    pages: int,
    seed: int,
    *,
    width: int | None = None,
    height: int | None = None,
    clean: bool = False,
    config: SynthConfig | None = None,
) -> Path:
    """Render ``pages`` pages to ``out_dir/images/NNNNNN.png`` plus ``out_dir/words.jsonl``.

    Each line of ``words.jsonl`` is ``{"image": "images/000000.png", "width": W, "height": H,
    "words": [{"box": [x0, y0, x1, y1], "text": ..., "quad": [[x, y] x 4], "chars": [...]}]}``
    (``box``: integer bounds of the quad). Page ``i`` uses :func:`page_rng`: same seed, same bytes.

    Args:
        out_dir: Output folder (created).
        pages: Number of pages.
        seed: Dataset seed.
        width: Fixed page width (default: random per page).
        height: Fixed page height (default: random per page).
        clean: Render without degradations (see :func:`render_page`).
        config: Further rendering options.

    Returns:
        The path of ``words.jsonl``.

    >>> write_dataset("/tmp/synth", pages=10, seed=0)  # doctest: +SKIP
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    path = out / "words.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for i in range(pages):
            page = render_page(page_rng(seed, i), width, height, clean=clean, config=config)
            name = f"images/{i:06d}.png"
            cv2.imwrite(str(out / name), page.image)
            fh.write(json.dumps(_record(page, name)) + "\n")
    return path
