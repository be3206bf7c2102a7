"""Label converters (encode, greedy decode, confidence) and recognizer pre-processing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from ocr_tasks.models.recognition.converter import (
    CHARSET_CASE_INSENSITIVE,
    CHARSET_CASE_SENSITIVE,
    AttnLabelConverter,
    CTCLabelConverter,
    make_converter,
)
from ocr_tasks.models.recognition.preprocess import (
    batch_ladder,
    keep_ratio_batches,
    keep_ratio_width,
    official_input,
    to_gray,
    width_ladder,
)


def _logits(rows: list[list[tuple[int, float]]], num_class: int) -> torch.Tensor:
    """B x T x C logits whose softmax puts probability p on class k at each step (k, p)."""
    out = torch.empty(len(rows), len(rows[0]), num_class, dtype=torch.float64)
    for b, row in enumerate(rows):
        for t, (k, p) in enumerate(row):
            rest = (1 - p) / (num_class - 1)
            probs = torch.full((num_class,), rest, dtype=torch.float64)
            probs[k] = p
            out[b, t] = probs.log()
    return out.float()


# ------------------------------------------------------------------------------------------------
# charsets and factory
# ------------------------------------------------------------------------------------------------


def test_charsets() -> None:
    assert len(CHARSET_CASE_INSENSITIVE) == 36
    assert len(CHARSET_CASE_SENSITIVE) == 94
    assert CHARSET_CASE_SENSITIVE.startswith("0123456789abc") and " " not in CHARSET_CASE_SENSITIVE
    assert CTCLabelConverter(CHARSET_CASE_INSENSITIVE).num_class == 37
    assert AttnLabelConverter(CHARSET_CASE_INSENSITIVE).num_class == 38
    assert AttnLabelConverter(CHARSET_CASE_SENSITIVE).num_class == 96
    assert isinstance(make_converter("CTC", "ab"), CTCLabelConverter)
    assert isinstance(make_converter("attn", "ab"), AttnLabelConverter)
    with pytest.raises(ValueError, match="prediction"):
        make_converter("beam", "ab")
    with pytest.raises(ValueError, match="duplicate"):
        CTCLabelConverter("abca")


# ------------------------------------------------------------------------------------------------
# CTC
# ------------------------------------------------------------------------------------------------


def test_ctc_greedy_collapses_repeats_and_blank_separates_doubles() -> None:
    conv = CTCLabelConverter("helo")  # h=1 e=2 l=3 o=4, blank=0
    steps = [(1, 0.9), (1, 0.8), (2, 0.7), (3, 0.95), (3, 0.6), (0, 0.5), (3, 0.9), (0, 0.99), (4, 0.85)]
    row2 = [(0, 0.9)] * 9
    (text, conf), (empty, conf2) = conv.decode_greedy(_logits([steps, row2], conv.num_class))
    assert text == "hello"
    assert conf == pytest.approx(math.prod(p for _, p in steps), rel=1e-5)
    assert empty == "" and conf2 == pytest.approx(0.9**9, rel=1e-5)


def test_ctc_encode_and_round_trip() -> None:
    for charset, words in (
        (CHARSET_CASE_INSENSITIVE, ["hello", "a1b2", "", "zz9"]),
        (CHARSET_CASE_SENSITIVE, ["Hello!", "x{y}z", "[s]", "~`"]),
    ):
        conv = CTCLabelConverter(charset)
        targets, lengths = conv.encode(words)
        assert targets.dtype == torch.long and targets.dim() == 1
        assert lengths.tolist() == [len(w) for w in words]
        assert targets.tolist() == [charset.index(c) + 1 for w in words for c in w]
        # best-path sequences: each label char, blank between (so doubles survive)
        seqs = []
        for w in words:
            seq = []
            for c in w:
                seq += [charset.index(c) + 1, 0]
            seqs.append(seq + [0] * (2 * max(map(len, words)) - len(seq)))
        logits = _logits([[(k, 0.9) for k in s] for s in seqs], conv.num_class)
        assert [t for t, _ in conv.decode_greedy(logits)] == words


def test_ctc_unknown_characters() -> None:
    conv = CTCLabelConverter(CHARSET_CASE_INSENSITIVE)
    with pytest.raises(ValueError, match=r"'H'.*' '|' '.*'H'"):
        conv.encode(["Hello world"])
    assert conv.unknown_characters("Hi there") == [" ", "H"]
    assert conv.filter_unknown("Hi there") == "ithere"
    with pytest.raises(ValueError, match="logits"):
        conv.decode_greedy(torch.zeros(1, 5, 12))


def test_ctc_loss_accepts_encoding() -> None:
    conv = CTCLabelConverter("abc")
    targets, lengths = conv.encode(["ab", "c", "aa"])
    log_probs = torch.randn(6, 3, conv.num_class).log_softmax(2)  # T x B x C
    loss = torch.nn.CTCLoss(blank=0)(log_probs, targets, torch.full((3,), 6), lengths)
    assert torch.isfinite(loss)


# ------------------------------------------------------------------------------------------------
# Attention
# ------------------------------------------------------------------------------------------------


def test_attn_encode_layout() -> None:
    conv = AttnLabelConverter("abc")  # [GO]=0 [s]=1 a=2 b=3 c=4
    tokens, lengths = conv.encode(["ab", "", "cab"], batch_max_length=4)
    assert tokens.tolist() == [[0, 2, 3, 1, 0, 0], [0, 1, 0, 0, 0, 0], [0, 4, 2, 3, 1, 0]]
    assert lengths.tolist() == [3, 1, 4]
    with pytest.raises(ValueError, match="batch_max_length"):
        conv.encode(["abcab"], batch_max_length=4)
    with pytest.raises(ValueError, match="'d'"):
        conv.encode(["abd"])


def test_attn_decode_cut_at_eos_and_confidence() -> None:
    conv = AttnLabelConverter("abc")
    row = [(2, 0.9), (3, 0.8), (4, 0.7), (1, 0.6), (2, 0.99), (0, 0.5)]
    ((text, conf),) = conv.decode(_logits([row], conv.num_class))
    assert text == "abc"
    assert conf == pytest.approx(0.9 * 0.8 * 0.7, rel=1e-5)  # [s] and later steps not counted


def test_attn_decode_without_eos_quirk() -> None:
    conv = AttnLabelConverter("abc")
    row = [(2, 0.9), (3, 0.8), (4, 0.7), (2, 0.6)]
    ((text, conf),) = conv.decode(_logits([row], conv.num_class))
    # official: find("[s]") == -1 drops the last character and the last probability
    assert text == "abc"
    assert conf == pytest.approx(0.9 * 0.8 * 0.7, rel=1e-5)


def test_attn_decode_empty_and_go_token() -> None:
    conv = AttnLabelConverter("abc")
    empty = [(1, 0.9), (2, 0.8), (1, 0.9)]
    go = [(2, 0.9), (0, 0.8), (1, 0.7), (3, 0.6), (3, 0.5), (3, 0.4), (3, 0.3), (3, 0.2)]
    ((t1, c1),) = conv.decode(_logits([empty], conv.num_class))
    ((t2, c2),) = conv.decode(_logits([go], conv.num_class))
    assert (t1, c1) == ("", 0.0)
    # "a[GO][s]...": the cut is at character offset 5, so 5 step probabilities are kept (official)
    assert t2 == "a[GO]"
    assert c2 == pytest.approx(0.9 * 0.8 * 0.7 * 0.6 * 0.5, rel=1e-5)


def test_attn_round_trip_both_charsets() -> None:
    for charset, words in (
        (CHARSET_CASE_INSENSITIVE, ["hello", "w0rld", "x"]),
        (CHARSET_CASE_SENSITIVE, ["Hello,", "World!", "a+b=c"]),
    ):
        conv = AttnLabelConverter(charset)
        tokens, _ = conv.encode(words, batch_max_length=25)
        targets = tokens[:, 1:]  # what the decoder should emit: label, [s], padding
        logits = _logits([[(int(k), 0.95) for k in row] for row in targets], conv.num_class)
        assert [t for t, _ in conv.decode(logits)] == words


# ------------------------------------------------------------------------------------------------
# pre-processing
# ------------------------------------------------------------------------------------------------


def test_to_gray_matches_pil_luma() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (7, 11, 3), dtype=np.uint8)
    gray = to_gray(rgb)
    assert gray.mode == "L" and gray.size == (11, 7)
    assert np.array_equal(np.asarray(gray), np.asarray(Image.fromarray(rgb).convert("L")))
    assert np.array_equal(np.asarray(to_gray(rgb[:, :, 0])), rgb[:, :, 0])
    with pytest.raises(ValueError, match="zero-size"):
        to_gray(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        to_gray(np.zeros((4, 5), np.float32))


def test_official_input_shape_and_range() -> None:
    rng = np.random.default_rng(1)
    crops = [rng.integers(0, 256, (20, 70, 3), dtype=np.uint8), np.zeros((50, 9), np.uint8)]
    crops.append(np.full((10, 10, 3), 255, np.uint8))
    batch = official_input(crops)
    assert batch.shape == (3, 1, 32, 100) and batch.dtype == torch.float32
    assert batch.min() >= -1 and batch.max() <= 1
    assert torch.all(batch[1] == -1) and torch.all(batch[2] == 1)
    expected = np.array(Image.fromarray(crops[0]).convert("L").resize((100, 32), Image.BICUBIC))
    assert torch.allclose(batch[0, 0], (torch.from_numpy(expected).float() / 255 - 0.5) / 0.5)
    assert official_input([]).shape == (0, 1, 32, 100)
    with pytest.raises(ValueError, match="crop 1"):
        official_input([crops[0], np.zeros((3, 0), np.uint8)])


def test_keep_ratio_width() -> None:
    assert keep_ratio_width(32, 100) == 100
    assert keep_ratio_width(16, 50) == 100  # exact ratio: no float round-up
    assert keep_ratio_width(30, 100) == 107  # ceil(106.67)
    assert keep_ratio_width(64, 10) == 16  # min_w
    assert keep_ratio_width(10, 1000, max_w=400) == 400
    with pytest.raises(ValueError, match="zero-size"):
        keep_ratio_width(0, 10)


def test_keep_ratio_batches_grouping_and_padding() -> None:
    rng = np.random.default_rng(2)
    sizes = [(32, 100), (16, 30), (40, 300), (32, 8), (20, 200), (32, 101), (64, 64), (10, 1000), (32, 96)]
    crops = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    groups = keep_ratio_batches(crops, max_batch=2, max_w=400)
    seen = sorted(i for indices, _ in groups for i in indices)
    assert seen == list(range(len(crops)))
    for indices, batch in groups:
        assert 1 <= len(indices) <= 2
        assert batch.shape[:3] == (len(indices), 1, 32) and batch.shape[3] % 8 == 0
        for row, index in enumerate(indices):
            h, w = sizes[index]
            content_w = keep_ratio_width(h, w, 32, 16, 400)
            gray = to_gray(crops[index]).resize((content_w, 32), Image.BICUBIC)
            expected = (torch.from_numpy(np.array(gray)).float() / 255 - 0.5) / 0.5
            assert torch.allclose(batch[row, 0, :, :content_w], expected)
            pad = batch[row, 0, :, content_w:]
            assert torch.equal(pad, expected[:, -1:].expand_as(pad))  # replicated last column


def test_keep_ratio_batches_groups_similar_widths() -> None:
    crops = [np.zeros((32, w), np.uint8) for w in (100, 20, 104, 300, 24, 98)]
    groups = keep_ratio_batches(crops, max_batch=64)
    assert [sorted(i) for i, _ in groups] == [[1, 4], [0, 2, 5], [3]]
    assert [b.shape[3] for _, b in groups] == [24, 104, 304]
    assert keep_ratio_batches([]) == []
    with pytest.raises(ValueError, match="crop 2.*zero-size"):
        keep_ratio_batches([crops[0], crops[1], np.zeros((0, 0), np.uint8)])


def test_shape_ladders() -> None:
    widths = width_ladder(16, 400)
    assert widths[0] == 16 and widths[-1] == 400 and len(widths) == 18
    assert all(w % 8 == 0 for w in widths) and widths == sorted(set(widths))
    assert all(b <= max(a + 8, a * 1.15 + 8) for a, b in zip(widths, widths[1:]))
    assert width_ladder(16, 20) == [16, 20]
    assert batch_ladder(256) == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert batch_ladder(100) == [1, 2, 4, 8, 16, 32, 64, 100]
    assert batch_ladder(1) == [1]
    with pytest.raises(ValueError):
        width_ladder(16, 400, growth=1.0)
    with pytest.raises(ValueError):
        batch_ladder(0)


def test_keep_ratio_batches_with_fixed_shapes() -> None:
    rng = np.random.default_rng(5)
    sizes = [(32, int(w)) for w in rng.integers(10, 900, 300)] + [(20, 30)] * 3
    crops = [rng.integers(0, 256, size, dtype=np.uint8) for size in sizes]
    widths, counts = width_ladder(16, 400), batch_ladder(64)
    free = {i: b[r] for idx, b in keep_ratio_batches(crops, max_batch=64) for r, i in enumerate(idx)}
    batches = keep_ratio_batches(crops, max_batch=64, widths=widths, batch_sizes=counts)
    seen = sorted(i for indices, _ in batches for i in indices)
    assert seen == list(range(len(crops)))
    padded_rows = 0
    for indices, batch in batches:
        assert batch.shape[3] in widths and batch.shape[0] in counts and batch.shape[0] >= len(indices)
        assert batch.shape[0] <= 1.25 * len(indices) or batch.shape[0] == 1
        padded_rows += batch.shape[0] - len(indices)
        for row, index in enumerate(indices):
            content = keep_ratio_width(*sizes[index], 32, 16, 400)
            assert torch.equal(batch[row, :, :, :content], free[index][:, :, :content])
            pad = batch[row, 0, :, content:]
            assert torch.equal(pad, batch[row, 0, :, content - 1 : content].expand_as(pad))
        for row in range(len(indices), batch.shape[0]):  # padding rows repeat the last real one
            assert torch.equal(batch[row], batch[len(indices) - 1])
    assert padded_rows > 0  # the case is exercised
    with pytest.raises(ValueError, match="widths"):
        keep_ratio_batches(crops, widths=[16, 32])  # does not reach max_w
    with pytest.raises(ValueError, match="batch_sizes"):
        keep_ratio_batches(crops, max_batch=64, batch_sizes=[2, 4])  # no 1
    with pytest.raises(ValueError, match="batch_sizes"):
        keep_ratio_batches(crops, max_batch=64, batch_sizes=[1, 128])  # above max_batch
