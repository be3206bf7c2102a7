"""Recognizer input preparation: crops (RGB or gray uint8 arrays) -> normalised tensors.

Two layouts:

* :func:`official_input`: the official fixed-size input (PIL 'L', PIL BICUBIC resize to exactly
  ``img_w x img_h`` ignoring the aspect ratio, /255, then (x - 0.5) / 0.5).
* :func:`keep_ratio_batches`: our models' input: height ``img_h``, width following the aspect
  ratio, bucketed and grouped by width so padding stays small; padding replicates the last
  column (as the official NormalizePAD does). With ``widths`` and ``batch_sizes`` (the
  predictor passes :func:`width_ladder` and :func:`batch_ladder`) every batch takes one of a
  fixed set of shapes, so oneDNN's per-shape kernels are built once and then reused.

Zero-size crops are rejected with ``ValueError`` (they have no aspect ratio and no pixels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

__all__ = ["to_gray", "official_input", "keep_ratio_width", "keep_ratio_batches", "width_ladder", "batch_ladder"]

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


def width_ladder(min_w: int = 16, max_w: int = 400, growth: float = 1.15, align: int = 8) -> list[int]:
    """Padded widths for :func:`keep_ratio_batches`: ``min_w``, then each step ``growth`` times
    the last rounded up to a multiple of ``align`` (at least ``align`` more), ending at ``max_w``.

    ``width_ladder(16, 400)`` has 18 widths (16, 24, 32, ..., 320, 368, 400): a crop is padded by
    at most 15% (or ``align`` pixels) beyond its bucket.
    """
    if min_w < 1 or max_w < min_w or growth <= 1.0 or align < 1:
        raise ValueError(f"invalid ladder: min_w={min_w}, max_w={max_w}, growth={growth}, align={align}")
    widths = [min_w]
    while widths[-1] < max_w:
        grown = max(widths[-1] + align, math.ceil(widths[-1] * growth / align) * align)
        widths.append(min(max_w, grown))
    return widths


def batch_ladder(max_batch: int) -> list[int]:
    """Batch sizes for :func:`keep_ratio_batches`: the powers of two below ``max_batch``, and it."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    sizes = [1]
    while sizes[-1] * 2 < max_batch:
        sizes.append(sizes[-1] * 2)
    return sizes + ([max_batch] if sizes[-1] != max_batch else [])


def _chunk_sizes(count: int, sizes: Sequence[int], pad_slack: float) -> list[tuple[int, int]]:
    """Cut ``count`` crops into ``(crops, rows)`` chunks with ``rows`` in ``sizes`` (ascending,
    starting at 1): the rest is padded up to the next size when that adds at most ``pad_slack``
    of it in repeated rows, else the largest size that fits is taken and the rest cut again."""
    chunks = []
    while count > 0:
        up = next((s for s in sizes if s >= count), None)
        if up is not None and up <= count * (1.0 + pad_slack):
            chunks.append((count, up))
            break
        down = max(s for s in sizes if s <= count)
        chunks.append((down, down))
        count -= down
    return chunks


