"""Quad ordering, perspective crops, reading order, crop serialisation, document assembly."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ocr_tasks.crops import decode_crop, encode_crop
from ocr_tasks.geometry import crop_quad, order_quad, quad_size, reading_order
from ocr_tasks.pipeline import assemble_document


def rect(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)


@pytest.mark.parametrize("perm", [[0, 1, 2, 3], [2, 0, 3, 1], [3, 2, 1, 0], [1, 3, 0, 2]])
def test_order_quad_is_clockwise_from_top_left(perm):
    q = rect(10, 20, 50, 40)
    out = order_quad(q[perm])
    np.testing.assert_allclose(out, q)


def test_order_quad_rotated():
    center, angle = (100.0, 100.0), 20.0
    box = cv2.boxPoints((center, (80, 20), angle))
    out = order_quad(box)
    assert out[0].sum() == pytest.approx(box.sum(axis=1).min())
    # clockwise on screen: cross product of consecutive edges is positive with y down
    e1, e2 = out[1] - out[0], out[2] - out[1]
    assert e1[0] * e2[1] - e1[1] * e2[0] > 0


def test_axis_aligned_crop_is_exact():
    img = np.arange(100 * 120, dtype=np.uint32).reshape(100, 120).astype(np.uint8)
    crop = crop_quad(img, rect(10, 20, 50, 40))
    np.testing.assert_array_equal(crop, img[20:40, 10:50])


def test_rotated_crop_straightens_text_bar():
    img = np.full((200, 200), 255, np.uint8)
    box = cv2.boxPoints(((100.0, 100.0), (120, 30), 15.0))
    cv2.fillPoly(img, [box.astype(np.int32)], 0)
    crop = crop_quad(img, box)
    w, h = quad_size(order_quad(box))
    assert crop.shape == (round(h), round(w))
    inner = crop[3:-3, 3:-3]
    assert inner.mean() < 10  # the whole straightened bar is ink


def test_vertical_crop_is_turned_upright():
    img = np.zeros((300, 100), np.uint8)
    crop = crop_quad(img, rect(10, 10, 30, 200))
    assert crop.shape[1] > crop.shape[0]
    assert crop_quad(img, rect(10, 10, 30, 200), upright=False).shape == (190, 20)


def test_crop_clips_to_image():
    img = np.zeros((50, 50), np.uint8)
    assert crop_quad(img, rect(-10, -10, 20, 20)).shape == (20, 20)


def test_reading_order_lines_and_columns():
    quads = [
        rect(200, 12, 260, 32),  # line 1, word 3 (after a big gap -> own piece)
        rect(10, 10, 60, 30),  # line 1, word 1
        rect(70, 11, 120, 31),  # line 1, word 2
        rect(10, 60, 60, 80),  # line 2
        rect(12, 110, 50, 128),  # line 3
    ]
    assert reading_order(quads) == [[1, 2], [0], [3], [4]]
    assert reading_order([]) == []


def test_reading_order_slanted_line_stays_one_line():
    quads = [rect(10 + 60 * i, 10 + 3 * i, 60 + 60 * i, 30 + 3 * i) for i in range(6)]
    assert reading_order(quads[::-1]) == [[5, 4, 3, 2, 1, 0]]  # reversed input, leftmost first


@pytest.mark.parametrize("shape", [(7, 13), (5, 9, 3), (1, 1)])
def test_crop_roundtrip(shape):
    arr = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    payload = encode_crop(arr)
    assert isinstance(payload["data"], bytes) and len(payload["data"]) == arr.size
    np.testing.assert_array_equal(decode_crop(payload), arr)


@pytest.mark.parametrize(
    "payload",
    [{}, {"shape": [2, 2], "data": b"abc"}, {"shape": [0, 2], "data": b""}, {"shape": [2, 2], "data": "abcd"},
     {"shape": [2, 2, 4], "data": b"0" * 16}],
)
def test_decode_crop_rejects_malformed(payload):
    with pytest.raises(ValueError):
        decode_crop(payload)


def test_encode_crop_rejects_bad_arrays():
    with pytest.raises(ValueError):
        encode_crop(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError):
        encode_crop(np.zeros((0, 3), np.uint8))


def test_assemble_document_orders_words_and_lines():
    quads = [rect(70, 10, 120, 30), rect(10, 10, 60, 30), rect(10, 60, 60, 80), rect(70, 60, 90, 80)]
    rec = [("world", 0.9), ("hello", 0.8), ("second", 0.7), ("", 0.1)]
    doc = assemble_document(quads, rec, 200, 100, {"total": 1.0})
    d = doc.to_dict()
    assert [w["text"] for w in d["words"]] == ["hello", "world", "second"]
    assert d["lines"] == [
        {"text": "hello world", "word_indices": [0, 1]},
        {"text": "second", "word_indices": [2]},
    ]
    assert d["text"] == "hello world\nsecond"
    assert d["width"] == 200 and d["height"] == 100 and d["timings"] == {"total": 1.0}
    assert d["words"][0]["quad"] == [[10.0, 10.0], [60.0, 10.0], [60.0, 30.0], [10.0, 30.0]]
    with pytest.raises(ValueError):
        assemble_document(quads, rec[:2], 1, 1)


class _FakeRecognizer:
    """Reads a crop as 'up' when its top-left pixel is dark, else 'down' with low confidence."""

    def predict(self, crops):
        return [("up", 0.9) if c[0, 0] < 128 else ("down", 0.2) for c in crops]


def test_read_crops_tries_both_ways_for_vertical_text():
    from ocr_tasks.pipeline import read_crops

    dark_bottom_right = np.full((10, 40), 255, np.uint8)
    dark_bottom_right[-1, -1] = 0
    plain = np.full((10, 40), 255, np.uint8)
    out = read_crops(_FakeRecognizer(), [dark_bottom_right, plain], [True, False])
    assert out == [("up", 0.9), ("down", 0.2)]
    with pytest.raises(ValueError):
        read_crops(_FakeRecognizer(), [plain], [True, False])
