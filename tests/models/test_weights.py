"""Weight files: official layouts load unchanged, mismatches are refused with names."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
import torch

from ocr_tasks.errors import UnknownModel, WeightsMismatch, WeightsNotFound
from ocr_tasks.models.factory import build_model, load_model
from ocr_tasks.models.registry import get_spec, list_specs
from ocr_tasks.models.weights import read_state_dict, resolve_weights, save_state_dict
from tests.conftest import random_state_from_manifest, save_legacy

OFFICIAL = [s.name for s in list_specs() if s.official]


def test_registry_has_the_nine_official_checkpoints():
    assert sorted(OFFICIAL) == sorted(
        [
            "craft_mlt_25k",
            "craft_ic15_20k",
            "craft_refiner_CTW1500",
            "None-VGG-None-CTC",
            "None-VGG-BiLSTM-CTC",
            "None-ResNet-None-CTC",
            "TPS-ResNet-BiLSTM-CTC",
            "TPS-ResNet-BiLSTM-Attn",
            "TPS-ResNet-BiLSTM-Attn-case-sensitive",
        ]
    )
    for name in OFFICIAL:
        spec = get_spec(name)
        assert spec.filename == f"{name}.pth"


@pytest.mark.parametrize("name", OFFICIAL)
def test_legacy_prefixed_checkpoint_loads(name, manifests, tmp_path):
    """A file laid out like the release (module. prefix, legacy format, tracked counters) loads."""
    manifest = manifests[name]
    state = random_state_from_manifest(manifest, seed=1)
    save_legacy(state, tmp_path / f"{name}.pth")
    with open(tmp_path / f"{name}.pth", "rb") as fh:
        assert fh.read(2) == b"\x80\x02"  # legacy pickle, not zip
    model = load_model(get_spec(name), tmp_path)
    loaded = model.state_dict()
    key = manifest["tensors"][0][0]
    torch.testing.assert_close(loaded[key.removeprefix("module.")], state[key])


def test_zip_format_without_prefix_or_tracked_counters(manifests, tmp_path):
    manifest = manifests["None-VGG-BiLSTM-CTC"]
    state = random_state_from_manifest(manifest, with_tracked=False)
    torch.save({k.removeprefix("module."): v for k, v in state.items()}, tmp_path / "None-VGG-BiLSTM-CTC.pth")
    load_model(get_spec("None-VGG-BiLSTM-CTC"), tmp_path)


def test_mismatch_names_missing_unexpected_and_shapes(manifests, tmp_path):
    manifest = manifests["None-VGG-None-CTC"]
    state = random_state_from_manifest(manifest)
    first = manifest["tensors"][0][0]
    del state[first]
    state["module.extra.weight"] = torch.zeros(3)
    last = manifest["tensors"][-1][0]
    state[last] = torch.zeros(5, 5)
    save_legacy(state, tmp_path / "None-VGG-None-CTC.pth")
    with pytest.raises(WeightsMismatch) as err:
        load_model(get_spec("None-VGG-None-CTC"), tmp_path)
    msg = str(err.value)
    assert first.removeprefix("module.") in msg and "missing" in msg
    assert "extra.weight" in msg and "unexpected" in msg
    assert last.removeprefix("module.") in msg and "[5, 5]" in msg


def test_wrong_checkpoint_for_architecture(manifests, tmp_path):
    """A CTC file offered as the attention model is refused, not half-loaded."""
    state = random_state_from_manifest(manifests["TPS-ResNet-BiLSTM-CTC"])
    save_legacy(state, tmp_path / "TPS-ResNet-BiLSTM-Attn.pth")
    with pytest.raises(WeightsMismatch, match="Prediction"):
        load_model(get_spec("TPS-ResNet-BiLSTM-Attn"), tmp_path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"\x80\x02\x8a\x0a" + b"\x00" * 20])
def test_corrupted_file_refused_readably(content, tmp_path):
    path = tmp_path / "None-VGG-None-CTC.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsMismatch, match="not a readable PyTorch weights file"):
        read_state_dict(path)


def test_truncated_checkpoint_refused(manifests, tmp_path):
    path = tmp_path / "None-VGG-None-CTC.pth"
    save_legacy(random_state_from_manifest(manifests["None-VGG-None-CTC"]), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsMismatch):
        load_model(get_spec("None-VGG-None-CTC"), tmp_path)


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "x.pth"
    torch.save({"a": Evil()}, path)
    with pytest.raises(WeightsMismatch):
        read_state_dict(path)


def test_missing_file_says_where_and_what(tmp_path):
    with pytest.raises(WeightsNotFound) as err:
        resolve_weights(get_spec("craft_mlt_25k"), tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "craft_mlt_25k.pth") in msg and "OCR_MODEL_DIR" in msg and "state_dict" in msg


def test_unknown_model_lists_choices():
    with pytest.raises(UnknownModel, match="craft_mlt_25k"):
        get_spec("nope", "detector")
    with pytest.raises(UnknownModel):
        get_spec("craft_mlt_25k", "recognizer")


def test_fp16_bundled_style_file_loads_and_sha_mismatch_only_logs(tmp_path, caplog):
    spec = get_spec("crnn_light")
    model = build_model(spec)
    sha = save_state_dict(model, tmp_path / spec.filename, half=True)
    assert len(sha) == 64
    odd = replace(spec, sha256="0" * 64)
    with caplog.at_level(logging.WARNING):
        loaded = load_model(odd, tmp_path)
    assert "differs" in caplog.text
    p = next(iter(loaded.parameters()))
    assert p.dtype == torch.float32
