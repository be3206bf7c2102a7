"""ONNX Runtime inference (OCR_RUNTIME): exports read like torch, the cache, the factory's choice."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ocr_tasks.models import onnx_runtime
from ocr_tasks.models.detection.light import LightCRAFT
from ocr_tasks.models.onnx_runtime import OnnxDetector, OnnxExportError, OnnxRecognizer
from ocr_tasks.models.recognition.network import RecognitionModel, RecognizerOptions
from ocr_tasks.models.recognition.predictor import RecognitionPredictor
from ocr_tasks.models.registry import ModelSpec, get_spec
from ocr_tasks.settings import Settings

pytestmark = pytest.mark.skipif(not onnx_runtime.onnxruntime_available(), reason="onnxruntime is not installed")


def _light_detector() -> nn.Module:
    torch.manual_seed(0)
    return LightCRAFT(**dict(get_spec("craft_light").options)).eval()


def test_detector_export_reads_like_torch_on_a_new_canvas(tmp_path: Path) -> None:
    model = _light_detector()
    onnx = OnnxDetector(copy.deepcopy(model), threads=1, cache=tmp_path / "det.onnx")
    x = torch.randn(1, 3, 192, 288)  # neither example canvas: height and width are free
    with torch.no_grad():
        y_ref, f_ref = model(x)
    y, f = onnx(x)
    assert isinstance(y, torch.Tensor) and y.shape == y_ref.shape and f.shape == f_ref.shape
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(f, f_ref, rtol=1e-4, atol=1e-4)


def test_sessions_do_not_spin_between_runs(tmp_path: Path) -> None:
    """Idle ONNX Runtime threads must not busy-wait: they would hold the cores that the
    predictors' torch and OpenCV code needs between two runs (the CTC softmax ran 40x slower)."""
    onnx = OnnxDetector(_light_detector(), threads=2, cache=tmp_path / "det.onnx")
    options = onnx.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == 2


@pytest.mark.parametrize(
    "stages",
    [
        {"transformation": "None", "feature_extraction": "VGG", "sequence_modeling": "BiLSTM", "prediction": "CTC"},
        {"transformation": "None", "feature_extraction": "ResNet", "sequence_modeling": "None", "prediction": "CTC"},
        {"transformation": "TPS", "feature_extraction": "VGG", "sequence_modeling": "None", "prediction": "CTC"},
    ],
    ids=["VGG-BiLSTM-CTC", "ResNet-CTC", "TPS-VGG-CTC"],
)
def test_recognizer_export_reads_like_torch(stages: dict, tmp_path: Path) -> None:
    """Logits match on a batch size and width the export never saw; the predictor reads the same."""
    torch.manual_seed(0)
    tps = stages["transformation"] == "TPS"
    opts = RecognizerOptions(num_class=11, output_channel=64, hidden_size=32, **stages)
    model = RecognitionModel(opts).eval()
    onnx = OnnxRecognizer(copy.deepcopy(model), (32, 100), threads=1, cache=tmp_path / "rec.onnx")
    x = torch.rand(5, 1, 32, 100 if tps else 212) * 2 - 1
    with torch.no_grad():
        ref = model(x, None, False)
    got = onnx(x, None, False)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    spec = ModelSpec(name="tiny", task="recognizer", arch="dtrb", options=dict(stages), character="0123456789",
                     input_size=(32, 100), keep_ratio=not tps)
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (int(h), int(w)), dtype=np.uint8) for h, w in ((20, 64), (32, 150), (12, 90))]
    expected = RecognitionPredictor(model, spec).predict(crops)
    got_texts = RecognitionPredictor(onnx, spec).predict(crops)
    assert [t for t, _ in got_texts] == [t for t, _ in expected]
    assert [c for _, c in got_texts] == pytest.approx([c for _, c in expected], abs=1e-4)


