"""ocr-pipeline eval: metrics, words.jsonl reading, engines, the CLI (no trained weights needed)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from ocr_tasks.cli import build_parser, main
from ocr_tasks.evaluation.cli import format_table, run_evaluation
from ocr_tasks.evaluation.dataset import DatasetError, count_pages, crop_word, read_dataset
from ocr_tasks.evaluation.engines import OursEngine, TesseractEngine, TesseractNotFound, parse_tesseract_tsv
from ocr_tasks.evaluation.metrics import (
    DetectionCounts,
    EndToEndCounts,
    RecognitionCounts,
    evaluate_detection,
    evaluate_end_to_end,
    evaluate_recognition,
    iou,
    match_boxes,
    to_box,
    total,
)

HAS_TESSERACT = shutil.which("tesseract") is not None
needs_tesseract = pytest.mark.skipif(not HAS_TESSERACT, reason="tesseract binary not installed (tesseract-ocr)")


def quad(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


# --------------------------------------------------------------------------- metrics


def test_detection_errors_classify_each_word():
    from ocr_tasks.evaluation.metrics import detection_errors

    gts = [
        (0, 0, 25, 10), (30, 0, 55, 10), (60, 0, 80, 10),  # three words in one box: merged
        (0, 20, 100, 30),                   # cut in two halves: split
        (0, 40, 40, 50),                    # a box of a quarter of its area: misaligned
        (0, 60, 40, 70),                    # found: matched
        (200, 200, 240, 210),               # nothing there: missed
    ]
    preds = [(0, 0, 80, 10), (0, 20, 48, 30), (52, 20, 100, 30), (0, 40, 20, 45), (1, 60, 40, 70)]
    assert detection_errors(preds, gts) == {"matched": 1, "merged": 3, "split": 1, "misaligned": 1, "missed": 1}
    assert detection_errors([], gts)["missed"] == 7
    assert detection_errors(preds, []) == dict.fromkeys(("matched", "merged", "split", "misaligned", "missed"), 0)


def test_iou_basics():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 0, 10), (0, 0, 0, 10)) == 0.0  # degenerate


def test_perfect_match():
    gts = [(0, 0, 10, 10), (20, 0, 40, 10), (0, 20, 30, 30)]
    counts = evaluate_detection([quad(*b) for b in gts], gts)
    assert counts == DetectionCounts(tp=3, n_pred=3, n_gt=3)
    assert counts.precision == counts.recall == counts.hmean == 1.0


def test_shift_below_threshold_is_a_miss():
    gt = (0, 0, 20, 10)
    ok = (4, 0, 24, 10)  # IoU 16/24 = 0.667
    bad = (8, 0, 28, 10)  # IoU 12/28 = 0.43
    assert iou(ok, gt) >= 0.5 > iou(bad, gt)
    assert evaluate_detection([ok], [gt]).tp == 1
    miss = evaluate_detection([bad], [gt])
    assert (miss.tp, miss.precision, miss.recall, miss.hmean) == (0, 0.0, 0.0, 0.0)


def test_duplicates_match_one_to_one():
    gt = [(0, 0, 20, 10)]
    preds = [(0, 0, 20, 10), (1, 0, 20, 10), (0, 0, 19, 10)]
    assert match_boxes(preds, gt) == [(0, 0)]  # highest IoU wins, the others stay unmatched
    counts = evaluate_detection(preds, gt)
    assert counts == DetectionCounts(tp=1, n_pred=3, n_gt=1)
    assert counts.precision == pytest.approx(1 / 3) and counts.recall == 1.0
    # one prediction over two ground truths: still one match
    assert evaluate_detection([(0, 0, 20, 10)], [(0, 0, 20, 10), (1, 0, 20, 10)]).tp == 1


def test_greedy_prefers_highest_iou_pair():
    gts = [(0, 0, 10, 10), (2, 0, 12, 10)]
    preds = [(1, 0, 11, 10), (2, 0, 12, 10)]
    # pred 1 == gt 1 exactly (IoU 1) is taken first; pred 0 then gets gt 0 (IoU 9/11)
    assert sorted(match_boxes(preds, gts)) == [(0, 0), (1, 1)]


def test_rotated_quad_is_reduced_to_its_aabb():
    # a diamond inscribed in the GT box: polygon IoU would be 0.5 of the area, AABB IoU is 1
    diamond = [[10, 0], [20, 10], [10, 20], [0, 10]]
    assert to_box(diamond) == (0.0, 0.0, 20.0, 20.0)
    assert evaluate_detection([diamond], [(0, 0, 20, 20)]).tp == 1
    # a rotated rectangle whose AABB is much larger than the GT: no match
    tilted = [[0, 10], [30, 0], [34, 12], [4, 22]]
    assert to_box(tilted) == (0.0, 0.0, 34.0, 22.0)
    assert evaluate_detection([tilted], [(5, 5, 29, 15)]).tp == 0


def test_to_box_rejects_garbage():
    with pytest.raises(ValueError):
        to_box([1, 2, 3])


def test_counts_are_summed_over_images_not_averaged():
    # image A: 1 GT, found; image B: 9 GT, 1 found (+1 false positive)
    a = evaluate_detection([(0, 0, 10, 10)], [(0, 0, 10, 10)])
    b_gts = [(20 * i, 0, 20 * i + 10, 10) for i in range(9)]
    b = evaluate_detection([(0, 0, 10, 10), (500, 500, 510, 510)], b_gts)
    summed = total([a, b], DetectionCounts())
    assert summed == DetectionCounts(tp=2, n_pred=3, n_gt=10)
    assert summed.recall == pytest.approx(0.2)
    assert summed.precision == pytest.approx(2 / 3)
    averaged_recall = (a.recall + b.recall) / 2  # (1 + 1/9) / 2 = 0.556: what we must not report
    assert summed.recall != pytest.approx(averaged_recall)


def test_end_to_end_exact_and_caseless():
    gts = [((0, 0, 10, 10), "Invoice"), ((20, 0, 30, 10), "TO:"), ((40, 0, 50, 10), "Date")]
    preds = [
        (quad(0, 0, 10, 10), "Invoice"),  # exact
        (quad(20, 0, 30, 10), "to:"),  # caseless only
        (quad(40, 0, 50, 10), "Date."),  # punctuation differs: wrong in both
        (quad(90, 0, 99, 10), "extra"),  # unmatched
    ]
    c = evaluate_end_to_end(preds, gts)
    assert c == EndToEndCounts(tp=1, tp_caseless=2, matched=3, n_pred=4, n_gt=3)
    assert c.precision == pytest.approx(1 / 4) and c.recall == pytest.approx(1 / 3)
    assert c.f1 == pytest.approx(2 * (1 / 4) * (1 / 3) / (1 / 4 + 1 / 3))
    assert c.f1_caseless == pytest.approx(2 * (2 / 4) * (2 / 3) / (2 / 4 + 2 / 3))
    assert c.detection == DetectionCounts(tp=3, n_pred=4, n_gt=3)
    d = c.to_dict()
    assert d["tp"] == 1 and d["f1_caseless"] == pytest.approx(c.f1_caseless)


def test_end_to_end_text_only_counts_on_matched_pairs():
    # right text at the wrong place is not a hit
    c = evaluate_end_to_end([(quad(100, 100, 110, 110), "Invoice")], [((0, 0, 10, 10), "Invoice")])
    assert c.tp == c.tp_caseless == c.matched == 0


def test_recognition_accuracy():
    c = evaluate_recognition(["Invoice", "total", "1989", ""], ["Invoice", "Total", "1989.", "x"])
    assert c == RecognitionCounts(n=4, correct=1, correct_caseless=2)
    assert c.accuracy == 0.25 and c.accuracy_caseless == 0.5
    assert (c + c).to_dict()["n"] == 8
    with pytest.raises(ValueError):
        evaluate_recognition(["a"], [])


def test_empty_inputs_give_zero_ratios():
    c = evaluate_detection([], [])
    assert (c.precision, c.recall, c.hmean) == (0.0, 0.0, 0.0)
    assert EndToEndCounts().f1 == 0.0 and RecognitionCounts().accuracy == 0.0


# --------------------------------------------------------------------------- dataset


def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype("DejaVuSans.ttf", px)
    except OSError:
        return ImageFont.load_default(size=px)


def _ink_box(img: Image.Image, xy: tuple[int, int], text: str, font) -> tuple[int, int, int, int]:
    mask = Image.new("L", img.size, 0)
    ImageDraw.Draw(mask).text(xy, text, font=font, fill=255)
    ys, xs = np.nonzero(np.asarray(mask) > 100)
    ImageDraw.Draw(img).text(xy, text, font=font, fill=0)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """Two pages, words.jsonl in the FUNSD flattened format (one blank word to be skipped)."""
    (tmp_path / "images").mkdir()
    font = _font(32)
    lines = []
    for name, words in (("a", ["Invoice", "Total"]), ("b", ["Date"])):
        img = Image.new("L", (320 + len(words), 200), 255)
        entries = [
            {"box": list(_ink_box(img, (20, 20 + 70 * i), w, font)), "text": w} for i, w in enumerate(words)
        ]
        entries.append({"box": [1, 1, 5, 5], "text": "  "})
        img.save(tmp_path / "images" / f"{name}.png")
        lines.append(json.dumps({"image": f"images/{name}.png", "width": img.width, "height": 200, "words": entries}))
    (tmp_path / "words.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_read_dataset(tiny_dataset: Path):
    pages = list(read_dataset(tiny_dataset))
    assert len(pages) == 2 and count_pages(tiny_dataset) == 2
    a, b = pages
    assert a.image_path == (tiny_dataset / "images" / "a.png").resolve()
    assert (a.width, a.height) == (322, 200)
    assert [w.text for w in a.words] == ["Invoice", "Total"]  # blank word skipped
    assert [w.text for w in b.words] == ["Date"]
    rgb = a.load_rgb()
    assert rgb.shape == (200, 322, 3) and rgb.dtype == np.uint8
    crops = a.gt_crops()
    x0, y0, x1, y1 = a.words[0].box
    assert crops[0].shape == (y1 - y0, x1 - x0)  # exactly the box, no padding
    np.testing.assert_array_equal(crops[0], rgb[y0:y1, x0:x1, 0])
    assert [p.words[0].text for p in read_dataset(tiny_dataset, limit=1)] == ["Invoice"]
    assert count_pages(tiny_dataset, limit=1) == 1


def test_crop_word_exact_and_clipped():
    gray = np.arange(50 * 60, dtype=np.uint32).reshape(50, 60).astype(np.uint8)
    np.testing.assert_array_equal(crop_word(gray, (10, 5, 30, 15)), gray[5:15, 10:30])
    assert crop_word(gray, (55, 45, 80, 70)).shape == (5, 5)  # clipped to the page
    assert crop_word(gray, (3, 3, 3, 3)).shape == (1, 1)  # empty box: one pixel
    tall = crop_word(gray, (0, 0, 4, 40))  # vertical text is turned upright like the pipeline does
    assert tall.shape == (4, 40)
    assert crop_word(gray, (0, 0, 4, 40), upright=False).shape == (40, 4)


def test_dataset_errors(tmp_path: Path):
    with pytest.raises(DatasetError, match="words.jsonl"):
        list(read_dataset(tmp_path))
    (tmp_path / "words.jsonl").write_text('{"image": "x.png", "width": 1}\n')
    with pytest.raises(DatasetError, match=":1"):
        list(read_dataset(tmp_path))


# --------------------------------------------------------------------------- engines


class FakeEngine:
    """An 'ours'-like engine that answers from the ground truth of ``current`` (set by the test)."""

    name = "ours"

    def __init__(self):
        self.current = None

    def recognize(self, crops):
        return [("Invoice" if i == 0 else "wrong", 0.9) for i in range(len(crops))]

    def detect(self, image):
        return [quad(*w.box) for w in self.current.words]

    def ocr(self, image):
        return [(quad(*w.box), w.text.lower()) for w in self.current.words]


def test_run_evaluation_with_fake_engine(tiny_dataset: Path):
    pages = list(read_dataset(tiny_dataset))
    engine = FakeEngine()

    def each():
        for p in pages:
            engine.current = p
            yield p

    (e2e,) = run_evaluation([engine], each(), "e2e")
    assert e2e.pages == 2
    assert e2e.detection == DetectionCounts(tp=3, n_pred=3, n_gt=3)
    assert (e2e.e2e.tp, e2e.e2e.tp_caseless) == (0, 3)
    (rec,) = run_evaluation([engine], each(), "recognition")
    assert rec.recognition == RecognitionCounts(n=3, correct=1, correct_caseless=1)  # "Invoice" on page a
    assert rec.units == 3
    (det,) = run_evaluation([engine], each(), "detection")
    assert det.detection.hmean == 1.0 and det.e2e is None
    table = format_table([e2e, e2e])
    assert "det H-mean" in table and "e2e F1 caseless" in table and "seconds per page" in table
    assert json.loads(json.dumps(e2e.to_dict()))["e2e"]["tp_caseless"] == 3


def test_ours_engine_with_injected_predictors():
    from ocr_tasks.schemas import DetectedBox

    class Det:
        def detect(self, image, thresholds=None):
            return [DetectedBox(quad=quad(60, 10, 90, 20), score=0.9), DetectedBox(quad=quad(10, 10, 50, 20), score=0.8)]

    class Rec:
        def predict(self, crops):
            return [(f"w{c.shape[1]}", 0.5) for c in crops]

    engine = OursEngine(detection=Det(), recognition=Rec())
    image = np.full((40, 100, 3), 255, np.uint8)
    assert len(engine.detect(image)) == 2
    assert [t for _, t in engine.ocr(image)] == ["w40", "w30"]  # reading order
    assert engine.recognize([np.zeros((10, 7), np.uint8)]) == [("w7", 0.5)]
    assert engine.recognize([]) == []


def test_parse_tesseract_tsv():
    tsv = (
        "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n"
        "1\t1\t0\t0\t0\t0\t0\t0\t100\t50\t-1\t\n"
        "5\t1\t1\t1\t1\t1\t10\t5\t30\t12\t91.5\tTO:\n"
        "5\t1\t1\t1\t1\t2\t50\t5\t4\t12\t10.0\t \n"
        "5\t2\t1\t1\t1\t1\t1\t2\t3\t4\t80\tx\n"
    )
    words = parse_tesseract_tsv(tsv)
    assert [(w["page"], w["box"], w["text"]) for w in words] == [(1, (10, 5, 40, 17), "TO:"), (2, (1, 2, 4, 6), "x")]


def test_tesseract_missing_binary_names_the_package():
    with pytest.raises(TesseractNotFound, match="apt-get install -y tesseract-ocr"):
        TesseractEngine(binary="no-such-tesseract-binary")


def _render_word(text: str, px: int = 40) -> np.ndarray:
    img = Image.new("L", (40 + px * len(text), 2 * px + 40), 255)
    x0, y0, x1, y1 = _ink_box(img, (20, 20), text, _font(px))
    return np.asarray(img)[y0:y1, x0:x1]  # the tight crop, as the recognition task cuts it


@needs_tesseract
def test_tesseract_reads_a_clean_word():
    engine = TesseractEngine()
    (text, conf), (text2, _) = engine.recognize([_render_word("Invoice"), _render_word("Total")])
    assert text == "Invoice" and text2 == "Total"
    assert 0.0 < conf <= 1.0


@needs_tesseract
def test_tesseract_page_and_cli(tiny_dataset: Path, tmp_path: Path, capsys):
    page = next(read_dataset(tiny_dataset))
    words = TesseractEngine().ocr(page.load_rgb())
    assert {t for _, t in words} == {"Invoice", "Total"}
    out = tmp_path / "out" / "eval.json"
    rc = main(["eval", str(tiny_dataset), "--engine", "tesseract", "--json", str(out), "--no-progress", "--limit", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "tesseract" in printed and "e2e F1 exact" in printed
    result = json.loads(out.read_text())["results"][0]
    assert result["engine"] == "tesseract" and result["detection"]["tp"] == 2 and result["e2e"]["tp"] == 2


def test_cli_registration_and_bad_engine(tiny_dataset: Path, capsys):
    args = build_parser().parse_args(["eval", "DIR", "--engine", "ours,tesseract", "--task", "recognition"])
    assert (args.engine, args.task, args.json, args.limit) == ("ours,tesseract", "recognition", None, None)
    assert build_parser().parse_args(["eval", "DIR"]).task == "e2e"
    assert main(["eval", str(tiny_dataset), "--engine", "ours,abbyy", "--no-progress"]) == 2
    assert "abbyy" in capsys.readouterr().err
    assert main(["eval", str(tiny_dataset / "nope"), "--engine", "tesseract", "--no-progress"]) == 2


@needs_tesseract
def test_cli_ours_and_tesseract_side_by_side(tiny_dataset: Path, tmp_path: Path, capsys):
    """Both engines on the same pages in one run; ours with random weights (only the plumbing)."""
    import torch

    from ocr_tasks.models.factory import build_model, clear_cache
    from ocr_tasks.models.registry import get_spec
    from ocr_tasks.models.weights import save_state_dict

    torch.manual_seed(0)
    model_dir = tmp_path / "weights"
    model_dir.mkdir()
    for name in ("craft_light", "crnn_light"):
        spec = get_spec(name)
        save_state_dict(build_model(spec), model_dir / spec.filename)
    clear_cache()
    out = tmp_path / "both.json"
    argv = ["eval", str(tiny_dataset), "--engine", "ours,tesseract", "--model-dir", str(model_dir)]
    argv += ["--device", "cpu", "--json", str(out), "--no-progress", "--detector", "craft_light"]
    try:
        assert main([*argv, "--recognizer", "crnn_light"]) == 0
    finally:
        clear_cache()
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header == ["engine", "ours", "tesseract"]
    results = json.loads(out.read_text())["results"]
    assert [r["engine"] for r in results] == ["ours", "tesseract"]
    assert all(r["detection"]["n_gt"] == 3 and r["e2e"]["n_gt"] == 3 for r in results)
    assert results[0]["engine_info"]["detector"] == "craft_light"
