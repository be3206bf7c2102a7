"""The bundled detector's forward pass on one canvas: torch fp32, torch bf16 autocast, ONNX Runtime.

Not a test: it prints figures. Usage::

    python benchmarks/bench_detector_runtime.py [--threads 2] [--height 1216] [--width 1600] [--repeat 4]

A random 1 x 3 x H x W input; each figure is the median of ``--repeat`` calls after a warm-up.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocr_tasks.models.factory import load_model  # noqa: E402
from ocr_tasks.models.onnx_runtime import OnnxDetector  # noqa: E402
from ocr_tasks.models.registry import get_spec  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--height", type=int, default=1216)
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--repeat", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(get_spec("craft_light"))
    x = torch.randn(1, 3, args.height, args.width, generator=torch.Generator().manual_seed(0))

    def median_seconds(call) -> float:  # noqa: ANN001
        call()
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    with torch.inference_mode():
        fp32 = median_seconds(lambda: model(x))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = median_seconds(lambda: model(x))
    onnx = OnnxDetector(copy.deepcopy(model), args.threads)
    ort = median_seconds(lambda: onnx(x))
    print(f"canvas {args.height}x{args.width}, {args.threads} threads: torch fp32 {fp32:.3f} s, "
          f"torch bf16 {bf16:.3f} s, ONNX Runtime {ort:.3f} s")


if __name__ == "__main__":
    main()
