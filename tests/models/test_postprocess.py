"""CRAFT pre-processing and box extraction on constructed score maps."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from ocr_tasks.models.detection.postprocess import CraftThresholds, adjust_result_coordinates, get_det_boxes
from ocr_tasks.models.detection.preprocess import normalize_mean_variance, resize_aspect_ratio, to_tensor


def _maps(h: int = 60, w: int = 120) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)


def _signed_area(box: np.ndarray) -> float:
    """Shoelace area; positive for clockwise order on screen (y axis down)."""
    x, y = box[:, 0], box[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _gauss_word(
    n: int, x0: float, y0: float, step: float, sigma: float, shape: tuple[int, int], curve: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Region blobs per character plus affinity blobs between neighbours (CRAFT-style maps)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    centers = [(x0 + i * step, y0 + curve * (i - (n - 1) / 2) ** 2) for i in range(n)]
    text, link = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    for cx, cy in centers:
        text = np.maximum(text, np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2)))
    for (ax, ay), (bx, by) in zip(centers, centers[1:], strict=False):
        mx, my = (ax + bx) / 2, (ay + by) / 2
        link = np.maximum(link, np.exp(-((xx - mx) ** 2 + (yy - my) ** 2) / (2 * sigma**2)))
    return text.astype(np.float32), link.astype(np.float32)


# ------------------------------------------------------------------------------- boxes


def test_axis_aligned_rectangles() -> None:
    text, link = _maps()
    text[10:21, 10:41] = 0.9  # 31 x 11: niter = int(sqrt(11) * 2) = 6, kernel 7 -> +-3
    text[30:46, 60:101] = 0.8  # 41 x 16: niter = 8, kernel 9 -> +-4
    boxes, polys, scores = get_det_boxes(text, link)
    assert len(boxes) == 2
    np.testing.assert_allclose(boxes[0], [[7, 7], [43, 7], [43, 23], [7, 23]], atol=1e-4)
    np.testing.assert_allclose(boxes[1], [[56, 26], [104, 26], [104, 49], [56, 49]], atol=1e-4)
    assert all(b.dtype == np.float32 and b.shape == (4, 2) for b in boxes)
    assert polys == [None, None]
    np.testing.assert_allclose(scores, [0.9, 0.8], atol=1e-6)


def test_even_kernel_dilation_is_asymmetric_like_opencv() -> None:
    text, link = _maps()
    text[20:28, 30:60] = 0.9  # x 30..59, y 20..27
    # 30 x 8: niter = int(sqrt(8) * 2) = 5 -> 6x6 kernel with anchor 3, so dst(x) looks at
    # src(x-3 .. x+2): the blob grows by 2 to the left/top and by 3 to the right/bottom.
    boxes, _, _ = get_det_boxes(text, link)
    np.testing.assert_allclose(boxes[0], [[28, 18], [62, 18], [62, 30], [28, 30]], atol=1e-4)


def test_rotated_rectangle_20_degrees() -> None:
    text, link = _maps(120, 160)
    corners = cv2.boxPoints(((80.0, 60.0), (60.0, 14.0), 20.0))
    cv2.fillPoly(text, [np.round(corners).astype(np.int32)], 0.9)
    boxes, _, scores = get_det_boxes(text, link)
    assert len(boxes) == 1
    box = boxes[0]
    # Starts at the top-left-most corner and runs clockwise on screen.
    assert int(np.argmin(box.sum(axis=1))) == 0
    assert _signed_area(box) > 0
    long_side = box[1] - box[0]
    angle = math.degrees(math.atan2(long_side[1], long_side[0]))
    assert angle == pytest.approx(20.0, abs=1.5)
    np.testing.assert_allclose(box.mean(axis=0), [80.0, 60.0], atol=1.5)
    sides = sorted([np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[1] - box[2])])
    assert 14 < sides[0] < 30 and 60 < sides[1] < 80
    assert scores[0] == pytest.approx(0.9, abs=1e-6)


def _line_with_short_word(angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Three long words and a short word with a descender on one line rotated by ``angle_deg``.

    The short word is two overlapping discs, the right one 4 pixels lower (a "by" whose "y"
    descends): the diagonal shape tilts its own minimum-area rectangle ~18 degrees off the line.
    """
    h, w = 140, 260
    text, link = _maps(h, w)
    local = np.zeros((h, w), np.float32)
    for x0 in (10, 70, 130):  # long words: 48 x 14
        local[60:74, x0 : x0 + 48] = 0.9
    cv2.circle(local, (201, 64), 8, 0.9, -1)  # short word
    cv2.circle(local, (213, 68), 8, 0.9, -1)
    rotation = cv2.getRotationMatrix2D((w / 2, h / 2), -angle_deg, 1.0)  # positive: clockwise on screen
    text = cv2.warpAffine(local, rotation, (w, h), flags=cv2.INTER_NEAREST)
    return text, link


