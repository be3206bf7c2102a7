"""RecognitionModel against the official DTRB manifests: keys, shapes, TPS buffers, forward shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ocr_tasks.models.recognition.network import RecognitionModel, RecognizerOptions

MANIFEST_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "manifests"
DTRB = [
    "None-VGG-None-CTC",
    "None-VGG-BiLSTM-CTC",
    "None-ResNet-None-CTC",
    "TPS-ResNet-BiLSTM-CTC",
    "TPS-ResNet-BiLSTM-Attn",
    "TPS-ResNet-BiLSTM-Attn-case-sensitive",
]
#: (T or attention steps) at 32 x 100.
EXPECTED_STEPS = {
    "None-VGG-None-CTC": 24,
    "None-VGG-BiLSTM-CTC": 24,
    "None-ResNet-None-CTC": 26,
    "TPS-ResNet-BiLSTM-CTC": 26,
    "TPS-ResNet-BiLSTM-Attn": 26,
    "TPS-ResNet-BiLSTM-Attn-case-sensitive": 26,
}


def _manifest(stem: str) -> dict:
    path = MANIFEST_DIR / f"{stem}.json"
    if not path.is_file():
        pytest.skip(f"DTRB manifest not found: {path} (shared/specs is not checked out next to the repo)")
    return json.loads(path.read_text())


@pytest.fixture(scope="module", params=DTRB)
def official(request: pytest.FixtureRequest) -> tuple[str, dict, RecognitionModel]:
    manifest = _manifest(request.param)
    torch.manual_seed(0)
    model = RecognitionModel(RecognizerOptions.from_mapping(manifest["options"], strict=True)).eval()
    return request.param, manifest, model


def _strip(key: str) -> str:
    return key[len("module.") :] if key.startswith("module.") else key


def test_state_dict_matches_manifest(official: tuple[str, dict, RecognitionModel]) -> None:
    _, manifest, model = official
    state = model.state_dict()
    required = [(_strip(k), tuple(shape), dtype) for k, shape, dtype in manifest["tensors"]]
    optional = {_strip(k): tuple(shape) for k, shape, _ in manifest["optional_tensors"]}
    ours = [
        (k, tuple(v.shape), str(v.dtype).removeprefix("torch."))
        for k, v in state.items()
        if k not in optional
    ]
    missing = sorted({k for k, _, _ in required} - {k for k, _, _ in ours})
    extra = sorted({k for k, _, _ in ours} - {k for k, _, _ in required})
    assert not missing and not extra, f"missing {missing[:5]}, unexpected {extra[:5]}"
    assert ours == required  # same order, shapes and dtypes
    for key, shape in optional.items():  # num_batches_tracked: optional, but shape must agree if present
        if key in state:
            assert tuple(state[key].shape) == shape
    assert sum(p.numel() for p in model.parameters()) == manifest["num_params"]


def test_loads_manifest_shaped_state_dict(official: tuple[str, dict, RecognitionModel]) -> None:
    _, manifest, model = official
    # A checkpoint without num_batches_tracked (the manifest's required tensors only) loads strictly
    # once those keys are dropped from the model's side too, as the weight loader does.
    fake = {_strip(k): torch.zeros(shape) for k, shape, _ in manifest["tensors"]}
    fake.update({k: v for k, v in model.state_dict().items() if k.endswith("num_batches_tracked")})
    model.load_state_dict(fake, strict=True)


def test_options_from_official_and_snake_names(official: tuple[str, dict, RecognitionModel]) -> None:
    _, manifest, model = official
    opts = model.options
    again = RecognizerOptions.from_mapping(opts.to_dict(), strict=True)
    assert again == opts
    assert opts.name == manifest["checkpoint"].removesuffix(".pth").removesuffix("-case-sensitive")
    assert opts.num_class == manifest["options"]["num_class"]


def test_forward_shapes(official: tuple[str, dict, RecognitionModel]) -> None:
    stem, manifest, model = official
    num_class = manifest["options"]["num_class"]
    with torch.inference_mode():
        out = model(torch.rand(2, 1, 32, 100) * 2 - 1)
    assert out.shape == (2, EXPECTED_STEPS[stem], num_class)
    assert torch.isfinite(out).all()
    if model.options.prediction == "CTC":
        assert model.feature_length(100) == EXPECTED_STEPS[stem]


def test_tps_buffers_match_spec_checksums() -> None:
    model = RecognitionModel(
        RecognizerOptions(
            transformation="TPS", feature_extraction="VGG", sequence_modeling="None", num_class=37
        )
    )
    grid = model.Transformation.GridGenerator
    state = model.state_dict()
    assert "Transformation.GridGenerator.inv_delta_C" in state
    assert "Transformation.GridGenerator.P_hat" in state
    inv, p_hat = grid.inv_delta_C, grid.P_hat
    assert inv.shape == (23, 23) and inv.dtype == torch.float32
    assert p_hat.shape == (3200, 23) and p_hat.dtype == torch.float32
    assert inv.double().sum().item() == pytest.approx(6.030435, abs=2e-6)
    assert inv.double().abs().sum().item() == pytest.approx(818.0504, abs=1e-3)
    assert p_hat.double().sum().item() == pytest.approx(69408.33, abs=1e-2)
    first = p_hat[0, :5].tolist()
    assert first == pytest.approx([1.0, -0.99, -0.96875, -0.0036786, -0.0708348], abs=1e-6)


def test_tps_identity_fiducials_sample_pixel_centres_align_corners_true() -> None:
    """With C' = the target fiducials, P' = P (pixel centres (2k+1)/W - 1), sampled with
    align_corners=True: column k reads input x = (k + 0.5) * (W - 1) / W (a slight zoom, as upstream)."""
    torch.manual_seed(0)
    model = RecognitionModel(
        RecognizerOptions(
            transformation="TPS", feature_extraction="VGG", sequence_modeling="None", num_class=37
        )
    ).eval()
    stn = model.Transformation
    ctrl = torch.from_numpy(stn.GridGenerator._build_c(20)).float()
    with torch.no_grad():
        stn.LocalizationNetwork.localization_fc2.weight.zero_()
        stn.LocalizationNetwork.localization_fc2.bias.copy_(ctrl.reshape(-1))
        ramp = torch.arange(100, dtype=torch.float32).expand(1, 1, 32, 100)
        expected = (torch.arange(100, dtype=torch.float32) + 0.5) * 99 / 100
        out = stn(ramp)
    assert out.shape == (1, 1, 32, 100)
    assert torch.allclose(out[0, 0], expected.expand(32, 100), atol=1e-3)
    with pytest.raises(ValueError, match="32x100"):
        stn(torch.rand(1, 1, 32, 64))


def test_attention_teacher_forcing_shape() -> None:
    torch.manual_seed(0)
    opts = RecognizerOptions(
        feature_extraction="VGG",
        sequence_modeling="BiLSTM",
        prediction="Attn",
        output_channel=64,
        hidden_size=32,
        batch_max_length=5,
        num_class=10,
    )
    model = RecognitionModel(opts).train()
    text = torch.tensor([[0, 3, 4, 1, 0, 0, 0], [0, 5, 1, 0, 0, 0, 0]])  # B x (max + 2)
    out = model(torch.rand(2, 1, 32, 100), text, is_train=True)
    assert out.shape == (2, 6, 10)
    out.sum().backward()
    with pytest.raises(ValueError, match="teacher-forcing"):
        model(torch.rand(2, 1, 32, 100), None, is_train=True)
    model.eval()
    with torch.inference_mode():
        assert model(torch.rand(2, 1, 32, 80)).shape == (2, 6, 10)


def test_cached_i2h_equals_per_step_i2h() -> None:
    torch.manual_seed(0)
    from ocr_tasks.models.recognition.modules import Attention

    attn = Attention(16, 16, 7).eval()
    batch_h = torch.randn(2, 9, 16)
    with torch.no_grad():
        h = torch.zeros(2, 16)
        hidden, tokens, expected = (h, h.clone()), torch.zeros(2, dtype=torch.long), []
        for _ in range(4):
            onehot = torch.nn.functional.one_hot(tokens, 7).float()
            hidden, _ = attn.attention_cell(hidden, batch_h, onehot)  # i2h recomputed every step
            logits = attn.generator(hidden[0])
            expected.append(logits)
            tokens = logits.argmax(1)
        assert torch.equal(attn(batch_h, batch_max_length=3), torch.stack(expected, 1))


def test_small_config_variable_widths() -> None:
    torch.manual_seed(0)
    opts = RecognizerOptions.from_mapping(
        {
            "transformation": "None",
            "feature_extraction": "VGG",
            "sequence_modeling": "BiLSTM",
            "prediction": "CTC",
            "img_w": 400,
            "output_channel": 256,
            "hidden_size": 128,
            "num_class": 95,
        }
    )
    model = RecognitionModel(opts).eval()
    state = model.state_dict()
    assert state["FeatureExtraction.ConvNet.0.weight"].shape == (32, 1, 3, 3)
    assert state["FeatureExtraction.ConvNet.18.weight"].shape == (256, 256, 2, 2)
    assert state["SequenceModeling.0.rnn.weight_ih_l0"].shape == (512, 256)
    assert state["Prediction.weight"].shape == (95, 128)
    with torch.inference_mode():
        for width in (16, 48, 100, 128, 400):
            out = model(torch.rand(2, 1, 32, width))
            assert out.shape == (2, model.feature_length(width), 95)
            assert model.feature_length(width) == width // 4 - 1
    with pytest.raises(ValueError, match="height"):
        model(torch.rand(1, 1, 48, 100))


def test_rcnn_builds_and_runs() -> None:
    torch.manual_seed(0)
    opts = RecognizerOptions(feature_extraction="RCNN", sequence_modeling="BiLSTM", num_class=37)
    model = RecognitionModel(opts).eval()
    keys = model.state_dict().keys()
    assert "FeatureExtraction.ConvNet.3.wgf_u.weight" in keys
    assert "FeatureExtraction.ConvNet.7.GRCL.4.BN_Gx.running_var" in keys
    assert "FeatureExtraction.ConvNet.10.weight" in keys  # final BN
    with torch.inference_mode():
        assert model(torch.rand(1, 1, 32, 100)).shape == (1, 26, 37)
        small = RecognitionModel(
            RecognizerOptions(feature_extraction="RCNN", output_channel=64, num_class=5)
        ).eval()
        assert small(torch.rand(2, 1, 32, 60)).shape == (2, small.feature_length(60), 5)


def test_resnet_small_variable_width() -> None:
    torch.manual_seed(0)
    opts = RecognizerOptions(
        feature_extraction="ResNet", sequence_modeling="None", output_channel=64, num_class=5
    )
    model = RecognitionModel(opts).eval()
    with torch.inference_mode():
        for width in (24, 100, 132):
            assert model(torch.rand(1, 1, 32, width)).shape == (1, width // 4 + 1, 5)


@pytest.mark.parametrize(
    ("changes", "bad"),
    [
        ({"transformation": "STN"}, "transformation"),
        ({"feature_extraction": "Inception"}, "feature_extraction"),
        ({"sequence_modeling": "GRU"}, "sequence_modeling"),
        ({"prediction": "CTCx"}, "prediction"),
        ({"num_class": 0}, "num_class"),
        ({"hidden_size": -1}, "hidden_size"),
        ({"img_h": 16}, "img_h"),
        ({"output_channel": 100}, "output_channel"),
        ({"num_fiducial": 7}, "num_fiducial"),
        ({"batch_max_length": 2.5}, "batch_max_length"),
    ],
)
def test_options_validation(changes: dict, bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        RecognizerOptions(**changes)


def test_options_mapping_aliases() -> None:
    opts = RecognizerOptions.from_mapping(
        {
            "Transformation": "tps",
            "FeatureExtraction": "resnet",
            "SequenceModeling": "bilstm",
            "Prediction": "attn",
        }
        | {"imgH": 32, "imgW": 100, "character": "abc", "rgb": True}
    )
    assert (opts.transformation, opts.feature_extraction, opts.sequence_modeling, opts.prediction) == (
        "TPS",
        "ResNet",
        "BiLSTM",
        "Attn",
    )
    assert opts.num_class == 5 and opts.input_channel == 3
    with pytest.raises(ValueError, match="conflicting"):
        RecognizerOptions.from_mapping({"imgH": 32, "img_h": 64})
    with pytest.raises(ValueError, match="bogus"):
        RecognizerOptions.from_mapping({"bogus": 1}, strict=True)
    assert RecognizerOptions.from_mapping({"bogus": 1}) == RecognizerOptions()


@pytest.mark.parametrize(
    "stages",
    [
        {"feature_extraction": "VGG", "sequence_modeling": "BiLSTM", "prediction": "CTC", "output_channel": 64},
        {"feature_extraction": "RCNN", "sequence_modeling": "None", "prediction": "CTC", "output_channel": 64},
        {"transformation": "TPS", "feature_extraction": "ResNet", "sequence_modeling": "BiLSTM",
         "prediction": "Attn", "output_channel": 64, "hidden_size": 32},
    ],
    ids=["VGG-BiLSTM-CTC", "RCNN-CTC", "TPS-ResNet-BiLSTM-Attn"],
)
def test_channels_last_predictor_reads_like_the_default_layout(stages: dict) -> None:
    """The CPU predictors run the convolutions channels-last (faster); the readings must not change."""
    import copy

    import numpy as np

    from ocr_tasks.models.recognition.predictor import RecognitionPredictor
    from ocr_tasks.models.registry import ModelSpec

    torch.manual_seed(0)
    tps = stages.get("transformation") == "TPS"
    ctc = stages["prediction"] == "CTC"
    opts = RecognizerOptions(num_class=11 if ctc else 12, **stages)  # 10 characters + blank / [GO], [s]
    model = RecognitionModel(opts).eval()
    spec = ModelSpec(
        name="tiny", task="recognizer", arch="dtrb", options=dict(stages), character="0123456789",
        input_size=(32, 100), keep_ratio=not tps,
    )
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (int(h), int(w)), dtype=np.uint8) for h, w in ((20, 64), (32, 150), (12, 90), (40, 41))]
    plain = RecognitionPredictor(copy.deepcopy(model), spec)
    fast = RecognitionPredictor(copy.deepcopy(model), spec, channels_last=True)
    conv = next(m for m in fast.model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1 and m.kernel_size != (1, 1))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    expected, got = plain.predict(crops), fast.predict(crops)
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert [c for _, c in got] == pytest.approx([c for _, c in expected], abs=1e-4)
    batch = torch.rand(3, 1, 32, 100) * 2 - 1
    with torch.inference_mode():
        torch.testing.assert_close(
            fast.model(batch.contiguous(memory_format=torch.channels_last)), plain.model(batch), rtol=1e-4, atol=1e-4
        )
