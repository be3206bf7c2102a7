"""Recognizer input preparation: crops (RGB or gray uint8 arrays) -> normalised tensors.

Two layouts:

* :func:`official_input`: the official fixed-size input (PIL 'L', PIL BICUBIC resize to exactly
  ``img_w x img_h`` ignoring the aspect ratio, /255, then (x - 0.5) / 0.5).
* :func:`keep_ratio_batches`: our models' input: height ``img_h``, width following the aspect
  ratio, bucketed and grouped by width so padding stays small; padding replicates the last
  column (as the official NormalizePAD does).

Zero-size crops are rejected with ``ValueError`` (they have no aspect ratio and no pixels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

__all__ = ["to_gray", "official_input", "keep_ratio_width", "keep_ratio_batches"]

Crop = np.ndarray | Image.Image


def to_gray(crop: Crop) -> Image.Image:
    """Convert a crop to a PIL 'L' image (ITU-R 601-2 luma, exactly PIL's ``convert('L')``).

    Args:
        crop: H x W (gray), H x W x 1, H x W x 3 (RGB) or H x W x 4 (RGBA, alpha ignored) uint8
            array, or a PIL image.

    Returns:
        The grayscale image.

    Raises:
        ValueError: Zero-size crop, wrong dtype or layout.
    """
    if isinstance(crop, Image.Image):
        if crop.width == 0 or crop.height == 0:
            raise ValueError(f"zero-size crop ({crop.width}x{crop.height})")
        return crop if crop.mode == "L" else crop.convert("L")
    array = np.asarray(crop)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ValueError(f"crop must be HxW or HxWx{{1,3,4}}, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"zero-size crop (shape {array.shape})")
    if array.dtype != np.uint8:
        raise ValueError(f"crop must be uint8, got {array.dtype}")
    array = np.ascontiguousarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = np.ascontiguousarray(array[:, :, 0])
    image = Image.fromarray(array)  # uint8: 2-D -> 'L', 3 channels -> 'RGB', 4 -> 'RGBA'
    return image if image.mode == "L" else image.convert("L")


def _normalise(gray: Image.Image) -> torch.Tensor:
    """PIL 'L' -> 1 x H x W float32 in [-1, 1] (ToTensor then (x - 0.5) / 0.5)."""
    pixels = torch.from_numpy(np.array(gray, dtype=np.uint8))
    return pixels.float().div(255).sub(0.5).div(0.5).unsqueeze(0)


def official_input(crops: Sequence[Crop], img_h: int = 32, img_w: int = 100) -> torch.Tensor:
    """Prepare crops the way the official demo does (no aspect ratio kept).

    Args:
        crops: Crops (see :func:`to_gray`).
        img_h: Target height.
        img_w: Target width.

    Returns:
        B x 1 x img_h x img_w float32 tensor in [-1, 1] (0 x 1 x H x W for no crops).

    Raises:
        ValueError: A crop is zero-size or malformed (the message gives its index).
    """
    tensors = []
    for index, crop in enumerate(crops):
        try:
            gray = to_gray(crop)
        except ValueError as exc:
            raise ValueError(f"crop {index}: {exc}") from exc
        tensors.append(_normalise(gray.resize((img_w, img_h), Image.BICUBIC)))
    if not tensors:
        return torch.zeros(0, 1, img_h, img_w)
    return torch.stack(tensors)


def keep_ratio_width(height: int, width: int, img_h: int = 32, min_w: int = 16, max_w: int = 400) -> int:
    """Content width after resizing to ``img_h`` keeping the aspect ratio.

    ``clamp(ceil(img_h * width / height), min_w, max_w)``, with an exact integer ceiling
    (the official NormalizePAD uses floats, which can round an exact ratio up by one pixel).

    Args:
        height: Crop height (> 0).
        width: Crop width (> 0).
        img_h: Target height.
        min_w: Narrowest result (narrower crops are stretched).
        max_w: Widest result (wider crops are squeezed).

    Returns:
        The target width in pixels.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"zero-size crop ({height}x{width})")
    return max(min_w, min(max_w, -(-img_h * width // height)))


def keep_ratio_batches(
    crops: Sequence[Crop],
    img_h: int = 32,
    min_w: int = 16,
    max_w: int = 400,
    bucket: int = 8,
    max_batch: int = 64,
    width_slack: float = 0.25,
) -> list[tuple[list[int], torch.Tensor]]:
    """Resize keeping the aspect ratio and group crops of similar width into padded batches.

    Each crop becomes gray, is resized (PIL BICUBIC) to ``img_h`` x :func:`keep_ratio_width`
    and normalised to [-1, 1]. Its padded width is the content width rounded up to a multiple of
    ``bucket`` (capped at ``max_w``). Crops are sorted by padded width (stable) and cut into
    groups: a group closes when it holds ``max_batch`` crops or when the next crop's padded width
    exceeds ``max(first + bucket, first * (1 + width_slack))`` (``first`` = the group's narrowest).
    Every member is padded to the group's widest padded width by replicating its last column.

    Args:
        crops: Crops (see :func:`to_gray`).
        img_h: Target height.
        min_w: Narrowest content width.
        max_w: Widest content width.
        bucket: Width granularity of the padded tensors.
        max_batch: Largest group.
        width_slack: Relative width spread allowed inside a group.

    Returns:
        ``(indices, tensor)`` per group, narrowest group first: the crops' positions in ``crops``
        and their N x 1 x img_h x W batch (row i is crop ``indices[i]``). Every index appears in
        exactly one group; no crops gives an empty list.

    Raises:
        ValueError: Bad arguments, or a zero-size/malformed crop (the message gives its index).
    """
    if img_h < 1 or min_w < 1 or max_w < min_w or bucket < 1 or max_batch < 1 or width_slack < 0:
        raise ValueError(
            f"invalid arguments: img_h={img_h}, min_w={min_w}, max_w={max_w}, bucket={bucket}, "
            f"max_batch={max_batch}, width_slack={width_slack}"
        )
    items: list[tuple[int, torch.Tensor, int]] = []  # (index, 1 x H x content_w, padded_w)
    for index, crop in enumerate(crops):
        try:
            gray = to_gray(crop)
        except ValueError as exc:
            raise ValueError(f"crop {index}: {exc}") from exc
        content_w = keep_ratio_width(gray.height, gray.width, img_h, min_w, max_w)
        padded_w = min(max_w, math.ceil(content_w / bucket) * bucket)
        items.append((index, _normalise(gray.resize((content_w, img_h), Image.BICUBIC)), padded_w))

    items.sort(key=lambda item: item[2])
    groups: list[list[tuple[int, torch.Tensor, int]]] = []
    for item in items:
        if groups:
            group = groups[-1]
            first = group[0][2]
            if len(group) < max_batch and item[2] <= max(first + bucket, first * (1.0 + width_slack)):
                group.append(item)
                continue
        groups.append([item])

    batches = []
    for group in groups:
        width = max(item[2] for item in group)
        batch = torch.empty(len(group), 1, img_h, width)
        for row, (_, tensor, _) in enumerate(group):
            content_w = tensor.size(2)
            batch[row, :, :, :content_w] = tensor
            if content_w < width:
                batch[row, :, :, content_w:] = tensor[:, :, content_w - 1 : content_w]
        batches.append(([item[0] for item in group], batch))
    return batches