def _angle_of(box: np.ndarray) -> float:
    """Angle of the top edge (the box starts at its top-left corner), degrees clockwise."""
    edge = box[1] - box[0]
    return math.degrees(math.atan2(edge[1], edge[0]))


def _short_box(boxes: list[np.ndarray]) -> np.ndarray:
    return min(boxes, key=lambda b: float(np.hypot(*(b[1] - b[0])) * np.hypot(*(b[2] - b[1]))))


@pytest.mark.parametrize("page_angle", [0.0, 8.0, -6.0])
def test_align_short_words_uses_the_line_angle(page_angle: float) -> None:
    text, link = _line_with_short_word(page_angle)
    plain = _short_box(get_det_boxes(text, link)[0])
    # without alignment the descender tilts the short word's box away from its line
    assert abs(_angle_of(plain) - page_angle) > 5
    boxes, _, _ = get_det_boxes(text, link, CraftThresholds(align_short_words=True))
    assert len(boxes) == 4
    aligned = _short_box(boxes)
    assert _angle_of(aligned) == pytest.approx(page_angle, abs=1.0)
    assert int(np.argmin(aligned.sum(axis=1))) == 0 and _signed_area(aligned) > 0
    # it still holds every text pixel of the word (block and descender)
    _, labels = cv2.connectedComponents((text > 0.4).astype(np.uint8), connectivity=4)
    cx, cy = np.round(plain.mean(axis=0)).astype(int)
    ys, xs = np.nonzero(labels == labels[cy, cx])
    assert labels[cy, cx] > 0 and len(xs) > 200
    contour = aligned.reshape(-1, 1, 2)
    assert all(cv2.pointPolygonTest(contour, (float(x), float(y)), True) >= -0.5 for x, y in zip(xs, ys))
    # the long words that define the line keep their boxes, give or take a pixel of refit
    long_plain = sorted(get_det_boxes(text, link)[0], key=lambda b: float(b[:, 0].min()))[:3]
    long_aligned = sorted(boxes, key=lambda b: float(b[:, 0].min()))[:3]
    for a, b in zip(long_plain, long_aligned):
        np.testing.assert_allclose(a, b, atol=1.5)


def _line_words(
    leaning: tuple[int, ...] = (),
    shape: tuple[int, int] = (140, 400),
    words: tuple[tuple[int, int], ...] = ((10, 56), (82, 100), (198, 56), (270, 56)),
) -> np.ndarray:
    """Level words (``(x0, length)``, 14 px high) on one line; the words in ``leaning`` get a
    flat ascender at their left end and a descender at their right end (as in "Thing"), which
    tilts their own minimum-area rectangle (by about 2 degrees for a 100 px word)."""
    text = np.zeros(shape, np.float32)
    for i, (x0, length) in enumerate(words):
        text[60:74, x0 : x0 + length] = 0.9
        if i in leaning:
            text[57:60, x0 : x0 + 20] = 0.9
            text[74:77, x0 + length - 20 : x0 + length] = 0.9
    return text


