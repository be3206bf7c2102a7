"""The model registry: one place mapping a model name to everything needed to use it.

Each :class:`ModelSpec` names the architecture and its options, the character set and input
size (recognizers), the normalisation, the default post-processing thresholds (detectors),
the expected weight file name and, where known, its sha256.

The nine official checkpoints are registered under their file stems. Their sha256 values are
not known here (the files could not be downloaded to hash them), so for them the structural
check (every key and shape) is the gate; a hash recorded here that differs is only logged.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UnknownModel

__all__ = [
    "ModelSpec",
    "REGISTRY",
    "get_spec",
    "list_specs",
    "register",
    "CHARSET_CASE_INSENSITIVE",
    "CHARSET_CASE_SENSITIVE",
    "BUNDLED_DIR",
]

CHARSET_CASE_INSENSITIVE = "0123456789abcdefghijklmnopqrstuvwxyz"
CHARSET_CASE_SENSITIVE = string.printable[:-6]
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "weights"

#: CRAFT input normalisation on the 0..255 scale (ImageNet statistics), RGB order.
CRAFT_MEAN = (0.485, 0.456, 0.406)
CRAFT_STD = (0.229, 0.224, 0.225)
#: Official CRAFT test.py post-processing defaults.
CRAFT_TEST_DEFAULTS: Mapping[str, Any] = {
    "text_threshold": 0.7,
    "link_threshold": 0.4,
    "low_text": 0.4,
    "canvas_size": 1280,
    "mag_ratio": 1.5,
    "poly": False,
}


@dataclass(frozen=True)
class ModelSpec:
    """Everything the loader and the predictors need to know about one model."""

    #: Registry name (for official checkpoints: the file stem).
    name: str
    #: "detector", "refiner" or "recognizer".
    task: str
    #: Architecture family: "craft", "craft_refiner", "craft_light" or "dtrb".
    arch: str
    #: Constructor options of the architecture.
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Expected weight file name, looked up in OCR_MODEL_DIR and then the bundled weights.
    filename: str = ""
    #: Known sha256 of the file (None = unknown); a different hash is logged, not refused.
    sha256: str | None = None
    #: True for the released upstream checkpoints.
    official: bool = False
    #: Recognizers: characters of the label set, in class order.
    character: str = ""
    #: Recognizers: (height, width) of the model input; with keep_ratio the width is the maximum.
    input_size: tuple[int, int] = (32, 100)
    #: Recognizers: resize keeping the aspect ratio and pad (our models) instead of squashing.
    keep_ratio: bool = False
    #: Per-channel mean / std used to normalise the input.
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    #: Detectors: default post-processing thresholds and resize settings (CraftThresholds fields).
    thresholds: Mapping[str, Any] = field(default_factory=dict)
    #: One line for `ocr-pipeline models`.
    description: str = ""
    #: Recognizers: a statically quantized ONNX Runtime export shipped with the weights
    #: (``filename``, ``sha256`` and ``weights_sha256``, the weights file it was made from);
    #: empty when there is none (:mod:`ocr_tasks.models.onnx_runtime`, ``OCR_PRECISION=int8``).
    int8: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        out: dict[str, Any] = {
            "name": self.name,
            "task": self.task,
            "arch": self.arch,
            "options": dict(self.options),
            "filename": self.filename,
            "sha256": self.sha256,
            "official": self.official,
            "description": self.description,
        }
        if self.task == "recognizer":
            out.update(character=self.character, input_size=list(self.input_size), keep_ratio=self.keep_ratio)
            if self.int8:
                out.update(int8=dict(self.int8))
        if self.task == "detector":
            out.update(thresholds=dict(self.thresholds))
        return out


REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to the registry (a later registration of the same name replaces it)."""
    if spec.task not in ("detector", "refiner", "recognizer"):
        raise ValueError(f"unknown task {spec.task!r} for model {spec.name!r}")
    REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str, task: str | None = None) -> ModelSpec:
    """Look up a model by name; unknown names (or the wrong task) raise UnknownModel listing the choices."""
    spec = REGISTRY.get(name)
    if spec is None or (task is not None and spec.task != task):
        choices = ", ".join(s.name for s in list_specs(task))
        kind = task or "model"
        raise UnknownModel(f"unknown {kind} {name!r}; registered: {choices}")
    return spec


def list_specs(task: str | None = None) -> list[ModelSpec]:
    """All registered specs (optionally of one task), in registration order."""
    return [s for s in REGISTRY.values() if task is None or s.task == task]


