"""Recognizer training: a tiny run learns (loss falls), checkpoints resume, export installs weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ocr_tasks.training.recognizer import RecognizerTrainConfig, train_recognizer

TINY = {"output_channel": 64, "hidden_size": 32}


def tiny_config(tmp_path, steps: int) -> RecognizerTrainConfig:
    return RecognizerTrainConfig(
        out_dir=str(tmp_path / "run"),
        steps=steps,
        batch_size=16,
        lr=3e-3,
        warmup=5,
        workers=0,
        val_crops=40,
        val_every=10,
        ckpt_every=10,
        threads=2,
        options=TINY,
    )


def test_tiny_training_run_loss_decreases_and_resumes(tmp_path):
    torch.manual_seed(0)
    result = train_recognizer(tiny_config(tmp_path, 30), progress=False)
    losses = result["losses"]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses
    run = tmp_path / "run"
    assert (run / "last.pt").is_file() and (run / "best.pth").is_file()
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [10, 20, 30]
    assert all(0.0 <= e["word_acc"] <= 1.0 for e in log)
    # Resume: a longer run continues from step 30 instead of starting over.
    resumed = train_recognizer(tiny_config(tmp_path, 35), progress=False)
    assert resumed["step"] == 35 and len(resumed["losses"]) == 5


def test_export_installs_weights_and_registers_sha(tmp_path, monkeypatch):
    from ocr_tasks.models import registry
    from ocr_tasks.training import export

    train_recognizer(tiny_config(tmp_path, 2), progress=False)
    monkeypatch.setattr(export, "BUNDLED_DIR", tmp_path / "bundled")
    info = export.export_weights("recognizer", tmp_path / "run" / "best.pth")
    meta = json.loads((tmp_path / "bundled" / "bundled.json").read_text())["crnn_light"]
    assert meta["sha256"] == info["sha256"] and meta["options"]["output_channel"] == 64
    state = torch.load(tmp_path / "bundled" / "crnn_light.pth", weights_only=True)
    assert all(v.dtype in (torch.float16, torch.int64) for v in state.values())
    assert registry.get_spec("crnn_light").filename == "crnn_light.pth"
    # the int8 ONNX Runtime export is made from the exported (fp16) weights and registered
    int8 = meta["int8"]
    assert {k: info["int8"][k] for k in int8} == int8 and int8["weights_sha256"] == info["sha256"] and int8["calibration"]["crops"] > 100
    data = (tmp_path / "bundled" / int8["filename"]).read_bytes()
    import hashlib

    assert hashlib.sha256(data).hexdigest() == int8["sha256"]
    from ocr_tasks.models.onnx_runtime import OnnxRecognizer
    from ocr_tasks.models.recognition.network import RecognitionModel, RecognizerOptions

    tiny = RecognitionModel(RecognizerOptions(**meta["options"])).eval()
    rec = OnnxRecognizer(tiny, (32, 400), threads=1, int8=(tmp_path / "bundled" / int8["filename"], int8["sha256"]))
    assert rec.precision == "int8" and tuple(rec(torch.zeros(2, 1, 32, 96)).shape)[::2] == (2, 95)
    from ocr_tasks.errors import WeightsMismatch

    with pytest.raises(WeightsMismatch):  # recognizer weights offered as the detector
        export.export_weights("detector", tmp_path / "run" / "best.pth")


def test_learning_rate_warms_up_again_after_a_resume_without_optimiser_state() -> None:
    from ocr_tasks.training.common import warmup_cosine_lr

    lr, warmup, steps = 1e-3, 100, 1000
    assert warmup_cosine_lr(0, lr, warmup, steps) == pytest.approx(1e-5)
    assert warmup_cosine_lr(99, lr, warmup, steps) == pytest.approx(lr)
    assert warmup_cosine_lr(999, lr, warmup, steps) == pytest.approx(0.02 * lr, rel=1e-3)
    plain = warmup_cosine_lr(500, lr, warmup, steps)
    # resumed from a slim checkpoint at step 500: fresh Adam moments start small, back to plain in `warmup`
    assert warmup_cosine_lr(500, lr, warmup, steps, fresh_from=500) == pytest.approx(plain / warmup)
    assert warmup_cosine_lr(550, lr, warmup, steps, fresh_from=500) < warmup_cosine_lr(550, lr, warmup, steps)
    assert warmup_cosine_lr(600, lr, warmup, steps, fresh_from=500) == warmup_cosine_lr(600, lr, warmup, steps)


def test_cosine_from_restarts_the_schedule_inside_a_resumed_run() -> None:
    """--cosine-from S: warmup and the whole cosine fit in [S, steps), peak lr to 2% of it."""
    from ocr_tasks.training.common import warmup_cosine_lr

    lr, warmup, steps, start = 4e-4, 200, 116_000, 107_000
    assert warmup_cosine_lr(start, lr, warmup, steps, cosine_from=start) == pytest.approx(lr / warmup)
    assert warmup_cosine_lr(start + warmup - 1, lr, warmup, steps, cosine_from=start) == pytest.approx(lr)
    middle = warmup_cosine_lr(start + warmup + (steps - start - warmup) // 2, lr, warmup, steps, cosine_from=start)
    assert middle == pytest.approx(lr * (0.02 + 0.49), rel=1e-3)
    assert warmup_cosine_lr(steps - 1, lr, warmup, steps, cosine_from=start) == pytest.approx(0.02 * lr, rel=1e-2)
    # without it the same continuation would run along the cosine's flat tail at ~3% of lr
    assert warmup_cosine_lr(start, lr, warmup, steps) < 0.04 * lr
    assert warmup_cosine_lr(5, lr, warmup, steps, cosine_from=0) == warmup_cosine_lr(5, lr, warmup, steps)


def test_cosine_from_must_be_below_steps(capsys: pytest.CaptureFixture[str]) -> None:
    from ocr_tasks.cli import main

    assert main(["train", "recognizer", "--steps", "10", "--cosine-from", "10", "--out", "unused"]) == 2
    assert "--cosine-from (10) must be below --steps (10)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "recognizer", "--steps", "0"], "--steps must be >= 1"),
        (["train", "recognizer", "--lr", "0"], "--lr must be > 0"),
        (["train", "recognizer", "--batch-size", "many"], "--batch-size must be an integer"),
        (["train", "recognizer", "--val-crops", "0"], "--val-crops must be >= 1"),
        (["train", "recognizer", "--reuse", "0"], "--reuse must be >= 1"),
        (["train", "detector", "--workers", "-1"], "--workers must be >= 0"),
        (["train", "detector", "--crops-per-page", "0"], "--crops-per-page must be >= 1"),
        (["train", "detector", "--crop", "100"], "--crop must be a multiple of 32"),
        (["train", "detector", "--width", "0"], "--width must be > 0"),
        (["train", "detector", "--options", "[1]"], "--options must be a JSON object, got list"),
        (["train", "recognizer", "--options", "{bad"], "--options must be a JSON object: Expecting property name"),
        (["train", "tune-detector", "runs/x", "--text", "0.5,abc"], "--text must be a number, got 'abc'"),
        (["train", "tune-detector", "runs/x", "--link", "0"], "--link must be > 0"),
        (["train", "tune-detector", "runs/x", "--canvas", "10"], "--canvas must be >= 32"),
        (["train", "tune-detector", "runs/x", "--mag", ","], "--mag needs at least one value"),
        (["train", "tune-detector", "runs/x", "--pages", "0"], "--pages must be >= 1"),
        (["train", "tune-detector", "runs/x", "--top-sizes", "0"], "--top-sizes must be >= 1"),
        (["train", "tune-detector", "runs/x", "--threads", "-2"], "--threads must be >= 0"),
    ],
)
def test_train_commands_name_a_bad_value(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from ocr_tasks.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_both_trainers_share_the_run_arguments() -> None:
    from ocr_tasks.cli import build_parser

    parser = build_parser()
    for target, out in (("recognizer", "runs/recognizer"), ("detector", "runs/detector")):
        args = parser.parse_args(["train", target, "--steps", "7", "--warmup", "3", "--threads", "1", "--device", "cpu"])
        assert (args.steps, args.warmup, args.threads, args.out) == (7, 3, 1, out)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "recognizer", "--options", '{"hiden_size": 96}'], "unknown recognizer option(s): hiden_size"),
        (["train", "recognizer", "--options", '{"hidden_size": 0}'], "invalid hidden_size=0"),
        (["train", "detector", "--options", '{"depth": 3}'], "unknown LightCRAFT option(s) ['depth']"),
    ],
)
def test_train_commands_refuse_bad_architecture_options_before_training(
    argv: list[str], message: str, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ocr_tasks.cli import main

    out = tmp_path / "run"
    assert main([*argv, "--out", str(out), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "--options" in err and message in err
    assert not out.exists()  # refused before a run directory or any training


def test_tune_grid_values_are_parsed_to_tuples() -> None:
    from ocr_tasks.cli import build_parser

    args = build_parser().parse_args(
        ["train", "tune-detector", "runs/x", "--text", "0.6, 0.7", "--canvas", "1280,1920", "--mag", "1.5"]
    )
    assert (args.text, args.canvas, args.mag) == ((0.6, 0.7), (1280, 1920), (1.5,))
    assert isinstance(args.link, tuple) and args.link  # the default grid, parsed by the same type


def test_slim_checkpoint_keeps_second_moments_and_resumes_without_rewarming(tmp_path, capsys):
    """`ocr-pipeline train slim`: fp16 weights + bf16 second moments; a resumption from it keeps
    Adam's step count (the moments were restored) instead of starting the optimiser over."""
    from ocr_tasks.cli import main

    torch.manual_seed(0)
    train_recognizer(tiny_config(tmp_path, 6), progress=False)
    run = tmp_path / "run"
    full = torch.load(run / "last.pt", weights_only=False)
    slim_path, bare_path = tmp_path / "slim.pt", tmp_path / "bare.pt"
    capsys.readouterr()  # the training's validation lines
    assert main(["train", "slim", str(run / "last.pt"), str(slim_path)]) == 0
    assert json.loads(capsys.readouterr().out)["moments"] is True
    assert main(["train", "slim", str(run / "last.pt"), str(bare_path), "--weights-only"]) == 0
    slim = torch.load(slim_path, weights_only=False)
    bare = torch.load(bare_path, weights_only=False)
    assert slim["step"] == 6 and "optimizer" not in slim and "optimizer_slim" not in bare
    assert all(v.dtype == torch.float16 for v in slim["model"].values() if v.is_floating_point())
    state = slim["optimizer_slim"]["state"]
    assert set(state) == set(full["optimizer"]["state"]) and all(s["exp_avg_sq"].dtype == torch.bfloat16 for s in state.values())
    assert slim_path.stat().st_size < 0.5 * (run / "last.pt").stat().st_size
    assert bare_path.stat().st_size < slim_path.stat().st_size

    for source, adam_steps in ((slim_path, 8), (bare_path, 2)):
        (run / "last.pt").write_bytes(source.read_bytes())
        result = train_recognizer(tiny_config(tmp_path, 8), progress=False)
        assert result["step"] == 8
        resumed = torch.load(run / "last.pt", weights_only=False)["optimizer"]["state"]
        assert {int(s["step"]) for s in resumed.values()} == {adam_steps}, source.name