def test_align_short_words_levels_a_leaning_long_word() -> None:
    text = _line_words(leaning=(1,))
    link = np.zeros_like(text)
    plain = sorted(get_det_boxes(text, link)[0], key=lambda b: float(b[:, 0].min()))
    assert abs(_angle_of(plain[1])) > 1.5  # its own rectangle leans
    aligned = get_det_boxes(text, link, CraftThresholds(align_short_words=True))[0]
    aligned = sorted(aligned, key=lambda b: float(b[:, 0].min()))
    assert len(aligned) == 4 and all(abs(_angle_of(b)) < 0.5 for b in aligned)
    ys, xs = np.nonzero(text > 0.4)  # the levelled box still holds every pixel of the word
    word = (xs >= 82) & (xs < 182)
    contour = aligned[1].reshape(-1, 1, 2)
    assert all(cv2.pointPolygonTest(contour, (float(x), float(y)), True) >= -0.5 for x, y in zip(xs[word], ys[word]))


def test_align_short_words_keeps_a_word_at_its_own_angle() -> None:
    # a long word rotated by 20 degrees below the level line (a stamp) keeps its angle: its
    # box at the line's angle would be far larger than its own
    text = _line_words()
    corners = cv2.boxPoints(((180.0, 110.0), (70.0, 14.0), 20.0))
    cv2.fillPoly(text, [np.round(corners).astype(np.int32)], 0.9)
    link = np.zeros_like(text)
    aligned = get_det_boxes(text, link, CraftThresholds(align_short_words=True))[0]
    stamp = [b for b in aligned if b.mean(axis=0)[1] > 90]
    assert len(stamp) == 1 and _angle_of(stamp[0]) == pytest.approx(20.0, abs=2.0)
    assert all(abs(_angle_of(b)) < 0.5 for b in aligned if b.mean(axis=0)[1] < 90)


def test_line_angle_comes_from_neighbouring_words() -> None:
    # the line rotated by 6 degrees and every long word leaning the same extra way, so the
    # median of their own angles is off by 2-5 degrees; the centres of neighbouring words give
    # the line's angle, and the short word at the end ("by") is fitted at it
    words = ((10, 100), (126, 100), (242, 100), (358, 100))
    local = _line_words(leaning=(0, 1, 2, 3), shape=(200, 520), words=words)
    cv2.circle(local, (482, 66), 7, 0.9, -1)
    cv2.circle(local, (494, 70), 7, 0.9, -1)
    rotation = cv2.getRotationMatrix2D((260, 67), -6.0, 1.0)
    text = cv2.warpAffine(local, rotation, (520, 200), flags=cv2.INTER_NEAREST)
    link = np.zeros_like(text)
    plain = get_det_boxes(text, link)[0]
    long_words = [b for b in plain if np.hypot(*(b[1] - b[0])) > 2.5 * np.hypot(*(b[2] - b[1]))]
    assert len(long_words) == 4 and float(np.median([_angle_of(b) for b in long_words])) > 7.5, [_angle_of(b) for b in plain]
    aligned = get_det_boxes(text, link, CraftThresholds(align_short_words=True))[0]
    assert len(aligned) == 5
    assert _angle_of(_short_box(aligned)) == pytest.approx(6.0, abs=1.0)


def test_align_short_words_needs_enough_long_words() -> None:
    text, link = _line_with_short_word(0.0)
    text[:, 120:190] = 0  # leaves two long words: too few to trust a line angle
    plain, _, _ = get_det_boxes(text, link)
    aligned, _, _ = get_det_boxes(text, link, CraftThresholds(align_short_words=True))
    assert len(plain) == len(aligned) == 3
    for a, b in zip(plain, aligned):
        np.testing.assert_allclose(a, b)