def test_cached_export_is_used_and_a_damaged_one_is_replaced(tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache" / "det.onnx"
    model = _light_detector()
    first = OnnxDetector(copy.deepcopy(model), threads=1, cache=cache)
    assert cache.is_file() and cache.with_name("det.onnx.sha256").is_file()
    x = torch.randn(1, 3, 64, 96)
    expected = first(x)[0]

    def no_export(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("exported again although the cache holds the export")

    with monkeypatch.context() as m:
        m.setattr(onnx_runtime, "_export", no_export)
        torch.testing.assert_close(OnnxDetector(copy.deepcopy(model), threads=1, cache=cache)(x)[0], expected)
    cache.write_bytes(cache.read_bytes()[:1000])  # truncated: its digest no longer matches
    again = OnnxDetector(copy.deepcopy(model), threads=1, cache=cache)
    torch.testing.assert_close(again(x)[0], expected)
    assert len(cache.read_bytes()) > 1000  # written anew


def test_unwritable_cache_only_costs_the_export(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    onnx = OnnxDetector(_light_detector(), threads=1, cache=blocker / "sub" / "det.onnx")
    assert onnx(torch.randn(1, 3, 64, 64))[0].shape == (1, 32, 32, 2)


class _WidthAsConstant(nn.Module):
    """Reads its width as a Python number, which the tracer freezes: wrong at other widths."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = x[:, :2].permute(0, 2, 3, 1) * float(x.shape[3])
        return y, x


def test_an_export_that_reads_differently_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OnnxExportError, match="differs from torch"):
        OnnxDetector(_WidthAsConstant(), threads=1, cache=tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists()  # nothing wrong is cached


def test_factory_runs_cpu_models_on_onnx_runtime_unless_told_otherwise(tmp_path: Path, caplog, monkeypatch) -> None:
    from ocr_tasks.models import factory
    from ocr_tasks.models.factory import clear_cache, detection_predictor, recognition_predictor

    monkeypatch.setattr(factory, "cpu_has_int8_dot", lambda: False)  # float32 exports for both
    clear_cache()
    try:
        auto = Settings.from_env({"OCR_DEVICE": "cpu", "OCR_CACHE_DIR": str(tmp_path)})
        with caplog.at_level(logging.INFO, logger="ocr_tasks.models.factory"):
            det, rec = detection_predictor(settings=auto), recognition_predictor(settings=auto)
        assert isinstance(det.model, OnnxDetector) and det.precision is None
        assert isinstance(rec.model, OnnxRecognizer) and rec.precision is None
        assert "runs on ONNX Runtime" in caplog.text
        assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 2
        torch_rt = Settings.from_env({"OCR_DEVICE": "cpu", "OCR_RUNTIME": "torch", "OCR_CACHE_DIR": str(tmp_path)})
        assert isinstance(detection_predictor(settings=torch_rt).model, nn.Module)
        assert isinstance(recognition_predictor(settings=torch_rt).model, nn.Module)
        bf16 = Settings.from_env({"OCR_DEVICE": "cpu", "OCR_PRECISION": "bf16", "OCR_CACHE_DIR": str(tmp_path)})
        assert isinstance(detection_predictor(settings=bf16).model, nn.Module)  # autocast asked for: torch
        forced = Settings.from_env({"OCR_DEVICE": "cpu", "OCR_PRECISION": "bf16", "OCR_RUNTIME": "onnx"})
        with pytest.raises(ValueError, match="OCR_RUNTIME=onnx cannot run detector craft_light: OCR_PRECISION=bf16"):
            detection_predictor(settings=forced)
    finally:
        clear_cache()


def test_runtime_choice_reasons() -> None:
    from ocr_tasks.models.factory import onnx_runtime_reason

    cpu, auto = torch.device("cpu"), Settings.from_env({})
    assert onnx_runtime_reason(auto, cpu, get_spec("craft_light")) is None
    assert "refiner" in onnx_runtime_reason(auto, cpu, get_spec("craft_mlt_25k"), refiner=True)
    assert "attention" in onnx_runtime_reason(auto, cpu, get_spec("TPS-ResNet-BiLSTM-Attn"))
    assert "CPU only" in onnx_runtime_reason(auto, torch.device("cuda"), get_spec("crnn_light"))
    with pytest.raises(ValueError, match="attention"):
        onnx_runtime_reason(Settings.from_env({"OCR_RUNTIME": "onnx"}), cpu, get_spec("TPS-ResNet-BiLSTM-Attn"))


def test_settings_read_and_check_ocr_runtime_and_cache_dir(tmp_path: Path) -> None:
    assert Settings.from_env({}).runtime == "auto"
    assert Settings.from_env({"OCR_RUNTIME": "ONNX"}).runtime == "onnx"
    with pytest.raises(ValueError, match="OCR_RUNTIME='tensorrt' is not one of auto, torch, onnx"):
        Settings.from_env({"OCR_RUNTIME": "tensorrt"})
    assert Settings.from_env({"OCR_CACHE_DIR": str(tmp_path)}).cache_path == tmp_path
    assert Settings.from_env({}).cache_path.name == "ocr-pipeline"


def _bundled_int8_present() -> bool:
    meta = dict(get_spec("crnn_light").int8)
    from ocr_tasks.models.registry import BUNDLED_DIR

    return bool(meta) and (BUNDLED_DIR / meta["filename"]).is_file()


@pytest.mark.skipif(not _bundled_int8_present(), reason="no bundled int8 export")
def test_factory_picks_the_shipped_int8_recognizer_where_it_can(tmp_path: Path, monkeypatch, caplog) -> None:
    """auto: int8 on VNNI CPUs with the weights it was made from, float32 otherwise; int8: or fail."""
    from ocr_tasks.errors import ConfigError
    from ocr_tasks.models import factory
    from ocr_tasks.models.factory import clear_cache, detection_predictor, int8_export, recognition_predictor
    from ocr_tasks.models.registry import BUNDLED_DIR

    spec = get_spec("crnn_light")
    auto = Settings.from_env({"OCR_DEVICE": "cpu", "OCR_CACHE_DIR": str(tmp_path)})
    forced = Settings.from_env({"OCR_DEVICE": "cpu", "OCR_PRECISION": "int8", "OCR_CACHE_DIR": str(tmp_path)})
    monkeypatch.setattr(factory, "cpu_has_int8_dot", lambda: True)
    assert int8_export(auto, spec) == (BUNDLED_DIR / spec.int8["filename"], spec.int8["sha256"])
    assert int8_export(Settings.from_env({"OCR_PRECISION": "fp32"}), spec) is None
    assert int8_export(forced, get_spec("craft_light")) is None  # detectors have none
    monkeypatch.setattr(factory, "cpu_has_int8_dot", lambda: False)
    with caplog.at_level(logging.INFO, logger="ocr_tasks.models.factory"):
        assert int8_export(auto, spec) is None
    assert "no VNNI" in caplog.text
    assert int8_export(forced, spec) is not None  # asked for: taken on any CPU
    # other weights under the same name (a user's OCR_MODEL_DIR): the int8 file is not theirs
    other = tmp_path / "models"
    other.mkdir()
    (other / "crnn_light.pth").write_bytes((BUNDLED_DIR / "crnn_light.pth").read_bytes() + b"\0")
    mine = Settings.from_env({"OCR_PRECISION": "int8", "OCR_MODEL_DIR": str(other)})
    with pytest.raises(ConfigError, match="made from other weights"):
        int8_export(mine, spec)
    # a registered int8 file that is not there (a package built without it): float32 under auto
    from dataclasses import replace

    gone = replace(spec, int8={**spec.int8, "filename": "absent.int8.onnx"})
    monkeypatch.setattr(factory, "cpu_has_int8_dot", lambda: True)
    assert int8_export(auto, gone) is None
    with pytest.raises(ConfigError, match="absent.int8.onnx is missing"):
        int8_export(forced, gone)
    clear_cache()
    try:
        rec = recognition_predictor(settings=forced)
        assert isinstance(rec.model, OnnxRecognizer) and rec.model.precision == "int8"
        det = detection_predictor(settings=forced)
        assert isinstance(det.model, OnnxDetector) and det.model.precision == "fp32"
        # nothing was exported for the recognizer: the shipped file runs as it is
        assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1
        torch_rt = Settings.from_env({"OCR_DEVICE": "cpu", "OCR_PRECISION": "int8", "OCR_RUNTIME": "torch"})
        with pytest.raises(ConfigError, match="int8"):
            recognition_predictor(settings=torch_rt)
        assert isinstance(detection_predictor(settings=torch_rt).model, nn.Module)  # fp32 on torch
    finally:
        clear_cache()


def test_a_damaged_int8_export_is_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = RecognitionModel(RecognizerOptions(output_channel=32, hidden_size=16, num_class=11)).eval()
    batches = [np.random.default_rng(i).uniform(-1, 1, (4, 1, 32, 64)).astype(np.float32) for i in range(3)]
    data = onnx_runtime.quantize_int8(onnx_runtime.export_onnx(model, (32, 400)), batches)
    path = tmp_path / "r.int8.onnx"
    path.write_bytes(data)
    import hashlib

    good = hashlib.sha256(data).hexdigest()
    rec = OnnxRecognizer(model, (32, 400), threads=1, int8=(path, good))
    ref = model(torch.from_numpy(batches[0]), None, False)
    got = rec(torch.from_numpy(batches[0]))
    assert got.shape == ref.shape
    # int8 reads close to float32: same best class at most steps
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean() > 0.8
    with pytest.raises(OnnxExportError, match="sha256"):
        OnnxRecognizer(model, (32, 400), threads=1, int8=(path, "0" * 64))
    with pytest.raises(OnnxExportError, match="needs calibration"):
        onnx_runtime.quantize_int8(b"", [])


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_histogram_calibration_takes_batches_of_different_widths(method: str) -> None:
    """The histogram calibrations accept calibration batches of different widths and batch
    sizes, as the predictor makes them (ONNX Runtime alone stacks them and fails), and give an
    int8 model that reads close to float32; a different method gives a different model."""
    torch.manual_seed(0)
    model = RecognitionModel(RecognizerOptions(output_channel=32, hidden_size=16, num_class=11)).eval()
    batches = [
        np.random.default_rng(i).uniform(-1, 1, (n, 1, 32, w)).astype(np.float32)
        for i, (n, w) in enumerate([(4, 64), (2, 96), (3, 48)])
    ]
    fp32 = onnx_runtime.export_onnx(model, (32, 400))
    data = onnx_runtime.quantize_int8(fp32, batches, method=method)
    assert data != onnx_runtime.quantize_int8(fp32, batches, method="minmax")
    session = onnx_runtime._session(data, 1)
    (logits,) = session.run(None, {"image": batches[1]})
    ref = model(torch.from_numpy(batches[1]), None, False)
    assert logits.shape == tuple(ref.shape)
    assert (torch.from_numpy(logits).argmax(-1) == ref.argmax(-1)).float().mean() > 0.8
    with pytest.raises(OnnxExportError, match="unknown calibration method 'kl'"):
        onnx_runtime.quantize_int8(fp32, batches, method="kl")