def keep_ratio_batches(
    crops: Sequence[Crop],
    img_h: int = 32,
    min_w: int = 16,
    max_w: int = 400,
    bucket: int = 8,
    max_batch: int = 64,
    width_slack: float = 0.25,
    widths: Sequence[int] | None = None,
    batch_sizes: Sequence[int] | None = None,
    pad_slack: float = 0.25,
) -> list[tuple[list[int], torch.Tensor]]:
    """Resize keeping the aspect ratio and group crops of similar width into padded batches.

    Each crop becomes gray, is resized (PIL BICUBIC) to ``img_h`` x :func:`keep_ratio_width`
    and normalised to [-1, 1]. Its padded width is the content width rounded up to a multiple of
    ``bucket`` (capped at ``max_w``). Crops are sorted by padded width (stable) and cut into
    groups: a group closes when it holds ``max_batch`` crops or when the next crop's padded width
    exceeds ``max(first + bucket, first * (1 + width_slack))`` (``first`` = the group's narrowest).
    Every member is padded to the group's widest padded width by replicating its last column.

    Fixed shapes: with ``widths`` (ascending, the last >= ``max_w``), a crop's padded width is the
    first of them that holds its content (instead of the ``bucket`` multiple). With
    ``batch_sizes`` (ascending, starting at 1, none above ``max_batch``), each group is cut into
    batches whose row counts are in that set: the remainder of a group is padded up to the next
    size with copies of its last row when that adds at most ``pad_slack`` of it, else the largest
    size that fits is cut off first. Padding rows come after the real ones (row i < len(indices)
    is crop ``indices[i]``; later rows are repeats to drop). oneDNN builds a kernel per input
    shape; on FUNSD's crops a free choice of shapes rebuilt kernels for most batches.

    Args:
        crops: Crops (see :func:`to_gray`).
        img_h: Target height.
        min_w: Narrowest content width.
        max_w: Widest content width.
        bucket: Width granularity of the padded tensors.
        max_batch: Largest group.
        width_slack: Relative width spread allowed inside a group.
        widths: Allowed padded widths (None: multiples of ``bucket``).
        batch_sizes: Allowed batch row counts (None: any up to ``max_batch``).
        pad_slack: Share of repeated rows allowed to reach a size in ``batch_sizes``.

    Returns:
        ``(indices, tensor)`` per batch, narrowest first: the crops' positions in ``crops`` and
        their N x 1 x img_h x W batch (row i is crop ``indices[i]``; N may exceed
        ``len(indices)`` only with ``batch_sizes``). Every index appears in exactly one batch;
        no crops gives an empty list.

    Raises:
        ValueError: Bad arguments, or a zero-size/malformed crop (the message gives its index).
    """
    if img_h < 1 or min_w < 1 or max_w < min_w or bucket < 1 or max_batch < 1 or width_slack < 0:
        raise ValueError(
            f"invalid arguments: img_h={img_h}, min_w={min_w}, max_w={max_w}, bucket={bucket}, "
            f"max_batch={max_batch}, width_slack={width_slack}"
        )
    ladder = sorted(int(w) for w in widths) if widths is not None else None
    if ladder is not None and (not ladder or ladder[0] < 1 or ladder[-1] < max_w):
        raise ValueError(f"widths must be positive and reach max_w={max_w}, got {list(widths or [])}")
    sizes = sorted(int(n) for n in batch_sizes) if batch_sizes is not None else None
    if sizes is not None and (not sizes or sizes[0] != 1 or sizes[-1] > max_batch or pad_slack < 0):
        raise ValueError(
            f"batch_sizes must start at 1 and stay <= max_batch={max_batch} (pad_slack >= 0), "
            f"got {list(batch_sizes or [])}, pad_slack={pad_slack}"
        )
    items: list[tuple[int, torch.Tensor, int]] = []  # (index, 1 x H x content_w, padded_w)
    for index, crop in enumerate(crops):
        try:
            gray = to_gray(crop)
        except ValueError as exc:
            raise ValueError(f"crop {index}: {exc}") from exc
        content_w = keep_ratio_width(gray.height, gray.width, img_h, min_w, max_w)
        if ladder is not None:
            padded_w = next(w for w in ladder if w >= content_w)
        else:
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
        chunks = _chunk_sizes(len(group), sizes, pad_slack) if sizes else [(len(group), len(group))]
        start = 0
        for count, rows in chunks:
            chunk = group[start : start + count]
            start += count
            batch = torch.empty(rows, 1, img_h, width)
            for row, (_, tensor, _) in enumerate(chunk):
                content_w = tensor.size(2)
                batch[row, :, :, :content_w] = tensor
                if content_w < width:
                    batch[row, :, :, content_w:] = tensor[:, :, content_w - 1 : content_w]
            if rows > count:
                batch[count:] = batch[count - 1 : count]
            batches.append(([item[0] for item in chunk], batch))
    return batches