@pytest.mark.parametrize(("link_value", "expected_words"), [(0.5, 1), (0.41, 1), (0.4, 2), (0.35, 2)])
def test_link_map_joins_or_splits_neighbouring_words(link_value: float, expected_words: int) -> None:
    text, link = _maps()
    text[20:33, 10:31] = 0.9
    text[20:33, 36:57] = 0.9  # 5-pixel gap between the two blobs
    link[22:31, 28:39] = link_value  # affinity bridging the gap
    boxes, _, _ = get_det_boxes(text, link)
    assert len(boxes) == expected_words
    if expected_words == 1:
        xs = boxes[0][:, 0]
        assert xs.min() < 10 and xs.max() > 56
    else:
        boxes = sorted(boxes, key=lambda b: float(b[:, 0].min()))
        assert boxes[0][:, 0].max() < 36 and boxes[1][:, 0].min() > 30


def _bridged_words(bridge: float) -> tuple[np.ndarray, np.ndarray]:
    """Two text blobs 5 px apart, joined only by an affinity bridge of the given score."""
    text, link = _maps()
    text[20:33, 10:31] = 0.9
    text[20:33, 36:57] = 0.9
    link[22:31, 28:39] = bridge
    return text, link


@pytest.mark.parametrize(
    ("bridge", "split_link", "expected_words"),
    [(0.3, 0.0, 1), (0.3, 0.35, 2), (0.34, 0.35, 2), (0.35, 0.35, 1), (0.6, 0.35, 1), (0.3, 0.3, 1)],
)
def test_split_link_cuts_weak_bridges_across_text_free_gaps(
    bridge: float, split_link: float, expected_words: int
) -> None:
    text, link = _bridged_words(bridge)
    th = CraftThresholds(link_threshold=0.1, split_link=split_link)
    boxes, _, _ = get_det_boxes(text, link, th)
    assert len(boxes) == expected_words
    if expected_words == 2:
        left, right = sorted(boxes, key=lambda b: float(b[:, 0].min()))
        assert left[:, 0].max() < 36 and right[:, 0].min() > 30
        # Each half gets the box it would get alone (the bridge never was part of a box).
        alone = get_det_boxes(np.where(np.arange(120) < 33, text, 0).astype(np.float32), np.zeros_like(link), th)[0]
        np.testing.assert_allclose(left, alone[0], atol=1e-4)


def test_split_link_keeps_gaps_that_text_crosses() -> None:
    """No cut where some row of the component still has text in every gap column (one word)."""
    text, link = _bridged_words(0.3)
    text[30:33, 31:36] = 0.9  # an underline-like text stroke closes the gap at the bottom
    th = CraftThresholds(link_threshold=0.1, split_link=0.5)
    assert len(get_det_boxes(text, link, th)[0]) == 1


def test_split_link_changes_nothing_on_random_maps_when_off() -> None:
    rng = np.random.default_rng(7)
    text = cv2.GaussianBlur(rng.random((80, 160)).astype(np.float32), (0, 0), 3) * 2 - 0.5
    link = cv2.GaussianBlur(rng.random((80, 160)).astype(np.float32), (0, 0), 3) * 2 - 0.5
    base = CraftThresholds(link_threshold=0.3)
    plain = get_det_boxes(text, link, base)[0]
    below = get_det_boxes(text, link, base.replace(split_link=0.3))[0]  # <= link_threshold: off
    assert len(plain) == len(below)
    for a, b in zip(plain, below):
        np.testing.assert_allclose(a, b)


def test_link_only_pixels_are_not_part_of_the_box() -> None:
    text, link = _maps()
    text[20:33, 20:51] = 0.9
    link[24:29, 51:100] = 0.9  # long affinity tail without text
    boxes, _, _ = get_det_boxes(text, link)
    assert len(boxes) == 1
    assert boxes[0][:, 0].max() < 60  # the tail (up to x=99) was removed before fitting


