"""``ocr-pipeline train detector`` and ``ocr-pipeline train tune-detector`` (registered via TRAIN_TARGETS)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from .common import (
    add_run_arguments,
    bounded,
    bounded_list,
    json_object,
    multiple_of,
    resolve_device_name,
    run_config_kwargs,
)

__all__ = ["TRAIN_TARGETS", "add_train_detector", "add_tune_detector"]



def cmd_train_detector(args: argparse.Namespace) -> int:
    """Run ``train detector``."""
    from .detector import DetectorTrainConfig, detector_spec, train_detector

    options: dict[str, Any] = dict(args.options or {})
    if args.width is not None:
        options["width"] = args.width
    cfg = DetectorTrainConfig(
        crop=args.crop,
        crops_per_page=args.crops_per_page,
        val_pages=args.val_pages,
        options=options,
        **run_config_kwargs(args),
    )
    try:
        detector_spec(options)
    except ValueError as exc:
        from ..cli import CLIError

        raise CLIError(f"--options: {exc}") from None
    result = train_detector(cfg, resume=not args.restart, progress=not args.no_progress)
    print(json.dumps({k: v for k, v in result.items() if k != "losses"}))
    return 0


def add_train_detector(sub: Any) -> None:
    """Register ``train detector``."""
    p = sub.add_parser("detector", help="train the light CRAFT detector on synthetic pages")
    add_run_arguments(p, out="runs/detector", steps=3000, batch_size=8, lr=2e-3, warmup=150,
                      val_every=250, ckpt_every=100, workers_help="page-rendering worker processes")
    p.add_argument(
        "--crop", type=multiple_of(32, "--crop"), default=384, help="square crop side in network input pixels (multiple of 32)"
    )
    p.add_argument("--crops-per-page", type=bounded(int, 1, "--crops-per-page"), default=8, help="training crops cut from each rendered page")
    p.add_argument("--val-pages", type=bounded(int, 0, "--val-pages"), default=12, help="held-out synthetic pages for validation")
    p.add_argument("--width", type=bounded(float, 0, "--width", strict=True), default=None,
                   help="LightCRAFT channel multiplier (default 1.0)")
    p.add_argument("--options", type=json_object("--options"), help="JSON LightCRAFT constructor options, e.g. '{\"width\": 1.5}'")
    p.set_defaults(func=cmd_train_detector)


def cmd_tune_detector(args: argparse.Namespace) -> int:
    """Run ``train tune-detector``."""
    from .detector_tune import TuneGrid, format_table, tune_detector

    grid = TuneGrid(
        text_threshold=args.text,
        link_threshold=args.link,
        low_text=args.low,
        canvas_size=args.canvas,
        mag_ratio=args.mag,
        top_sizes=args.top_sizes,
    )
    best = tune_detector(
        args.run_dir,
        pages=args.pages,
        grid=grid,
        device=resolve_device_name(args.device),
        threads=args.threads,
        checkpoint=args.checkpoint,
        progress=not args.no_progress,
        pick=args.pick,
    )
    print(format_table(best["table"]))
    print(json.dumps({k: v for k, v in best.items() if k != "table"}))
    print(f"wrote {args.run_dir}/thresholds.json", file=sys.stderr)
    return 0


def add_tune_detector(sub: Any) -> None:
    """Register ``train tune-detector``."""
    from .detector_tune import PICK_RULES, TuneGrid

    g = TuneGrid()

    def csv(values: tuple[Any, ...]) -> str:
        return ",".join(str(v) for v in values)

    p = sub.add_parser(
        "tune-detector",
        help="grid-search detector post-processing on held-out synthetic pages; writes RUN_DIR/thresholds.json",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a detector training run directory")
    p.add_argument("--pages", type=bounded(int, 1, "--pages"), default=24, help="held-out synthetic tuning pages")
    p.add_argument("--checkpoint", default=None, help="weights to tune (default RUN_DIR/best.pth)")
    p.add_argument("--text", type=bounded_list(float, 0, "--text", strict=True), default=csv(g.text_threshold), help="text_threshold values (comma-separated)")
    p.add_argument("--link", type=bounded_list(float, 0, "--link", strict=True), default=csv(g.link_threshold), help="link_threshold values")
    p.add_argument("--low", type=bounded_list(float, 0, "--low", strict=True), default=csv(g.low_text), help="low_text values")
    p.add_argument("--canvas", type=bounded_list(int, 32, "--canvas"), default=csv(g.canvas_size), help="canvas_size values")
    p.add_argument("--mag", type=bounded_list(float, 0, "--mag", strict=True), default=csv(g.mag_ratio), help="mag_ratio values")
    p.add_argument(
        "--top-sizes", type=bounded(int, 1, "--top-sizes"), default=g.top_sizes, help="sizes searched with the full threshold grid"
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--threads", type=bounded(int, 0, "--threads"), default=0, help="torch CPU threads (0 = default)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--pick", choices=PICK_RULES, default="best",
        help="best: highest H-mean; 1se: the smallest network input within one standard error of it",
    )
    p.set_defaults(func=cmd_tune_detector)


#: ``train`` targets contributed by the detector trainer (read by :mod:`ocr_tasks.training.cli`).
TRAIN_TARGETS: list[Callable[[Any], None]] = [add_train_detector, add_tune_detector]
