"""Tune the detector's post-processing (thresholds, canvas size, magnification) on held-out pages.

``ocr-pipeline train tune-detector RUN_DIR`` loads the run's weights (``best.pth``), renders
held-out synthetic pages (seeds from :data:`~ocr_tasks.training.detector.TUNE_SEED`, distinct
from training and validation; mostly dense forms/tables/receipts, half in small print) and
searches, with the real :class:`~ocr_tasks.models.detection.predictor.DetectionPredictor`:

1. every ``(canvas_size, mag_ratio)`` with a coarse threshold grid (every other value of each
   threshold list), then
2. the full ``text_threshold x link_threshold x low_text`` grid at the ``top_sizes`` best sizes.

Score maps are computed once per page and effective resize ratio (sizes that resize a page
identically share them), so the grid costs one forward per distinct ratio plus the cheap
post-processing per setting. The chosen setting is written to ``RUN_DIR/thresholds.json`` (only
:class:`~ocr_tasks.models.detection.postprocess.CraftThresholds` fields, which
``ocr-pipeline export detector`` stores in ``weights/bundled.json``); the table of all tried
settings goes to ``RUN_DIR/tune.json``.

Which setting is chosen (``pick``):

- ``best``: the highest word-level H-mean (IoU >= 0.5, counts summed over pages; ties: fewer
  network input pixels, then the faster setting).
- ``1se``: the one-standard-error rule. Among the settings whose H-mean is within one standard
  error of the best (``sqrt(H (1 - H) / n)``, ``n`` the tuning pages' ground-truth words: the
  differences the tuning set cannot tell apart), the one that feeds the network the fewest
  pixels per page (detection time grows with them), and the best H-mean at that size.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

__all__ = ["PICK_RULES", "TuneGrid", "choose_setting", "tune_detector", "format_table", "load_run_model"]

#: Selection rules of :func:`choose_setting` (``--pick``).
PICK_RULES = ("best", "1se")


@dataclass(frozen=True)
class TuneGrid:
    """Values searched by :func:`tune_detector`.

    Attributes:
        text_threshold: Candidate ``text_threshold`` values.
        link_threshold: Candidate ``link_threshold`` values.
        low_text: Candidate ``low_text`` values.
        canvas_size: Candidate ``canvas_size`` values.
        mag_ratio: Candidate ``mag_ratio`` values.
        top_sizes: Number of best ``(canvas_size, mag_ratio)`` pairs searched with the full
            threshold grid.
    """

    text_threshold: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8)
    link_threshold: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5)
    low_text: tuple[float, ...] = (0.3, 0.35, 0.4, 0.45)
    canvas_size: tuple[int, ...] = (1024, 1280, 1600, 1920)
    mag_ratio: tuple[float, ...] = (1.0, 1.5, 2.0)
    top_sizes: int = 2

    def coarse(self) -> list[tuple[float, float, float]]:
        """Stage-1 threshold triples: every other value of each list."""
        return list(itertools.product(self.text_threshold[::2], self.link_threshold[::2], self.low_text[::2]))

    def full(self) -> list[tuple[float, float, float]]:
        """Stage-2 threshold triples: the full product."""
        return list(itertools.product(self.text_threshold, self.link_threshold, self.low_text))


def load_run_model(run_dir: str | Path, checkpoint: str | Path | None = None) -> tuple[nn.Module, Any]:
    """Build the run's LightCRAFT (``config.json`` ``spec_options``) and load its weights.

    Args:
        run_dir: Training run directory.
        checkpoint: Weights file (default ``best.pth``, else ``last.pt``).

    Returns:
        ``(model in eval mode on CPU, ModelSpec)``.

    Raises:
        FileNotFoundError: When no weights are found.
    """
    import torch

    from ..models.factory import build_model
    from ..models.weights import normalize_state_dict
    from .detector import detector_spec

    run = Path(run_dir)
    config_path = run / "config.json"
    options = json.loads(config_path.read_text()).get("spec_options", {}) if config_path.is_file() else {}
    path = Path(checkpoint) if checkpoint else run / "best.pth"
    if checkpoint is None and not path.is_file():
        path = run / "last.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no weights in {run} (best.pth / last.pt)")
    obj = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    spec = detector_spec(options)
    model = build_model(spec)
    model.load_state_dict(normalize_state_dict(obj, source=str(path)), strict=False)
    return model.eval(), spec


def _effective_ratio(image: np.ndarray, canvas_size: int, mag_ratio: float) -> tuple[int, int]:
    """The resized (h, w) that ``resize_aspect_ratio`` produces (identical inputs to the network)."""
    h, w = image.shape[:2]
    long_side = max(h, w)
    ratio = min(mag_ratio * long_side, canvas_size) / long_side
    return int(h * ratio), int(w * ratio)


def _check_pick(pick: str) -> None:
    if pick not in PICK_RULES:
        raise ValueError(f"unknown pick rule {pick!r} (choose from {', '.join(PICK_RULES)})")


def choose_setting(table: list[Mapping[str, Any]], pick: str = "best") -> tuple[Mapping[str, Any], float]:
    """The row of ``table`` that rule ``pick`` selects (see the module docstring).

    Rows need ``hmean``, ``n_gt``, ``pixels_per_page`` and ``s_per_page``.

    Returns:
        ``(row, tolerance)``: the chosen row and the H-mean margin the rule allowed (0 for
        ``best``).

    Raises:
        ValueError: For an unknown rule or an empty table.
    """
    _check_pick(pick)
    if not table:
        raise ValueError("no tuning results to choose from")
    top = max(table, key=lambda r: (r["hmean"], -r["pixels_per_page"], -r["s_per_page"]))
    if pick == "best":
        return top, 0.0
    h, n = float(top["hmean"]), max(int(top["n_gt"]), 1)
    tolerance = math.sqrt(max(h * (1.0 - h), 0.0) / n)
    near = [r for r in table if r["hmean"] >= h - tolerance]
    chosen = min(near, key=lambda r: (r["pixels_per_page"], -r["hmean"], r["s_per_page"]))
    return chosen, tolerance


def format_table(rows: list[Mapping[str, Any]]) -> str:
    """The tried settings as a fixed-width text table."""
    head = f"{'stage':>5} {'canvas':>6} {'mag':>4} {'text':>5} {'link':>5} {'low':>5} {'P':>6} {'R':>6} {'H':>6} {'s/page':>7} {'Mpx':>5}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['stage']:>5} {r['canvas_size']:>6} {r['mag_ratio']:>4.1f} {r['text_threshold']:>5.2f} "
            f"{r['link_threshold']:>5.2f} {r['low_text']:>5.2f} {r['precision']:>6.4f} {r['recall']:>6.4f} "
            f"{r['hmean']:>6.4f} {r['s_per_page']:>7.3f} {r.get('pixels_per_page', 0) / 1e6:>5.2f}"
        )
    return "\n".join(lines)


def tune_detector(
    run_dir: str | Path,
    pages: int = 24,
    grid: TuneGrid | None = None,
    device: str = "cpu",
    threads: int = 0,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    page_size: tuple[int, int] | None = None,
    pick: str = "best",
) -> dict[str, Any]:
    """Grid-search post-processing settings; writes ``thresholds.json`` and ``tune.json`` to the run.

    Args:
        run_dir: Detector training run directory.
        pages: Number of held-out tuning pages.
        grid: Values to search (default :class:`TuneGrid`).
        device: Torch device for the forward passes.
        threads: torch CPU threads (0: leave as is).
        checkpoint: Weights to tune (default ``RUN_DIR/best.pth``).
        progress: Show a tqdm progress bar.
        page_size: Fixed ``(width, height)`` of the tuning pages (None: random; for tests).
        pick: Selection rule, ``best`` or ``1se`` (see the module docstring).

    Returns:
        ``{"thresholds": chosen settings, "hmean": ..., "precision": ..., "recall": ...,
        "s_per_page": ..., "pixels_per_page": ..., "pick": ..., "tolerance": ...,
        "best_hmean": ..., "table": [all tried settings]}``.

    Raises:
        ValueError: For an unknown ``pick`` rule.
    """
    import torch
    from tqdm import tqdm

    from ..evaluation.metrics import DetectionCounts, evaluate_detection
    from ..models.detection.postprocess import CraftThresholds
    from ..models.detection.predictor import DetectionPredictor
    from .detector import TUNE_SEED, make_eval_pages

    grid = grid or TuneGrid()
    _check_pick(pick)  # before the forward passes, not after them
    if threads > 0:
        torch.set_num_threads(threads)
    run = Path(run_dir)
    model, spec = load_run_model(run, checkpoint)
    model.to(device)
    eval_pages = make_eval_pages(pages, TUNE_SEED, page_size)

    class _CachedPredictor(DetectionPredictor):
        """Reuses score maps per (page, resized shape) and records the forward time."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.maps: dict[tuple[int, tuple[int, int]], tuple[Any, Any, float]] = {}
            self.forward_s: dict[tuple[int, tuple[int, int]], float] = {}

        def score_maps(self, image: Any, thresholds: Any = None) -> tuple[Any, Any, float]:
            th = thresholds or self.thresholds
            key = (id(image), _effective_ratio(image, th.canvas_size, th.mag_ratio))
            if key not in self.maps:
                t0 = time.perf_counter()
                self.maps[key] = super().score_maps(image, th)
                self.forward_s[key] = time.perf_counter() - t0
            return self.maps[key]

    predictor = _CachedPredictor(model, spec, device=device)
    base = predictor.thresholds
    # (page, shape, text, link, low) -> (counts, post-processing seconds)
    results: dict[tuple[Any, ...], tuple[DetectionCounts, float]] = {}

    def run_setting(
        stage: int, canvas: int, mag: float, triples: list[tuple[float, float, float]]
    ) -> list[dict]:
        per_triple = {t: (DetectionCounts(), 0.0) for t in triples}
        forward, pixels = 0.0, 0
        for i, page in enumerate(eval_pages):
            shape = _effective_ratio(page.image, canvas, mag)
            pixels += shape[0] * shape[1]
            fkey = (id(page.image), shape)
            for text, link, low in triples:
                rkey = (i, shape, text, link, low)
                if rkey not in results:
                    th = CraftThresholds.from_mapping(
                        {
                            "text_threshold": text,
                            "link_threshold": link,
                            "low_text": low,
                            "canvas_size": canvas,
                            "mag_ratio": mag,
                        },
                        base=base,
                    )
                    predictor.score_maps(page.image, th)
                    t0 = time.perf_counter()
                    boxes = predictor.detect(page.image, th)
                    post = time.perf_counter() - t0
                    gts = [q.tolist() for q in page.quads]
                    results[rkey] = (evaluate_detection([b.quad for b in boxes], gts), post)
                counts, post = results[rkey]
                acc, secs = per_triple[(text, link, low)]
                per_triple[(text, link, low)] = (acc + counts, secs + post)
            forward += predictor.forward_s.get(fkey, 0.0)
            predictor.maps.pop(fkey, None)  # keep memory flat: maps of one page at a time
            bar.update(1)
        n = max(len(eval_pages), 1)
        rows = []
        for (text, link, low), (counts, secs) in per_triple.items():
            rows.append(
                {
                    "stage": stage,
                    "canvas_size": canvas,
                    "mag_ratio": mag,
                    "text_threshold": text,
                    "link_threshold": link,
                    "low_text": low,
                    **counts.to_dict(),
                    "s_per_page": (forward + secs) / n,
                    "pixels_per_page": pixels / n,
                }
            )
        return rows

    sizes = list(itertools.product(grid.canvas_size, grid.mag_ratio))
    top = min(grid.top_sizes, len(sizes))
    bar = tqdm(total=len(eval_pages) * (len(sizes) + top), disable=not progress, desc="tune detector")
    table: list[dict[str, Any]] = []
    coarse = grid.coarse()
    for canvas, mag in sizes:
        table.extend(run_setting(1, canvas, mag, coarse))
    size_best: dict[tuple[int, float], float] = {}
    for row in table:
        key = (row["canvas_size"], row["mag_ratio"])
        size_best[key] = max(size_best.get(key, -1.0), row["hmean"])
    ranked = sorted(size_best, key=lambda k: -size_best[k])[:top]
    full = grid.full()
    for canvas, mag in ranked:
        table.extend(run_setting(2, canvas, mag, full))
    bar.close()

    best, tolerance = choose_setting(table, pick)
    keys = ("text_threshold", "link_threshold", "low_text", "canvas_size", "mag_ratio")
    thresholds = {k: best[k] for k in keys}
    if base.align_short_words:  # not searched: carried over from the model's registered settings
        thresholds["align_short_words"] = True
    if base.split_link > 0:  # not searched either (chosen on cached score maps, docs/MODEL_CARD.md)
        thresholds["split_link"] = base.split_link
    CraftThresholds.from_mapping(thresholds)  # validate before writing
    (run / "thresholds.json").write_text(json.dumps(thresholds, indent=1) + "\n")
    summary = {
        "thresholds": thresholds,
        "hmean": best["hmean"],
        "precision": best["precision"],
        "recall": best["recall"],
        "s_per_page": best["s_per_page"],
        "pixels_per_page": best["pixels_per_page"],
        "pick": pick,
        "tolerance": tolerance,
        "best_hmean": max(r["hmean"] for r in table),
        "pages": len(eval_pages),
        "grid": asdict(grid),
    }
    (run / "tune.json").write_text(json.dumps({**summary, "table": table}, indent=1) + "\n")
    return {**summary, "table": table}