def test_text_threshold_uses_the_component_maximum() -> None:
    text, link = _maps()
    text[10:20, 10:40] = 0.65  # max below 0.7: dropped
    text[30:40, 10:40] = 0.5
    text[35, 25] = 0.75  # one strong pixel keeps the whole component
    text[30:40, 60:90] = 0.7  # exactly the threshold: kept (max >= text_threshold)
    boxes, _, scores = get_det_boxes(text, link)
    assert len(boxes) == 2
    tops = sorted(float(b[:, 1].min()) for b in boxes)
    assert tops[0] > 20  # nothing from the 0.65 component
    assert sorted(np.round(scores, 4)) == pytest.approx(sorted([(0.5 * 299 + 0.75) / 300, 0.7]), abs=1e-4)
    assert get_det_boxes(text, link, CraftThresholds(text_threshold=0.6))[0].__len__() == 3


def test_low_text_is_strict() -> None:
    text, link = _maps()
    text[10:20, 10:40] = 0.4  # not > low_text: no component at all
    text[14, 20] = 0.9  # single pixel: area 1 < 10
    assert get_det_boxes(text, link) == ([], [], [])


def test_tiny_components_dropped() -> None:
    text, link = _maps()
    text[10:13, 10:13] = 0.9  # area 9 < 10
    text[30:32, 30:35] = 0.9  # area 10: kept
    boxes, _, _ = get_det_boxes(text, link)
    assert len(boxes) == 1
    assert boxes[0][:, 0].min() < 30 < boxes[0][:, 0].max()
    assert len(get_det_boxes(text, link, CraftThresholds(min_area=11))[0]) == 0
    assert len(get_det_boxes(text, link, CraftThresholds(min_area=9))[0]) == 2


def test_diamond_component_uses_axis_aligned_bounds() -> None:
    text, link = _maps()
    diamond = cv2.boxPoints(((60.0, 30.0), (20.0, 20.0), 45.0))
    cv2.fillPoly(text, [np.round(diamond).astype(np.int32)], 0.9)
    boxes, _, _ = get_det_boxes(text, link)
    box = boxes[0]
    # The min-area rect is a square rotated by 45 degrees; the fix replaces it by the point
    # bounds, so the box is axis-aligned and about 2 * 14 + dilation wide.
    assert box[0, 1] == box[1, 1] and box[2, 1] == box[3, 1]
    assert box[0, 0] == box[3, 0] and box[1, 0] == box[2, 0]
    assert box[0, 0] < 46 and box[1, 0] > 74 and box[0, 1] < 16 and box[2, 1] > 44


def test_score_is_mean_of_text_pixels() -> None:
    text, link = _maps()
    text[10:20, 10:40] = np.linspace(0.5, 1.3, 30, dtype=np.float32)[None, :]
    link[10:20, 40:60] = 0.9  # link pixels of the component do not count
    _, _, scores = get_det_boxes(text, link)
    assert scores[0] == pytest.approx(float(np.clip(text[10:20, 10:40].mean(), 0, 1)), abs=1e-5)
    text[10:20, 10:40] = 1.5
    assert get_det_boxes(text, link)[2] == [1.0]  # clipped


def test_polygon_for_long_straight_word() -> None:
    text, link = _gauss_word(10, 30, 50, 16, 5, (100, 240))
    boxes, polys, _ = get_det_boxes(text, link, CraftThresholds(poly=True))
    assert len(boxes) == 1
    poly = polys[0]
    assert poly is not None and poly.shape == (14, 2)
    tops, bottoms = poly[:7], poly[7:]
    assert np.ptp(tops[:, 1]) < 1.0 and np.ptp(bottoms[:, 1]) < 1.0
    assert 38 < tops[:, 1].mean() < 44 and 56 < bottoms[:, 1].mean() < 62  # centre line y = 50
    # Text pixels span rows 44..56 (13 px) around each centre; box rows 41..60 warp to a height
    # of 20, so a pivot column measures 14 px; the band is 1.45 x the median pivot height,
    # mapped back by 19 / 20.
    height = bottoms[:, 1].mean() - tops[:, 1].mean()
    assert height == pytest.approx(14 * 1.45 * 19 / 20, abs=0.05)
    assert np.all(np.diff(tops[:, 0]) > 0)  # left to right along the top
    assert np.all(np.diff(bottoms[:, 0]) < 0)  # right to left along the bottom
    assert tops[0, 0] < 25 and tops[-1, 0] > 175  # covers the word (x = 30 ... 174)