def _dtrb(name: str, transformation: str, feature: str, sequence: str, prediction: str, sensitive: bool) -> None:
    character = CHARSET_CASE_SENSITIVE if sensitive else CHARSET_CASE_INSENSITIVE
    num_class = len(character) + (1 if prediction == "CTC" else 2)
    register(
        ModelSpec(
            name=name,
            task="recognizer",
            arch="dtrb",
            options={
                "transformation": transformation,
                "feature_extraction": feature,
                "sequence_modeling": sequence,
                "prediction": prediction,
                "img_h": 32,
                "img_w": 100,
                "input_channel": 1,
                "output_channel": 512,
                "hidden_size": 256,
                "num_fiducial": 20,
                "batch_max_length": 25,
                "num_class": num_class,
            },
            filename=f"{name}.pth",
            official=True,
            character=character,
            input_size=(32, 100),
            keep_ratio=False,
            description=f"official deep-text-recognition-benchmark {name} "
            f"({'case-sensitive, 94' if sensitive else 'case-insensitive, 36'} chars)",
        )
    )


def _register_official() -> None:
    for stem, what in (("craft_mlt_25k", "General (MLT)"), ("craft_ic15_20k", "IC15 fine-tuned")):
        register(
            ModelSpec(
                name=stem,
                task="detector",
                arch="craft",
                filename=f"{stem}.pth",
                official=True,
                mean=CRAFT_MEAN,
                std=CRAFT_STD,
                thresholds=dict(CRAFT_TEST_DEFAULTS),
                description=f"official CRAFT VGG16-BN detector, {what}",
            )
        )
    register(
        ModelSpec(
            name="craft_refiner_CTW1500",
            task="refiner",
            arch="craft_refiner",
            filename="craft_refiner_CTW1500.pth",
            official=True,
            description="official CRAFT link refiner (use with craft_mlt_25k; forces polygons)",
        )
    )
    _dtrb("None-VGG-None-CTC", "None", "VGG", "None", "CTC", False)
    _dtrb("None-VGG-BiLSTM-CTC", "None", "VGG", "BiLSTM", "CTC", False)
    _dtrb("None-ResNet-None-CTC", "None", "ResNet", "None", "CTC", False)
    _dtrb("TPS-ResNet-BiLSTM-CTC", "TPS", "ResNet", "BiLSTM", "CTC", False)
    _dtrb("TPS-ResNet-BiLSTM-Attn", "TPS", "ResNet", "BiLSTM", "Attn", False)
    _dtrb("TPS-ResNet-BiLSTM-Attn-case-sensitive", "TPS", "ResNet", "BiLSTM", "Attn", True)


def _register_bundled() -> None:
    """Our own light models. Their hashes and tuned thresholds live in weights/bundled.json."""
    meta: dict[str, Any] = {}
    meta_path = BUNDLED_DIR / "bundled.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
    light_det = meta.get("craft_light", {})
    register(
        ModelSpec(
            name="craft_light",
            task="detector",
            arch="craft_light",
            options=light_det.get("options", {}),
            filename="craft_light.pth",
            sha256=light_det.get("sha256"),
            mean=CRAFT_MEAN,
            std=CRAFT_STD,
            thresholds={**CRAFT_TEST_DEFAULTS, **light_det.get("thresholds", {})},
            description="our light CRAFT-style detector (bundled, trained on synthetic documents)",
        )
    )
    light_rec = meta.get("crnn_light", {})
    character = light_rec.get("character", CHARSET_CASE_SENSITIVE)
    register(
        ModelSpec(
            name="crnn_light",
            task="recognizer",
            arch="dtrb",
            options={
                "transformation": "None",
                "feature_extraction": "VGG",
                "sequence_modeling": "BiLSTM",
                "prediction": "CTC",
                "img_h": 32,
                "img_w": 400,
                "input_channel": 1,
                "output_channel": 256,
                "hidden_size": 128,
                "num_fiducial": 20,
                "batch_max_length": 40,
                "num_class": len(character) + 1,
                **light_rec.get("options", {}),
            },
            filename="crnn_light.pth",
            sha256=light_rec.get("sha256"),
            character=character,
            input_size=(32, 400),
            keep_ratio=True,
            description="our light None-VGG-BiLSTM-CTC recognizer, 94 case-sensitive chars (bundled)",
            int8=light_rec.get("int8", {}),
        )
    )


_register_official()
_register_bundled()
