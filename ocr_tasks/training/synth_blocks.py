"""Business-form building blocks: letterheads, titles, label/value fields, box grids, checkboxes,
tables, signatures and footers.

Each block takes the writer, the horizontal extent ``x0..x1`` and the top ``y`` and returns the
top of the next block. Blocks stop early (drawing fewer rows) when they reach the page bottom.
"""

from __future__ import annotations

import numpy as np

from .synth_canvas import Face
from .synth_writer import Writer

__all__ = [
    "box_grid",
    "checkbox",
    "checkboxes",
    "field_rows",
    "letterhead",
    "memo_fields",
    "scribble",
    "signature",
    "table",
    "title",
]

_MEMO_SETS = (
    ("TO", "FROM", "DATE", "SUBJECT"),
    ("TO", "FAX", "FROM", "PHONE", "DATE", "PAGES", "RE"),
    ("Date", "To", "cc", "From", "Subject"),
    ("ATTENTION", "COMPANY", "FAX NO.", "FROM", "DATE", "NO. OF PAGES"),
)


def _tokens_width(w: Writer, face: Face, tokens: list[str]) -> float:
    return sum(face.length(t) for t in tokens) + face.length(" ") * 1.1 * max(0, len(tokens) - 1)


def letterhead(w: Writer, x0: float, x1: float, y: float) -> float:
    """Company name in a large face, address lines, optional rule underneath."""
    face, small, r = w.style.header, w.style.small, w.r
    tokens = w.sampler.heading() + (
        [r.choice(("INC.", "Inc.", "CO.", "Company", "Corporation"))] if r.random() < 0.5 else []
    )
    width = _tokens_width(w, face, tokens)
    align = r.choice(("left", "center", "center", "right"))
    x = x0 if align == "left" else x1 - width if align == "right" else (x0 + x1 - width) / 2
    baseline = y + face.size * 0.85
    w.run(face, tokens, max(x0, x), baseline, x1)
    y = baseline + face.descent + small.size * 0.6
    for line in w.sampler.address()[: r.randrange(0, 3)] + ([w.sampler.phone()] if r.random() < 0.4 else []):
        lx = (
            x0
            if align == "left"
            else x1 - _tokens_width(w, small, line)
            if align == "right"
            else (x0 + x1 - _tokens_width(w, small, line)) / 2
        )
        baseline = y + small.size * 0.9
        w.run(small, line, max(x0, lx), baseline, x1)
        y = baseline + small.descent + 2
    if r.random() < 0.6:
        y += 4
        w.canvas.line((x0, y), (x1, y), r.choice((1, 1, 2, 3)))
        if r.random() < 0.3:
            w.canvas.line((x0, y + 4), (x1, y + 4), 1)
    return y + w.style.body.size * r.uniform(0.8, 2.0)


def title(w: Writer, x0: float, x1: float, y: float, tokens: list[str] | None = None) -> float:
    """A centred or left title, sometimes boxed or underlined."""
    r = w.r
    face = w.style.header if r.random() < 0.5 else w.style.label
    tokens = tokens or w.sampler.heading()
    width = _tokens_width(w, face, tokens)
    x = max(x0, (x0 + x1 - width) / 2 if r.random() < 0.7 else x0)
    baseline = y + face.size * 0.9
    w.run(face, tokens, x, baseline, x1)
    decoration = r.random()
    if decoration < 0.2:
        pad = face.size * 0.35
        w.canvas.rect(
            x - pad,
            y - pad * 0.5,
            min(x1, x + width + pad),
            baseline + face.descent + pad * 0.5,
            r.choice((1, 2)),
        )
    elif decoration < 0.4:
        w.canvas.line((x, baseline + 3), (min(x1, x + width), baseline + 3), 1)
    return baseline + face.descent + w.style.body.size * r.uniform(0.8, 1.8)


def memo_fields(w: Writer, x0: float, x1: float, y: float) -> float:
    """Memo/fax header: ``TO:``, ``FROM:``, ``DATE:`` ... with values at a common tab stop."""
    r, st = w.r, w.style
    names = list(r.choice(_MEMO_SETS))
    case = r.choice(("upper", "title", "keep"))
    labels = [[w.sampler.case(n, case) for n in name.split()] for name in names]
    for lab in labels:
        lab[-1] += ":" if r.random() < 0.85 else ""
    tab = x0 + max(_tokens_width(w, st.label, lab) for lab in labels) + st.label.size * r.uniform(0.5, 2.5)
    leading = max(st.label.size, st.value.size) * r.uniform(1.4, 2.2)
    baseline = y + st.label.size
    for lab in labels:
        if baseline > w.bottom:
            break
        w.run(st.label, lab, x0, baseline, tab)
        kind = r.choice(("text", "name", "date", "phone", "number", "text"))
        w.run(st.value, w.sampler.value(kind), tab, baseline, x1, hand=r.random() < 0.08)
        baseline += leading
    return baseline