def test_polygon_follows_a_curved_word() -> None:
    text, link = _gauss_word(10, 30, 40, 16, 5, (100, 240), curve=0.8)
    boxes, polys, _ = get_det_boxes(text, link, CraftThresholds(poly=True))
    poly = polys[0]
    assert poly is not None and poly.shape == (14, 2)
    tops = poly[1:6]  # the 5 pivot tops
    assert tops[2, 1] < tops[0, 1] - 10 and tops[2, 1] < tops[4, 1] - 10  # arc: middle is higher
    assert np.ptp(boxes[0][:, 1]) > 30  # the box is much taller than the text band


def test_polygon_none_when_fit_impossible() -> None:
    text, link = _maps()
    text[20:28, 20:28] = 0.9  # box side < 10
    text[40:54, 60:110] = 0.9  # plain bar fills > 0.7 of its box height after the warp
    boxes, polys, _ = get_det_boxes(text, link, CraftThresholds(poly=True))
    assert len(boxes) == 2
    assert polys == [None, None]


def _reference_boxes(textmap: np.ndarray, linkmap: np.ndarray) -> list[np.ndarray]:
    """Straightforward full-map version of SPEC §2.7 (default thresholds) as an oracle."""
    _, text_score = cv2.threshold(textmap, 0.4, 1, cv2.THRESH_BINARY)
    _, link_score = cv2.threshold(linkmap, 0.4, 1, cv2.THRESH_BINARY)
    comb = np.clip(text_score + link_score, 0, 1).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(comb, connectivity=4)
    out = []
    for k in range(1, n):
        x, y, w, h, area = stats[k]
        if area < 10 or textmap[labels == k].max() < 0.7:
            continue
        seg = np.zeros(textmap.shape, np.uint8)
        seg[labels == k] = 255
        seg[(link_score == 1) & (text_score == 0)] = 0
        niter = int(math.sqrt(area * min(w, h) / (w * h)) * 2)
        sx, sy = max(x - niter, 0), max(y - niter, 0)
        ex, ey = min(x + w + niter + 1, textmap.shape[1]), min(y + h + niter + 1, textmap.shape[0])
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (1 + niter, 1 + niter))
        seg[sy:ey, sx:ex] = cv2.dilate(seg[sy:ey, sx:ex], kernel)
        ys, xs = np.where(seg != 0)
        pts = np.stack([xs, ys], axis=1).astype(np.int32)
        box = cv2.boxPoints(cv2.minAreaRect(pts))
        bw, bh = np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[1] - box[2])
        if abs(1 - max(bw, bh) / (min(bw, bh) + 1e-5)) <= 0.1:
            left, right, top, bottom = xs.min(), xs.max(), ys.min(), ys.max()
            box = np.array([[left, top], [right, top], [right, bottom], [left, bottom]], np.float32)
        out.append(np.roll(box, 4 - int(box.sum(axis=1).argmin()), 0))
    return out


