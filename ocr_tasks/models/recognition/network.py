"""The four-stage recognizer (Transformation -> FeatureExtraction -> SequenceModeling -> Prediction).

:class:`RecognitionModel` keeps the official attribute names, so its state_dict keys equal the
official checkpoints' keys without the ``module.`` prefix. Stages set to "None" have no
attribute (and no keys).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .modules import (
    Attention,
    BidirectionalLSTM,
    RCNN_FeatureExtractor,
    ResNet_FeatureExtractor,
    TPS_SpatialTransformerNetwork,
    VGG_FeatureExtractor,
)

__all__ = ["RecognizerOptions", "RecognitionModel", "MIN_INPUT_WIDTH"]

_CHOICES: dict[str, tuple[str, ...]] = {
    "transformation": ("None", "TPS"),
    "feature_extraction": ("VGG", "RCNN", "ResNet"),
    "sequence_modeling": ("None", "BiLSTM"),
    "prediction": ("CTC", "Attn"),
}

#: Official option name -> our field name.
_OFFICIAL_NAMES: dict[str, str] = {
    "Transformation": "transformation",
    "FeatureExtraction": "feature_extraction",
    "SequenceModeling": "sequence_modeling",
    "Prediction": "prediction",
    "imgH": "img_h",
    "imgW": "img_w",
}

#: Narrowest input (pixels) every feature extractor accepts (VGG: T = W//4 - 1 >= 1).
MIN_INPUT_WIDTH = 8


@dataclass(frozen=True)
class RecognizerOptions:
    """Architecture options of a DTRB recognizer (the official defaults except ``num_class``).

    Stage names are matched case-insensitively and stored in their canonical spelling
    ("None", "TPS", "VGG", "RCNN", "ResNet", "BiLSTM", "CTC", "Attn").
    """

    transformation: str = "None"
    feature_extraction: str = "VGG"
    sequence_modeling: str = "BiLSTM"
    prediction: str = "CTC"
    img_h: int = 32
    img_w: int = 100
    input_channel: int = 1
    output_channel: int = 512
    hidden_size: int = 256
    num_fiducial: int = 20
    batch_max_length: int = 25
    num_class: int = 37

    def __post_init__(self) -> None:
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            canonical = (
                {c.lower(): c for c in choices}.get(str(value).lower()) if isinstance(value, str) else None
            )
            if canonical is None:
                raise ValueError(f"invalid {name}={value!r}: expected one of {', '.join(choices)}")
            object.__setattr__(self, name, canonical)
        for name in (
            "img_h",
            "img_w",
            "input_channel",
            "output_channel",
            "hidden_size",
            "num_fiducial",
            "batch_max_length",
            "num_class",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"invalid {name}={value!r}: expected a positive int")
        if self.img_h < 32:
            raise ValueError(f"invalid img_h={self.img_h}: the feature extractors need at least 32 pixels")
        if self.img_w < MIN_INPUT_WIDTH:
            raise ValueError(f"invalid img_w={self.img_w}: expected at least {MIN_INPUT_WIDTH}")
        divisor = 16 if self.feature_extraction == "ResNet" else 8
        if self.output_channel % divisor:
            raise ValueError(
                f"invalid output_channel={self.output_channel}: must be a multiple of {divisor} "
                f"for {self.feature_extraction}"
            )
        if self.num_fiducial < 4 or self.num_fiducial % 2:
            raise ValueError(f"invalid num_fiducial={self.num_fiducial}: expected an even number >= 4")
        min_class = 2 if self.prediction == "CTC" else 3
        if self.num_class < min_class:
            raise ValueError(
                f"invalid num_class={self.num_class}: {self.prediction} needs at least {min_class} "
                "(special tokens plus one character)"
            )

    @property
    def num_steps(self) -> int:
        """Attention decoding steps (``batch_max_length + 1``)."""
        return self.batch_max_length + 1

    @property
    def name(self) -> str:
        """Official-style model name, e.g. ``TPS-ResNet-BiLSTM-Attn``."""
        return "-".join(
            (self.transformation, self.feature_extraction, self.sequence_modeling, self.prediction)
        )

    def to_dict(self) -> dict[str, Any]:
        """The options as a plain dict of our (snake_case) field names."""
        return dataclasses.asdict(self)

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any], strict: bool = False) -> RecognizerOptions:
        """Build options from our field names and/or the official option names.

        Official names (``Transformation``, ``FeatureExtraction``, ``SequenceModeling``,
        ``Prediction``, ``imgH``, ``imgW``) map to the snake_case fields; ``input_channel``,
        ``output_channel``, ... are shared. Official extras are honoured: ``rgb=True`` means
        ``input_channel=3``, and ``character`` gives ``num_class`` (len + 1 for CTC, + 2 for
        Attn) when ``num_class`` is absent. Other keys (``PAD``, ``sensitive``, ``tokens``, ...)
        are ignored unless ``strict``.

        Args:
            options: The mapping (e.g. a manifest's ``options`` or a registry entry's).
            strict: Raise on keys that are neither fields nor known official extras.

        Returns:
            The validated options.

        Raises:
            ValueError: Bad or conflicting values, or (strict) unknown keys.
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        known_extras = {
            "rgb",
            "character",
            "sensitive",
            "PAD",
            "tokens",
            "num_steps_or_T",
            "special_tokens",
            "image_preprocessing",
        }
        values: dict[str, Any] = {}
        unknown = []
        for key, value in options.items():
            name = _OFFICIAL_NAMES.get(key, key)
            if name in fields:
                if name in values and values[name] != value:
                    raise ValueError(f"conflicting values for {name}: {values[name]!r} and {value!r}")
                values[name] = value
            elif key not in known_extras:
                unknown.append(key)
        if strict and unknown:
            raise ValueError(f"unknown recognizer option(s): {', '.join(map(str, unknown))}")
        if options.get("rgb"):
            if values.get("input_channel", 3) != 3:
                raise ValueError(f"conflicting options: rgb=True but input_channel={values['input_channel']}")
            values["input_channel"] = 3
        if "num_class" not in values and options.get("character") is not None:
            prediction = str(values.get("prediction", cls.prediction)).lower()
            values["num_class"] = len(options["character"]) + (2 if prediction == "attn" else 1)
        return cls(**values)


