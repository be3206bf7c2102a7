"""Train the light CRAFT detector (:class:`~ocr_tasks.models.detection.light.LightCRAFT`) on synthetic pages.

Data: DataLoader worker processes render synthetic document pages
(:func:`ocr_tasks.training.synth.render_page`) on the fly. Page ``k`` of a run is rendered from
seed ``base + k`` (``base = seed * TRAIN_SEED_STRIDE``), worker ``w`` of ``W`` renders pages
``start + w, start + w + W, ...``, so the stream is deterministic for a seed and worker count
and a run resumes from a page index. Each page gives ``crops_per_page`` training samples:

1. Sometimes the page is first downscaled (a low-resolution scan: small print in pixels).
2. It is resized exactly as :class:`~ocr_tasks.models.detection.predictor.DetectionPredictor`
   does (:func:`~ocr_tasks.models.detection.preprocess.resize_aspect_ratio` with a random
   ``canvas_size`` / ``mag_ratio`` drawn around the inference settings, padded with zeros to
   multiples of 32), so text sizes at train time match inference.
3. A ``crop x crop`` window is cut (mostly centred near a random word, sometimes anywhere;
   zero-padded at the bottom/right when the canvas is smaller) and normalised with
   :func:`~ocr_tasks.models.detection.preprocess.normalize_mean_variance`.
4. Region/affinity targets are drawn at half resolution from the character boxes
   (:mod:`ocr_tasks.training.craft_targets`).

Loss: MSE on region and affinity maps with CRAFT's online hard negative mining, per image and
per map: all positive pixels (target > 0.1) plus the hardest negatives at a 3:1 ratio (all
negatives when there are fewer), or the hardest ``min_negatives`` pixels when the image has no
positives; ``mean(positive loss) + mean(negative loss)``, averaged over the batch.

Optimiser: AdamW, linear warmup then cosine decay (to 2 % of the peak), gradient clipping,
mixed precision (fp16 autocast + GradScaler) on CUDA, bf16 autocast on CPUs with native bf16.

Validation runs the real :class:`DetectionPredictor` on held-out synthetic pages (a seed range
training never uses) and scores word boxes with :mod:`ocr_tasks.evaluation.metrics`
(IoU >= 0.5 after axis-aligned conversion, counts summed over pages).

Run directory: ``last.pt`` (model, optimizer, scaler, step, pages_done, best, config),
``best.pth`` (plain state_dict of the best validation H-mean), ``config.json`` (the run config
plus ``spec_options``, the LightCRAFT constructor options), ``log.jsonl`` (with
``skipped_steps``: steps skipped for a non-finite loss or gradient, see
:class:`~ocr_tasks.training.common.NonFiniteGuard`) and ``nonfinite/`` (the first such batches).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..models.detection.preprocess import normalize_mean_variance, resize_aspect_ratio
from ..models.registry import CRAFT_TEST_DEFAULTS, ModelSpec, get_spec
from .common import (
    MAX_BAD_STEPS,
    MAX_DUMPS,
    NonFiniteGuard,
    amp_dtype,
    atomic_save,
    restore_optimizer,
    warmup_cosine_lr,
)
from .craft_targets import POSITIVE_THRESHOLD, word_targets

__all__ = [
    "TRAIN_SEED_STRIDE",
    "VAL_SEED",
    "TUNE_SEED",
    "DetectorTrainConfig",
    "DetectorPageStream",
    "EvalPage",
    "detector_loss",
    "ohem_mse",
    "page_samples",
    "render_eval_page",
    "make_eval_pages",
    "evaluate_detector",
    "detector_spec",
    "train_detector",
]

log = logging.getLogger(__name__)

#: Training page ``k`` of a run with seed ``s`` is rendered from seed ``s * TRAIN_SEED_STRIDE + k``.
TRAIN_SEED_STRIDE = 1_000_000
#: Validation pages are rendered from seeds ``VAL_SEED + i`` (never used for training).
VAL_SEED = 3_000_000_000
#: Pages for threshold tuning: seeds ``TUNE_SEED + i`` (distinct from training and validation).
TUNE_SEED = 3_500_000_000

#: Training scale: ``resize_aspect_ratio(page, canvas_size, mag_ratio)`` with these ranges (the
#: predictor's defaults are 1280 / 1.5; tuning explores 1024-1920 and 1.0-2.0).
CANVAS_RANGE = (896.0, 2048.0)
MAG_RANGE = (1.0, 2.0)
#: Probability and range of a pre-downscale of the rendered page (low-resolution scans).
DOWNSCALE_P = 0.3
DOWNSCALE_RANGE = (0.6, 0.9)


@dataclass
class DetectorTrainConfig:
    """Everything that defines a detector training run (stored in its checkpoints and config.json).

    Attributes:
        out_dir: Run directory.
        steps: Optimiser steps.
        batch_size: Crops per step.
        crop: Side of the square training crops (network input pixels, a multiple of 32).
        crops_per_page: Training crops cut from each rendered page.
        lr: Peak learning rate.
        weight_decay: AdamW weight decay.
        warmup: Linear warmup steps.
        cosine_from: Step at which the warmup + cosine schedule (re)starts (``--cosine-from``).
        seed: Run seed (model init, data seeds, shuffling).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        amp: Mixed precision: fp16 on CUDA, bf16 on CPUs with native bf16 (``common.amp_dtype``).
        workers: Page-rendering DataLoader worker processes (0 = render in the main process).
        val_pages: Held-out synthetic pages for validation (0 = no validation).
        val_every: Validate every this many steps (and at the end).
        ckpt_every: Write ``last.pt`` every this many steps (and at the end).
        threads: torch CPU threads of the main process (0 = torch's default).
        grad_clip: Gradient norm clip.
        neg_ratio: Hard negatives per positive pixel in the loss.
        min_negatives: Hard negatives taken when an image has no positive pixel.
        shuffle_buffer: Samples buffered per worker to mix crops of different pages.
        options: LightCRAFT constructor options (e.g. ``{"width": 1.5}``).
        page_size: Fixed ``(width, height)`` of rendered pages (None: random; tests use small pages).
        val_thresholds: Post-processing used for validation (fixed so runs stay comparable).
    """

    out_dir: str = "runs/detector"
    steps: int = 3000
    batch_size: int = 8
    crop: int = 384
    crops_per_page: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 150
    cosine_from: int = 0
    seed: int = 1234
    device: str = "cpu"
    amp: bool = True
    workers: int = 1
    val_pages: int = 12
    val_every: int = 250
    ckpt_every: int = 100
    threads: int = 0
    grad_clip: float = 5.0
    neg_ratio: float = 3.0
    min_negatives: int = 500
    shuffle_buffer: int = 32
    options: dict[str, Any] = field(default_factory=dict)
    page_size: tuple[int, int] | None = None
    val_thresholds: dict[str, Any] = field(default_factory=lambda: dict(CRAFT_TEST_DEFAULTS))


def detector_spec(options: Mapping[str, Any] | None = None) -> ModelSpec:
    """The registry's ``craft_light`` spec with the architecture ``options`` replaced.

    Raises:
        ValueError: An option that is not a ``LightCRAFT`` constructor parameter.
    """
    import inspect

    from ..models.detection.light import LightCRAFT

    options = dict(options or {})
    known = set(inspect.signature(LightCRAFT).parameters)
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"unknown LightCRAFT option(s) {unknown}; known: {sorted(known)}")
    return replace(get_spec("craft_light", "detector"), options=options)


# -- data ------------------------------------------------------------------------------------


def _gray_to_rgb(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)


def _downscale(image: np.ndarray, factor: float) -> tuple[np.ndarray, float, float]:
    """Resize by ``factor`` (area interpolation); returns the image and the exact x / y factors."""
    h, w = image.shape[:2]
    nw, nh = max(1, int(round(w * factor))), max(1, int(round(h * factor)))
    return cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA), nw / w, nh / h


def page_samples(
    image: np.ndarray,
    words_chars: Sequence[np.ndarray],
    rng: np.random.Generator,
    crop: int,
    count: int,
    canvas_range: tuple[float, float] = CANVAS_RANGE,
    mag_range: tuple[float, float] = MAG_RANGE,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cut ``count`` training samples from one page, preprocessed as inference does.

    Args:
        image: ``H x W`` (grey) or ``H x W x 3`` (RGB) uint8 page.
        words_chars: Per word, its ``N x 4 x 2`` character quads in page pixels.
        rng: Random generator (scale and crop choices).
        crop: Crop side (network input pixels; even, a multiple of 32 recommended).
        count: Number of crops.
        canvas_range: Range of the random ``canvas_size``.
        mag_range: Range of the random ``mag_ratio``.

    Returns:
        ``(image, target)`` pairs: ``3 x crop x crop`` float32 normalised input and
        ``2 x crop/2 x crop/2`` float32 targets (0 = region, 1 = affinity).
    """
    rgb = _gray_to_rgb(image)
    chars = [np.asarray(c, np.float64).reshape(-1, 4, 2) for c in words_chars if len(c)]
    centres = np.array([c.reshape(-1, 2).mean(0) for c in chars]) if chars else np.zeros((0, 2))
    half = crop // 2
    out = []
    for _ in range(count):
        canvas_size = int(rng.uniform(*canvas_range))
        mag = float(rng.uniform(*mag_range))
        canvas, ratio, _ = resize_aspect_ratio(rgb, canvas_size, mag)
        ch, cw = canvas.shape[:2]
        if len(centres) and rng.random() < 0.7:
            cx, cy = centres[rng.integers(len(centres))] * ratio + rng.uniform(-0.4, 0.4, 2) * crop
            x0, y0 = int(cx) - half, int(cy) - half
        else:
            x0, y0 = int(rng.integers(0, max(cw - crop, 0) + 1)), int(rng.integers(0, max(ch - crop, 0) + 1))
        x0 = int(np.clip(x0, 0, max(cw - crop, 0))) & ~1
        y0 = int(np.clip(y0, 0, max(ch - crop, 0))) & ~1
        window = np.zeros((crop, crop, 3), np.float32)
        part = canvas[y0 : y0 + crop, x0 : x0 + crop]
        window[: part.shape[0], : part.shape[1]] = part
        x = normalize_mean_variance(window).transpose(2, 0, 1)
        region, affinity = word_targets(chars, (half, half), scale=ratio / 2.0, offset=(x0 / 2.0, y0 / 2.0))
        out.append((np.ascontiguousarray(x), np.stack([region, affinity])))
    return out


def _render_training_page(
    seed: int, page_size: tuple[int, int] | None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Render training page ``seed``; sometimes downscale it. Returns the image and char quads."""
    from .synth import render_page

    rng = np.random.default_rng(seed)
    width, height = page_size if page_size else (None, None)
    page = render_page(rng, width, height)
    image = page.image
    chars = [w.chars for w in page.words]
    if rng.random() < DOWNSCALE_P:
        image, fx, fy = _downscale(image, float(rng.uniform(*DOWNSCALE_RANGE)))
        factor = np.array([fx, fy], np.float32)
        chars = [c * factor for c in chars]
    return image, chars


class DetectorPageStream(IterableDataset):
    """Endless stream of ``(image, target, page)`` from pages ``base_seed + k``, k = start, start+1, ...

    Each DataLoader worker renders every ``num_workers``-th page, cuts ``crops_per_page`` samples
    from it and yields them through a small shuffle buffer (mixing crops of neighbouring pages).
    Deterministic for a given seed and worker count; resumable from a page index.

    Args:
        base_seed: Page ``k`` is rendered from seed ``base_seed + k``.
        crop: Crop side.
        crops_per_page: Samples per page.
        start_page: First page index.
        shuffle_buffer: Samples held back for shuffling (per worker).
        page_size: Fixed page size (None: random).
    """

    def __init__(
        self,
        base_seed: int,
        crop: int,
        crops_per_page: int,
        start_page: int = 0,
        shuffle_buffer: int = 32,
        page_size: tuple[int, int] | None = None,
    ) -> None:
        self.base_seed = base_seed
        self.crop = crop
        self.crops_per_page = crops_per_page
        self.start_page = start_page
        self.shuffle_buffer = shuffle_buffer
        self.page_size = page_size

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        if info is not None:
            torch.set_num_threads(1)
            cv2.setNumThreads(1)
        shuffle = random.Random(self.base_seed * 7919 + wid * 104729 + self.start_page)
        buffer: list[tuple[torch.Tensor, torch.Tensor, int]] = []
        page = self.start_page + wid
        while True:
            seed = self.base_seed + page
            image, chars = _render_training_page(seed, self.page_size)
            rng = np.random.default_rng([seed, 1])
            for x, t in page_samples(image, chars, rng, self.crop, self.crops_per_page):
                buffer.append((torch.from_numpy(x), torch.from_numpy(t), page))
            page += nw
            while len(buffer) > self.shuffle_buffer:
                yield buffer.pop(shuffle.randrange(len(buffer)))


# -- loss ------------------------------------------------------------------------------------


def ohem_mse(
    pred: torch.Tensor,
    target: torch.Tensor,
    neg_ratio: float = 3.0,
    min_negatives: int = 500,
    pos_threshold: float = POSITIVE_THRESHOLD,
) -> torch.Tensor:
    """CRAFT's per-image MSE with online hard negative mining, averaged over the batch.

    Args:
        pred: ``N x H x W`` predicted scores.
        target: ``N x H x W`` targets.
        neg_ratio: Hard negatives per positive pixel.
        min_negatives: Negatives taken when an image has no positive pixel.
        pos_threshold: Targets above this are positives.

    Returns:
        Scalar loss: per image ``mean(positive losses) + mean(hardest negative losses)``.
    """
    n = pred.shape[0]
    loss = (pred.float() - target.float()).pow(2).reshape(n, -1)
    positive = target.reshape(n, -1) > pos_threshold
    total = loss.new_zeros(())
    for i in range(n):
        pos = positive[i]
        n_pos = int(pos.sum())
        neg_loss = loss[i][~pos]
        if n_pos > 0:
            total = total + loss[i][pos].mean()
            k = min(int(neg_ratio * n_pos), neg_loss.numel())
        else:
            k = min(min_negatives, neg_loss.numel())
        if k > 0:
            hard = neg_loss if k >= neg_loss.numel() else torch.topk(neg_loss, k, sorted=False)[0]
            total = total + hard.mean()
    return total / max(n, 1)


def detector_loss(
    y: torch.Tensor, target: torch.Tensor, neg_ratio: float = 3.0, min_negatives: int = 500
) -> tuple[torch.Tensor, dict[str, float]]:
    """Region + affinity OHEM-MSE loss.

    Args:
        y: Network output ``N x h x w x 2`` (channels last, raw scores).
        target: ``N x 2 x h x w`` targets (0 = region, 1 = affinity).
        neg_ratio: Hard negatives per positive.
        min_negatives: Negatives when there are no positives.

    Returns:
        ``(loss, {"region": ..., "affinity": ...})``.
    """
    region = ohem_mse(y[..., 0], target[:, 0], neg_ratio, min_negatives)
    affinity = ohem_mse(y[..., 1], target[:, 1], neg_ratio, min_negatives)
    return region + affinity, {"region": float(region.detach()), "affinity": float(affinity.detach())}


# -- evaluation ------------------------------------------------------------------------------


@dataclass
class EvalPage:
    """A held-out page: RGB image and ground-truth word quads (page pixels)."""

    image: np.ndarray
    quads: np.ndarray
    kind: str = ""


def render_eval_page(seed: int, page_size: tuple[int, int] | None = None) -> EvalPage:
    """A held-out evaluation page: mostly dense document layouts, half of them in small print.

    60 % of pages are forms, tables or receipts (dense fields, touching words), the rest any
    layout; half are downscaled by 0.6-0.85 (small print in pixels, as in low-resolution scans).

    Args:
        seed: Page seed (use :data:`VAL_SEED` / :data:`TUNE_SEED` ranges, never training seeds).
        page_size: Fixed ``(width, height)`` (None: random).
    """
    from .synth import SynthConfig, render_page

    rng = np.random.default_rng(seed)
    dense = rng.random() < 0.6
    config = SynthConfig(kinds=("form", "table", "receipt")) if dense else None
    width, height = page_size if page_size else (None, None)
    page = render_page(rng, width, height, config=config)
    image = page.image
    quads = np.array([w.quad for w in page.words], np.float32).reshape(-1, 4, 2)
    if rng.random() < 0.5:
        image, fx, fy = _downscale(image, float(rng.uniform(0.6, 0.85)))
        quads = quads * np.array([fx, fy], np.float32)
    return EvalPage(image=_gray_to_rgb(image), quads=quads, kind=page.kind)


def make_eval_pages(n: int, seed: int, page_size: tuple[int, int] | None = None) -> list[EvalPage]:
    """``n`` pages from seeds ``seed, seed + 1, ...`` (see :func:`render_eval_page`)."""
    return [render_eval_page(seed + i, page_size) for i in range(n)]


def evaluate_detector(
    model: nn.Module,
    spec: ModelSpec,
    pages: Sequence[EvalPage],
    thresholds: Mapping[str, Any] | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Word-level detection precision / recall / H-mean of ``model`` on ``pages``.

    Runs :class:`~ocr_tasks.models.detection.predictor.DetectionPredictor` (the inference code
    path) and :func:`ocr_tasks.evaluation.metrics.evaluate_detection` (IoU >= 0.5 on axis-aligned
    boxes), summing counts over pages. The model's train/eval mode is restored afterwards.

    Returns:
        ``tp``, ``n_pred``, ``n_gt``, ``precision``, ``recall``, ``hmean``, ``s_per_page``.
    """
    from ..evaluation.metrics import DetectionCounts, evaluate_detection
    from ..models.detection.predictor import DetectionPredictor

    was_training = model.training
    model.eval()
    predictor = DetectionPredictor(model, spec, device=device)
    th = predictor.resolve_thresholds(dict(thresholds) if thresholds else None)
    counts = DetectionCounts()
    t0 = time.perf_counter()
    for page in pages:
        boxes = predictor.detect(page.image, th)
        counts = counts + evaluate_detection([b.quad for b in boxes], [q.tolist() for q in page.quads])
    elapsed = time.perf_counter() - t0
    model.train(was_training)
    return {**counts.to_dict(), "s_per_page": elapsed / max(len(pages), 1)}


# -- training loop ---------------------------------------------------------------------------




def _check_config(cfg: DetectorTrainConfig) -> None:
    if cfg.crop <= 0 or cfg.crop % 32:
        raise ValueError(f"crop must be a positive multiple of 32, got {cfg.crop}")
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.crops_per_page < 1:
        raise ValueError("steps, batch_size and crops_per_page must be >= 1")
    if cfg.seed < 0 or (cfg.seed + 1) * TRAIN_SEED_STRIDE > VAL_SEED:
        raise ValueError(f"seed must be in [0, {VAL_SEED // TRAIN_SEED_STRIDE - 1}] (held-out seed ranges)")


def train_detector(cfg: DetectorTrainConfig, resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) a detector training run.

    Args:
        cfg: The run configuration.
        resume: Continue from ``out_dir/last.pt`` when it exists.
        progress: Show a tqdm progress bar.

    Returns:
        ``step``, ``pages_done``, ``best_hmean``, ``losses`` (one per step of this session) and
        the last validation scores.
    """
    from tqdm import tqdm

    _check_config(cfg)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed % (2**32))
    spec = detector_spec(cfg.options)
    from ..models.factory import build_model

    model = build_model(spec).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    mixed = amp_dtype(cfg.amp, device)
    use_amp = mixed is torch.float16  # the GradScaler is for float16 only; bfloat16 needs none
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    step, pages_done, best, fresh_from = 0, 0, -1.0, 0
    last = out / "last.pt"
    if resume and last.is_file():
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        if not restore_optimizer(optimizer, ckpt):  # a weights-only slim checkpoint
            fresh_from = int(ckpt["step"])
        if use_amp and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        step, pages_done, best = int(ckpt["step"]), int(ckpt["pages_done"]), float(ckpt.get("best", -1.0))
        log.info("resumed %s at step %d (page %d)", last, step, pages_done)
    (out / "config.json").write_text(
        json.dumps({**asdict(cfg), "spec_options": dict(spec.options)}, indent=1) + "\n"
    )
    val = make_eval_pages(cfg.val_pages, VAL_SEED, cfg.page_size) if cfg.val_pages > 0 else []
    stream = DetectorPageStream(
        cfg.seed * TRAIN_SEED_STRIDE,
        cfg.crop,
        cfg.crops_per_page,
        start_page=pages_done,
        shuffle_buffer=cfg.shuffle_buffer,
        page_size=cfg.page_size,
    )
    loader = DataLoader(
        stream,
        batch_size=cfg.batch_size,
        num_workers=cfg.workers,
        persistent_workers=cfg.workers > 0,
        prefetch_factor=2 if cfg.workers > 0 else None,
        pin_memory=device.type == "cuda",
        # Spawned, not forked: the parent has used OpenCV's thread pool (rendering the
        # validation pages), and a forked child deadlocks on its first parallel OpenCV call.
        multiprocessing_context="spawn" if cfg.workers > 0 else None,
    )
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="train detector", dynamic_ncols=True)
    scores: dict[str, float] = {}
    losses: list[float] = []
    parts: list[dict[str, float]] = []
    # With fp16 the GradScaler skips non-finite steps itself.
    guard = NonFiniteGuard(model, out, max_bad=MAX_BAD_STEPS, max_dumps=MAX_DUMPS, enabled=not use_amp, log=log)
    t_start = time.time()
    batches = iter(loader)
    while step < cfg.steps:
        images, targets, pages = next(batches)
        pages_done = max(pages_done, int(pages.max()) + 1)
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        lr = warmup_cosine_lr(step, cfg.lr, cfg.warmup, cfg.steps, fresh_from, cfg.cosine_from)
        for g in optimizer.param_groups:
            g["lr"] = lr
        guard.snapshot()
        with torch.autocast(device.type, dtype=mixed or torch.float32, enabled=mixed is not None):
            y, _ = model(images)
        loss, part = detector_loss(y.float(), targets, cfg.neg_ratio, cfg.min_negatives)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        if guard.ok(step, loss, norm, lambda x=images, t=targets, p=pages: {
                "images": x.float().cpu(), "targets": t.float().cpu(), "pages": p}):
            scaler.step(optimizer)
            scaler.update()
            losses.append(float(loss.detach()))
            parts.append(part)
        step += 1
        bar.update(1)
        bar.set_postfix(
            loss=f"{np.mean(losses[-50:] or [float('nan')]):.4f}",
            reg=f"{np.mean([p['region'] for p in parts[-50:]] or [float('nan')]):.4f}",
            aff=f"{np.mean([p['affinity'] for p in parts[-50:]] or [float('nan')]):.4f}",
            lr=f"{lr:.2e}",
            best=f"{best:.3f}",
        )
        if val and (step % cfg.val_every == 0 or step == cfg.steps):
            scores = evaluate_detector(model, spec, val, cfg.val_thresholds, device)
            recent = losses[-cfg.val_every :]
            entry = {
                "step": step,
                "pages_done": pages_done,
                "loss": float(np.mean(recent or [float("nan")])),
                **scores,
                "skipped_steps": guard.skipped,
                "elapsed_s": round(time.time() - t_start, 1),
            }
            with open(out / "log.jsonl", "a") as fh:
                fh.write(json.dumps(entry) + "\n")
            bar.write(
                f"step {step}: loss {entry['loss']:.4f}  val P {scores['precision']:.4f} "
                f"R {scores['recall']:.4f} H {scores['hmean']:.4f}  ({scores['s_per_page']:.2f} s/page)"
            )
            if scores["hmean"] > best:
                best = scores["hmean"]
                torch.save(model.state_dict(), out / "best.pth")
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            atomic_save(
                last,
                model=model.state_dict(),
                optimizer=optimizer.state_dict(),
                scaler=scaler.state_dict() if use_amp else None,
                step=step,
                pages_done=pages_done,
                best=best,
                config=asdict(cfg),
            )
    bar.close()
    if not val:
        torch.save(model.state_dict(), out / "best.pth")
    return {"step": step, "pages_done": pages_done, "best_hmean": best, "losses": losses, **scores}