def test_slim_command_names_a_bad_checkpoint(tmp_path, capsys):
    from ocr_tasks.cli import main

    assert main(["train", "slim", str(tmp_path / "missing.pt"), str(tmp_path / "out.pt")]) != 0
    assert "checkpoint not found" in capsys.readouterr().err
    junk = tmp_path / "junk.pt"
    torch.save({"weights": 1}, junk)
    assert main(["train", "slim", str(junk), str(tmp_path / "out.pt")]) != 0
    assert "not a training checkpoint" in capsys.readouterr().err


def test_reused_crops_come_back_in_later_batches(monkeypatch) -> None:
    """--reuse 2: every rendered crop is yielded exactly twice, its repeat at least the recycle
    delay later, and reuse 1 yields each once (the stream of earlier runs)."""
    from ocr_tasks.training import recognizer

    def fake_page(seed: int, charset: set[str]) -> list[tuple[np.ndarray, str]]:
        return [(np.full((8, 8), seed % 256, np.uint8), f"{seed}-{i}") for i in range(10)]

    monkeypatch.setattr(recognizer, "_page_crops", fake_page)
    for reuse in (1, 2, 3):
        stream = recognizer.SynthCropStream(0, "x", shuffle_buffer=16, reuse=reuse, recycle_delay=40)
        it = iter(stream)
        seen = [next(it)[1] for _ in range(600 * reuse)]
        first = {}
        counts: dict[str, int] = {}
        for pos, text in enumerate(seen):
            counts[text] = counts.get(text, 0) + 1
            if text in first and counts[text] == 2:
                assert pos - first[text] > 40, (text, pos, first[text])
            first.setdefault(text, pos)
        # all crops of the early pages have come back the full number of times, none more
        early = [f"{p}-{i}" for p in range(20) for i in range(10)]
        assert all(counts.get(t) == reuse for t in early), reuse
        assert max(counts.values()) == reuse
    with pytest.raises(ValueError, match="reuse"):
        recognizer.SynthCropStream(0, "x", reuse=0)


