"""RecognitionPredictor: word crops -> (text, confidence), one per crop, in order."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..precision import autocast
from ..registry import ModelSpec
from .converter import make_converter
from .preprocess import batch_ladder, keep_ratio_batches, official_input, width_ladder

__all__ = ["RecognitionPredictor"]


class RecognitionPredictor:
    """Batched recognition with any four-stage model.

    Official models see each crop squashed to their fixed 32x100 input, as the reference demo
    does. Our keep-ratio models see crops resized to the input height with the aspect kept,
    grouped by width so that padding stays small.

    Args:
        model: a RecognitionModel in eval mode.
        spec: its registry entry (charset, input size, keep_ratio).
        device: where the model lives.
        max_batch: most crops in one forward pass.
        precision: autocast dtype of the forward pass (None: float32; :mod:`..precision`).
        channels_last: run the convolutions in the channels-last memory format. This converts
            ``model``'s parameters in place (the factory's private copy, or the training
            model, which trains channels-last on CPU anyway). Same readings (held-out
            synthetic word accuracy equal to four digits); on a 2-core AVX2 CPU it read
            FUNSD's 8,707 crops at 3.8 instead of 4.7 ms each with 930 instead of 1,060 MiB
            resident (docs/BENCHMARKS.md).
        fixed_shapes: keep-ratio batches take their widths from :func:`width_ladder` and their
            row counts from :func:`batch_ladder` (padding with repeated columns and rows), so a
            process sees at most 18 x 9 input shapes and oneDNN builds each shape's kernels once.
            On 30 FUNSD pages' 4,072 detected crops, bf16, two threads, kernel cache 1024 (the
            factory's bound for recognizers): 1.35 ms per crop on a first pass and 1.08 on the
            second, against 1.94 and 2.20 with free shapes, which keep building kernels (555 vs
            904 MiB resident); held-out synthetic word accuracy 0.8247 vs 0.8239 (the padding
            repeats columns, as training does; docs/BENCHMARKS.md).
    """

    def __init__(
        self, model: nn.Module, spec: ModelSpec, device: torch.device | str = "cpu", max_batch: int = 256,
        precision: torch.dtype | None = None, channels_last: bool = False, fixed_shapes: bool = True,
    ) -> None:
        self.channels_last = bool(channels_last)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.precision = precision
        self.spec = spec
        self.device = torch.device(device)
        self.max_batch = max(1, int(max_batch))
        self.fixed_shapes = bool(fixed_shapes)
        # the fixed shapes' ladders, built once (keep-ratio models with fixed_shapes on use them)
        self._ladders = (
            {"widths": width_ladder(16, spec.input_size[1]), "batch_sizes": batch_ladder(self.max_batch)}
            if spec.keep_ratio else {}
        )
        self.prediction = str(spec.options.get("prediction", "CTC"))
        self.converter = make_converter(self.prediction, spec.character)

    def _forward(self, batch: torch.Tensor) -> list[tuple[str, float]]:
        with autocast(self.device, self.precision):
            batch = batch.to(self.device)
            if self.channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            logits = self.model(batch, None, False)
        logits = logits.float()
        if self.prediction == "CTC":
            return self.converter.decode_greedy(logits)
        return self.converter.decode(logits)

    @torch.inference_mode()
    def predict(self, crops: Sequence[np.ndarray]) -> list[tuple[str, float]]:
        """Recognise every crop (gray ``H x W`` or RGB ``H x W x 3`` uint8).

        Returns:
            ``[(text, confidence)]`` with ``len(out) == len(crops)``, in input order.
        """
        if len(crops) == 0:
            return []
        for i, crop in enumerate(crops):
            if crop is None or crop.ndim not in (2, 3) or crop.shape[0] == 0 or crop.shape[1] == 0:
                raise ValueError(f"crop {i} is empty or malformed (shape {getattr(crop, 'shape', None)})")
        results: list[tuple[str, float] | None] = [None] * len(crops)
        img_h, img_w = self.spec.input_size
        if self.spec.keep_ratio:
            shapes = self._ladders if self.fixed_shapes else {}
            for indices, batch in keep_ratio_batches(
                crops, img_h=img_h, max_w=img_w, max_batch=self.max_batch, **shapes
            ):
                for idx, res in zip(indices, self._forward(batch)):
                    results[idx] = res
        else:
            for start in range(0, len(crops), self.max_batch):
                chunk = list(crops[start : start + self.max_batch])
                for k, res in enumerate(self._forward(official_input(chunk, img_h=img_h, img_w=img_w))):
                    results[start + k] = res
        if any(r is None for r in results):
            raise RuntimeError("recognizer returned fewer results than crops")
        return [(str(t), float(c)) for t, c in results]  # type: ignore[misc]
