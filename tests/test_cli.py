"""The CLI end to end on rendered pages, with checkpoints written into OCR_MODEL_DIR."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ocr_tasks.cli import main
from ocr_tasks.models.factory import build_model, clear_cache
from ocr_tasks.models.registry import get_spec
from ocr_tasks.models.weights import save_state_dict
from tests.conftest import ROOT, random_state_from_manifest, render_text_page, save_legacy


@pytest.fixture()
def light_model_dir(tmp_path: Path) -> Path:
    """Random-initialised light detector + recognizer (readable text needs trained weights)."""
    import torch

    torch.manual_seed(0)
    for name in ("craft_light", "crnn_light"):
        spec = get_spec(name)
        save_state_dict(build_model(spec), tmp_path / spec.filename)
    clear_cache()
    return tmp_path


@pytest.fixture()
def page_png(tmp_path: Path) -> Path:
    path = tmp_path / "page.png"
    Image.fromarray(render_text_page(["Invoice", "No.", "12345", "Total:", "$42.00"])).save(path)
    return path


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ocr_tasks", *args], capture_output=True, text=True, env=full_env, cwd=ROOT,
        timeout=300,
    )


def test_ocr_json_schema_subprocess(light_model_dir, page_png):
    proc = run_cli("ocr", str(page_png), "--json", env={"OCR_MODEL_DIR": str(light_model_dir)})
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) >= {"words", "lines", "text", "width", "height", "timings"}
    assert (doc["width"], doc["height"]) == (640, 480)
    for w in doc["words"]:
        assert len(w["quad"]) == 4 and all(len(p) == 2 for p in w["quad"])
        assert isinstance(w["text"], str) and 0.0 <= w["confidence"] <= 1.0
    covered = sorted(i for ln in doc["lines"] for i in ln["word_indices"])
    assert covered == list(range(len(doc["words"])))
    assert {"detect", "recognize", "total"} <= set(doc["timings"])


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF"])
def test_ocr_reads_common_formats(light_model_dir, tmp_path, capsys, fmt):
    path = tmp_path / f"page.{fmt.lower()}"
    Image.fromarray(render_text_page(["hello"])).convert("L").save(path, format=fmt)
    assert main(["ocr", str(path), "--json", "--model-dir", str(light_model_dir)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["width"] == 640


def test_ocr_bad_file_is_named_and_exit_nonzero(light_model_dir, tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("this is text, not a PNG")
    code = main(["ocr", str(bad), "--model-dir", str(light_model_dir)])
    err = capsys.readouterr().err
    assert code == 1 and "notes.png" in err and "not a recognised image" in err


def test_missing_weights_message(tmp_path, page_png, capsys):
    clear_cache()
    code = main(["ocr", str(page_png), "--model-dir", str(tmp_path), "--detector", "craft_mlt_25k"])
    err = capsys.readouterr().err
    assert code == 2 and "craft_mlt_25k.pth" in err and "OCR_MODEL_DIR" in err


def test_recognize_json_one_result_per_input(light_model_dir, tmp_path, capsys):
    paths = []
    for i, width in enumerate((40, 120, 300)):
        p = tmp_path / f"crop{i}.png"
        Image.fromarray(np.full((32, width), 255, np.uint8)).save(p)
        paths.append(str(p))
    assert main(["recognize", *paths, "--json", "--model-dir", str(light_model_dir)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["results"]) == 3
    assert all(set(r) == {"text", "confidence"} for r in out["results"])


def test_detect_with_threshold_override(light_model_dir, page_png, capsys):
    assert main(["detect", str(page_png), "--json", "--low-text", "0.99", "--text-threshold", "0.999",
                 "--model-dir", str(light_model_dir)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "boxes" in out


@pytest.mark.parametrize(
    ("flags", "words"),
    [(["--split-link", "2"], ["--split-link", "[0, 1]"]), (["--link-threshold", "-1"], ["--link-threshold"]),
     (["--canvas-size", "8"], ["--canvas-size", "32"])],
)
def test_bad_threshold_flags_are_a_clear_error(flags, words, capsys):
    assert main(["detect", "page.png", *flags]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for word in words:
        assert word in err


@pytest.mark.parametrize(
    ("flags", "words"),
    [(["--percentile", "101"], ["--percentile must be <= 100.0"]),
     (["--percentile", "50"], ["--percentile must be >= 90.0"]),
     (["--calibration", "kl"], ["--calibration", "minmax", "percentile", "entropy"]),
     (["--pages", "0"], ["--pages must be >= 1"])],
)
def test_bad_quantize_flags_are_a_clear_error(flags, words, capsys):
    """Nothing is quantized (and the shipped int8 file is untouched) on a bad flag."""
    with pytest.raises(SystemExit) as exc:
        main(["quantize", *flags])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for word in words:
        assert word in err


@pytest.mark.parametrize(
    ("flags", "expected"),
    [([], {}), (["--align-short-words"], {"align_short_words": True}),
     (["--no-align-short-words"], {"align_short_words": False}),
     (["--split-link", "0.35"], {"split_link": 0.35})],
)
def test_align_short_words_flag(flags, expected):
    from ocr_tasks.cli import _threshold_overrides, build_parser

    for command in ("ocr", "detect"):
        args = build_parser().parse_args([command, "page.png", *flags])
        assert _threshold_overrides(args) == expected


def _official_dir(manifests, tmp_path: Path, names: list[str]) -> Path:
    for i, name in enumerate(names):
        save_legacy(random_state_from_manifest(manifests[name], seed=i), tmp_path / f"{name}.pth")
    clear_cache()
    return tmp_path


@pytest.mark.parametrize(
    "recognizer",
    [
        "None-VGG-None-CTC",
        "None-VGG-BiLSTM-CTC",
        "None-ResNet-None-CTC",
        "TPS-ResNet-BiLSTM-CTC",
        "TPS-ResNet-BiLSTM-Attn",
        "TPS-ResNet-BiLSTM-Attn-case-sensitive",
    ],
)
def test_official_recognizer_checkpoints_through_cli(recognizer, manifests, tmp_path, capsys):
    (tmp_path / "models").mkdir()
    model_dir = _official_dir(manifests, tmp_path / "models", [recognizer])
    crop = tmp_path / "w.png"
    Image.fromarray(render_text_page(["word"], size=(120, 48), font_px=24)).save(crop)
    assert main(["recognize", str(crop), "--json", "--recognizer", recognizer, "--model-dir", str(model_dir)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["results"]) == 1 and 0.0 <= out["results"][0]["confidence"] <= 1.0


def test_official_craft_refiner_and_recognizer_through_cli(manifests, tmp_path):
    (tmp_path / "models").mkdir()
    model_dir = _official_dir(
        manifests, tmp_path / "models", ["craft_mlt_25k", "craft_ic15_20k", "craft_refiner_CTW1500", "None-VGG-None-CTC"]
    )
    page = tmp_path / "p.png"
    Image.fromarray(render_text_page(["a", "b"], size=(200, 120))).save(page)
    env = {"OCR_MODEL_DIR": str(model_dir)}
    proc = run_cli("ocr", str(page), "--json", "--detector", "craft_mlt_25k", "--refiner", "craft_refiner_CTW1500",
                   "--recognizer", "None-VGG-None-CTC", "--canvas-size", "256", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["width"] == 200
    proc = run_cli("detect", str(page), "--json", "--detector", "craft_ic15_20k", "--canvas-size", "256", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "boxes" in json.loads(proc.stdout)


def test_models_load_fills_the_export_cache_and_says_what_runs_each(tmp_path):
    """`models --load` loads the bundled defaults once: on a CPU both run on ONNX Runtime, whose
    fp32 exports land in OCR_CACHE_DIR (the recognizer in int8 on VNNI CPUs, from its shipped
    file); OCR_PRECISION=fp32 exports both; OCR_RUNTIME=torch keeps torch."""
    cache = tmp_path / "cache"
    env = {"OCR_CACHE_DIR": str(cache), "OCR_DEVICE": "cpu", "OCR_PRECISION": "auto", "OCR_RUNTIME": "auto"}
    proc = run_cli("models", "--load", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout)["loaded"]
    from ocr_tasks.models.precision import cpu_has_int8_dot

    # auto: the recognizer's shipped int8 export on CPUs with VNNI (it is not exported again)
    int8 = cpu_has_int8_dot()
    assert [(r["task"], r["name"], r["runtime"], r["precision"]) for r in loaded] == [
        ("detector", "craft_light", "onnx", "fp32"), ("recognizer", "crnn_light", "onnx", "int8" if int8 else "fp32")]
    assert len(list((cache / "onnx").glob("*.onnx"))) == (1 if int8 else 2)
    proc = run_cli("models", "--load", "--json", env={**env, "OCR_PRECISION": "fp32"})
    assert proc.returncode == 0, proc.stderr
    assert [r["precision"] for r in json.loads(proc.stdout)["loaded"]] == ["fp32", "fp32"]
    assert len(list((cache / "onnx").glob("*.onnx"))) == 2
    proc = run_cli("models", "--load", "--json", env={**env, "OCR_RUNTIME": "torch", "OCR_PRECISION": "fp32"})
    assert proc.returncode == 0, proc.stderr
    assert {r["runtime"] for r in json.loads(proc.stdout)["loaded"]} == {"torch"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OCR_RUNTIME": "tensorrt"}, "OCR_RUNTIME='tensorrt' is not one of auto, torch, onnx"),
        ({"OCR_PRECISION": "half"}, "OCR_PRECISION='half' is not one of"),
        ({"OCR_TORCH_THREADS": "two"}, "OCR_TORCH_THREADS='two' is not an integer"),
        ({"OCR_RUNTIME": "onnx", "OCR_PRECISION": "bf16", "OCR_DEVICE": "cpu"},
         "OCR_RUNTIME=onnx cannot run detector craft_light: OCR_PRECISION=bf16 asks for torch autocast"),
    ],
)
def test_bad_settings_are_a_clear_cli_error(env, message, tmp_path):
    proc = run_cli("models", "--load", env={"OCR_CACHE_DIR": str(tmp_path), **env})
    assert proc.returncode == 2
    assert proc.stderr.startswith("ocr-pipeline: error: ") and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
