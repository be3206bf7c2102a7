"""Install trained weights as the package's bundled defaults (fp16) and register their sha256."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..errors import WeightsMismatch
from ..models.factory import build_model
from ..models.registry import BUNDLED_DIR, get_spec
from ..models.weights import check_state_dict, normalize_state_dict, save_state_dict

__all__ = ["export_weights", "update_bundled_meta"]

_NAMES = {"recognizer": "crnn_light", "detector": "craft_light"}


def update_bundled_meta(name: str, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``weights/bundled.json`` under ``name``."""
    path = BUNDLED_DIR / "bundled.json"
    meta = json.loads(path.read_text()) if path.is_file() else {}
    meta.setdefault(name, {}).update(fields)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return meta[name]


def export_weights(kind: str, checkpoint: Path, half: bool = True) -> dict[str, Any]:
    """Copy a run's weights into ``ocr_tasks/weights`` and record sha256 + architecture options.

    The run directory's ``config.json`` (written by the trainers) supplies the architecture
    options the weights were trained with, and, for detectors, tuned thresholds if present.
    """
    from dataclasses import replace

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
    return {"name": name, "path": str(BUNDLED_DIR / spec.filename), **fields}