def test_matches_full_map_reference_on_random_maps() -> None:
    rng = np.random.default_rng(7)
    text, link = _maps(96, 128)
    for _ in range(12):
        t, lk = _gauss_word(
            int(rng.integers(1, 6)),
            rng.uniform(0, 110),
            rng.uniform(0, 96),
            rng.uniform(6, 12),
            rng.uniform(1.5, 4.0),
            text.shape,
            curve=rng.uniform(-0.5, 0.5),
        )
        text, link = np.maximum(text, t * rng.uniform(0.6, 1.0)), np.maximum(link, lk * rng.uniform(0.3, 0.8))
    text = np.clip(text + rng.normal(0, 0.05, text.shape), 0, 1).astype(np.float32)
    boxes, _, _ = get_det_boxes(text, link)
    expected = _reference_boxes(text, link)
    assert len(boxes) == len(expected) > 3
    for got, want in zip(boxes, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_rejects_mismatched_maps() -> None:
    with pytest.raises(ValueError):
        get_det_boxes(np.zeros((4, 5), np.float32), np.zeros((5, 4), np.float32))


def test_adjust_result_coordinates() -> None:
    box = np.array([[10, 20], [30, 20], [30, 40], [10, 40]], np.float32)
    ratio = 0.5  # image was halved, heatmap is another /2
    out = adjust_result_coordinates([box, None], 1 / ratio, 1 / ratio)
    np.testing.assert_allclose(out[0], box * 4)
    assert out[1] is None and out[0].dtype == np.float32
    single = adjust_result_coordinates(box, 2.0, 3.0, ratio_net=2)
    np.testing.assert_allclose(single, box * np.array([4.0, 6.0]))
    np.testing.assert_allclose(box[0], [10, 20])  # input untouched


# -------------------------------------------------------------------------- thresholds


def test_thresholds_defaults_and_overrides() -> None:
    th = CraftThresholds()
    assert (th.text_threshold, th.link_threshold, th.low_text) == (0.7, 0.4, 0.4)
    assert (th.canvas_size, th.mag_ratio, th.poly, th.min_area) == (1280, 1.5, False, 10)
    other = th.replace(low_text=0.3, poly=True)
    assert other.low_text == 0.3 and other.poly and th.low_text == 0.4
    assert CraftThresholds.from_mapping({"canvas_size": 960}).canvas_size == 960
    with pytest.raises(dataclasses_frozen_error()):
        th.low_text = 0.1  # type: ignore[misc]


def dataclasses_frozen_error() -> type[Exception]:
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_thresholds_reject_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValueError, match="bogus.*text_treshold|text_treshold.*bogus"):
        CraftThresholds.from_mapping({"text_treshold": 0.5, "bogus": 1})
    for bad in (
        {"text_threshold": 1.5},
        {"low_text": -0.1},
        {"link_threshold": "0.4"},
        {"canvas_size": 16},
        {"canvas_size": 1280.0},
        {"mag_ratio": 0},
        {"mag_ratio": float("inf")},
        {"poly": 1},
        {"align_short_words": "yes"},
        {"min_area": -1},
        {"min_area": True},
    ):
        with pytest.raises(ValueError):
            CraftThresholds.from_mapping(bad)
    with pytest.raises(ValueError):
        CraftThresholds().replace(nope=1)


# ------------------------------------------------------------------------ preprocessing


def test_resize_page_to_canvas() -> None:
    img = np.full((1754, 1240, 3), 200, np.uint8)
    canvas, ratio, heatmap = resize_aspect_ratio(img, 1280, 1.5)
    assert ratio == pytest.approx(1280 / 1754)
    # 1754 * ratio = 1280, 1240 * ratio = 904.9 -> 904 (truncated), padded to 928 x 1280.
    assert canvas.shape == (1280, 928, 3) and canvas.dtype == np.float32
    assert heatmap == (464, 640)
    assert np.all(canvas[:, :904] == 200) and np.all(canvas[:, 904:] == 0)


