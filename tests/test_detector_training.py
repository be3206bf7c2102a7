"""Detector training: CRAFT targets, OHEM loss, a tiny training run, resume, tuning, CLI wiring."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ocr_tasks.training.craft_targets import (
    affinity_quads,
    align_char_quads,
    craft_targets,
    gaussian_template,
    render_gaussians,
    word_targets,
)


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def rotated(cx: float, cy: float, w: float, h: float, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    u, v = np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])
    c = np.array([cx, cy])
    return np.array(
        [
            c - u * w / 2 - v * h / 2,
            c + u * w / 2 - v * h / 2,
            c + u * w / 2 + v * h / 2,
            c - u * w / 2 + v * h / 2,
        ]
    )


# -- targets ---------------------------------------------------------------------------------


def test_gaussian_template_peak_and_edges():
    t = gaussian_template(64)
    assert t.shape == (64, 64) and t.dtype == np.float32
    assert t.max() > 0.99 and t[31:33, 31:33].min() > 0.99
    assert t[0, 0] < 0.01 and t[0, 32] < 0.12


def test_axis_aligned_char_peak_at_centre_zero_outside():
    region = render_gaussians(rect(20, 10, 40, 40)[None], (60, 80))
    assert region.max() == pytest.approx(1.0, abs=0.01)
    iy, ix = np.unravel_index(region.argmax(), region.shape)
    assert abs(ix + 0.5 - 30) <= 1 and abs(iy + 0.5 - 25) <= 1
    outside = np.ones_like(region, bool)
    outside[10:40, 20:40] = False
    assert region[outside].max() == 0.0
    # Falls off towards the box edges.
    assert region[25, 21] < 0.2 and region[11, 30] < 0.2


def test_affinity_between_neighbours_not_inside_lone_char():
    chars = np.stack([rect(10, 10, 30, 40), rect(32, 10, 52, 40)])
    lone = rect(70, 10, 90, 40)[None]
    region, affinity = word_targets([chars, lone], (60, 100), scale=1.0)
    # Region peaks inside every character, including the lone one.
    assert region[25, 20] > 0.95 and region[25, 42] > 0.95 and region[25, 80] > 0.95
    # Affinity peaks on the gap between the two neighbours...
    assert affinity[25, 31] > 0.9
    assert affinity.max() == pytest.approx(affinity[20:30, 28:35].max())
    # ... and is zero on the lone character and far from the pair.
    assert affinity[:, 60:].max() == 0.0
    assert affinity[25, 12] == 0.0
    # The affinity box corners are the centroids of the top/bottom triangles.
    box = affinity_quads(chars)[0]
    np.testing.assert_allclose(box[0], [(10 + 30 + 20) / 3, (10 + 10 + 25) / 3])
    np.testing.assert_allclose(box[1], [(32 + 52 + 42) / 3, (10 + 10 + 25) / 3])
    np.testing.assert_allclose(box[2], [(52 + 32 + 42) / 3, (40 + 40 + 25) / 3])


def test_rotated_box_follows_its_orientation():
    quad = rotated(50, 50, 60, 12, 45)
    region = render_gaussians(quad[None], (100, 100))
    assert region[49:51, 49:51].max() > 0.98
    along = region[int(50 + 15 / math.sqrt(2)), int(50 + 15 / math.sqrt(2))]  # 15 px along the long axis
    across = region[int(50 + 15 / math.sqrt(2)), int(50 - 15 / math.sqrt(2))]  # 15 px across (outside)
    assert along > 0.3 and across == 0.0


def test_half_resolution_scale_and_offset():
    chars = np.stack([rect(40, 20, 60, 60), rect(64, 20, 84, 60)])
    full_r, _ = word_targets([chars], (80, 120), scale=1.0)
    half_r, half_a = word_targets([chars], (40, 60), scale=0.5)
    (fy, fx), (hy, hx) = (np.unravel_index(m.argmax(), m.shape) for m in (full_r, half_r))
    assert abs((hx + 0.5) * 2 - (fx + 0.5)) <= 2 and abs((hy + 0.5) * 2 - (fy + 0.5)) <= 2
    assert half_r.max() > 0.95 and half_a.max() > 0.9
    assert half_r[:, :19].max() == 0.0 and half_r[:, 43:].max() == 0.0
    # A crop offset (map coordinates) shifts the maps.
    crop_r, _ = word_targets([chars], (40, 60), scale=0.5, offset=(10, 4))
    np.testing.assert_allclose(crop_r[:30, :40], half_r[4:34, 10:50], atol=1e-6)


def test_vertical_word_links_along_the_vertical():
    # Bottom-to-top word: characters stacked upwards, quads in text-frame order (TL = page BL).
    chars = []
    for k in range(3):
        y1 = 90 - k * 22
        x0, y0, x1 = 20, y1 - 20, 44
        chars.append(np.array([[x0, y1], [x0, y0], [x1, y0], [x1, y1]], np.float64))
    chars = np.stack(chars)
    _, affinity = word_targets([chars], (100, 70), scale=1.0)
    # Links sit on the gaps between vertically stacked characters, not beside them.
    assert affinity[69, 32] > 0.9 and affinity[47, 32] > 0.9
    assert affinity[:, :20].max() == 0.0 and affinity[:, 45:].max() == 0.0
    # Same result when the character quads come in page order (TL, TR, BR, BL on the page).
    page_order = np.stack([rect(20, 90 - k * 22 - 20, 44, 90 - k * 22) for k in range(3)])
    _, affinity2 = word_targets([page_order], (100, 70), scale=1.0)
    np.testing.assert_allclose(affinity2, affinity, atol=1e-5)
    aligned = align_char_quads(page_order)
    assert np.allclose(aligned[0, 1] - aligned[0, 0], [0, -20])  # first edge points up (reading direction)


def test_craft_targets_on_a_synthetic_page():
    from ocr_tasks.training.synth import render_page

    page = render_page(np.random.default_rng(3), 360, 460)
    t = craft_targets(page.words, (230, 180), scale=0.5)
    assert t.region.shape == (230, 180) and t.affinity.shape == (230, 180)
    assert t.region.max() > 0.95 and 0.0 <= t.region.min() and t.affinity.max() <= 1.0
    assert t.word_quads.shape == (len(page.words), 4, 2)
    np.testing.assert_allclose(t.word_quads[0], page.words[0].quad * 0.5, atol=1e-4)


# -- loss and training -----------------------------------------------------------------------


def test_ohem_mse_counts_positives_and_hard_negatives():
    from ocr_tasks.training.detector import ohem_mse

    target = torch.zeros(1, 10, 10)
    target[0, :2, :5] = 1.0  # 10 positives
    pred = torch.zeros(1, 10, 10)
    pred[0, 5:, :] = 0.5  # 50 negatives with loss 0.25, 40 with 0
    loss = ohem_mse(pred, target)
    # positives: mean 1.0; hardest 30 negatives: all 0.25
    assert float(loss) == pytest.approx(1.25)
    none = ohem_mse(pred, torch.zeros(1, 10, 10), min_negatives=50)
    assert float(none) == pytest.approx(0.25)


def test_overfit_one_batch_loss_decreases():
    from ocr_tasks.models.detection.light import LightCRAFT
    from ocr_tasks.training.detector import _render_training_page, detector_loss, page_samples

    image, chars = _render_training_page(11, (300, 380))
    samples = page_samples(image, chars, np.random.default_rng(0), crop=128, count=3)
    x = torch.from_numpy(np.stack([s[0] for s in samples]))
    t = torch.from_numpy(np.stack([s[1] for s in samples]))
    assert x.shape == (3, 3, 128, 128) and t.shape == (3, 2, 64, 64) and float(t.max()) > 0.9
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = LightCRAFT(width=0.5)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        losses = []
        for _ in range(25):
            y, _ = model(x)
            loss, _parts = detector_loss(y, t)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    finally:
        torch.set_num_threads(threads)
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3]), losses


def _tiny_config(out: Path, steps: int):
    from ocr_tasks.training.detector import DetectorTrainConfig

    return DetectorTrainConfig(
        out_dir=str(out),
        steps=steps,
        batch_size=2,
        crop=128,
        crops_per_page=2,
        workers=0,
        val_pages=1,
        val_every=2,
        ckpt_every=2,
        threads=1,
        page_size=(300, 380),
        warmup=2,
        shuffle_buffer=2,
        options={"width": 0.5},
    )


def test_tiny_run_resumes_and_tunes(tmp_path):
    from ocr_tasks.training.detector import train_detector
    from ocr_tasks.training.detector_tune import TuneGrid, format_table, tune_detector

    threads = torch.get_num_threads()
    try:
        first = train_detector(_tiny_config(tmp_path, 3), progress=False)
        assert first["step"] == 3 and len(first["losses"]) == 3
        ckpt = torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=False)
        assert ckpt["step"] == 3 and ckpt["pages_done"] >= 1 and set(ckpt) >= {"model", "optimizer", "best"}
        config = json.loads((tmp_path / "config.json").read_text())
        assert config["spec_options"] == {"width": 0.5}
        second = train_detector(_tiny_config(tmp_path, 5), progress=False)
        assert second["step"] == 5 and len(second["losses"]) == 2  # continued, not restarted
        assert second["pages_done"] >= first["pages_done"]
        ckpt = torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=False)
        assert ckpt["step"] == 5
        log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
        assert [e["step"] for e in log] == [2, 3, 4, 5]
        assert all(0.0 <= e["hmean"] <= 1.0 for e in log)
        assert (tmp_path / "best.pth").is_file()

        grid = TuneGrid((0.6,), (0.4,), (0.35, 0.4), (256,), (1.0,), top_sizes=1)
        result = tune_detector(tmp_path, pages=1, grid=grid, threads=1, progress=False, page_size=(300, 380))
    finally:
        torch.set_num_threads(threads)
    tuned = json.loads((tmp_path / "thresholds.json").read_text())
    # the searched settings, plus align_short_words and split_link carried over from the registry entry
    assert set(tuned) == {
        "text_threshold", "link_threshold", "low_text", "canvas_size", "mag_ratio", "align_short_words", "split_link"
    }
    assert tuned["align_short_words"] is True
    assert tuned["split_link"] == 0.35
    assert tuned["canvas_size"] == 256 and len(result["table"]) == 1 + 2
    assert "s/page" in format_table(result["table"])
    assert result["pick"] == "best" and result["tolerance"] == 0.0
    assert result["pixels_per_page"] == 256 * 202  # the 300x380 page resized to 202x256


def _row(canvas, hmean, n_gt=1000, link=0.1):
    return {"canvas_size": canvas, "link_threshold": link, "hmean": hmean, "n_gt": n_gt,
            "pixels_per_page": canvas * canvas * 0.75, "s_per_page": canvas / 1e4}


def test_choose_setting_best_and_one_standard_error_rule():
    from ocr_tasks.training.detector_tune import choose_setting

    table = [_row(1920, 0.900), _row(1600, 0.895, link=0.1), _row(1600, 0.896, link=0.2), _row(1280, 0.880)]
    row, tol = choose_setting(table, "best")
    assert (row["canvas_size"], tol) == (1920, 0.0)
    # one standard error of 0.9 over 1,000 words is 0.0095: 1600 is within it, 1280 is not;
    # at 1600 the better threshold (link 0.2) is taken
    row, tol = choose_setting(table, "1se")
    assert abs(tol - (0.9 * 0.1 / 1000) ** 0.5) < 1e-12
    assert (row["canvas_size"], row["link_threshold"]) == (1600, 0.2)
    # with ten times the words the margin shrinks to 0.003 and only the best size remains
    big = [{**r, "n_gt": 10000} for r in table]
    assert choose_setting(big, "1se")[0]["canvas_size"] == 1920
    # equal H-mean: the smaller input wins under both rules
    tie = [_row(1920, 0.9), _row(1600, 0.9)]
    assert choose_setting(tie, "best")[0]["canvas_size"] == 1600
    with pytest.raises(ValueError, match="unknown pick rule 'fast'"):
        choose_setting(table, "fast")
    with pytest.raises(ValueError, match="no tuning results"):
        choose_setting([], "1se")


def test_non_finite_detector_steps_are_skipped_and_a_diverged_run_stops(tmp_path, monkeypatch):
    """The detector trainer shares the recognizer's guard: a step whose loss is NaN changes
    neither weights nor BatchNorm statistics (checkpoints stay finite), is counted in
    log.jsonl and its batch saved; MAX_BAD_STEPS of them in a row stop the run."""
    from ocr_tasks.training import detector

    real_loss = detector.detector_loss
    calls = {"n": 0}

    def sometimes_nan(*args, **kwargs):
        calls["n"] += 1
        loss, part = real_loss(*args, **kwargs)
        return (loss * float("nan"), part) if calls["n"] % 2 == 0 else (loss, part)

    threads = torch.get_num_threads()
    try:
        monkeypatch.setattr(detector, "detector_loss", sometimes_nan)
        result = detector.train_detector(_tiny_config(tmp_path / "run", 4), progress=False)
        assert result["step"] == 4 and len(result["losses"]) == 2  # steps 2 and 4 skipped
        ckpt = torch.load(tmp_path / "run" / "last.pt", map_location="cpu", weights_only=False)
        assert all(torch.isfinite(v.float()).all() for v in ckpt["model"].values() if v.is_floating_point())
        log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
        assert [e["skipped_steps"] for e in log] == [1, 2]
        dumps = sorted((tmp_path / "run" / "nonfinite").glob("step*.pt"))
        assert [d.name for d in dumps] == ["step1.pt", "step3.pt"]
        batch = torch.load(dumps[0], weights_only=False)
        assert batch["images"].shape[0] == batch["targets"].shape[0] == 2 and batch["step"] == 1

        monkeypatch.setattr(detector, "detector_loss", lambda *a, **k: (real_loss(*a, **k)[0] * float("nan"), {}))
        monkeypatch.setattr(detector, "MAX_BAD_STEPS", 3)
        with pytest.raises(FloatingPointError, match="3 training steps in a row"):
            detector.train_detector(_tiny_config(tmp_path / "diverged", 6), progress=False)
        ckpt = torch.load(tmp_path / "diverged" / "last.pt", map_location="cpu", weights_only=False)
        assert ckpt["step"] == 2  # the checkpoint of the skipped steps holds the initial, finite weights
        assert all(torch.isfinite(v.float()).all() for v in ckpt["model"].values() if v.is_floating_point())
    finally:
        torch.set_num_threads(threads)


def test_cli_registers_detector_targets():
    from ocr_tasks.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "detector", "--steps", "7", "--crop", "256", "--device", "cpu"])
    assert args.steps == 7 and args.crop == 256 and args.out == "runs/detector"
    args = parser.parse_args(["train", "tune-detector", "runs/x", "--pages", "3", "--canvas", "1024,1280"])
    assert args.run_dir == "runs/x" and args.pages == 3 and args.canvas == (1024, 1280)
    assert args.pick == "best"
    assert parser.parse_args(["train", "tune-detector", "runs/x", "--pick", "1se"]).pick == "1se"
