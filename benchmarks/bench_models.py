"""Params, MACs/FLOPs and CPU latency of every registered architecture.

Not a test: it prints figures. Usage::

    python benchmarks/bench_models.py [--threads 2] [--repeat 3] [--json OUT] [--skip-full-craft]
        [--precision fp32|bf16] [--runtime torch|onnx]

Detectors run on a 1240x1754 page (A4 at 150 dpi) resized by their canvas settings;
recognizers on 200 crops (official models: 32x100 each; keep-ratio models: realistic widths).
Weights are random: latency does not depend on the values.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocr_tasks.models.factory import build_model  # noqa: E402
from ocr_tasks.models.registry import list_specs  # noqa: E402


class MacCounter:
    """Multiply-accumulates of one forward pass.

    torch's FlopCounterMode counts every convolution and matrix product at the aten level
    (so functional convolutions, e.g. LightCRAFT's folded BatchNorm path, are included, and so is
    LSTMCell); it does not see inside ``nn.LSTM``, which forward hooks add here.
    """

    def __init__(self, model: nn.Module) -> None:
        from torch.utils.flop_counter import FlopCounterMode

        self.lstm_macs = 0
        self.handles = [m.register_forward_hook(self.hook) for m in model.modules() if isinstance(m, nn.LSTM)]
        self.mode = FlopCounterMode(display=False)
        self.mode.__enter__()

    def hook(self, module: nn.Module, inputs, output) -> None:  # noqa: ANN001
        out = output[0]
        dirs = 2 if module.bidirectional else 1
        steps = out.shape[0] * out.shape[1]
        h = module.hidden_size
        self.lstm_macs += steps * dirs * 4 * h * (module.input_size + h)

    @property
    def macs(self) -> int:
        return self.mode.get_total_flops() // 2 + self.lstm_macs

    def close(self) -> None:
        self.mode.__exit__(None, None, None)
        for h in self.handles:
            h.remove()


def measure(model: nn.Module, make_inputs, repeat: int, run=None) -> tuple[float, float]:  # noqa: ANN001
    """(GMACs of one call, median seconds of one call of ``run``, by default ``model`` itself)."""
    model.eval()
    run = run or model
    with torch.inference_mode():
        counter = MacCounter(model)
        model(*make_inputs())
        counter.close()
        run(*make_inputs())  # warm-up
        times = []
        for _ in range(repeat):
            args = make_inputs()
            t0 = time.perf_counter()
            run(*args)
            times.append(time.perf_counter() - t0)
    return counter.macs / 1e9, statistics.median(times)


def onnx_wrapper(spec, model: nn.Module, threads: int):  # noqa: ANN001, ANN201
    """The ONNX Runtime stand-in of ``model`` (OCR_RUNTIME=onnx), or None where it cannot run."""
    import copy

    from ocr_tasks.models.onnx_runtime import OnnxDetector, OnnxRecognizer, onnx_supported

    if spec.task == "refiner" or onnx_supported(spec.task, dict(spec.options)):
        return None
    if spec.task == "detector":
        return OnnxDetector(copy.deepcopy(model), threads)
    return OnnxRecognizer(copy.deepcopy(model), spec.input_size, threads)


def page_input(spec) -> tuple[torch.Tensor]:  # noqa: ANN001
    from ocr_tasks.models.detection.preprocess import resize_aspect_ratio

    canvas = int(spec.thresholds.get("canvas_size", 1280))
    mag = float(spec.thresholds.get("mag_ratio", 1.5))
    img, _, _ = resize_aspect_ratio(np.zeros((1754, 1240, 3), np.uint8), canvas, mag)
    return (torch.zeros(1, 3, img.shape[0], img.shape[1]),)


def crop_widths(n: int = 200, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int(w) for w in np.clip(rng.lognormal(np.log(80), 0.6, n), 16, 400)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--crops", type=int, default=200)
    ap.add_argument("--skip-full-craft", action="store_true", help="skip the 20M-param VGG CRAFT (slow on CPU)")
    ap.add_argument("--only", nargs="*", help="benchmark only these registry names")
    ap.add_argument("--json", help="write the table as JSON here")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                    help="CPU arithmetic (OCR_PRECISION): bf16 autocast around every forward pass")
    ap.add_argument("--runtime", choices=("torch", "onnx"), default="torch",
                    help="onnx: time the ONNX Runtime export (fp32; OCR_RUNTIME), skipping models it cannot run")
    args = ap.parse_args()
    if args.runtime == "onnx" and args.precision != "fp32":
        ap.error("--runtime onnx runs fp32; leave --precision at fp32")
    torch.set_num_threads(args.threads)
    from ocr_tasks.models.precision import autocast, resolve_precision

    cpu = torch.device("cpu")
    with autocast(cpu, resolve_precision(args.precision, cpu)):
        rows = _bench_all(args)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"precision": args.precision, "runtime": args.runtime, "threads": args.threads, "rows": rows}, indent=1))


def _bench_all(args: argparse.Namespace) -> list[dict]:
    rows = []
    for spec in list_specs():
        if spec.arch == "craft" and args.skip_full_craft:
            continue
        if args.only and spec.name not in args.only:
            continue
        if spec.name == "craft_ic15_20k":
            continue  # same architecture as craft_mlt_25k
        model = build_model(spec).eval()
        params = sum(p.numel() for p in model.parameters())
        run = None
        if args.runtime == "onnx":
            run = onnx_wrapper(spec, model, args.threads)
            if run is None:
                print(f"{spec.name:<40} {spec.task:<10} (not run on ONNX Runtime)", flush=True)
                continue
        if spec.task == "detector":
            x = page_input(spec)
            gmacs, sec = measure(model, lambda x=x: x, args.repeat, run)
            shape = f"1x3x{x[0].shape[2]}x{x[0].shape[3]} (1240x1754 page)"
        elif spec.task == "refiner":
            with torch.inference_mode():
                y, feat = torch.zeros(1, 464, 640, 2), torch.zeros(1, 32, 464, 640)
            gmacs, sec = measure(model, lambda y=y, feat=feat: (y, feat), args.repeat)
            shape = "maps of a 928x1280 input"
        else:
            from ocr_tasks.models.recognition.preprocess import keep_ratio_batches, official_input

            h, w = spec.input_size
            if spec.keep_ratio:
                crops = [np.full((h, cw), 200, np.uint8) for cw in crop_widths(args.crops)]
                groups = list(keep_ratio_batches(crops, img_h=h, max_w=w, max_batch=256))
                counter = MacCounter(model)
                times = []
                forward = run or model
                with torch.inference_mode():
                    for _, batch in groups:
                        model(batch, None, False)
                    counter.close()
                    for _, batch in groups:
                        forward(batch, None, False)  # warm-up
                    for _ in range(args.repeat):
                        t0 = time.perf_counter()
                        for _, batch in keep_ratio_batches(crops, img_h=h, max_w=w, max_batch=256):
                            forward(batch, None, False)
                        times.append(time.perf_counter() - t0)
                gmacs, sec = counter.macs / 1e9, statistics.median(times)
                shape = f"{args.crops} crops, h={h}, keep-ratio widths (median {int(np.median(crop_widths(args.crops)))})"
            else:
                crops = [np.full((h, w), 200, np.uint8)] * args.crops
                batch = official_input(crops, img_h=h, img_w=w)
                gmacs, sec = measure(model, lambda batch=batch: (batch, None, False), args.repeat, run)
                shape = f"{args.crops} crops x 1x{h}x{w}"
        rows.append(
            {
                "model": spec.name,
                "task": spec.task,
                "params_M": round(params / 1e6, 3),
                "GMACs": round(gmacs, 2),
                "GFLOPs": round(2 * gmacs, 2),
                "cpu_seconds": round(sec, 3),
                "input": shape,
            }
        )
        r = rows[-1]
        print(
            f"{r['model']:<40} {r['task']:<10} {r['params_M']:>8.2f}M {r['GMACs']:>9.2f} GMAC "
            f"{r['cpu_seconds']:>8.3f}s  {r['input']}",
            flush=True,
        )
    return rows


if __name__ == "__main__":
    main()