def field_rows(w: Writer, x0: float, x1: float, y: float) -> float:
    """Rows of ``Label: ____value____`` fields with the value sitting on (or touching) the line."""
    r, st = w.r, w.style
    leading = max(st.label.size, st.value.size) * r.uniform(1.8, 2.6)
    baseline = y + st.label.size * 1.2
    for _ in range(r.randrange(2, 7)):
        if baseline > w.bottom:
            break
        n = r.choice((1, 1, 2, 2, 3))
        edges = np.linspace(x0, x1, n + 1)
        for fx0, fx1 in zip(edges[:-1], edges[1:]):
            end = w.run(st.label, w.sampler.label(), fx0, baseline, fx1 - 30)
            line_y = baseline + r.choice((-1, 0, 1, 2, 3))
            if r.random() < 0.2:  # dot leaders
                w.canvas.dashed((end + 2, line_y), (fx1 - 12, line_y), 1, r.choice((2, 3, 4)))
            else:
                w.canvas.line((end, line_y), (fx1 - 12, line_y), 1)
            if r.random() < 0.85:
                hand = r.random() < 0.12
                face = st.hand if hand else st.value
                w.run(
                    face,
                    w.sampler.value(),
                    end + r.uniform(2, 15),
                    baseline - r.choice((0, 1, 2, 3)),
                    fx1 - 14,
                    hand=hand,
                )
        baseline += leading
    return baseline


def checkbox(w: Writer, x: float, top: float, size: float, checked: bool) -> None:
    """A square box, sometimes ticked or crossed (marks may overshoot the box)."""
    c, r = w.canvas, w.r
    c.rect(x, top, x + size, top + size, r.choice((1, 1, 2)))
    if not checked:
        return
    over = size * r.uniform(0, 0.35)
    if r.random() < 0.5:
        c.line((x + 2 - over, top + 2 - over), (x + size - 2 + over, top + size - 2 + over), 2)
        c.line((x + size - 2 + over, top + 2 - over), (x + 2 - over, top + size - 2 + over), 2)
    else:
        pts = np.array(
            [
                [x + size * 0.15, top + size * 0.5],
                [x + size * 0.45, top + size * 0.85],
                [x + size + over, top - over],
            ]
        )
        c.polyline(pts, 2)


def checkboxes(w: Writer, x0: float, x1: float, y: float) -> float:
    """A group of checkbox items; labels sit close to (sometimes touching) their boxes."""
    r, st = w.r, w.style
    face = st.label if r.random() < 0.5 else st.body
    size = face.size * r.uniform(0.6, 0.95)
    baseline = y + face.size
    x = x0
    for _ in range(r.randrange(2, 9)):
        tokens = [w.sampler.word(case=None) for _ in range(r.randrange(1, 3))]
        width = size + 4 + _tokens_width(w, face, tokens)
        if x + width > x1:
            x, baseline = x0, baseline + face.size * r.uniform(1.6, 2.2)
        if baseline > w.bottom:
            break
        checkbox(w, x, baseline - size, size, r.random() < 0.35)
        end = w.run(face, tokens, x + size + r.choice((0, 1, 2, 3, 5, 8)), baseline, x1)
        x = end + face.size * r.uniform(1.0, 3.0)
    return baseline + face.size * r.uniform(1.2, 2.0)


def box_grid(w: Writer, x0: float, x1: float, y: float) -> float:
    """Rows of ruled cells, each with a small label in its corner and a typed value below it."""
    r, st = w.r, w.style
    small, value = st.small, st.value
    thick = r.choice((1, 1, 2))
    row_h = small.size * 1.3 + max(value.size, st.hand.size) * r.uniform(1.2, 1.7) + 4
    top = y
    w.canvas.line((x0, top), (x1, top), thick)
    for _ in range(r.randrange(2, 7)):
        if top + row_h > w.bottom + value.size:
            break
        cuts = sorted(r.sample(range(1, 12), r.choice((0, 1, 1, 2, 3))))
        edges = [x0] + [x0 + (x1 - x0) * c / 12 for c in cuts] + [x1]
        for cx0, cx1 in zip(edges[:-1], edges[1:]):
            w.canvas.line((cx0, top), (cx0, top + row_h), thick)
            w.run(small, w.sampler.label(), cx0 + r.uniform(2, 5), top + small.size * 0.95 + 1, cx1 - 2)
            if r.random() < 0.15:
                checkbox(w, cx0 + 6, top + row_h - value.size - 3, value.size * 0.7, r.random() < 0.5)
            elif r.random() < 0.85:
                hand = r.random() < 0.1
                face = st.hand if hand else value
                w.run(
                    face,
                    w.sampler.value(),
                    cx0 + r.uniform(4, 14),
                    top + row_h - face.descent - 3,
                    cx1 - 3,
                    hand=hand,
                )
        w.canvas.line((x1, top), (x1, top + row_h), thick)
        top += row_h
        w.canvas.line((x0, top), (x1, top), thick)
    return top + st.body.size * r.uniform(1.0, 2.0)


