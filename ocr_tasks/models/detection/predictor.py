"""DetectionPredictor: page image -> text boxes in page coordinates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ...geometry import order_quad
from ...schemas import DetectedBox, quad_to_list
from ..precision import autocast
from ..registry import ModelSpec
from .postprocess import CraftThresholds, adjust_result_coordinates, get_det_boxes
from .preprocess import canvas_tensor

__all__ = ["DetectionPredictor"]


class DetectionPredictor:
    """CRAFT-style detection: resize and normalise, forward, threshold, map back to the page.

    Args:
        model: a CRAFT or LightCRAFT network in eval mode.
        spec: its registry entry (normalisation and default thresholds).
        refiner: optional link refiner; when given, its output replaces the affinity map and
            polygons are produced, as the official test script does.
        device: where the model lives.
        precision: autocast dtype of the forward pass (None: float32; :mod:`..precision`).
    """

    def __init__(
        self,
        model: nn.Module,
        spec: ModelSpec,
        refiner: nn.Module | None = None,
        device: torch.device | str = "cpu",
        precision: torch.dtype | None = None,
    ) -> None:
        self.model = model
        self.precision = precision
        self.spec = spec
        self.refiner = refiner
        self.device = torch.device(device)
        self.thresholds = CraftThresholds.from_mapping(spec.thresholds) if spec.thresholds else CraftThresholds()

    def resolve_thresholds(
        self, overrides: CraftThresholds | Mapping[str, Any] | None = None
    ) -> CraftThresholds:
        """The model's defaults with per-request ``overrides`` applied (unknown keys raise ValueError)."""
        if overrides is None:
            return self.thresholds
        if isinstance(overrides, CraftThresholds):
            return overrides
        merged = {**self.thresholds.__dict__, **dict(overrides)}
        return CraftThresholds.from_mapping(merged)

    @torch.inference_mode()
    def score_maps(
        self, image: np.ndarray, thresholds: CraftThresholds | None = None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Region and link maps at half the network's input resolution, plus the resize ratio."""
        th = thresholds or self.thresholds
        tensor, ratio, _ = canvas_tensor(image, th.canvas_size, th.mag_ratio, mean=self.spec.mean, std=self.spec.std)
        tensor = tensor.to(self.device)
        with autocast(self.device, self.precision):
            y, feature = self.model(tensor)
            refined = self.refiner(y, feature) if self.refiner is not None else None
        textmap = y[0, :, :, 0].float().cpu().numpy()
        if refined is not None:
            linkmap = refined[0, :, :, 0].float().cpu().numpy()
        else:
            linkmap = y[0, :, :, 1].float().cpu().numpy()
        return textmap, linkmap, ratio

    def detect(
        self, image: np.ndarray, thresholds: CraftThresholds | Mapping[str, Any] | None = None
    ) -> list[DetectedBox]:
        """Find text boxes on an ``H x W x 3`` RGB uint8 page.

        Returns:
            Boxes as 4-point quads, clockwise from top-left, in page pixels (clipped to the
            page), with a score in [0, 1]; in no particular order.
        """
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        th = self.resolve_thresholds(thresholds)
        if self.refiner is not None and not th.poly:
            th = replace(th, poly=True)
        textmap, linkmap, ratio = self.score_maps(image, th)
        boxes, _polys, scores = get_det_boxes(textmap, linkmap, th)
        h, w = image.shape[:2]
        out: list[DetectedBox] = []
        inv = 1.0 / ratio
        for box, score in zip(boxes, scores):
            pts = adjust_result_coordinates(np.asarray(box, dtype=np.float32)[None], inv, inv)[0]
            pts[:, 0] = np.clip(pts[:, 0], 0, w - 1)
            pts[:, 1] = np.clip(pts[:, 1], 0, h - 1)
            quad = order_quad(pts)
            if np.ptp(quad[:, 0]) < 1 or np.ptp(quad[:, 1]) < 1:
                continue
            out.append(DetectedBox(quad=quad_to_list(quad), score=float(score)))
        return out
