"""Synthetic document generator: fonts, word sampler, exact boxes, determinism, dataset format."""

from __future__ import annotations

import json
import random

import cv2
import numpy as np
import pytest

from ocr_tasks.training.fonts import FontsUnavailableError, available_fonts
from ocr_tasks.training.synth import (
    SynthConfig,
    SynthPage,
    SynthWord,
    cut_word_crops,
    render_page,
    write_dataset,
)
from ocr_tasks.training.synth_canvas import Canvas, get_face, render_word
from ocr_tasks.training.text import PRINTABLE_ASCII, WordSampler

SIZE = (760, 1000)
INK = 100  # coverage counted as dark ink: must lie inside a quad
FAINT = 25  # coverage counted as any ink: must reach every side of its quad


@pytest.fixture(scope="module")
def clean_pages() -> list:
    """Clean pages with the words' own ink layer, scanner geometry on."""
    config = SynthConfig(text_mask=True)
    return [
        render_page(np.random.default_rng(seed), *SIZE, clean=True, config=config) for seed in (1, 2, 3, 4)
    ]


def _frame(quad: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    u, v = quad[1] - quad[0], quad[3] - quad[0]
    return u / np.linalg.norm(u), v / np.linalg.norm(v), float(np.linalg.norm(u)), float(np.linalg.norm(v))


def test_fonts_are_found_and_classified() -> None:
    """Debian fonts are discovered, with mono, serif, bold and italic faces among them."""
    fonts = available_fonts()
    assert len(fonts) >= 10
    for flag in ("mono", "serif", "bold", "italic"):
        assert any(getattr(f, flag) for f in fonts), flag
    assert not any("Symbol" in f.path or "Math" in f.path for f in fonts)


def test_missing_fonts_error_names_packages() -> None:
    """Without fonts the error tells which Debian packages to install."""
    with pytest.raises(FontsUnavailableError, match="fonts-dejavu"):
        available_fonts(("/nonexistent-font-dir",))


def test_sampler_covers_printable_ascii_deterministically() -> None:
    """All 94 printable characters appear, tokens never contain spaces, same seed same tokens."""

    def sample(seed: int) -> list[str]:
        s = WordSampler(random.Random(seed))
        out: list[str] = []
        for _ in range(1500):
            out += s.sentence() + [s.token()] + s.label() + s.value()
        return out

    tokens = sample(7)
    assert tokens == sample(7)
    assert set(PRINTABLE_ASCII) <= set("".join(tokens))
    assert all(t and not any(c.isspace() for c in t) and t.isascii() for t in tokens)


def test_all_text_ink_lies_inside_word_quads(clean_pages: list) -> None:
    """Every dark pixel of the words' ink is inside (a 2 px margin around) some word quad."""
    for page in clean_pages:
        covered = np.zeros(page.text_mask.shape, np.uint8)
        for word in page.words:
            cv2.fillPoly(covered, [np.round(word.quad).astype(np.int32)], 1)
        covered = cv2.dilate(covered, np.ones((5, 5), np.uint8))
        outside = (page.text_mask >= INK) & (covered == 0)
        assert outside.sum() == 0, page.kind


def test_word_quads_are_tight(clean_pages: list) -> None:
    """Seen in the word's own frame, its ink reaches within 2 px of all four quad sides."""
    checked = 0
    for page in clean_pages:
        for word in page.words:
            _, _, length, height = _frame(word.quad)
            w, h = int(round(length)), int(round(height))
            if w < 3 or h < 3:
                continue
            dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
            m = cv2.getPerspectiveTransform(word.quad.astype(np.float32), dst)
            crop = cv2.warpPerspective(page.text_mask, m, (w, h), flags=cv2.INTER_LINEAR)
            cols, rows = np.flatnonzero(crop.max(0) >= FAINT), np.flatnonzero(crop.max(1) >= FAINT)
            assert cols.size, word.text
            assert cols[0] <= 2 and cols[-1] >= w - 3 and rows[0] <= 2 and rows[-1] >= h - 3, (
                word.text,
                cols,
                rows,
            )
            checked += 1
    assert checked > 300


def test_char_quads_inside_word_and_in_reading_order(clean_pages: list) -> None:
    """One char quad per character, inside the word quad, advancing along the text direction."""
    for page in clean_pages:
        for word in page.words:
            assert word.chars.shape == (len(word.text), 4, 2)
            assert word.text and " " not in word.text
            u, v, length, height = _frame(word.quad)
            rel = word.chars.reshape(-1, 2) - word.quad[0]
            along, across = rel @ u, rel @ v
            assert along.min() >= -1.5 and along.max() <= length + 1.5, word.text
            assert across.min() >= -1.5 and across.max() <= height + 1.5, word.text
            centers = (word.chars.mean(axis=1) - word.quad[0]) @ u
            assert np.all(np.diff(centers) >= -1.0), word.text


def test_sampler_makes_form_compounds() -> None:
    """Slashed and hyphenated tokens of forms appear at a few percent: ``and/or``, ``N/A``,
    ``Date/``, labels ending in ``/`` or ``#``, words ending in ``-``; all single tokens."""
    s = WordSampler(random.Random(11))
    tokens = [s.token() for _ in range(20000)]
    share = lambda pred: sum(map(pred, tokens)) / len(tokens)  # noqa: E731
    assert 0.02 < share(lambda t: "/" in t and len(t) > 1) < 0.12
    assert 0.005 < share(lambda t: t.endswith("-") and t[:-1].isalpha()) < 0.05
    assert 0.005 < share(lambda t: t.endswith("/") and t[:-1].isalpha()) < 0.05
    compounds = {s.compound() for _ in range(3000)}
    assert {"and/or", "N/A", "w/"} <= compounds
    assert any("-" in c.strip("-") and c.replace("-", "").isalpha() for c in compounds)  # follow-up
    labels = [s.label()[-1] for _ in range(3000)]
    assert any(x.endswith("/") for x in labels) and any(x.endswith("#") for x in labels)


def test_line_end_hyphenation() -> None:
    """A hyphenating paragraph splits a long word that does not fit as ``head-`` / ``tail``
    with at least three letters on each side; the head fits the line; nothing is lost."""
    from ocr_tasks.training.synth_writer import Writer, _hyphen_split, make_style

    style = make_style(random.Random(1), available_fonts())
    face = style.body
    writer = Writer(Canvas(400, 200), random.Random(2), WordSampler(random.Random(3)), style, 190)
    tokens = ["see", "the", "extraordinarily", "long", "word", "again,", "documentation."]
    width = face.length("see the extraord") + 2
    lines = writer.lines(face, tokens, width, hyphenate=True)
    flat = [t for line in lines for t in line]
    assert "".join(t[:-1] if t.endswith("-") else t for t in flat) == "".join(tokens)
    heads = [t for t in flat if t.endswith("-")]
    assert heads and all(len(h) >= 4 for h in heads)
    for line in lines:
        used = sum(face.length(t) for t in line) + face.length(" ") * style.spacing * (len(line) - 1)
        assert used <= width + 1e-6 or len(line) == 1
    assert writer.lines(face, tokens, width, hyphenate=False) == [
        line for line in writer.lines(face, tokens, width) if line
    ]
    assert not any(t.endswith("-") for line in writer.lines(face, tokens, width) for t in line)
    assert _hyphen_split(face, "word", 1000) is None  # too short
    assert _hyphen_split(face, "A-1234567", 1000) is None  # not letters
    assert _hyphen_split(face, "extraordinarily", 1.0) is None  # no head fits
    head, tail = _hyphen_split(face, "documentation.", 1000)
    assert head == "documentat-" and tail == "ion."  # three letters stay with the tail


def test_handwriting_faces_only_write_handwriting() -> None:
    """Comic Neue and Humor Sans are found, marked ``hand``, never chosen for print faces, and
    chosen for the handwritten fills of about :data:`HAND_FONT_P` of documents."""
    from ocr_tasks.training.synth_writer import HAND_FONT_P, make_style

    fonts = available_fonts()
    hand = {f.path for f in fonts if f.hand}
    assert any("ComicNeue" in p for p in hand) and any("Humor" in p for p in hand)
    styles = [make_style(random.Random(seed), fonts) for seed in range(400)]
    for st in styles:
        assert not {st.body.info.path, st.label.info.path, st.value.info.path, st.header.info.path} & hand
    share = sum(st.hand.info.path in hand for st in styles) / len(styles)
    assert abs(share - HAND_FONT_P) < 0.08


def test_words_do_not_overlap() -> None:
    """Layouts never print one word over another (clean pages have no stamps or notes)."""
    config = SynthConfig(geometry=False)
    for seed in (16, 21):
        page = render_page(np.random.default_rng(seed), clean=True, config=config)
        boxes = np.array([[*w.quad.min(0), *w.quad.max(0)] for w in page.words])
        ix = np.minimum(boxes[:, None, 2], boxes[None, :, 2]) - np.maximum(
            boxes[:, None, 0], boxes[None, :, 0]
        )
        iy = np.minimum(boxes[:, None, 3], boxes[None, :, 3]) - np.maximum(
            boxes[:, None, 1], boxes[None, :, 1]
        )
        inter = np.clip(ix, 0, None) * np.clip(iy, 0, None)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        np.fill_diagonal(inter, 0)
        assert (inter <= 0.1 * np.minimum(area[:, None], area[None, :])).all(), page.kind


def test_word_spacing_is_per_document_and_sometimes_tight() -> None:
    """Each document draws one word-spacing factor; tight documents (about 40%) set words
    closer than the face's space glyph, and every gap stays at least 1.5 px wide."""
    from ocr_tasks.training.synth_writer import (
        NORMAL_SPACING,
        TIGHT_SPACING,
        Writer,
        make_style,
        word_spacing,
    )

    r = random.Random(5)
    factors = [word_spacing(r) for _ in range(2000)]
    assert TIGHT_SPACING[0] <= min(factors) and max(factors) <= NORMAL_SPACING[1]
    tight = sum(f < TIGHT_SPACING[1] for f in factors) / len(factors)
    assert 0.35 < tight < 0.45
    fonts = available_fonts()
    style = make_style(random.Random(1), fonts)
    for spacing in (0.55, 1.25):
        style.spacing = spacing
        writer = Writer(Canvas(200, 100), random.Random(2), WordSampler(random.Random(3)), style, 90)
        gaps = [writer.space(style.body) for _ in range(200)]
        glyph = style.body.length(" ")
        assert min(gaps) >= max(1.5, glyph * spacing * 0.92 + 0.5) - 1e-6
        assert max(gaps) <= max(1.5, glyph * spacing * 1.1 + 0.5) + 1e-6


def _line_gaps(spacing: float, seeds: tuple[int, ...]) -> list[float]:
    """Gaps between each word and the next one on its line, over text height, on clean pages
    rendered with the word-spacing factor forced to ``spacing``."""
    from ocr_tasks.training import synth_writer

    config = SynthConfig(geometry=False)
    original = synth_writer.word_spacing
    synth_writer.word_spacing = lambda r: (original(r), spacing)[1]  # same random stream
    try:
        pages = [render_page(np.random.default_rng(seed), clean=True, config=config) for seed in seeds]
    finally:
        synth_writer.word_spacing = original
    gaps = []
    for page in pages:
        boxes = [(*w.quad.min(0), *w.quad.max(0)) for w in page.words if not w.vertical]
        for a in boxes:
            height = a[3] - a[1]
            line = [b for b in boxes if b is not a and abs(b[3] - a[3]) < 0.2 * height and b[0] > a[0]]
            if line:
                nxt = min(line, key=lambda b: b[0])  # the next word to the right on the same line
                if nxt[0] - a[2] < 2 * height:  # same phrase, not the next column
                    gaps.append(float(nxt[0] - a[2]) / height)
    return gaps


def test_tight_pages_keep_words_apart() -> None:
    """Pages at the tightest spacing set words clearly closer than at the loosest, and even
    there neighbouring words on a line never overlap beyond an italic overhang."""
    from ocr_tasks.training.synth_writer import NORMAL_SPACING, TIGHT_SPACING

    tight = _line_gaps(TIGHT_SPACING[0], (7, 8, 9))
    loose = _line_gaps(NORMAL_SPACING[1], (7, 8, 9))
    assert len(tight) > 30 and len(loose) > 30
    assert np.median(tight) < 0.75 * np.median(loose)
    assert min(tight) > -0.1


def test_vertical_word_geometry() -> None:
    """A word rotated 90 degrees (bottom-to-top) keeps an exact quad and upright crops."""
    face = get_face(available_fonts()[0], 24)
    canvas = Canvas(200, 300)
    rendered = render_word(face, "Serial123")
    placed = canvas.place(rendered, "Serial123", 100, 250, rotate=90)
    assert placed is not None and placed.vertical
    ys, xs = np.nonzero(canvas.text >= INK)
    x0, y0 = placed.quad.min(0)
    x1, y1 = placed.quad.max(0)
    assert abs(xs.min() - x0) <= 1 and abs(xs.max() + 1 - x1) <= 1
    assert abs(ys.min() - y0) <= 1 and abs(ys.max() + 1 - y1) <= 1
    assert placed.quad[0, 1] > placed.quad[1, 1]  # text top-left is at the page bottom
    assert y1 - y0 > 3 * (x1 - x0)
    page = SynthPage(255 - canvas.text, [SynthWord(placed.text, placed.quad, placed.chars, True)], "test")
    (qx0, qy0), (qx1, qy1) = rendered.quad[0].astype(int), rendered.quad[2].astype(int)
    upright = (255 - rendered.buffer[qy0:qy1, qx0:qx1]).astype(np.float64)
    for seed in range(6):  # both the axis-aligned and the perspective cut, no jitter
        (crop, text), *_ = cut_word_crops(page, np.random.default_rng(seed), jitter=False)
        assert text == "Serial123"
        resized = cv2.resize(crop, upright.shape[::-1]).astype(np.float64)
        assert np.corrcoef(resized.ravel(), upright.ravel())[0, 1] > 0.6  # reads left to right


def test_render_is_deterministic_and_well_formed() -> None:
    """Same seed, same page; the degraded page is uint8 with in-bounds quads."""
    a = render_page(np.random.default_rng(11), *SIZE)
    b = render_page(np.random.default_rng(11), *SIZE)
    assert a.image.dtype == np.uint8 and a.image.shape == (SIZE[1], SIZE[0])
    assert np.array_equal(a.image, b.image)
    assert [w.text for w in a.words] == [w.text for w in b.words]
    assert all(np.array_equal(x.quad, y.quad) for x, y in zip(a.words, b.words))
    assert len(a.words) > 20
    for word in a.words:
        assert word.quad.dtype == np.float32 and word.chars.dtype == np.float32
        assert word.quad[:, 0].min() >= 0 and word.quad[:, 0].max() <= SIZE[0]
        assert word.quad[:, 1].min() >= 0 and word.quad[:, 1].max() <= SIZE[1]


def test_write_dataset_format_and_determinism(tmp_path) -> None:
    """words.jsonl follows the eval format and is byte-identical for the same seed."""
    path = write_dataset(tmp_path / "a", pages=2, seed=5, width=SIZE[0], height=SIZE[1])
    again = write_dataset(tmp_path / "b", pages=2, seed=5, width=SIZE[0], height=SIZE[1])
    assert path.read_bytes() == again.read_bytes()
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    for i, line in enumerate(lines):
        record = json.loads(line)
        assert list(record) == ["image", "width", "height", "words"]
        assert record["image"] == f"images/{i:06d}.png"
        image = cv2.imread(str(tmp_path / "a" / record["image"]), cv2.IMREAD_UNCHANGED)
        assert image.shape == (record["height"], record["width"])
        assert record["words"]
        for word in record["words"]:
            assert list(word) == ["box", "text", "quad", "chars"]
            quad = np.array(word["quad"])
            assert quad.shape == (4, 2) and np.array(word["chars"]).shape == (len(word["text"]), 4, 2)
            assert all(isinstance(v, int) for v in word["box"])
            assert word["box"][0] <= quad[:, 0].min() + 1e-6 and word["box"][2] >= quad[:, 0].max() - 1e-6
            assert word["box"][2] - quad[:, 0].max() < 1.01 and quad[:, 1].min() - word["box"][1] < 1.01


def test_cut_word_crops(clean_pages: list) -> None:
    """Crops carry their text and real, non-uniform pixels; same rng, same crops."""
    page = clean_pages[0]
    crops = cut_word_crops(page, np.random.default_rng(0))
    assert len(crops) == len(page.words)
    for crop, text in crops:
        assert text and crop.dtype == np.uint8 and min(crop.shape[:2]) >= 2
        assert crop.min() < 200 and crop.max() > crop.min()
    again = cut_word_crops(page, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(crops, again))
    exact = cut_word_crops(page, np.random.default_rng(0), jitter=False)
    assert [t for _, t in exact] == [w.text for w in page.words]


def _strokes_page(text_grey: float) -> tuple[np.ndarray, np.ndarray]:
    """A 400 x 600 page: paper 210, a black form bar, and 3 px text strokes at ``text_grey``."""
    image = np.full((400, 600), 210.0, np.float32)
    image[20:40, :] = 0.0  # a thick form line: the darkest 0.5% of the page
    strokes = np.zeros(image.shape, bool)
    for y in range(80, 380, 12):
        for x in range(20, 580, 9):
            strokes[y : y + 8, x : x + 3] = True  # letter-like vertical stems
    image[strokes] = text_grey
    return image, strokes


@pytest.mark.parametrize("seed", range(6))
def test_fax_binarisation_keeps_faint_text(seed: int) -> None:
    """The fax threshold follows the text's ink, not the darkest pixels of the page: text 60
    grey levels below the paper survives next to a black form line (the page-wide 0.5th
    percentile put the threshold below the text and erased every word of such pages)."""
    from ocr_tasks.training.synth_effects import scan_effects

    image, strokes = _strokes_page(150.0)
    out = scan_effects(image, np.random.default_rng(seed), fax=True, text_size=20.0, text_mask=strokes)
    assert np.median(out[strokes]) < 100, "text strokes were binarised to paper"
    assert np.median(out[~strokes & (np.arange(400)[:, None] > 60)]) > 180, "paper was binarised to ink"
    assert out[25:35].mean() < 80  # the form line stays


def test_ensure_text_contrast() -> None:
    """Faint text is stretched to MIN_TEXT_CONTRAST below its paper; readable text is untouched."""
    from ocr_tasks.training.synth_effects import MIN_TEXT_CONTRAST, ensure_text_contrast

    paper = np.full((50, 50), 200.0, np.float32)
    strokes = np.zeros(paper.shape, bool)
    strokes[10:40, 20:25] = True
    faint = paper.copy()
    faint[strokes] = 175.0  # 25 levels: unreadable under scan noise
    out = ensure_text_contrast(faint, paper, strokes)
    assert np.median(paper[strokes] - out[strokes]) == pytest.approx(MIN_TEXT_CONTRAST)
    assert np.array_equal(out[~strokes], paper[~strokes])
    dark = paper.copy()
    dark[strokes] = 40.0
    assert ensure_text_contrast(dark, paper, strokes) is dark
    assert ensure_text_contrast(faint, paper, np.zeros_like(strokes)) is faint


@pytest.mark.parametrize("index", [10, 23])
def test_degraded_pages_stay_legible(index: int) -> None:
    """Two held-out pages (seed 424242) that used to lose their text: page 10 (faint grey toner
    on low-contrast paper, 25-35 levels of contrast under noise) and page 23 (a fax whose
    threshold erased the words). Their words must now show ink: a crop's 90th - 5th percentile
    spread of at least 50 grey levels (before the fix: 0% and 27% of the words)."""
    from ocr_tasks.training.synth import page_rng

    page = render_page(page_rng(424242, index))
    spreads = []
    for word in page.words:
        x0, y0 = np.floor(word.quad.min(0)).astype(int)
        x1, y1 = np.ceil(word.quad.max(0)).astype(int)
        crop = page.image[max(y0, 0) : y1, max(x0, 0) : x1].astype(np.float32)
        if crop.size >= 4:
            spreads.append(np.percentile(crop, 90) - np.percentile(crop, 5))
    assert len(spreads) > 100
    assert np.mean(np.array(spreads) >= 50) > 0.9
