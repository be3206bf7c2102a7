"""Train a four-stage recognizer on synthetic word crops cut from synthetic document pages.

Data comes from :mod:`ocr_tasks.training.synth`: worker processes render pages and cut word
crops with detector-like misalignment; the trainer buckets crops by width so padding stays
small. CTC models train with CTC loss over the full padded sequence (as inference decodes
it), attention models with teacher-forced cross-entropy. Checkpoints (model, optimiser,
scheduler, step, data position) are written every ``--ckpt-every`` steps and a run resumes
from its last one. Validation on held-out crops (a seed range training never uses) is printed
as it goes.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..models.factory import build_model
from ..models.recognition.converter import make_converter
from ..models.recognition.preprocess import keep_ratio_batches, official_input
from ..models.registry import ModelSpec, get_spec
from .common import (
    MAX_BAD_STEPS,
    MAX_DUMPS,
    NonFiniteGuard,
    amp_dtype,
    atomic_save,
    restore_optimizer,
    warmup_cosine_lr,
)

__all__ = ["RecognizerTrainConfig", "SynthCropStream", "recognizer_spec", "train_recognizer", "evaluate_crops", "VAL_SEED"]

log = logging.getLogger(__name__)

#: Pages for validation are rendered from seeds at and above this offset; training never uses them.
VAL_SEED = 1_000_000_000


@dataclass
class RecognizerTrainConfig:
    """Everything that defines a recognizer training run (stored in its checkpoints)."""

    model: str = "crnn_light"
    out_dir: str = "runs/recognizer"
    steps: int = 20_000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 300
    cosine_from: int = 0
    seed: int = 1234
    device: str = "cpu"
    amp: bool = True
    workers: int = 1
    val_crops: int = 1000
    val_every: int = 500
    ckpt_every: int = 250
    threads: int = 0
    grad_clip: float = 5.0
    reuse: int = 1
    options: dict[str, Any] = field(default_factory=dict)


def recognizer_spec(cfg: RecognizerTrainConfig) -> ModelSpec:
    """The registry entry of ``cfg.model`` with ``cfg.options`` applied, validated strictly.

    Raises:
        ValueError: an unknown or invalid architecture option (the CLI checks before a run).
    """
    from dataclasses import replace

    spec = get_spec(cfg.model, "recognizer")
    if cfg.options:
        from ..models.recognition.network import RecognizerOptions

        spec = replace(spec, options={**spec.options, **cfg.options})
        RecognizerOptions.from_mapping(dict(spec.options), strict=True)  # ValueError names the bad option
    return spec


def _page_crops(seed: int, charset: set[str]) -> list[tuple[np.ndarray, str]]:
    """Render page ``seed`` and cut its word crops (labels outside the charset are filtered)."""
    from .synth import cut_word_crops, render_page

    rng = np.random.default_rng(seed)
    page = render_page(rng)
    out = []
    for crop, text in cut_word_crops(page, rng, jitter=True):
        text = "".join(ch for ch in text if ch in charset)
        if text and crop.size > 0 and crop.shape[0] >= 4 and crop.shape[1] >= 2:
            out.append((crop, text))
    return out


class SynthCropStream(IterableDataset):
    """Endless stream of ``(crop, text)`` from pages ``base_seed + k`` for k = start, start+1, ...

    Each DataLoader worker takes every ``num_workers``-th page, so the stream is deterministic
    for a given seed and worker count, and resumable from a page index.

    ``reuse``: how many times each crop is yielded. A crop that has been yielded waits in a
    recycle queue of ``recycle_delay`` crops (about ``recycle_delay / batch`` steps) before it
    goes back into the shuffle buffer, so its repeats land in different batches far apart.
    Rendering is about half the CPU of a 2-core training run; yielding each crop twice leaves
    that half to the model.
    """

    def __init__(self, base_seed: int, charset: str, start_page: int = 0, shuffle_buffer: int = 2048,
                 reuse: int = 1, recycle_delay: int = 8192) -> None:
        if reuse < 1:
            raise ValueError(f"reuse must be >= 1, got {reuse}")
        self.base_seed = base_seed
        self.charset = set(charset)
        self.start_page = start_page
        self.shuffle_buffer = shuffle_buffer
        self.reuse = reuse
        self.recycle_delay = recycle_delay

    def __iter__(self) -> Iterator[tuple[np.ndarray, str, int]]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        torch.set_num_threads(1)
        rnd = random.Random(self.base_seed * 7919 + wid + self.start_page)
        # entries: (crop, text, page, times yielded so far)
        buffer: list[tuple[np.ndarray, str, int, int]] = []
        recycle: deque[tuple[np.ndarray, str, int, int]] = deque()
        page = self.start_page + wid
        while True:
            for crop, text in _page_crops(self.base_seed + page, self.charset):
                buffer.append((crop, text, page, 0))
            page += nw
            while len(buffer) > self.shuffle_buffer:
                crop, text, src, used = buffer.pop(rnd.randrange(len(buffer)))
                if used + 1 < self.reuse:
                    recycle.append((crop, text, src, used + 1))
                    if len(recycle) > self.recycle_delay:
                        buffer.append(recycle.popleft())
                yield crop, text, src


def _identity(batch: list[Any]) -> list[Any]:
    return batch


def _model_inputs(spec: ModelSpec, crops: list[np.ndarray], max_batch: int) -> list[tuple[list[int], torch.Tensor]]:
    h, w = spec.input_size
    if spec.keep_ratio:
        return keep_ratio_batches(crops, img_h=h, max_w=w, max_batch=max_batch)
    return [(list(range(len(crops))), official_input(crops, img_h=h, img_w=w))]


def _loss(model: nn.Module, converter: Any, spec: ModelSpec, images: torch.Tensor, texts: list[str],
          ctc: nn.CTCLoss | None, device: torch.device) -> torch.Tensor:
    if ctc is not None:
        logits = model(images, None, True)
        log_probs = logits.float().log_softmax(2).permute(1, 0, 2)
        targets, lengths = converter.encode(texts)
        t = log_probs.shape[0]
        input_lengths = torch.full((len(texts),), t, dtype=torch.long)
        return ctc(log_probs, targets.to(device), input_lengths, lengths)
    max_len = int(spec.options.get("batch_max_length", 25))
    tokens, _ = converter.encode(texts, batch_max_length=max_len)
    tokens = tokens.to(device)
    logits = model(images, tokens[:, :-1], True)
    target = tokens[:, 1:]
    return nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=0)


def make_validation_set(n: int, charset: str, seed: int = VAL_SEED) -> list[tuple[np.ndarray, str]]:
    """``n`` held-out crops from pages rendered with seeds ``seed, seed+1, ...``."""
    out: list[tuple[np.ndarray, str]] = []
    page = 0
    chars = set(charset)
    while len(out) < n:
        out.extend(_page_crops(seed + page, chars))
        page += 1
    return out[:n]


@torch.inference_mode()
def evaluate_crops(model: nn.Module, spec: ModelSpec, samples: list[tuple[np.ndarray, str]],
                   device: torch.device, batch: int = 256) -> dict[str, float]:
    """Word accuracy (exact and caseless) of ``model`` on ``(crop, text)`` samples."""
    from ..models.recognition.predictor import RecognitionPredictor

    was_training = model.training
    model.eval()
    # channels-last on CPU, as the serving predictor reads (and the trainer trains) there
    predictor = RecognitionPredictor(model, spec, device=device, max_batch=batch, channels_last=device.type == "cpu")
    preds = predictor.predict([c for c, _ in samples])
    model.train(was_training)
    exact = sum(p == t for (p, _), (_, t) in zip(preds, samples))
    caseless = sum(p.lower() == t.lower() for (p, _), (_, t) in zip(preds, samples))
    n = max(len(samples), 1)
    return {"word_acc": exact / n, "word_acc_caseless": caseless / n, "n": float(len(samples))}




def _plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state_dict in the default (contiguous) layout, whatever its training layout."""
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def train_recognizer(cfg: RecognizerTrainConfig, resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) a training run; returns the final validation scores.

    Writes ``out_dir/last.pt`` (resumable), ``out_dir/best.pth`` (plain state_dict of the best
    validation score), ``out_dir/log.jsonl`` (one line per validation).
    """
    from tqdm import tqdm

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    # OpenCV's own thread pool would fight torch for the cores, and a pool alive at fork time
    # can deadlock the data workers: keep it single-threaded before any worker starts.
    import cv2

    cv2.setNumThreads(1)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed % (2**32))
    spec = recognizer_spec(cfg)
    converter = make_converter(str(spec.options.get("prediction", "CTC")), spec.character)
    model = build_model(spec).to(device)
    # Channels-last convolutions on CPU: a bf16 training step of 64 crops 32x100 took 262 instead
    # of 342 ms on the 2-core AMX Xeon of session 7 (fp32: 566 vs 623 ms). Checkpoints are saved
    # in the default layout (_plain_state), so nothing downstream sees the difference.
    channels_last = device.type == "cpu"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ctc = nn.CTCLoss(blank=0, zero_infinity=True) if spec.options.get("prediction", "CTC") == "CTC" else None
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
        step, pages_done, best = ckpt["step"], ckpt["pages_done"], ckpt.get("best", -1.0)
        log.info("resumed %s at step %d", last, step)
    (out / "config.json").write_text(json.dumps({**asdict(cfg), "spec_options": dict(spec.options)}, indent=1))
    val = make_validation_set(cfg.val_crops, spec.character)
    stream = SynthCropStream(cfg.seed * 1000, spec.character, start_page=pages_done, reuse=cfg.reuse)
    loader = DataLoader(stream, batch_size=cfg.batch_size * 8, num_workers=cfg.workers, collate_fn=_identity,
                        persistent_workers=cfg.workers > 0, prefetch_factor=4 if cfg.workers > 0 else None)
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc="train recognizer", dynamic_ncols=True)
    scores: dict[str, float] = {}
    losses: list[float] = []
    # With fp16 the GradScaler skips non-finite steps itself.
    guard = NonFiniteGuard(model, out, max_bad=MAX_BAD_STEPS, max_dumps=MAX_DUMPS, enabled=not use_amp, log=log)
    t_start = time.time()
    for chunk in loader:
        if step >= cfg.steps:
            break
        pages_done = max(p for _, _, p in chunk) + 1
        crops = [c for c, _, _ in chunk]
        texts = [t for _, t, _ in chunk]
        groups = _model_inputs(spec, crops, cfg.batch_size)
        random.shuffle(groups)
        for indices, images in groups:
            if step >= cfg.steps:
                break
            for g in optimizer.param_groups:
                g["lr"] = warmup_cosine_lr(step, cfg.lr, cfg.warmup, cfg.steps, fresh_from, cfg.cosine_from)
            guard.snapshot()
            with torch.autocast(device.type, dtype=mixed or torch.float32, enabled=mixed is not None):
                images = images.to(device)
                if channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                batch_texts = [texts[i] for i in indices]
                loss = _loss(model, converter, spec, images, batch_texts, ctc, device)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            if guard.ok(step, loss, norm, lambda x=images, t=batch_texts: {
                    "images": x.float().contiguous().cpu(), "texts": t}):
                scaler.step(optimizer)
                scaler.update()
                losses.append(float(loss.detach()))
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-50:] or [float('nan')]):.3f}", best=f"{best:.3f}")
            if step % cfg.val_every == 0 or step == cfg.steps:
                scores = evaluate_crops(model, spec, val, device)
                entry = {"step": step, "loss": float(np.mean(losses[-cfg.val_every:] or [float("nan")])), **scores,
                         "skipped_steps": guard.skipped,
                         "elapsed_s": round(time.time() - t_start, 1)}
                with open(out / "log.jsonl", "a") as fh:
                    fh.write(json.dumps(entry) + "\n")
                bar.write(f"step {step}: loss {entry['loss']:.4f}  val word_acc {scores['word_acc']:.4f} "
                          f"caseless {scores['word_acc_caseless']:.4f}")
                if scores["word_acc"] > best:
                    best = scores["word_acc"]
                    torch.save(_plain_state(model), out / "best.pth")
            if step % cfg.ckpt_every == 0 or step == cfg.steps:
                atomic_save(last, model=_plain_state(model), optimizer=optimizer.state_dict(), step=step,
                      pages_done=pages_done, best=best, config=asdict(cfg))
    bar.close()
    return {"step": step, "best_word_acc": best, "losses": losses, **scores}
