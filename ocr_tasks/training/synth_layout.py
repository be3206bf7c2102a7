"""Whole-page layouts for synthetic documents and the extras found on real scans.

Page kinds: ``form`` (fields, box grids, checkboxes, tables), ``memo`` (memo/fax header plus
text), ``letter``, ``table``, ``receipt`` (narrow monospace strips on the scanner bed) and
``columns`` (multi-column text). Extras: vertical serial numbers in the margin, and, unless the
page is clean, rubber stamps, handwriting-ish margin notes and pen lines crossing the text.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np

from . import synth_blocks as blocks
from .fonts import FontInfo
from .synth_canvas import Canvas, get_face
from .synth_writer import Style, Writer, pick_font
from .text import WordSampler

__all__ = ["PAGE_KINDS", "add_extras", "compose_page"]

#: Layout kinds and how often each is drawn.
PAGE_KINDS: dict[str, float] = {
    "form": 0.32,
    "memo": 0.2,
    "letter": 0.13,
    "table": 0.15,
    "receipt": 0.08,
    "columns": 0.12,
}

Block = Callable[[Writer, float, float, float], float]


def paragraphs(w: Writer, x0: float, x1: float, y: float) -> float:
    """One to three paragraphs of running text."""
    face, r = w.style.body, w.r
    leading = face.size * r.uniform(1.15, 1.6)
    baseline = y + face.size
    for _ in range(r.randrange(1, 4)):
        if baseline > w.bottom:
            break
        tokens = [t for _ in range(r.randrange(1, 5)) for t in w.sampler.sentence()]
        baseline = w.paragraph(face, tokens, x0, x1, baseline, leading) + leading * r.uniform(0.2, 0.9)
    return baseline


def columns(w: Writer, x0: float, x1: float, y: float) -> float:
    """Two or three columns of text, sometimes with a rule in the gutter."""
    r = w.r
    n = r.choice((2, 2, 3))
    gutter = w.style.body.size * r.uniform(1.2, 3.0)
    width = (x1 - x0 - gutter * (n - 1)) / n
    bottom = y
    for i in range(n):
        cx0 = x0 + i * (width + gutter)
        bottom = max(bottom, paragraphs(w, cx0, cx0 + width, y))
        if i and r.random() < 0.3:
            w.canvas.line((cx0 - gutter / 2, y), (cx0 - gutter / 2, min(bottom, w.bottom)), 1)
    return bottom


def letter_opening(w: Writer, x0: float, x1: float, y: float) -> float:
    """Date, recipient address block and salutation."""
    r, face = w.r, w.style.body
    lead = face.size * r.uniform(1.2, 1.5)
    baseline = y + face.size
    date = w.sampler.date()
    w.run(face, date, x0 if r.random() < 0.6 else (x0 + x1) / 2, baseline, x1)
    baseline += lead * r.uniform(2, 3)
    for line in [w.sampler.name(), [w.sampler.word("title") for _ in range(2)], *w.sampler.address()]:
        w.run(face, line, x0, baseline, x1)
        baseline += lead
    w.run(
        face,
        ["Dear", r.choice(("Mr.", "Ms.", "Dr.", "Mrs.")), r.choice(w.sampler.name()[-1:]) + ":"],
        x0,
        baseline + lead,
        x1,
    )
    return baseline + lead * 1.5


def footer(w: Writer, x0: float, x1: float, baseline: float) -> None:
    """Small print at the page bottom: form number, page number."""
    r, s, face = w.r, w.sampler, w.style.small
    if r.random() < 0.6:
        w.run(
            face, ["Form", s.code(), f"(Rev.{r.randrange(1, 13)}/{r.randrange(70, 100)})"], x0, baseline, x1
        )
    if r.random() < 0.6:
        tokens = (
            ["Page", str(r.randrange(1, 4)), "of", str(r.randrange(4, 9))]
            if r.random() < 0.5
            else [f"-{r.randrange(1, 30)}-"]
        )
        w.run_right(face, tokens, x1, baseline, min_x=(x0 + x1) / 2)


def vertical_serial(w: Writer, fonts: list[FontInfo], right: float, y_bottom: float, y_top: float) -> None:
    """A Bates-style serial number printed bottom-to-top in the right margin (glyph tops face left)."""
    r = w.r
    face = get_face(pick_font(r, fonts, mono=r.random() < 0.5, bold=r.random() < 0.3), r.randrange(12, 24))
    x = right + face.size * r.uniform(1.1, 2.0)
    if x + face.descent + 4 > w.canvas.width:
        return
    tokens = (
        [str(r.randrange(10**7, 10**10))]
        if r.random() < 0.6
        else [w.sampler.code(), str(r.randrange(10**3, 10**6))]
    )
    pos = y_bottom
    for tok in tokens:
        if pos - face.length(tok) < y_top:
            break
        w.word(face, tok, x, pos, rotate=90)
        pos -= face.length(tok) + face.length(" ") * 1.5


def receipt(w: Writer, fonts: list[FontInfo], x0: float, x1: float, y: float, bottom: float) -> None:
    """A till receipt: monospace, centred header, items with right-aligned prices, totals."""
    r, s = w.r, w.sampler
    mono = pick_font(r, fonts, mono=True, bold=False)
    face = get_face(mono, max(11, round((x1 - x0) / r.uniform(26, 40) / 0.6)), r.uniform(0.0, 0.6))
    bold = get_face(
        pick_font(r, fonts, mono=True, bold=True), round(face.size * r.uniform(1.0, 1.5)), face.stroke
    )
    lead, pad = face.size * r.uniform(1.15, 1.5), face.size * 0.8
    baseline = y + bold.size
    for line, fc in [
        (s.heading(), bold),
        *[(ln, face) for ln in s.address()],
        (s.date()[:1] + [f"{r.randrange(0, 24):02d}:{r.randrange(60):02d}"], face),
    ]:
        w.run(fc, line, max(x0 + pad, (x0 + x1 - fc.length(" ".join(line))) / 2), baseline, x1 - pad)
        baseline += lead
    w.canvas.dashed(
        (x0 + pad, baseline - lead + face.size * 0.5), (x1 - pad, baseline - lead + face.size * 0.5), 4, 3
    )
    baseline += face.size * 0.5
    for _ in range(r.randrange(3, 25)):
        if baseline > bottom - 4 * lead:
            break
        name = [s.case(s.word(), "upper") for _ in range(r.randrange(1, 3))]
        if r.random() < 0.3:
            name = [str(r.randrange(1, 5)), "@"] + name
        start = w.run_right(face, [s.price()], x1 - pad, baseline, min_x=(x0 + x1) / 2)
        w.run(face, name, x0 + pad, baseline, start - face.size)
        baseline += lead
    for label in ("SUBTOTAL", "TAX", "TOTAL", r.choice(("CASH", "CHANGE", "VISA"))):
        fc = bold if label == "TOTAL" else face
        w.run(fc, [label], x0 + pad, baseline, x1 - pad)
        w.run_right(fc, [s.price()], x1 - pad, baseline, min_x=(x0 + x1) / 2)
        baseline += lead
    w.run(face, [r.choice(("THANK", "PLEASE")), "YOU"], x0 + pad * 3, baseline + lead * 0.5, x1 - pad)


def _receipt_page(w: Writer, fonts: list[FontInfo], margin: tuple[float, float, float, float]) -> None:
    r, canvas = w.r, w.canvas
    left, top, right, bottom = margin
    n = 1 if r.random() < 0.7 else 2
    canvas.paper[:] = 0
    span = (right - left) / n
    for i in range(n):
        width = min(span * r.uniform(0.6, 0.9), r.uniform(260, 480))
        x0 = left + i * span + r.uniform(0, span - width)
        y1 = r.uniform(top + (bottom - top) * 0.6, bottom)
        canvas.paper[int(top) : int(y1), int(x0) : int(x0 + width)] = 1
        receipt(w, fonts, x0, x0 + width, top + 8, y1)


def _blocks_for(kind: str, r: random.Random) -> list[Block]:
    if kind == "form":
        body = [
            r.choice(
                (
                    blocks.field_rows,
                    blocks.box_grid,
                    blocks.box_grid,
                    blocks.checkboxes,
                    blocks.table,
                    paragraphs,
                )
            )
            for _ in range(8)
        ]
        return [blocks.letterhead, blocks.title, *body, blocks.signature]
    if kind == "memo":
        return [
            blocks.letterhead,
            blocks.title,
            blocks.memo_fields,
            *[paragraphs] * 5,
            blocks.signature,
            paragraphs,
        ]
    if kind == "letter":
        return [blocks.letterhead, letter_opening, *[paragraphs] * 5, blocks.signature]
    if kind == "table":
        return [
            blocks.letterhead,
            blocks.title,
            paragraphs,
            blocks.table,
            blocks.table,
            paragraphs,
            blocks.table,
        ]
    return [blocks.title, columns, blocks.title, columns, columns]


def compose_page(
    canvas: Canvas, r: random.Random, sampler: WordSampler, style: Style, fonts: list[FontInfo], kind: str
) -> Writer:
    """Lay out one page of the given kind on the canvas.

    Returns:
        The writer (its canvas holds the words); extras are added by :func:`add_extras`.
    """
    W, H = canvas.width, canvas.height
    left, right = W * r.uniform(0.06, 0.12), W * (1 - r.uniform(0.06, 0.12))
    top, bottom = H * r.uniform(0.045, 0.08), H * (1 - r.uniform(0.05, 0.09))
    w = Writer(canvas, r, sampler, style, bottom - style.small.size * 2)
    if r.random() < 0.3:
        vertical_serial(w, fonts, right, bottom - r.uniform(0, H * 0.3), top)
    if kind == "receipt":
        _receipt_page(w, fonts, (left, top, right, bottom))
        return w
    y = top
    for block in _blocks_for(kind, r):
        if y > w.bottom - style.body.size * 3:
            break
        if block in (blocks.letterhead, blocks.title, blocks.signature) and r.random() < 0.25:
            continue
        y = block(w, left, right, y)
    footer(w, left, right, bottom)
    return w


def add_extras(w: Writer, fonts: list[FontInfo]) -> None:
    """Stamps, handwriting-ish margin notes and pen strokes across the page."""
    r = w.r
    if r.random() < 0.3:
        for _ in range(r.randrange(1, 3)):
            stamp(w, fonts)
    if r.random() < 0.3:
        margin_notes(w)
    if r.random() < 0.25:
        for _ in range(r.randrange(1, 4)):
            pen_stroke(w)


def stamp(w: Writer, fonts: list[FontInfo]) -> None:
    """A rotated rubber stamp: a frame around one to three words, in lighter ink."""
    r, canvas = w.r, w.canvas
    face = get_face(pick_font(r, fonts, bold=True, mono=False, italic=False), r.randrange(14, 30))
    lines = [
        [r.choice(("RECEIVED", "APPROVED", "PAID", "COPY", "CONFIDENTIAL", "FILED", "URGENT"))],
        w.sampler.date(),
    ]
    lines = lines[: r.randrange(1, 3)]
    angle = r.uniform(-25, 25)
    cx, cy = r.uniform(0.2, 0.8) * canvas.width, r.uniform(0.15, 0.85) * canvas.height
    rad = math.radians(angle)
    cos, sin = math.cos(rad), math.sin(rad)
    widths = [sum(face.length(t) for t in ln) + face.length(" ") * (len(ln) - 1) for ln in lines]
    half_w, half_h = max(widths) / 2 + face.size * 0.6, len(lines) * face.size * 0.7 + face.size * 0.4
    darkness = r.uniform(0.45, 0.8)
    for i, (ln, width) in enumerate(zip(lines, widths)):
        lx = -width / 2
        ly = (i - (len(lines) - 1) / 2) * face.size * 1.4 + face.size * 0.35
        for tok in ln:
            px, py = cx + lx * cos + ly * sin, cy - lx * sin + ly * cos
            w.word(face, tok, px, py, rotate=angle, darkness=darkness)
            lx += face.length(tok) + face.length(" ")
    corners = np.array(
        [[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h], [-half_w, -half_h]]
    )
    rot = np.array([[cos, sin], [-sin, cos]])
    canvas.polyline(corners @ rot.T + (cx, cy), r.choice((2, 3)), darkness=darkness)


def margin_notes(w: Writer) -> None:
    """One to three handwriting-ish words in the margins (dates, initials, numbers)."""
    r, canvas = w.r, w.canvas
    for _ in range(r.randrange(1, 4)):
        text = r.choice(
            (w.sampler.date()[0], w.sampler.code(), w.sampler.word("title"), w.sampler.number(), "OK", "cc:")
        )
        x = r.choice((r.uniform(5, canvas.width * 0.05), r.uniform(canvas.width * 0.3, canvas.width * 0.8)))
        y = r.choice(
            (r.uniform(30, canvas.height * 0.05), r.uniform(canvas.height * 0.93, canvas.height - 10))
        )
        w.word(w.style.hand, text, x, y, hand=True, rotate=r.uniform(-6, 6))


def pen_stroke(w: Writer) -> None:
    """A long, slightly wavy pen line across the page (crossing text, never a word)."""
    r, canvas = w.r, w.canvas
    x0, y0 = r.uniform(0, canvas.width), r.uniform(0, canvas.height)
    length, angle = r.uniform(100, canvas.width * 0.8), r.uniform(0, math.pi)
    t = np.linspace(0, 1, 40)
    xs = x0 + t * length * math.cos(angle)
    ys = y0 + t * length * math.sin(angle) + np.sin(t * r.uniform(2, 8)) * r.uniform(0, 6)
    canvas.polyline(np.stack([xs, ys], 1), r.choice((1, 2, 3)), darkness=r.uniform(0.5, 1.0))
