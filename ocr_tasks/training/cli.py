"""``ocr-pipeline train ...``, ``ocr-pipeline synth`` and ``ocr-pipeline export`` commands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..settings import INT8_CALIBRATIONS, INT8_PERCENTILE
from .common import add_run_arguments, bounded, json_object, run_config_kwargs

__all__ = ["COMMANDS", "TRAIN_TARGETS"]




def cmd_train_recognizer(args: argparse.Namespace) -> int:
    from .recognizer import RecognizerTrainConfig, recognizer_spec, train_recognizer

    cfg = RecognizerTrainConfig(
        model=args.model,
        val_crops=args.val_crops,
        reuse=args.reuse,
        options=dict(args.options or {}),
        **run_config_kwargs(args),
    )
    from ..errors import OCRError

    try:
        recognizer_spec(cfg)
    except OCRError:  # unknown --model: reported as such by the CLI
        raise
    except ValueError as exc:
        from ..cli import CLIError

        raise CLIError(f"--options: {exc}") from None
    result = train_recognizer(cfg, resume=not args.restart, progress=not args.no_progress)
    print(json.dumps({k: v for k, v in result.items() if k != "losses"}))
    return 0


def add_train_recognizer(sub: Any) -> None:
    p = sub.add_parser("recognizer", help="train a recognizer on synthetic word crops")
    p.add_argument("--model", default="crnn_light", help="registered recognizer architecture to train")
    add_run_arguments(p, out="runs/recognizer", steps=20_000, batch_size=64, lr=1e-3, warmup=300,
                      val_every=500, ckpt_every=250, workers_help="data-rendering worker processes")
    p.add_argument("--val-crops", type=bounded(int, 1, "--val-crops"), default=1000, help="held-out synthetic crops for validation")
    p.add_argument("--options", type=json_object("--options"), help='JSON overrides of the architecture options, e.g. \'{"hidden_size": 96}\'')
    p.add_argument("--reuse", type=bounded(int, 1, "--reuse"), default=1,
                   help="yield each rendered crop this many times, in different batches (2 frees the "
                        "data worker's CPU for training on a 2-core machine)")
    p.set_defaults(func=cmd_train_recognizer)


def cmd_train_slim(args: argparse.Namespace) -> int:
    from ..cli import CLIError
    from ..models.weights import UNREADABLE_FILE_ERRORS
    from .common import slim_checkpoint

    src = Path(args.checkpoint)
    if not src.is_file():
        raise CLIError(f"checkpoint not found: {src}")
    try:
        info = slim_checkpoint(src, Path(args.out), moments=not args.weights_only)
    except (KeyError, *UNREADABLE_FILE_ERRORS) as exc:  # not a training run's last.pt
        raise CLIError(f"{src} is not a training checkpoint (last.pt): {exc!r}") from None
    print(json.dumps({"out": args.out, **info}))
    return 0


def add_train_slim(sub: Any) -> None:
    p = sub.add_parser("slim", help="write a small resumable copy of a run's last.pt (for checkpoints/)")
    p.add_argument("checkpoint", help="a training run's last.pt")
    p.add_argument("out", help="where to write the slim copy, e.g. checkpoints/recognizer_last.pt")
    p.add_argument("--weights-only", action="store_true",
                   help="drop Adam's second moments too (a resumption then warms the rate up again)")
    p.set_defaults(func=cmd_train_slim)


#: ``train`` targets; the detector trainer registers itself here too.
TRAIN_TARGETS: list[Callable[[Any], None]] = [add_train_recognizer, add_train_slim]


def _detector_targets() -> list[Callable[[Any], None]]:
    try:
        from . import detector_cli
    except ImportError:
        return []
    return list(getattr(detector_cli, "TRAIN_TARGETS", []))


def add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train the bundled models (recognizer, detector)")
    targets = p.add_subparsers(dest="target", required=True, metavar="TARGET")
    for add in TRAIN_TARGETS + _detector_targets():
        add(targets)


def cmd_synth(args: argparse.Namespace) -> int:
    from .synth import write_dataset

    write_dataset(Path(args.out_dir), pages=args.pages, seed=args.seed)
    print(f"wrote {args.pages} pages to {args.out_dir}", file=sys.stderr)
    return 0


def add_synth(sub: Any) -> None:
    p = sub.add_parser("synth", help="write a synthetic document set in the evaluation format")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--pages", type=int, default=50)
    p.add_argument("--seed", type=int, default=2024, help="use a seed never used in training for held-out sets")
    p.set_defaults(func=cmd_synth)


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_weights

    info = export_weights(args.kind, Path(args.checkpoint), half=not args.fp32, int8=not args.no_int8)
    print(json.dumps(info))
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from .export import quantize_bundled_recognizer

    print(json.dumps(quantize_bundled_recognizer(pages=args.pages, method=args.calibration,
                                                 percentile=args.percentile)))
    return 0


def add_quantize(sub: Any) -> None:
    p = sub.add_parser(
        "quantize",
        help="make the bundled recognizer's int8 ONNX Runtime export from its bundled weights (OCR_PRECISION=int8)",
    )
    p.add_argument("--pages", type=bounded(int, 1, "--pages"), default=8,
                   help="synthetic pages whose word crops calibrate the int8 ranges (default 8, ~2,400 crops)")
    p.add_argument("--calibration", choices=INT8_CALIBRATIONS, default=INT8_CALIBRATIONS[0],
                   help=f"how activation ranges are chosen (default {INT8_CALIBRATIONS[0]}): minmax takes the "
                        "extremes seen, percentile clips each histogram, entropy keeps the range of least KL divergence")
    p.add_argument("--percentile", type=bounded(float, 90.0, "--percentile", high=100.0), default=INT8_PERCENTILE,
                   help=f"--calibration percentile: where each histogram is clipped (default {INT8_PERCENTILE})")
    p.set_defaults(func=cmd_quantize)


def add_export(sub: Any) -> None:
    p = sub.add_parser("export", help="install trained weights as the bundled default (fp16, sha256 registered)")
    p.add_argument("kind", choices=["recognizer", "detector"])
    p.add_argument("checkpoint", help="a best.pth / last.pt from a training run")
    p.add_argument("--fp32", action="store_true", help="store float32 instead of float16")
    p.add_argument("--no-int8", action="store_true",
                   help="recognizer: do not make its int8 ONNX Runtime export again (ocr-pipeline quantize does)")
    p.set_defaults(func=cmd_export)


COMMANDS: list[Callable[[Any], None]] = [add_train, add_synth, add_export, add_quantize]
