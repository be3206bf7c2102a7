"""Typesetting helpers for synthetic pages: page style and a word writer (runs, paragraphs).

All positions are flat-page pixels; the writer records every placed word on the canvas.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from .fonts import FontInfo
from .synth_canvas import Canvas, Face, PlacedWord, get_face, render_hand, render_word
from .text import WordSampler

__all__ = ["Style", "Writer", "pick_font", "make_style", "word_spacing"]


def pick_font(
    r: random.Random,
    fonts: list[FontInfo],
    *,
    mono: bool | None = None,
    serif: bool | None = None,
    bold: bool | None = None,
    italic: bool | None = None,
) -> FontInfo:
    """Choose a font matching the given flags (None = either); relaxes flags when none match."""
    wanted = [("mono", mono), ("serif", serif), ("bold", bold), ("italic", italic)]
    while True:
        pool = [f for f in fonts if all(v is None or getattr(f, k) == v for k, v in wanted)]
        if pool:
            return r.choice(pool)
        wanted = wanted[:-1]
        if not wanted:
            return r.choice(fonts)


@dataclass
class Style:
    """Faces and ink of one document.

    Attributes:
        body: Running text.
        label: Form labels and table headers.
        value: Filled-in values (often a typewriter face).
        header: Titles and letterheads.
        small: Small print (cell labels, footers).
        hand: Handwriting-ish annotations (an italic face drawn glyph by glyph).
        darkness: Base ink strength, 0-1.
        typewriter: Values are typed: uneven ink per character.
        spacing: The document's inter-word space as a multiple of each face's space glyph
            (see :func:`word_spacing`).
    """

    body: Face
    label: Face
    value: Face
    header: Face
    small: Face
    hand: Face
    darkness: float
    typewriter: bool
    spacing: float = 1.0


#: Share of documents set with tight word spacing, and the factor ranges of tight and normal ones.
TIGHT_SPACING_P = 0.4
TIGHT_SPACING = (0.55, 0.85)
NORMAL_SPACING = (0.85, 1.25)


def word_spacing(r: random.Random) -> float:
    """A document's inter-word space, as a multiple of the face's own space glyph.

    Word spaces in print run from about 0.6 of the font's space (tight justified lines,
    condensed or bold capitals, forms filled in on a crowded line) to about 1.3 (loose
    justification). Tight documents matter most to the detector: there the affinity between the
    last character of one word and the first of the next must stay off although the gap is only
    a few pixels, which is what scanned forms look like (at 100 dpi a space is 2-4 px).
    """
    lo, hi = TIGHT_SPACING if r.random() < TIGHT_SPACING_P else NORMAL_SPACING
    return r.uniform(lo, hi)


def _body_size(r: random.Random) -> int:
    return int(np.clip(round(math.exp(r.gauss(math.log(17), 0.25))), 10, 34))


_THIN = ("NimbusMonoPS", "ExtraLight", "Bookman-Light", "LiberationMono", "URWGothic-Book")


def _stroke(r: random.Random, info: FontInfo, typed: bool = False) -> float:
    """Extra stroke weight: thin faces (Courier-like) get heavier, typed text more often."""
    thin = any(t in info.path for t in _THIN)
    if typed:
        return r.uniform(0.2, 0.7) if thin else r.uniform(0.0, 0.4)
    if thin:
        return r.uniform(0.1, 0.5)
    return r.uniform(0.0, 0.4) if r.random() < 0.3 else 0.0


#: Share of documents whose handwritten fills use a handwriting-like face.
HAND_FONT_P = 0.4


def make_style(r: random.Random, fonts: list[FontInfo]) -> Style:
    """Pick a coherent set of faces and sizes for one document.

    Handwriting-like faces are kept for the handwritten fills (``hand``), a share
    :data:`HAND_FONT_P` of documents; the others use a chancery or an italic print face there.
    """
    handwriting = [f for f in fonts if f.hand]
    fonts = [f for f in fonts if not f.hand] or fonts
    serif = r.random() < 0.5
    size = _body_size(r)
    body = pick_font(r, fonts, mono=r.random() < 0.2, serif=serif, bold=False, italic=r.random() < 0.05)
    label = pick_font(r, fonts, mono=False, serif=serif if r.random() < 0.6 else None, bold=r.random() < 0.5)
    typewriter = r.random() < 0.6
    value = pick_font(r, fonts, mono=True, bold=r.random() < 0.2, italic=False) if typewriter else body
    header = pick_font(r, fonts, mono=r.random() < 0.1, bold=r.random() < 0.85, italic=r.random() < 0.1)
    chancery = [f for f in fonts if f.family == "Z003"]
    pick = r.random()
    if handwriting and pick < HAND_FONT_P:
        hand = r.choice(handwriting)
    elif chancery and pick < HAND_FONT_P + (1 - HAND_FONT_P) * 0.4:
        hand = r.choice(chancery)
    else:
        hand = pick_font(r, fonts, italic=True, mono=False)
    small = label if r.random() < 0.5 else body
    return Style(
        body=get_face(body, size, _stroke(r, body)),
        label=get_face(label, round(size * r.uniform(0.8, 1.05)), _stroke(r, label)),
        value=get_face(value, round(size * r.uniform(0.9, 1.2)), _stroke(r, value, typed=typewriter)),
        header=get_face(header, int(np.clip(size * r.uniform(1.4, 3.0), 18, 60)), _stroke(r, header)),
        small=get_face(small, max(10, round(size * r.uniform(0.6, 0.8))), _stroke(r, small)),
        hand=get_face(hand, round(size * r.uniform(1.0, 1.4)), r.uniform(0.0, 0.6)),
        darkness=r.uniform(0.7, 1.0),
        typewriter=typewriter,
        spacing=word_spacing(r),
    )


#: Share of paragraphs whose long words are hyphenated at line ends.
HYPHENATE_P = 0.5


def _hyphen_split(face: Face, token: str, room: float) -> tuple[str, str] | None:
    """Split ``token`` into ``head-`` and ``tail`` with the longest head that fits in ``room``.

    Only words of letters (and a trailing punctuation mark) of at least six letters are split,
    keeping three letters on each side; None when no head fits.
    """
    letters = token.rstrip(".,;:")
    if len(letters) < 6 or not letters.isalpha():
        return None
    for cut in range(len(letters) - 3, 2, -1):
        head = token[:cut] + "-"
        if face.length(head) <= room:
            return head, token[cut:]
    return None


class Writer:
    """Places words on a canvas and keeps the page's vertical budget.

    Args:
        canvas: Drawing surface.
        r: Layout randomness.
        sampler: Source of words.
        style: The document's style.
        bottom: Lowest y a baseline may use.
    """

    def __init__(
        self, canvas: Canvas, r: random.Random, sampler: WordSampler, style: Style, bottom: float
    ) -> None:
        self.canvas = canvas
        self.r = r
        self.sampler = sampler
        self.style = style
        self.bottom = bottom

    def word(
        self,
        face: Face,
        text: str,
        x: float,
        baseline: float,
        *,
        hand: bool = False,
        rotate: float = 0.0,
        darkness: float | None = None,
    ) -> PlacedWord | None:
        """Draw one word with its pen origin at ``(x, baseline)``; None if it does not fit.

        Raises:
            ValueError: When ``text`` is empty or contains whitespace (words are single tokens).
        """
        if not text or any(ch.isspace() for ch in text):
            raise ValueError(f"a word must be one non-empty token, got {text!r}")
        rendered = render_hand(face, text, self.r) if hand else render_word(face, text)
        if rendered is None:
            return None
        if face is self.style.value and self.style.typewriter and not hand:
            buf = rendered.buffer.astype(np.float32)
            profile = np.array([self.r.uniform(0.8, 1.0) for _ in range(buf.shape[1])], np.float32)
            rendered = rendered._replace(buffer=(buf * profile[None, :]).astype(np.uint8))
        darkness = min(1.0, (darkness or self.style.darkness) * self.r.uniform(0.9, 1.1))
        return self.canvas.place(rendered, text, x, baseline, darkness=darkness, rotate=rotate)

    def space(self, face: Face) -> float:
        """Inter-word space for a face: the document's spacing, with a little variation per gap.

        Never under 1.5 px, so that neighbouring words' ink stays apart.
        """
        return max(1.5, face.length(" ") * self.style.spacing * self.r.uniform(0.92, 1.1) + 0.5)

    def run(
        self, face: Face, tokens: list[str], x: float, baseline: float, max_x: float, **kw: bool
    ) -> float:
        """Write tokens left to right on one line, stopping before ``max_x``; returns the end x."""
        for i, tok in enumerate(tokens):
            width = face.length(tok)
            if x + width > max_x and i > 0:
                break
            if x + width <= max_x:
                placed = self.word(face, tok, x, baseline, **kw)
                if placed is not None:  # handwriting runs wider than the face's advance
                    width = max(width, float(placed.quad[:, 0].max()) - x)
            x += width + self.space(face)
        return x

    def run_right(
        self, face: Face, tokens: list[str], right: float, baseline: float, min_x: float = 0.0
    ) -> float:
        """Write tokens on one line ending at ``right`` (right-aligned); returns the start x.

        Nothing is drawn (and ``right`` is returned) when the line would start left of ``min_x``.
        """
        widths = [face.length(t) for t in tokens]
        gaps = [self.space(face) for _ in tokens[1:]]
        x = right - sum(widths) - sum(gaps)
        start = x
        if start < min_x:
            return right
        for tok, width, gap in zip(tokens, widths, gaps + [0.0]):
            self.word(face, tok, x, baseline)
            x += width + gap
        return start

    def lines(
        self, face: Face, tokens: list[str], width: float, indent: float = 0.0, hyphenate: bool = False
    ) -> list[list[str]]:
        """Break tokens into lines no wider than ``width``.

        With ``hyphenate``, a long word that does not fit is split at the line end as typesetters
        do (``"develop-"`` / ``"ment"``, at least three letters on each side), when its head fits.
        """
        lines: list[list[str]] = [[]]
        used, space = indent, face.length(" ") * self.style.spacing
        for tok in tokens:
            w = face.length(tok)
            if lines[-1] and used + space + w > width:
                split = _hyphen_split(face, tok, width - used - space) if hyphenate else None
                if split is not None:
                    lines[-1].append(split[0])
                    tok, w = split[1], face.length(split[1])
                lines.append([])
                used = 0.0
            used += (space if lines[-1] else 0.0) + w
            lines[-1].append(tok)
        return [line for line in lines if line]

    def paragraph(
        self, face: Face, tokens: list[str], x0: float, x1: float, baseline: float, leading: float
    ) -> float:
        """Flow a paragraph (ragged or justified, maybe indented); returns the next free baseline."""
        justify, indent = self.r.random() < 0.4, face.size * 2 * (self.r.random() < 0.3)
        lines = self.lines(face, tokens, x1 - x0, indent, hyphenate=self.r.random() < HYPHENATE_P)
        for i, line in enumerate(lines):
            if baseline > self.bottom:
                break
            x = x0 + (indent if i == 0 else 0.0)
            widths = [face.length(t) for t in line]
            gap = face.length(" ") * self.style.spacing
            if justify and len(line) > 1 and i < len(lines) - 1:
                gap = max(gap, (x1 - x - sum(widths)) / (len(line) - 1))
            for tok, w in zip(line, widths):
                self.word(face, tok, x, baseline)
                x += w + (gap if justify else self.space(face))
            baseline += leading
        return baseline
