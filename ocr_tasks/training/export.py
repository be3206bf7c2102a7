"""Install trained weights as the package's bundled defaults (fp16) and register their sha256;
make the bundled recognizer's int8 ONNX Runtime export (:func:`quantize_bundled_recognizer`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import WeightsMismatch
from ..models.factory import build_model
from ..models.registry import BUNDLED_DIR, ModelSpec, get_spec
from ..models.weights import check_state_dict, normalize_state_dict, save_state_dict
from ..settings import INT8_CALIBRATIONS, INT8_PERCENTILE

__all__ = ["CALIBRATION_SEED", "export_weights", "quantize_bundled_recognizer", "update_bundled_meta"]

_NAMES = {"recognizer": "crnn_light", "detector": "craft_light"}

#: Pages that calibrate the int8 export's activation ranges: seeds ``(CALIBRATION_SEED, i)``,
#: distinct from the training, validation, tuning and held-out ranges.
CALIBRATION_SEED = 4_000_000_000


def update_bundled_meta(name: str, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``weights/bundled.json`` under ``name``."""
    path = BUNDLED_DIR / "bundled.json"
    meta = json.loads(path.read_text()) if path.is_file() else {}
    meta.setdefault(name, {}).update(fields)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return meta[name]


def calibration_batches(spec: ModelSpec, pages: int, seed: int = CALIBRATION_SEED) -> tuple[list[np.ndarray], int]:
    """Input batches for int8 calibration: the word crops of ``pages`` synthetic pages, cut with
    a detector's misalignment and batched exactly as :class:`RecognitionPredictor` batches them
    (same resizing, width ladder and padding), as float32 arrays; and the number of crops."""
    from ..models.recognition.preprocess import batch_ladder, keep_ratio_batches, width_ladder
    from .synth import cut_word_crops, page_rng, render_page

    crops: list[np.ndarray] = []
    for i in range(pages):
        crops += [c for c, _ in cut_word_crops(render_page(page_rng(seed, i)), np.random.default_rng([seed, i]))]
    img_h, img_w = spec.input_size
    batches = keep_ratio_batches(crops, img_h=img_h, max_w=img_w, max_batch=64,
                                 widths=width_ladder(16, img_w), batch_sizes=batch_ladder(64))
    return [batch.numpy() for _, batch in batches], len(crops)


def quantize_bundled_recognizer(
    pages: int = 8,
    spec: ModelSpec | None = None,
    method: str = INT8_CALIBRATIONS[0],
    percentile: float = INT8_PERCENTILE,
) -> dict[str, Any]:
    """Make ``crnn_light.int8.onnx`` from the bundled ``crnn_light`` weights (as stored, fp16)
    and register it (file, sha256, the weights' sha256, calibration) in ``bundled.json``.

    Args:
        pages: synthetic pages whose crops calibrate the activation ranges (~200 crops each).
        spec: the recognizer's entry (default: the registry's ``crnn_light``).
        method: activation-range calibration, one of :data:`~ocr_tasks.settings.INT8_CALIBRATIONS`.
        percentile: clipping percentile of the ``"percentile"`` method.
    """
    from ..models.onnx_runtime import export_onnx, quantize_int8
    from ..models.weights import load_weights, sha256_file

    spec = spec or get_spec("crnn_light", "recognizer")
    weights = BUNDLED_DIR / spec.filename
    model = load_weights(build_model(spec), weights, replace(spec, sha256=None)).eval()
    batches, crops = calibration_batches(spec, pages)
    data = quantize_int8(export_onnx(model, spec.input_size), batches, method=method, percentile=percentile)
    filename = Path(spec.filename).stem + ".int8.onnx"
    (BUNDLED_DIR / filename).write_bytes(data)
    fields = {
        "filename": filename,
        "sha256": hashlib.sha256(data).hexdigest(),
        "weights_sha256": sha256_file(weights),
        "calibration": {"seed": CALIBRATION_SEED, "pages": pages, "crops": crops, "method": method,
                        **({"percentile": percentile} if method == "percentile" else {})},
    }
    update_bundled_meta(spec.name, int8=fields)
    return {"name": spec.name, "path": str(BUNDLED_DIR / filename), **fields}


def export_weights(kind: str, checkpoint: Path, half: bool = True, int8: bool = True) -> dict[str, Any]:
    """Copy a run's weights into ``ocr_tasks/weights`` and record sha256 + architecture options.

    The run directory's ``config.json`` (written by the trainers) supplies the architecture
    options the weights were trained with, and, for detectors, tuned thresholds if present.
    A recognizer also gets its int8 ONNX Runtime export made again (``int8``; without it the
    old one stays registered but no longer matches the weights, so it is not used).
    """
    name = _NAMES[kind]
    spec = get_spec(name)
    obj = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    state = normalize_state_dict(obj, source=str(checkpoint))
    config_path = checkpoint.parent / "config.json"
    options = dict(spec.options)
    if config_path.is_file():
        options.update(json.loads(config_path.read_text()).get("spec_options", {}))
    spec = replace(spec, options=options)
    try:
        model = build_model(spec)
    except (TypeError, ValueError) as exc:
        raise WeightsMismatch(f"{checkpoint}: the run's options do not fit {name} ({exc})") from exc
    check_state_dict(model, state, name=name)
    model.load_state_dict(state, strict=False)
    sha = save_state_dict(model, BUNDLED_DIR / spec.filename, half=half)
    fields: dict[str, Any] = {"sha256": sha, "options": options, "source": str(checkpoint)}
    if kind == "recognizer":
        fields["character"] = spec.character
    tuned = checkpoint.parent / "thresholds.json"
    if kind == "detector" and tuned.is_file():
        fields["thresholds"] = json.loads(tuned.read_text())
    update_bundled_meta(name, **fields)
    out = {"name": name, "path": str(BUNDLED_DIR / spec.filename), **fields}
    if kind == "recognizer" and int8:
        out["int8"] = quantize_bundled_recognizer(spec=spec)
    return out