def _table_columns(w: Writer, x0: float, x1: float) -> tuple[list[str], list[float]]:
    r = w.r
    kinds = ["text"] + [
        r.choice(("text", "code", "number", "price", "price", "date", "percent"))
        for _ in range(r.randrange(2, 6))
    ]
    weights = [
        {"text": 2.5, "code": 1.3, "date": 1.3, "price": 1.4, "number": 1.1}.get(k, 1.0) for k in kinds
    ]
    edges = list(np.cumsum([0.0] + weights) / sum(weights) * (x1 - x0) + x0)
    return kinds, edges


def _cell_value(w: Writer, kind: str) -> list[str]:
    s = w.sampler
    single = {"number": s.number, "price": s.price, "percent": s.percent, "code": s.code}
    if kind in single:
        return [single[kind]()]
    if kind == "date":
        return s.date()[:1]
    return [s.word(case=None) for _ in range(w.r.randrange(1, 4))]


def table(w: Writer, x0: float, x1: float, y: float) -> float:
    """A table: bold header row, typed rows, numbers right-aligned; full, horizontal or no rules."""
    r, st = w.r, w.style
    kinds, edges = _table_columns(w, x0, x1)
    rules = r.choice(("full", "full", "horizontal", "header", "none"))
    face = st.value if r.random() < 0.5 else st.body
    row_h = face.size * r.uniform(1.4, 2.0)
    pad = r.uniform(2, 7)
    top = y
    w.canvas.line((x0, top), (x1, top), r.choice((1, 2)))
    for row in range(r.randrange(3, 25)):
        if top + row_h > w.bottom:
            break
        head = row == 0
        cur = st.label if head else face
        baseline = top + (row_h + cur.size * 0.7) / 2
        if head and r.random() < 0.3:  # shaded header row
            shade = w.canvas.art[int(top) : int(top + row_h), int(x0) : int(x1)]
            np.maximum(shade, np.uint8(255 * r.uniform(0.1, 0.3)), out=shade)
        for kind, cx0, cx1 in zip(kinds, edges[:-1], edges[1:]):
            tokens = (
                [w.sampler.case(t, "upper" if r.random() < 0.5 else "title") for t in w.sampler.heading()[:2]]
                if head
                else _cell_value(w, kind)
            )
            if not head and kind in ("number", "price", "percent"):
                w.run_right(cur, tokens, cx1 - pad, baseline, min_x=cx0 + pad)
            else:
                w.run(cur, tokens, cx0 + pad, baseline, cx1 - pad)
        top += row_h
        if rules in ("full", "horizontal") or (head and rules == "header"):
            w.canvas.line((x0, top), (x1, top), 1 + (head and r.random() < 0.5))
    if rules == "full":
        for x in edges:
            w.canvas.line((x, y), (x, top), 1)
    return top + st.body.size * r.uniform(1.0, 2.0)


def scribble(w: Writer, x: float, baseline: float, width: float, height: float) -> None:
    """A signature-like scribble (line art, not a word)."""
    r = w.r
    t = np.linspace(0, 1, 80)
    loops = r.uniform(3, 8)
    xs = x + t * width + np.sin(t * loops * 2 * np.pi) * height * 0.25
    ys = (
        baseline
        - height * 0.5
        + np.sin(t * loops * 2 * np.pi * r.uniform(1.5, 2.5) + r.uniform(0, 6)) * height * 0.45
    )
    w.canvas.polyline(np.stack([xs, ys], 1), r.choice((1, 2)), darkness=r.uniform(0.6, 1.0))


def signature(w: Writer, x0: float, x1: float, y: float) -> float:
    """A closing with a scribbled signature, or ``Signature: ____  Date: ____`` lines."""
    r, st = w.r, w.style
    if r.random() < 0.5:
        baseline = y + st.body.size
        w.run(
            st.body,
            r.choice(("Sincerely,", "Regards,", "Very truly yours,", "Thank you,")).split(),
            x0,
            baseline,
            x1,
        )
        baseline += st.body.size * 1.5
        scribble(w, x0, baseline + st.body.size, r.uniform(80, 200), st.body.size * r.uniform(1.5, 2.5))
        baseline += st.body.size * 2.5
        for line in (w.sampler.name(), [w.sampler.word("title"), w.sampler.word("title")]):
            w.run(st.body, line, x0, baseline, x1)
            baseline += st.body.size * 1.3
        return baseline
    baseline = y + st.label.size * 2
    mid = (x0 + x1) / 2
    for fx0, fx1, label in ((x0, mid - 20, "Signature:"), (mid, x1, "Date:")):
        end = w.run(st.label, [w.sampler.case(label, r.choice(("upper", "title")))], fx0, baseline, fx1)
        w.canvas.line((end, baseline + 2), (fx1, baseline + 2), 1)
        if label == "Date:" and r.random() < 0.7:
            w.run(st.hand, w.sampler.date(), end + 8, baseline - 2, fx1, hand=True)
        elif r.random() < 0.7:
            scribble(w, end + 10, baseline, min(160.0, fx1 - end - 20), st.label.size * 1.8)
    return baseline + st.label.size * 2