class RecognitionModel(nn.Module):
    """DTRB recognizer with the official module names.

    Input: B x input_channel x img_h x W normalised to [-1, 1]. With TPS, W must equal ``img_w``;
    otherwise any W >= :data:`MIN_INPUT_WIDTH` works (T grows with W).
    """

    def __init__(self, options: RecognizerOptions) -> None:
        """Build the model.

        Args:
            options: Architecture options.
        """
        super().__init__()
        self.options = options
        opt = options
        if opt.transformation == "TPS":
            size = (opt.img_h, opt.img_w)
            self.Transformation = TPS_SpatialTransformerNetwork(
                num_fiducial=opt.num_fiducial,
                input_size=size,
                output_size=size,
                input_channel=opt.input_channel,
            )

        extractor = {
            "VGG": VGG_FeatureExtractor,
            "RCNN": RCNN_FeatureExtractor,
            "ResNet": ResNet_FeatureExtractor,
        }[opt.feature_extraction]
        self.FeatureExtraction = extractor(opt.input_channel, opt.output_channel)
        sequence_output = opt.output_channel

        if opt.sequence_modeling == "BiLSTM":
            self.SequenceModeling = nn.Sequential(
                BidirectionalLSTM(opt.output_channel, opt.hidden_size, opt.hidden_size),
                BidirectionalLSTM(opt.hidden_size, opt.hidden_size, opt.hidden_size),
            )
            sequence_output = opt.hidden_size

        if opt.prediction == "CTC":
            self.Prediction: nn.Module = nn.Linear(sequence_output, opt.num_class)
        else:
            self.Prediction = Attention(sequence_output, opt.hidden_size, opt.num_class)

    def feature_length(self, width: int) -> int:
        """Encoder time steps T for an input of ``width`` pixels (CTC output length).

        Args:
            width: Input width (after TPS the width is ``img_w``).

        Returns:
            T (24 for VGG and 26 for ResNet/RCNN at width 100).
        """
        if self.options.transformation == "TPS":
            width = self.options.img_w
        if self.options.feature_extraction == "VGG":
            return width // 4 - 1
        return width // 4 + 1

    def _check_input(self, image: torch.Tensor) -> None:
        opt = self.options
        if image.dim() != 4 or image.size(1) != opt.input_channel:
            raise ValueError(
                f"expected a B x {opt.input_channel} x H x W image batch, got shape {tuple(image.shape)}"
            )
        if image.size(2) != opt.img_h:
            raise ValueError(f"expected input height {opt.img_h}, got {image.size(2)}")
        if opt.transformation == "TPS" and image.size(3) != opt.img_w:
            raise ValueError(f"TPS models need input width exactly {opt.img_w}, got {image.size(3)}")
        if image.size(3) < MIN_INPUT_WIDTH:
            raise ValueError(f"input width {image.size(3)} is below the minimum {MIN_INPUT_WIDTH}")

    def forward(
        self, image: torch.Tensor, text: torch.Tensor | None = None, is_train: bool = False
    ) -> torch.Tensor:
        """Run the four stages.

        Args:
            image: B x input_channel x img_h x W, normalised to [-1, 1].
            text: Attn training only: teacher-forcing tokens, B x >= batch_max_length + 1,
                starting with [GO] (the converter's B x (max + 2) encoding can be passed as is).
            is_train: Attn only: teacher forcing instead of greedy decoding.

        Returns:
            Logits: B x T x num_class (CTC) or B x (batch_max_length + 1) x num_class (Attn).
        """
        self._check_input(image)
        if self.options.transformation == "TPS":
            image = self.Transformation(image)
        visual = self.FeatureExtraction(image)  # B x C x H' x T
        # Upstream's AdaptiveAvgPool2d((None, 1)) over height on the B x T x C x H' view is the mean
        # over H'; written as a mean so that the graph exports to ONNX with a free width.
        visual = visual.permute(0, 3, 1, 2).mean(dim=3)  # B x T x C
        if self.options.sequence_modeling == "BiLSTM":
            contextual = self.SequenceModeling(visual)
        else:
            contextual = visual
        if self.options.prediction == "CTC":
            return self.Prediction(contextual.contiguous())
        return self.Prediction(
            contextual.contiguous(), text, is_train=is_train, batch_max_length=self.options.batch_max_length
        )