def test_non_finite_steps_are_skipped_and_a_diverged_run_stops(tmp_path, monkeypatch):
    """A step whose loss is NaN changes neither weights nor BatchNorm statistics, so the
    checkpoints stay finite (a bf16 step once wrote NaN weights into every later checkpoint);
    MAX_BAD_STEPS such steps in a row stop the run with an error naming the problem."""
    from ocr_tasks.training import recognizer

    real_loss = recognizer._loss
    calls = {"n": 0}

    def sometimes_nan(*args, **kwargs):
        calls["n"] += 1
        loss = real_loss(*args, **kwargs)
        return loss * float("nan") if calls["n"] % 3 == 0 else loss

    monkeypatch.setattr(recognizer, "_loss", sometimes_nan)
    result = train_recognizer(tiny_config(tmp_path, 12), progress=False)
    assert result["step"] == 12 and len(result["losses"]) == 8  # 4 of 12 steps skipped
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert all(torch.isfinite(v.float()).all() for v in ckpt["model"].values() if v.is_floating_point())
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["skipped_steps"] == 4 and log[-1]["word_acc"] >= 0.0
    dumps = sorted((tmp_path / "run" / "nonfinite").glob("step*.pt"))
    assert len(dumps) == 4
    batch = torch.load(dumps[0], weights_only=False)
    assert batch["images"].shape[0] == len(batch["texts"]) and batch["images"].shape[2] == 32

    monkeypatch.setattr(recognizer, "_loss", lambda *a, **k: real_loss(*a, **k) * float("nan"))
    monkeypatch.setattr(recognizer, "MAX_BAD_STEPS", 5)
    with pytest.raises(FloatingPointError, match="5 training steps in a row"):
        train_recognizer(tiny_config(tmp_path / "diverged", 20), progress=False)
    assert not (tmp_path / "diverged" / "run" / "last.pt").exists()  # stopped before any checkpoint