def test_resize_truncates_and_pads_bottom_right() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (333, 1000, 3), dtype=np.uint8)
    canvas, ratio, heatmap = resize_aspect_ratio(img, 640, 1.5)
    assert ratio == pytest.approx(0.64)
    assert canvas.shape == (224, 640, 3)  # int(333 * 0.64) = 213 -> 224
    assert heatmap == (320, 112)
    expected = cv2.resize(img, (640, 213), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(canvas[:213], expected.astype(np.float32))
    assert np.all(canvas[213:] == 0)


def test_small_image_is_magnified() -> None:
    img = np.full((60, 100, 3), 7, np.uint8)
    canvas, ratio, heatmap = resize_aspect_ratio(img, 1280, 1.5)
    assert ratio == pytest.approx(1.5)
    assert canvas.shape == (96, 160, 3)  # 90 x 150 padded to 96 x 160
    assert heatmap == (80, 48)
    assert np.all(canvas[:90, :150] == 7) and np.all(canvas[90:] == 0) and np.all(canvas[:, 150:] == 0)


def test_multiple_of_32_unchanged_and_interpolation_flag() -> None:
    img = np.zeros((64, 128, 3), np.uint8)
    img[::2] = 255
    canvas, ratio, heatmap = resize_aspect_ratio(img, 128, 1.0, interpolation=cv2.INTER_NEAREST)
    assert ratio == 1.0 and canvas.shape == (64, 128, 3) and heatmap == (64, 32)
    np.testing.assert_array_equal(canvas, img.astype(np.float32))


def test_resize_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        resize_aspect_ratio(np.zeros((10, 10), np.uint8), 1280, 1.5)
    with pytest.raises(ValueError):
        resize_aspect_ratio(np.zeros((1, 5000, 3), np.uint8), 1280, 1.0)  # height truncates to 0


def test_normalisation_of_pad_and_white_pixels() -> None:
    img = np.zeros((2, 2, 3), np.float32)
    img[0, 0] = 255
    out = normalize_mean_variance(img)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[1, 1], [-2.117904, -2.035714, -1.804444], atol=1e-5)
    np.testing.assert_allclose(out[0, 0], [2.248908, 2.428571, 2.640000], atol=1e-5)
    assert np.all(img[1, 1] == 0)  # input untouched
    custom = normalize_mean_variance(np.full((1, 1, 3), 127.5, np.float32), mean=(0.5,) * 3, std=(0.5,) * 3)
    np.testing.assert_allclose(custom, 0.0, atol=1e-6)


def test_to_tensor_layout() -> None:
    img = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    t = to_tensor(img)
    assert tuple(t.shape) == (1, 3, 2, 3)
    assert t[0, 2, 1, 0].item() == img[1, 0, 2]


@pytest.mark.parametrize(("shape", "canvas", "mag"), [((1000, 754), 1920, 2.0), ((333, 1000), 640, 1.5),
                                                      ((60, 100), 1280, 1.5), ((64, 128), 128, 1.0)])
def test_canvas_tensor_equals_the_three_step_reference(shape, canvas, mag) -> None:
    """The predictor's one-pass pre-processing gives the same float32 values bit for bit as
    resize_aspect_ratio -> normalize_mean_variance -> to_tensor, in the same (plain) layout."""
    import torch

    from ocr_tasks.models.detection.preprocess import canvas_tensor

    rng = np.random.default_rng(sum(shape))
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    mean, std = (0.5, 0.45, 0.4), (0.2, 0.25, 0.3)
    ref_canvas, ref_ratio, ref_heat = resize_aspect_ratio(img, canvas, mag)
    reference = to_tensor(normalize_mean_variance(ref_canvas, mean, std))
    fast, ratio, heat = canvas_tensor(img, canvas, mag, mean, std)
    assert (ratio, heat) == (ref_ratio, ref_heat) and fast.shape == reference.shape
    assert fast.is_contiguous()
    assert torch.equal(fast, reference)
    # a float image takes the reference path (its resize is not rounded to uint8)
    as_float = img.astype(np.float32)
    float_reference = to_tensor(normalize_mean_variance(resize_aspect_ratio(as_float, canvas, mag)[0], mean, std))
    assert torch.equal(canvas_tensor(as_float, canvas, mag, mean, std)[0], float_reference)


def test_canvas_tensor_rejects_bad_input() -> None:
    from ocr_tasks.models.detection.preprocess import canvas_tensor

    with pytest.raises(ValueError, match="H x W x 3"):
        canvas_tensor(np.zeros((10, 10), np.uint8), 1280, 1.5)
    with pytest.raises(ValueError, match="collapses"):
        canvas_tensor(np.zeros((1, 5000, 3), np.uint8), 1280, 1.0)
    with pytest.raises(ValueError, match="positive"):
        canvas_tensor(np.zeros((10, 10, 3), np.uint8), 0, 1.5)
